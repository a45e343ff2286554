// Runs of the circuit graph with edges ablated (faithfulness, ACDC), and the logit lens of each writer.
#pragma once
#include <ATen/ATen.h>

#include <functional>

#include "circuit/metric.h"
#include "models/model.h"

namespace neuroprune::circuit {

// What an ablated edge u->v carries instead of the clean z_u: u's output on the row's corrupted input,
// its mean over the given rows (per position), or zero.
enum class AblationKind { Corrupted, Mean, Zero };

struct AblatedRunRequest {
  at::Tensor clean;      // [N, T] int64 on CPU
  // [K, W, R] bool on CPU, K >= 1 masks: 1 = the edge carries the clean value; non-edges ignored. Every
  // mask runs on every row (the ablation values are computed once for all of them).
  at::Tensor kept;
  AblationKind ablation = AblationKind::Corrupted;
  at::Tensor corrupted;  // Corrupted: [N, T], row i for clean row i; Mean: [M, T], the rows averaged over
  Metric metric;
  int64_t top_k = 10;
  int64_t memory_budget_bytes = int64_t(2) << 30;
  std::function<bool()> cancelled;
};

// Mask-major: entry k * N + i is mask k on row i.
struct AblatedRunResult {
  at::Tensor metric;       // [K * N] float32: the metric of the ablated run (kl: to the clean run)
  at::Tensor top_tokens;   // [K * N, top_k] int32 at the last position, best first
  at::Tensor answer_rank;  // [K * N] int32: other tokens with a logit at least metric.answer[i]'s (ties count against it)
};

AblatedRunResult ablated_run(const CausalLM& model, const AblatedRunRequest& request);

// ranks [N, W] int32: the rank of answer[i] (0 = top) when writer u's output at the last position of
// row i goes through the final norm and the unembedding.
at::Tensor logit_lens(const CausalLM& model, const at::Tensor& clean, const std::vector<int64_t>& answer,
                      int64_t memory_budget_bytes = int64_t(2) << 30);

}  // namespace neuroprune::circuit
