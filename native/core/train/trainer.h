// Training: next-token cross-entropy, AdamW, global-norm gradient clipping, linear warm-up then
// cosine decay. Weights train in place; bfloat16/float16 models keep float32 master weights and
// moments. The caller feeds batches one step at a time.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "edit/units.h"
#include "models/model.h"

namespace neuroprune {

struct TrainConfig {
  int64_t total_steps = 1000;
  int64_t warmup_steps = 100;
  double lr = 1e-3;
  double min_lr_ratio = 0.1;  // cosine decays to lr * min_lr_ratio
  double weight_decay = 0.1;  // decoupled (AdamW), on matrices only
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double grad_clip = 1.0;  // max global L2 norm; 0 = off
  // Steps already done by an earlier run: the learning-rate schedule continues from here. AdamW's
  // moments and bias correction start fresh unless load_state() brings back that run's.
  int64_t start_step = 0;
};

struct StepStats {
  double loss;
  double grad_norm;  // before clipping
  double lr;
  int64_t tokens;  // tokens that carried loss
};

class Trainer {
 public:
  Trainer(CausalLM& model, TrainConfig config);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // ids, mask [B, T]; loss on every position t+1 whose mask is 1 (left padding never counts).
  StepStats step(const at::Tensor& ids, const at::Tensor& mask);
  int64_t steps_done() const { return step_; }
  // Keeps these slices exactly zero: their gradient is zeroed before clipping (so they do not count
  // in the norm) and the weights are zeroed after every update, so weight decay and the moments
  // cannot move them either.
  void freeze(std::vector<Slice> slices);
  double lr_at(int64_t step) const;
  // The optimizer state (AdamW's moments, its update count, the step, and the float32 master weights
  // of low-precision models) as safetensors, written atomically (temporary file, then rename).
  // Plain tensors rather than torch::save, so the file reads the same on every LibTorch version.
  // With `weights`, every weight goes in too (as its float32 master copy): the file then holds all
  // a later run needs besides the starting model's layout, and no separate model save is needed.
  void save_state(const std::string& path, bool weights = false) const;
  // Brings back a state save_state() wrote, its weights too when it has them; it must be for this
  // model and at start_step (E_ARG else).
  void load_state(const std::string& path);

 private:
  CausalLM& model_;
  TrainConfig config_;
  std::vector<at::Tensor> params_;  // the model's tensors (require grad while training)
  std::vector<at::Tensor> master_;  // float32 copies for low-precision models (else the params)
  std::vector<at::Tensor> m_, v_;
  std::vector<bool> decay_;
  int64_t step_ = 0;
  int64_t adam_t_ = 0;  // updates made by this trainer (bias correction)
  std::vector<std::pair<size_t, Slice>> frozen_;  // (param index, slice)
};

}  // namespace neuroprune
