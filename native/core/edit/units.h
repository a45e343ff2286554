// Permanent pruning of units for relearning experiments: MLP neurons (every weight that makes the
// neuron: its up/gate rows and biases, and its down-projection column, so its activation at
// mlp.hook_pre and mlp.hook_post is exactly 0), or residual dimensions (dimension d of the token and
// position embeddings and of every projection that writes into the residual stream: attention
// output and MLP down projection, weights and biases; hook_resid_post[d] is then exactly 0 at every
// layer). The slices are what the trainer keeps frozen.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "edit/editor.h"
#include "models/model.h"

namespace neuroprune {

enum class UnitKind { Mlp, Resid };

struct Slice {
  std::string name;   // weight name
  int64_t dim;        // the dimension the indices run along
  at::Tensor index;   // long, on the model's device
};

// For Resid, `units` holds dimensions as {layer ignored, index = d}. E_RANGE names a bad entry.
// `inputs` false keeps an MLP neuron's up/gate rows and biases (only its output column): a neuron
// whose input and output weights are all zero has zero gradient everywhere and can never regrow.
std::vector<Slice> unit_slices(CausalLM& model, UnitKind kind, const std::vector<Neuron>& units, bool inputs = true);
// Per unit, the L2 norm of its output weights (MLP: the down-projection column; residual: every
// slice of the dimension): 0 while pruned, growing when it regrows.
std::vector<double> unit_output_norms(CausalLM& model, UnitKind kind, const std::vector<Neuron>& units);
// Zeroes every slice in place (no copy is kept: this is not an Editor edit and is not restored).
void zero_slices(CausalLM& model, const std::vector<Slice>& slices);

}  // namespace neuroprune
