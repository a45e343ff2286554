// The metrics circuits are scored and evaluated with, per row at the last position:
//   logit_diff = logit(answer) - logit(wrong)
//   logprob    = log p(answer)                    (the paper's MatchNLL is its negative)
//   kl         = KL(p_clean || p) = sum_t p_clean(t) (log p_clean(t) - log p(t))
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace neuroprune::circuit {

enum class MetricKind { LogitDiff, LogProb, KL };

struct Metric {
  MetricKind kind = MetricKind::LogitDiff;
  std::vector<int64_t> answer, wrong;  // per row token ids; wrong for logit_diff only
};

// Checks the metric against `rows` rows and the vocabulary: E_ARG naming the field, E_RANGE for ids.
void check_metric(const Metric& metric, int64_t rows, int64_t vocab);

// Per-row metric [n] (float32) of last-position logits [n, V] whose row i is the request's row rows[i].
// clean_logprobs [n, V] (float32): the clean run's log-distribution per row, for kl (else undefined).
at::Tensor metric_values(const Metric& metric, const at::Tensor& logits, const std::vector<int64_t>& rows,
                         const at::Tensor& clean_logprobs);

// rows first .. first + n - 1.
std::vector<int64_t> row_range(int64_t first, int64_t n);

}  // namespace neuroprune::circuit
