// Integrated Gradients over MLP neurons (blocks.{l}.mlp.hook_post, or hook_pre), or over residual
// dimensions (blocks.{l}.hook_resid_post, ig_resid.cpp), baseline 0:
//   IG_i = sum_p a_{p,i} * sum_k w_k dF(alpha_k a)/da_{p,i}
// over the scaled positions p, with a Riemann rule (alpha_k, w_k). Two implementations that must
// agree: the reference reruns the whole model per layer; the fast path shares everything that the
// intervention cannot change (see ig.cpp).
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "models/model.h"

namespace neuroprune {

enum class IgObjective { Prob, LogProb, LogitDiff, Copy };
enum class IgRule { Left, Right, Middle, Trapezoid };
enum class IgPositions { Last, Answer, All };

struct IgPrompt {
  std::vector<int64_t> target;  // answer tokens, teacher-forced; the objective sums over them
  int64_t distractor = -1;      // LogitDiff: logit(target[0]) - logit(distractor)
  std::vector<int64_t> labels;  // Copy: log sum_{c in labels} p(c) - log p(target[0])
};

struct IgRequest {
  at::Tensor ids, mask;  // [B, T] int64: each row is prompt + target[:-1], left padded
  std::vector<IgPrompt> prompts;
  IgObjective objective = IgObjective::LogProb;
  IgRule rule = IgRule::Right;
  int64_t steps = 20;
  IgPositions positions = IgPositions::Last;
  MlpSite site = MlpSite::Post;  // hook_pre: the up projection's output before the activation (QRNCA)
  bool resid_post = false;       // attribute blocks.{l}.hook_resid_post (ig_resid_*; site is not read)
  std::vector<int64_t> layers;
  int64_t memory_budget_bytes = int64_t(2) << 30;  // for activations kept for the backward pass
  std::function<void(int64_t done, int64_t total)> progress;
  std::function<bool()> cancelled;
};

struct IgResult {
  at::Tensor attributions;  // [B, layers, d_mlp] (hook_resid_post: d_model) float32 on CPU
  at::Tensor f_full;        // [B, layers]: F(a), the objective with the site untouched
  at::Tensor f_baseline;    // [B, layers]: F(0), the site's scaled positions zeroed at that layer
  int64_t rows = 0;         // (prompt, layer, alpha) rows computed
  int64_t micro_batches = 0;
};

// (alpha_k, w_k) of a rule with m steps; the weights sum to 1.
std::vector<std::pair<double, double>> ig_rule_points(IgRule rule, int64_t steps);

IgResult ig_reference(const CausalLM& model, const IgRequest& request);
IgResult ig_fast(const CausalLM& model, const IgRequest& request);

// The same over the residual stream: IG_d = sum_p x_{p,d} * sum_k w_k dF(x with alpha_k x at the
// scaled positions)/dx_{p,d}, x = blocks.{l}.hook_resid_post. The reference reruns the whole model
// per layer; the fast path runs every prompt once and carries the scaled copies only through the
// blocks above l (ig_resid.cpp).
IgResult ig_resid_reference(const CausalLM& model, const IgRequest& request);
IgResult ig_resid_fast(const CausalLM& model, const IgRequest& request);

}  // namespace neuroprune
