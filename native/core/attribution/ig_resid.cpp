// Integrated Gradients over residual dimensions: x = blocks.{l}.hook_resid_post (a block's output),
// baseline 0, x replaced by alpha_k * x at the scaled positions of the relearn/knowledge prompts.
//
// Reference: for each prompt and layer, rerun the whole model with hook_resid_post of that layer
// replaced (Hooks::resid_post), steps batched (ig_detail::reference_rows); the oracle.
//
// Fast path: as ig_fast for MLP neurons, (a) one clean run gives the prefix's keys/values (or
// recurrent states) and every layer's hook_resid_post; (b) a row for layer l starts as that clean
// x with alpha * x at the scaled positions, i.e. right after block l: blocks <= l never run for it;
// (c) rows of every (prompt, layer, step) share the batch, rows for layer j joining after block j;
// (d) one backward per micro-batch.
#include "attribution/ig.h"
#include "attribution/ig_detail.h"
#include "error.h"

namespace neuroprune {

using namespace ig_detail;

IgResult ig_resid_reference(const CausalLM& model, const IgRequest& r) {
  check(model, r);
  auto capture = [](std::vector<at::Tensor>& site) {
    Hooks h;
    h.resid_post = [&site](int64_t l, const at::Tensor& x) { return site[l] = x; };
    return h;
  };
  auto replace = [](const SwapFn& swap) {
    Hooks h;
    h.resid_post = swap;
    return h;
  };
  return reference_rows(model, r, model.info().d_model, capture, replace);
}

IgResult ig_resid_fast(const CausalLM& model, const IgRequest& r) {
  check(model, r);
  const Geometry g = geometry(r);
  const ModelInfo& info = model.info();
  const int64_t S = g.T - g.p0;  // the suffix every row carries
  // (a) hook_resid_post of every layer at the last S positions, from the one clean run.
  std::vector<at::Tensor> resid(info.n_layers);
  Hooks capture;
  capture.resid_post = [&](int64_t l, const at::Tensor& x) {
    check_cancelled(r, "during the clean forward pass");
    resid[l] = x.narrow(1, x.size(1) - S, S);
    return x;
  };
  const CleanRun clean = clean_run(model, r, g, capture);
  // (b) Rows for layer j start after block j: the clean x with alpha * x at the scaled positions.
  auto join = [&](int64_t j, const at::Tensor& bidx, const at::Tensor& scaled, const std::vector<double>& alphas) {
    const int64_t n = bidx.size(0);
    const at::Tensor a = resid[j].index_select(0, bidx);
    const at::Tensor alpha = at::tensor(alphas, at::kDouble).to(a.device(), a.scalar_type()).view({n, 1, 1});
    const at::Tensor leaf = (a * alpha).detach().requires_grad_(true);
    return Joined{at::where(scaled, leaf, a), leaf, a};
  };
  return fast_rows(model, r, g, clean, info.d_model, join);
}

}  // namespace neuroprune
