// Edge attribution patching (Syed et al. 2023) and EAP-IG (Hanna et al. 2024) on the circuit graph:
//   score(u->v) = sum_{rows, positions} (z~_u - z_u) . mean_k dM/d(input_v)(e_k)
// where z_u is u's output on the clean input, z~_u on the corrupted one, M the metric averaged over
// rows, and e_k = e~ + (k/m)(e - e~), k = 1..m, the input embeddings interpolated from the corrupted to
// the clean ones. EAP is m = 1 (the gradient at the clean input). Sign: the score is the first-order
// change of M when edge u->v carries the corrupted z~_u instead of the clean z_u, i.e. it approximates
// M(edge ablated with the corrupted value) - M(clean). Non-edges score exactly 0.
// With the kl metric EAP's scores are all 0 (KL to the clean run has zero gradient at the clean run);
// EAP-IG's are not.
#pragma once
#include <ATen/ATen.h>

#include <functional>

#include "circuit/metric.h"
#include "models/model.h"

namespace neuroprune::circuit {

struct EdgeScoreRequest {
  at::Tensor clean, corrupted;  // [N, T] int64 on CPU: equal shapes
  Metric metric;
  int64_t steps = 1;  // m; 1 is EAP
  int64_t memory_budget_bytes = int64_t(2) << 30;  // for what the gradient passes keep
  std::function<void(int64_t done, int64_t total)> progress;  // (row, step) pairs done
  std::function<bool()> cancelled;
};

struct EdgeScoreResult {
  at::Tensor scores;  // [W, R] float32 on CPU
  double metric_clean = 0, metric_corrupted = 0;  // M averaged over rows
  int64_t micro_batches = 0;  // gradient passes
};

EdgeScoreResult edge_scores(const CausalLM& model, const EdgeScoreRequest& request);

// One plain forward (CausalLM's blocks) and backward of the metric for the same rows, gradient taken
// at the input embeddings: the reference an EAP-IG step is timed against. Returns milliseconds.
double forward_backward_ms(const CausalLM& model, const at::Tensor& ids, const Metric& metric);

}  // namespace neuroprune::circuit
