// What the IG implementations share (MLP sites in ig.cpp, the residual stream in ig_resid.cpp):
// request checks, where the predictions and scaled positions sit, the objective, row bookkeeping,
// the memory budget and cancellation. Internal to core/attribution.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "attribution/ig.h"

namespace neuroprune::ig_detail {

// Where each prompt's predictions and scaled positions sit in the padded [B, T] batch.
struct Geometry {
  int64_t T = 0, n_max = 0, p0 = 0;
  std::vector<int64_t> n_target, first_real;
  at::Tensor scaled;  // [B, T] bool (CPU)
};

// One (prompt, layer, alpha) row. Baseline rows (alpha 0, weight 0) give F(0).
struct Row {
  int64_t prompt, layer_index, layer;
  double alpha, weight;
  bool baseline;
};

// E_ARG / E_RANGE for a request the model cannot run.
void check(const CausalLM& model, const IgRequest& r);
Geometry geometry(const IgRequest& r);
// F per row. logits [R, n_max, V]: prompt b's j-th prediction sits at n_max - n_b + j.
at::Tensor objective_values(const at::Tensor& logits, const std::vector<int64_t>& row_prompt, const IgRequest& r, const Geometry& g);
// Rows of `layers` blocks with `queries` positions attending to `keys` that fit the memory budget (E_BUDGET if none).
int64_t rows_per_batch(const ModelInfo& info, const IgRequest& r, int64_t layers, int64_t queries, int64_t keys);
// Every (prompt, layer, step) row plus one baseline row per (prompt, layer), prompt-major.
std::vector<Row> make_rows(const IgRequest& r, int64_t B);
// Progress, then E_ABORTED if cancelled.
void poll(const IgRequest& r, int64_t done, int64_t total);
void check_cancelled(const IgRequest& r, const char* where);
// Cancellation during the backward pass, when the gradient reaches x.
void cancel_in_backward(const at::Tensor& x, const IgRequest& r);

// The reference path, for any site: per prompt, one clean run whose hooks (capture_site(values))
// record the site's value per layer, then per layer the whole model rerun with rows of alpha * a
// at the scaled positions swapped in by replace_site(swap), steps batched; one backward per batch.
// swap(l, x) returns x, or at layer l the scaled rows. Attributions [B, layers, N].
using SwapFn = std::function<at::Tensor(int64_t layer, const at::Tensor& x)>;
using CaptureFn = std::function<Hooks(std::vector<at::Tensor>& values)>;
using ReplaceFn = std::function<Hooks(const SwapFn& swap)>;
IgResult reference_rows(const CausalLM& model, const IgRequest& r, int64_t N, const CaptureFn& capture_site, const ReplaceFn& replace_site);

// The fast path's clean run, step (a): one forward of every prompt (recurrent models: the prefix
// before p0, then the suffix) with `capture` reading what the rows start from; keys/values or the
// recurrent states after the prefix, F(a), and the suffix's positions and scaled mask.
struct CleanRun {
  KVCache cache;
  std::vector<at::Tensor> prefix_conv, prefix_ssm;  // recurrent models: the states after the prefix
  at::Tensor mask;       // [B, T] on the device
  at::Tensor positions;  // [B, S] of the suffix
  at::Tensor scaled;     // [B, S, 1] bool: the scaled positions of the suffix
  at::Tensor f_clean;    // [B] F(a) on the CPU
};
CleanRun clean_run(const CausalLM& model, const IgRequest& r, const Geometry& g, const Hooks& capture);

// What a group of rows for layer j starts from: x, the residual stream after block j [n, S, d_model];
// leaf, the scaled activation alpha * a whose gradient is wanted [n, S, N]; clean, a itself.
struct Joined {
  at::Tensor x, leaf, clean;
};
// join(j, prompts [n] (device), scaled [n, S, 1], alphas) for the rows of those prompts at layer j.
using JoinFn = std::function<Joined(int64_t layer, const at::Tensor& prompts, const at::Tensor& scaled, const std::vector<double>& alphas)>;

// Steps (c) and (d) over every (prompt, layer, step) row, micro-batched to the budget: at layer j,
// rows that started earlier pass through block j (reading the clean prefix) and rows for layer j
// join; one backward per micro-batch. Attributions [B, layers, N] of N units per layer.
IgResult fast_rows(const CausalLM& model, const IgRequest& r, const Geometry& g, const CleanRun& clean, int64_t N, const JoinFn& join);

}  // namespace neuroprune::ig_detail
