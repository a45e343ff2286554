#include "circuit/ablate.h"

#include <ATen/core/grad_mode.h>  // at::NoGradGuard

#include <algorithm>

#include "circuit/graph.h"
#include "error.h"

namespace neuroprune::circuit {
namespace {

// Bytes one row needs in a forward without gradients that keeps every writer's output (twice: this run
// and the ablation values) and a layer's per-head inputs at a time, plus a vocabulary row per writer
// (logit lens) or two (the run's logits).
int64_t row_bytes(const ModelInfo& info, int64_t writers, int64_t T, int64_t elt, int64_t vocab_rows) {
  const int64_t H = info.n_heads, d = info.d_model;
  return T * ((3 * writers * d + 16 * H * d + 6 * info.d_mlp) * elt + 2 * H * T * 4) + vocab_rows * info.vocab_size * 4;
}

int64_t rows_per_chunk(int64_t budget, int64_t need, int64_t N) {
  if (budget < need)
    fail(codes::kBudget, "memory budget of " + std::to_string(budget >> 20) + " MiB is too small for one row (about " +
                             std::to_string((need >> 20) + 1) + " MiB); raise it or shorten the rows");
  return std::min(N, budget / need);
}

// The answer's rank, ties counted against it: how many other tokens have a logit at least the
// answer's (an all-tied output, as full zero ablation gives, ranks the answer last, not first).
// logits [n, ..., V], answer [n] -> [n, ...].
at::Tensor rank_of(const at::Tensor& logits, const at::Tensor& answer) {
  at::Tensor idx = answer.view({answer.size(0)});
  for (int64_t k = 1; k < logits.dim(); ++k) idx = idx.unsqueeze(-1);
  std::vector<int64_t> shape = logits.sizes().vec();
  shape.back() = 1;
  const at::Tensor at_answer = logits.gather(-1, idx.expand(shape));
  return ((logits >= at_answer).sum(-1) - 1).to(at::kInt);
}

}  // namespace

AblatedRunResult ablated_run(const CausalLM& model, const AblatedRunRequest& r) {
  const Graph g = build_graph(model);
  const ModelInfo& info = model.info();
  const auto device = model.device();
  check_ids(model, r.clean, "clean");
  const int64_t N = r.clean.size(0), T = r.clean.size(1), W = g.n_writers(), R = g.n_readers();
  check_metric(r.metric, N, info.vocab_size);
  if (r.kept.dim() != 3 || r.kept.size(0) < 1 || r.kept.size(1) != W || r.kept.size(2) != R)
    fail(codes::kShape, "kept must hold masks x writers x readers = K x " + std::to_string(W) + " x " + std::to_string(R) +
                            " entries, got " + std::to_string(r.kept.numel()));
  const int64_t K = r.kept.size(0);
  if (r.top_k < 1 || r.top_k > info.vocab_size)
    fail(codes::kArgument, "topK must be in [1, " + std::to_string(info.vocab_size) + "], got " + std::to_string(r.top_k));
  if (r.ablation != AblationKind::Zero) {
    if (!r.corrupted.defined()) fail(codes::kArgument, "corrupted rows are needed for the corrupted and mean ablations");
    check_ids(model, r.corrupted, "corrupted");
    if (r.corrupted.size(1) != T)
      fail(codes::kArgument, "corrupted rows hold " + std::to_string(r.corrupted.size(1)) + " tokens; the clean rows " + std::to_string(T));
    if (r.ablation == AblationKind::Corrupted && r.corrupted.size(0) != N)
      fail(codes::kArgument, "the corrupted ablation needs one corrupted row per clean row: " + std::to_string(r.corrupted.size(0)) +
                                 " for " + std::to_string(N));
  }
  auto poll = [&r] {
    if (r.cancelled && r.cancelled()) fail(codes::kAborted, "ablated run cancelled");
  };
  at::NoGradGuard no_grad;
  const at::Tensor ablated_cpu = g.edges.unsqueeze(0).logical_and(r.kept.to(at::kBool).logical_not());  // [K, W, R]
  const at::Tensor ablated_all = ablated_cpu.to(device, model.dtype());
  const int64_t elt = at::elementSize(model.dtype());
  // (mask, row) pairs per batch: whole row chunks times as many masks as fit.
  const int64_t pairs = rows_per_chunk(r.memory_budget_bytes, row_bytes(info, W, T, elt, 2), N * K);
  const int64_t chunk = std::min(N, pairs), masks_per_batch = std::max<int64_t>(1, std::min(K, pairs / chunk));

  // Mean ablation: per writer group, the mean of its output over the given rows, [1, T, n, d].
  // With no edge ablated in any mask, the run is the normal forward: no ablation values are needed.
  const bool ablating = ablated_cpu.any().item<bool>();
  std::vector<at::Tensor> mean;
  if (ablating && r.ablation == AblationKind::Mean) {
    const int64_t M = r.corrupted.size(0);
    for (int64_t r0 = 0; r0 < M; r0 += chunk) {
      const int64_t n = std::min(chunk, M - r0);
      std::vector<at::Tensor> z;
      GraphForward run;
      run.record = &z;
      run.poll = poll;
      graph_forward(model, g, graph_embed(model, r.corrupted.narrow(0, r0, n).to(device)), run);
      if (mean.empty()) mean.resize(z.size());
      for (size_t k = 0; k < z.size(); ++k) {
        const at::Tensor s = z[k].to(at::kFloat).sum(0, /*keepdim=*/true);
        mean[k] = mean[k].defined() ? mean[k] + s : s;
      }
    }
    for (auto& t : mean) t = (t / double(M)).to(model.dtype());
  }

  at::Tensor metric = at::empty({K, N}, at::kFloat), top = at::empty({K, N, r.top_k}, at::kInt), rank = at::empty({K, N}, at::kInt);
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t n = std::min(chunk, N - r0);
    const std::vector<int64_t> rows = row_range(r0, n);
    const at::Tensor e = graph_embed(model, r.clean.narrow(0, r0, n).to(device));
    // The ablation values of these rows, [n or 1, T, ., d] per writer group.
    std::vector<at::Tensor> values;
    if (ablating && r.ablation == AblationKind::Corrupted) {
      GraphForward run;
      run.record = &values;
      run.poll = poll;
      graph_forward(model, g, graph_embed(model, r.corrupted.narrow(0, r0, n).to(device)), run);
    } else if (ablating && r.ablation == AblationKind::Mean) {
      values = mean;
    } else if (ablating) {
      for (int64_t grp = 0; grp < g.n_groups(); ++grp) values.push_back(at::zeros({1, T, g.group_size(grp), g.d_model}, e.options()));
    }
    at::Tensor clean_lp;
    if (r.metric.kind == MetricKind::KL) {
      GraphForward plain;
      plain.poll = poll;
      clean_lp = at::log_softmax(graph_forward(model, g, e, plain).squeeze(1).to(at::kFloat), -1);
    }
    const at::Tensor answer = at::tensor(std::vector<int64_t>(r.metric.answer.begin() + r0, r.metric.answer.begin() + r0 + n), at::kLong).to(device);
    for (int64_t k0 = 0; k0 < K; k0 += masks_per_batch) {
      const int64_t kb = std::min(masks_per_batch, K - k0);
      // Rows mask-major: batch row j * n + i is mask k0 + j on row r0 + i.
      GraphForward ablate;
      ablate.poll = poll;
      if (ablating) {
        ablate.ablated_cpu = ablated_cpu.narrow(0, k0, kb);
        ablate.ablated = kb == 1 ? ablated_all[k0] : ablated_all.narrow(0, k0, kb).repeat_interleave(n, 0);
      }
      for (const auto& v : values) ablate.values.push_back(v.size(0) == 1 || kb == 1 ? v : v.repeat({kb, 1, 1, 1}));
      const at::Tensor input = kb == 1 ? e : e.repeat({kb, 1, 1});
      const at::Tensor logits = graph_forward(model, g, input, ablate).squeeze(1).to(at::kFloat);  // [kb n, V]
      std::vector<int64_t> batch_rows;
      for (int64_t j = 0; j < kb; ++j) batch_rows.insert(batch_rows.end(), rows.begin(), rows.end());
      const at::Tensor lp = clean_lp.defined() && kb > 1 ? clean_lp.repeat({kb, 1}) : clean_lp;
      metric.narrow(0, k0, kb).narrow(1, r0, n).copy_(metric_values(r.metric, logits, batch_rows, lp).view({kb, n}).cpu());
      top.narrow(0, k0, kb).narrow(1, r0, n).copy_(std::get<1>(at::topk(logits, r.top_k, -1)).view({kb, n, r.top_k}).cpu());
      rank.narrow(0, k0, kb).narrow(1, r0, n).copy_(rank_of(logits, answer.repeat({kb})).view({kb, n}).cpu());
    }
  }
  return {metric.view({K * N}), top.view({K * N, r.top_k}), rank.view({K * N})};
}

at::Tensor logit_lens(const CausalLM& model, const at::Tensor& clean, const std::vector<int64_t>& answer, int64_t budget) {
  const Graph g = build_graph(model);
  check_ids(model, clean, "clean");
  const int64_t N = clean.size(0), T = clean.size(1), W = g.n_writers();
  Metric m;
  m.kind = MetricKind::LogProb;
  m.answer = answer;
  check_metric(m, N, model.info().vocab_size);
  at::NoGradGuard no_grad;
  const auto device = model.device();
  const int64_t chunk = rows_per_chunk(budget, row_bytes(model.info(), W, T, at::elementSize(model.dtype()), W), N);
  std::vector<at::Tensor> ranks;
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t n = std::min(chunk, N - r0);
    std::vector<at::Tensor> z;
    GraphForward run;
    run.record = &z;
    graph_forward(model, g, graph_embed(model, clean.narrow(0, r0, n).to(device)), run);
    const at::Tensor last = stack_writers(z).select(1, T - 1);  // [n, W, d]
    const at::Tensor logits = model.head(last).to(at::kFloat);  // [n, W, V]
    const at::Tensor a = at::tensor(std::vector<int64_t>(answer.begin() + r0, answer.begin() + r0 + n), at::kLong).to(device);
    ranks.push_back(rank_of(logits, a).cpu());
  }
  return at::cat(ranks).contiguous();
}

}  // namespace neuroprune::circuit
