// Reversible edits of MLP neurons: pruning (zeroing weights in place, originals kept) and activation
// scaling (a factor on blocks.{l}.mlp.hook_post or hook_pre, weights untouched).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "models/model.h"

namespace neuroprune {

struct Neuron {
  int64_t layer;
  int64_t index;
};

class Editor {
 public:
  explicit Editor(CausalLM& model) : model_(model) {}

  // Zeroes each neuron's down-projection slice (with `full`, its up/gate slices and biases too).
  // Returns a handle for remove(). E_RANGE names an out-of-range or duplicate entry.
  int64_t prune(const std::vector<Neuron>& neurons, bool full);
  // Multiplies each neuron's activation at `site` by `factor` in every later forward: at every
  // position, or with `last_only` at the last position of each forward call (the knowledge-neuron
  // and QRNCA experiments). E_ARG for hook_pre on a model without it (Mamba).
  int64_t scale(const std::vector<Neuron>& neurons, double factor, MlpSite site = MlpSite::Post, bool last_only = false);
  // Undoes one edit, bit for bit, keeping the others in force. E_ARG for an unknown handle.
  void remove(int64_t handle);
  void remove_all();
  size_t size() const { return edits_.size(); }

 private:
  struct Saved {
    std::string name;
    int64_t dim;
    at::Tensor index;   // neuron indices along dim
    at::Tensor values;  // the original slices
  };
  struct Edit {
    int64_t id;
    bool prune;
    bool full;
    double factor;
    MlpSite site;
    bool last_only;
    std::vector<Neuron> neurons;
    std::vector<Saved> saved;  // prunes only
  };

  void check(const std::vector<Neuron>& neurons) const;
  void apply(Edit& edit);
  void undo(Edit& edit);
  void rebuild_scales();

  CausalLM& model_;
  std::vector<Edit> edits_;
  int64_t next_id_ = 1;
};

}  // namespace neuroprune
