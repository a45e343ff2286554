// Rows are processed in chunks; per chunk: the clean and corrupted runs without gradients give
// z, z~ and D = z~ - z [n, T, W, d]; then every (row, step) pair of the chunk goes through one graph
// forward with the interpolated embeddings and one backward of the metric (pairs micro-batched to the
// memory budget). A gradient hook on each layer's reader inputs folds the gradient into the scores as
// it arrives, so the per-reader gradients [n, T, R, d] are never held at once:
//   scores[u, v] += (1/m) sum_{rows, positions} D_u . dM/d(input_v)
#include "circuit/eap.h"

#include <ATen/core/grad_mode.h>  // at::NoGradGuard, at::AutoGradMode

#include <algorithm>
#include <chrono>

#include "circuit/graph.h"
#include "error.h"
#include "models/blocks.h"

namespace neuroprune::circuit {
namespace {

void check_cancelled(const EdgeScoreRequest& r, const char* where) {
  if (r.cancelled && r.cancelled()) fail(codes::kAborted, std::string("edge scoring cancelled ") + where);
}

// Bytes one (row, step) pair keeps for the backward pass, a coarse upper bound calibrated on CPU
// (GPT-2 small, Pythia-160m, Qwen2-0.5b measured 4.4 to 5.8 H d floats per position and layer): per
// position and layer, the per-head q/k/v inputs normed and projected (7 H d, and 6 H d more in float32
// for reduced-precision models, whose norms compute in float32), the MLP (4 d_mlp), a few d-sized
// tensors and the float32 attention probabilities (2 H T); plus the logits at the last position.
int64_t pair_bytes(const ModelInfo& info, int64_t T, int64_t elt) {
  const int64_t H = info.n_heads, d = info.d_model;
  const int64_t per_layer = (7 * H * d + 4 * info.d_mlp + 8 * d) * elt + (elt < 4 ? 6 * H * d * 4 : 0) + 2 * H * T * 4;
  return T * info.n_layers * per_layer + info.vocab_size * 8;
}

// Bytes a row keeps while its pairs run: D = z~ - z in float32 [T, W, d], and z, z~ while it is made.
int64_t row_bytes(const Graph& g, int64_t T, int64_t elt) { return T * g.n_writers() * g.d_model * (4 + 2 * elt); }

// How many writers the readers starting at `first` read.
int64_t writers_read(const Graph& g, int64_t first) {
  if (first == g.logits_reader()) return g.n_writers();
  const int64_t l = first / (3 * g.n_heads + 1);
  return first == g.mlp_reader(l) ? g.writers_before_mlp(l) : g.writers_before_attn(l);
}

}  // namespace

EdgeScoreResult edge_scores(const CausalLM& model, const EdgeScoreRequest& r) {
  const Graph g = build_graph(model);
  const ModelInfo& info = model.info();
  if (r.clean.sizes() != r.corrupted.sizes())
    fail(codes::kArgument, "clean and corrupted must have the same rows and length, got [" + std::to_string(r.clean.size(0)) + ", " +
                               std::to_string(r.clean.size(1)) + "] and [" + std::to_string(r.corrupted.size(0)) + ", " +
                               std::to_string(r.corrupted.size(1)) + "]");
  check_ids(model, r.clean, "clean");
  check_ids(model, r.corrupted, "corrupted");
  const int64_t N = r.clean.size(0), T = r.clean.size(1), m = r.steps, W = g.n_writers(), R = g.n_readers();
  check_metric(r.metric, N, info.vocab_size);
  if (m < 1) fail(codes::kArgument, "steps must be at least 1, got " + std::to_string(m));
  const auto device = model.device();
  const int64_t elt = at::elementSize(model.dtype());
  const int64_t pair = pair_bytes(info, T, elt), row = row_bytes(g, T, elt);
  if (r.memory_budget_bytes < pair + row)
    fail(codes::kBudget, "memory budget of " + std::to_string(r.memory_budget_bytes >> 20) + " MiB is too small for one row (about " +
                             std::to_string(((pair + row) >> 20) + 1) + " MiB); raise it or shorten the rows");
  // Whole rows with all their steps when they fit; else one row at a time, its steps split.
  const int64_t whole_rows = r.memory_budget_bytes / (m * pair + row);
  const int64_t rows_per_chunk = whole_rows >= 1 ? std::min(N, whole_rows) : 1;
  const int64_t steps_per_batch = whole_rows >= 1 ? m : std::min(m, (r.memory_budget_bytes - row) / pair);

  EdgeScoreResult out;
  at::Tensor scores = at::zeros({W, R}, at::TensorOptions().device(device).dtype(at::kFloat));
  double clean_sum = 0, corrupted_sum = 0;
  const int64_t total = N * m;
  int64_t done = 0;
  for (int64_t r0 = 0; r0 < N; r0 += rows_per_chunk) {
    const int64_t n = std::min(rows_per_chunk, N - r0);
    const std::vector<int64_t> rows = row_range(r0, n);
    at::Tensor e, e_corrupt, D, clean_lp;
    {
      at::NoGradGuard no_grad;
      check_cancelled(r, "before the clean run");
      e = graph_embed(model, r.clean.narrow(0, r0, n).to(device));
      e_corrupt = graph_embed(model, r.corrupted.narrow(0, r0, n).to(device));
      std::vector<at::Tensor> z, z_corrupt;
      GraphForward run;
      run.poll = [&r] { check_cancelled(r, "during the clean and corrupted runs"); };
      run.record = &z;
      const at::Tensor logits = graph_forward(model, g, e, run).squeeze(1);
      run.record = &z_corrupt;
      const at::Tensor logits_corrupt = graph_forward(model, g, e_corrupt, run).squeeze(1);
      if (r.metric.kind == MetricKind::KL) clean_lp = at::log_softmax(logits.to(at::kFloat), -1);
      clean_sum += metric_values(r.metric, logits, rows, clean_lp).sum().item<double>();
      corrupted_sum += metric_values(r.metric, logits_corrupt, rows, clean_lp).sum().item<double>();
      D = (stack_writers(z_corrupt).to(at::kFloat) - stack_writers(z).to(at::kFloat));  // [n, T, W, d]
    }
    // Gradient passes: rows of this chunk x steps k0+1 .. k0+s, row-major.
    const int64_t rows_here = whole_rows >= 1 ? n : 1;
    for (int64_t i = 0; i < n; i += rows_here) {
      for (int64_t k0 = 0; k0 < m; k0 += steps_per_batch) {
        const int64_t s = std::min(steps_per_batch, m - k0);
        check_cancelled(r, "between micro-batches");
        at::AutoGradMode grad(true);
        // e_k = e~ + (k/m)(e - e~) per row and step
        const at::Tensor alpha = (at::arange(k0 + 1, k0 + s + 1, at::kDouble) / double(m)).to(device, e.scalar_type()).view({1, s, 1, 1});
        const at::Tensor ec = e_corrupt.narrow(0, i, rows_here).unsqueeze(1), ed = e.narrow(0, i, rows_here).unsqueeze(1);
        const at::Tensor input = (ec + alpha * (ed - ec)).reshape({rows_here * s, T, e.size(2)}).detach().requires_grad_(true);
        const at::Tensor Dh = D.narrow(0, i, rows_here);
        GraphForward run;
        run.poll = [&r] { check_cancelled(r, "during the forward pass"); };
        run.on_inputs = [&, s](int64_t first, const at::Tensor& inputs) {
          const int64_t nr = inputs.size(2), nw = writers_read(g, first);
          inputs.register_hook([&, first, nr, nw, rows_here, s](const at::Tensor& grad) {
            check_cancelled(r, "during the backward pass");
            // The gradient summed over this batch's steps of each row: [rows, T, nr, d]
            const at::Tensor gsum = grad.to(at::kFloat).view({rows_here, s, T, nr, grad.size(3)}).sum(1);
            scores.narrow(0, 0, nw).narrow(1, first, nr).add_(at::einsum("btwd,btrd->wr", {Dh.narrow(2, 0, nw), gsum}), 1.0 / double(m));
          });
        };
        const at::Tensor logits = graph_forward(model, g, input, run).squeeze(1);
        std::vector<int64_t> batch_rows;
        for (int64_t a = 0; a < rows_here; ++a)
          for (int64_t b = 0; b < s; ++b) batch_rows.push_back(r0 + i + a);
        const at::Tensor lp = clean_lp.defined() ? clean_lp.narrow(0, i, rows_here).repeat_interleave(s, 0) : at::Tensor();
        // M = mean over all N rows of the per-row metric
        (metric_values(r.metric, logits, batch_rows, lp).sum() / double(N)).backward();
        ++out.micro_batches;
        done += rows_here * s;
        if (r.progress) r.progress(done, total);
      }
    }
  }
  // Non-edges are exactly 0: the hooks only wrote to writers each reader reads.
  out.scores = scores.cpu().mul_(g.edges.to(at::kFloat));
  out.metric_clean = clean_sum / double(N);
  out.metric_corrupted = corrupted_sum / double(N);
  return out;
}

double forward_backward_ms(const CausalLM& model, const at::Tensor& ids_cpu, const Metric& metric) {
  check_ids(model, ids_cpu, "clean");
  check_metric(metric, ids_cpu.size(0), model.info().vocab_size);
  const auto start = std::chrono::steady_clock::now();
  at::AutoGradMode grad(true);
  const at::Tensor ids = ids_cpu.to(model.device());
  KVCache cache;
  blocks::cache_extend_mask(cache, at::ones_like(ids), model.info().n_layers);
  const at::Tensor pos = blocks::position_ids(cache.mask, ids.size(1));
  at::Tensor x = model.embed(ids, pos).detach().requires_grad_(true);
  const at::Tensor leaf = x;
  const BlockContext ctx{cache, pos, nullptr};
  for (int64_t l = 0; l < model.info().n_layers; ++l) x = model.block(l, x, ctx);
  const at::Tensor logits = model.head(x.narrow(1, x.size(1) - 1, 1)).squeeze(1);
  at::Tensor clean_lp;
  if (metric.kind == MetricKind::KL) clean_lp = at::log_softmax(logits.detach().to(at::kFloat), -1);
  metric_values(metric, logits, row_range(0, ids.size(0)), clean_lp).mean().backward();
  (void)leaf.grad().sum().item<double>();  // wait for the device
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace neuroprune::circuit
