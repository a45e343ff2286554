#include "circuit/metric.h"

#include "error.h"

namespace neuroprune::circuit {

void check_metric(const Metric& m, int64_t rows, int64_t vocab) {
  auto ids = [&](const std::vector<int64_t>& v, const char* field) {
    if (static_cast<int64_t>(v.size()) != rows)
      fail(codes::kArgument, std::string("metric.") + field + " holds " + std::to_string(v.size()) + " ids for " +
                                 std::to_string(rows) + " rows (one per row)");
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] < 0 || v[i] >= vocab)
        fail(codes::kRange, std::string("metric.") + field + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) +
                                " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
  };
  ids(m.answer, "answer");
  if (m.kind == MetricKind::LogitDiff) ids(m.wrong, "wrong");
}

std::vector<int64_t> row_range(int64_t first, int64_t n) {
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = first + i;
  return out;
}

at::Tensor metric_values(const Metric& m, const at::Tensor& logits, const std::vector<int64_t>& rows, const at::Tensor& clean_logprobs) {
  const int64_t n = logits.size(0);
  const at::Tensor lf = logits.to(at::kFloat);
  auto pick = [&](const std::vector<int64_t>& ids) {
    std::vector<int64_t> picked(n);
    for (int64_t i = 0; i < n; ++i) picked[i] = ids[rows[i]];
    return at::tensor(picked, at::kLong).to(logits.device()).view({n, 1});
  };
  switch (m.kind) {
    case MetricKind::LogitDiff: return (lf.gather(1, pick(m.answer)) - lf.gather(1, pick(m.wrong))).squeeze(1);
    case MetricKind::LogProb: return at::log_softmax(lf, -1).gather(1, pick(m.answer)).squeeze(1);
    case MetricKind::KL: {
      if (!clean_logprobs.defined()) fail(codes::kArgument, "the kl metric needs the clean run's distribution");
      return (clean_logprobs.exp() * (clean_logprobs - at::log_softmax(lf, -1))).sum(-1);
    }
  }
  fail(codes::kArgument, "unknown metric");
}

}  // namespace neuroprune::circuit
