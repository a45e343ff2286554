// Integrated Gradients over residual dimensions: x = blocks.{l}.hook_resid_post (a block's output),
// baseline 0, x replaced by alpha_k * x at the scaled positions of the relearn/knowledge prompts.
//
// Reference: for each prompt and layer, rerun the whole model with hook_resid_post of that layer
// replaced (Hooks::resid_post), steps batched; the oracle.
//
// Fast path: as ig_fast for MLP neurons, (a) one clean run gives the prefix's keys/values (or
// recurrent states) and every layer's hook_resid_post; (b) a row for layer l starts as that clean
// x with alpha * x at the scaled positions, i.e. right after block l: blocks <= l never run for it;
// (c) rows of every (prompt, layer, step) share the batch, rows for layer j joining after block j;
// (d) one backward per micro-batch.
#include <ATen/core/grad_mode.h>  // at::NoGradGuard, at::AutoGradMode (not in ATen.h on 2.x)

#include <algorithm>

#include "attribution/ig.h"
#include "attribution/ig_detail.h"
#include "error.h"

namespace neuroprune {

using namespace ig_detail;

IgResult ig_resid_reference(const CausalLM& model, const IgRequest& r) {
  check(model, r);
  const Geometry g = geometry(r);
  const ModelInfo& info = model.info();
  const auto device = model.device();
  const int64_t B = r.ids.size(0), L = static_cast<int64_t>(r.layers.size()), D = info.d_model;
  const auto points = ig_rule_points(r.rule, r.steps);
  at::Tensor att = at::zeros({B, L, D}, at::kFloat), f_full = at::zeros({B, L}, at::kFloat), f_base = at::zeros({B, L}, at::kFloat);
  const int64_t total = static_cast<int64_t>(make_rows(r, B).size());
  int64_t done = 0, batches = 0;

  for (int64_t b = 0; b < B; ++b) {
    // This prompt alone, without padding.
    const int64_t first = g.first_real[b], Tb = g.T - first;
    const at::Tensor ids = r.ids[b].narrow(0, first, Tb).unsqueeze(0).to(device);
    const at::Tensor scaled = g.scaled[b].narrow(0, first, Tb).to(device).view({1, Tb, 1});
    Geometry gb = g;
    gb.n_max = g.n_target[b];
    std::vector<at::Tensor> resid(info.n_layers);
    {
      at::NoGradGuard no_grad;
      Hooks capture;
      capture.resid_post = [&](int64_t l, const at::Tensor& x) { return resid[l] = x; };
      const at::Tensor logits = model.forward(ids, at::ones_like(ids), nullptr, &capture);
      f_full[b].fill_(objective_values(logits.narrow(1, Tb - gb.n_max, gb.n_max), {b}, r, gb)[0].item<double>());
    }
    const int64_t per_batch = rows_per_batch(info, r, info.n_layers, Tb, Tb);
    for (int64_t li = 0; li < L; ++li) {
      const int64_t layer = r.layers[li];
      std::vector<std::pair<double, double>> rows = points;
      rows.push_back({0.0, 0.0});  // baseline row: F(0)
      for (size_t start = 0; start < rows.size(); start += per_batch) {
        const int64_t c = std::min<int64_t>(per_batch, rows.size() - start);
        std::vector<double> alphas, weights;
        for (int64_t i = 0; i < c; ++i) alphas.push_back(rows[start + i].first), weights.push_back(rows[start + i].second);
        // Rows live on the layer's device (a device map may put it elsewhere than the inputs).
        const at::Device here = resid[layer].device();
        const at::Tensor alpha = at::tensor(alphas, at::kDouble).to(here, resid[layer].scalar_type()).view({c, 1, 1});
        const at::Tensor scaled_here = scaled.to(here);
        const at::Tensor a = resid[layer].expand({c, Tb, D});
        const at::Tensor leaf = (a * alpha).detach().requires_grad_(true);
        Hooks replace;
        replace.resid_post = [&](int64_t l, const at::Tensor& x) {
          check_cancelled(r, "during the forward pass");
          return l == layer ? at::where(scaled_here, leaf, x) : x;
        };
        const at::Tensor logits = model.forward(ids.expand({c, Tb}), at::ones({c, Tb}, ids.options()), nullptr, &replace);
        const at::Tensor f = objective_values(logits.narrow(1, Tb - gb.n_max, gb.n_max), std::vector<int64_t>(c, b), r, gb);
        f.sum().backward();
        const at::Tensor w = at::tensor(weights, at::kDouble).to(here, at::kFloat).view({c, 1});
        const at::Tensor contribution = (a.to(at::kFloat) * leaf.grad().to(at::kFloat) * scaled_here).sum(1);  // [c, D]
        att[b][li] += (contribution * w).sum(0).cpu();
        if (start + c == rows.size()) f_base[b][li] = f[c - 1].item<double>();
        done += c, ++batches;
        poll(r, done, total);
      }
    }
  }
  return {att, f_full, f_base, total, batches};
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
