// Reference: for each prompt and layer, rerun the whole model with that layer's activation at the
// scaled positions replaced by alpha_k * a (steps batched), as Captum's LayerIntegratedGradients and
// the knowledge-neurons code do.
//
// Fast path: (a) positions before the first scaled one never change, so one clean run provides their
// keys/values and every row carries only the suffix; (b) everything below layer l is the clean run,
// so a row for layer l starts from the clean residual R_l + mlp_out(alpha a); (c) rows of every
// (prompt, layer, step) share one batch: at layer j, rows that started earlier pass through block j
// and rows for layer j join; (d) one backward over the summed objective gives each row's gradient
// (rows never interact). Weights never require grad; rows are micro-batched to a memory budget.
// Recurrent models (Mamba): the clean run goes in two pieces, the positions before p0 and the suffix,
// and the "prefix cache" is each layer's conv and SSM state after the prefix.
#include "attribution/ig.h"
#include "attribution/ig_detail.h"

#include <ATen/core/grad_mode.h>  // at::NoGradGuard, at::AutoGradMode (not in ATen.h on 2.x)

#include <algorithm>
#include <map>

#include "error.h"
#include "models/blocks.h"

namespace neuroprune {
namespace ig_detail {

void check(const CausalLM& model, const IgRequest& r) {
  const ModelInfo& info = model.info();
  if (r.ids.dim() != 2 || r.ids.sizes() != r.mask.sizes()) fail(codes::kArgument, "ids and mask must both be [batch, seqLen]");
  if (static_cast<int64_t>(r.prompts.size()) != r.ids.size(0)) fail(codes::kArgument, "one prompt spec per row of ids");
  if (r.steps < 1) fail(codes::kArgument, "steps must be at least 1, got " + std::to_string(r.steps));
  if (r.layers.empty()) fail(codes::kArgument, "layers must not be empty");
  if (r.site == MlpSite::Pre && !info.has_pre_site)
    fail(codes::kArgument, info.model_type + " has no mlp.hook_pre site (its neurons sit at " + info.neuron_site + ")");
  for (size_t i = 0; i < r.layers.size(); ++i)
    if (r.layers[i] < 0 || r.layers[i] >= info.n_layers)
      fail(codes::kRange, "layers[" + std::to_string(i) + "] = " + std::to_string(r.layers[i]) + " is out of range [0, " +
                              std::to_string(info.n_layers) + ")");
  auto token = [&](int64_t id, const std::string& what) {
    if (id < 0 || id >= info.vocab_size)
      fail(codes::kRange, what + " token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(info.vocab_size) + ")");
  };
  for (size_t b = 0; b < r.prompts.size(); ++b) {
    const IgPrompt& p = r.prompts[b];
    const std::string where = "prompts[" + std::to_string(b) + "]";
    if (p.target.empty()) fail(codes::kArgument, where + ": target has no tokens");
    for (int64_t t : p.target) token(t, where + ": target");
    if (r.objective == IgObjective::LogitDiff) {
      if (p.distractor < 0) fail(codes::kArgument, where + ": the logit_diff objective needs a distractor");
      token(p.distractor, where + ": distractor");
    }
    if (r.objective == IgObjective::Copy) {
      if (p.labels.empty()) fail(codes::kArgument, where + ": the copy objective needs the in-context labels");
      for (int64_t t : p.labels) token(t, where + ": label");
    }
  }
}

Geometry geometry(const IgRequest& r) {
  Geometry g;
  const int64_t B = r.ids.size(0);
  g.T = r.ids.size(1);
  g.scaled = at::zeros({B, g.T}, at::kBool);
  g.p0 = g.T;
  const at::Tensor lengths = r.mask.sum(1).to(at::kCPU);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(r.prompts[b].target.size());
    const int64_t first = g.T - lengths[b].item<int64_t>();
    if (g.T - n < first)
      fail(codes::kArgument, "prompts[" + std::to_string(b) + "]: needs at least one prompt token before the target");
    // The sequence is prompt + target[:-1]: prediction j sits at T - n + j; the last prompt token at T - n.
    int64_t from = g.T - n, to = g.T - n + 1;
    if (r.positions == IgPositions::Answer) to = g.T;
    if (r.positions == IgPositions::All) from = first, to = g.T;
    g.scaled[b].narrow(0, from, to - from).fill_(true);
    g.p0 = std::min(g.p0, from);
    g.n_target.push_back(n);
    g.first_real.push_back(first);
    g.n_max = std::max(g.n_max, n);
  }
  return g;
}

// F per row. logits [R, n_max, V]: prompt b's j-th prediction sits at n_max - n_b + j.
at::Tensor objective_values(const at::Tensor& logits, const std::vector<int64_t>& row_prompt, const IgRequest& r,
                            const Geometry& g) {
  const int64_t R = logits.size(0);
  const auto device = logits.device();
  std::map<int64_t, std::vector<int64_t>> rows_of;
  for (int64_t i = 0; i < R; ++i) rows_of[row_prompt[i]].push_back(i);
  at::Tensor out = at::zeros({R}, logits.options().dtype(at::kFloat));
  for (const auto& [b, rows] : rows_of) {
    const IgPrompt& p = r.prompts[b];
    const int64_t n = g.n_target[b];
    const at::Tensor idx = at::tensor(rows, at::kLong).to(device);
    const at::Tensor lb = logits.index_select(0, idx).narrow(1, g.n_max - n, n).to(at::kFloat);  // [r, n, V]
    const at::Tensor lp = at::log_softmax(lb, -1);
    const at::Tensor target = at::tensor(p.target, at::kLong).to(device);
    const at::Tensor tok = lp.gather(2, target.view({1, n, 1}).expand({lb.size(0), n, 1})).squeeze(2);  // [r, n]
    at::Tensor f;
    switch (r.objective) {
      case IgObjective::Prob: f = tok.exp().sum(1); break;     // sum_j p(t_j)
      case IgObjective::LogProb: f = tok.sum(1); break;        // sum_j log p(t_j)
      case IgObjective::LogitDiff:                              // logit(t_0) - logit(distractor)
        f = lb.select(1, 0).select(1, p.target[0]) - lb.select(1, 0).select(1, p.distractor);
        break;
      case IgObjective::Copy: {                                 // log sum_c p(c) - log p(t_0)
        const at::Tensor labels = at::tensor(p.labels, at::kLong).to(device);
        f = at::logsumexp(lp.select(1, 0).index_select(1, labels), 1) - tok.select(1, 0);
        break;
      }
    }
    out = out.index_put({idx}, f);
  }
  return out;
}

// Bytes one row keeps for the backward pass through `layers` blocks with `queries` positions
// attending to `keys` positions: a coarse upper bound (float32 attention scores, a dozen
// d_model-sized and three d_mlp-sized activations per position).
int64_t row_bytes(const ModelInfo& info, int64_t layers, int64_t queries, int64_t keys) {
  // Recurrent models keep per unit and position the discretised A, dt B x and the state ([d_mlp, N] each).
  const int64_t per_position = 12 * info.d_model + 3 * info.d_mlp + 3 * info.n_heads * keys + 4 * info.d_mlp * info.state_size;
  return layers * queries * per_position * 4 + queries * info.vocab_size * 8;
}

int64_t rows_per_batch(const ModelInfo& info, const IgRequest& r, int64_t layers, int64_t queries, int64_t keys) {
  const int64_t need = row_bytes(info, layers, queries, keys);
  const int64_t rows = r.memory_budget_bytes / need;
  if (rows < 1)
    fail(codes::kBudget, "memory budget of " + std::to_string(r.memory_budget_bytes >> 20) + " MiB is too small for one row (about " +
                             std::to_string((need >> 20) + 1) + " MiB); raise it or shorten the prompt");
  return rows;
}

std::vector<Row> make_rows(const IgRequest& r, int64_t B) {
  const auto points = ig_rule_points(r.rule, r.steps);
  std::vector<Row> rows;
  for (int64_t b = 0; b < B; ++b)
    for (size_t li = 0; li < r.layers.size(); ++li) {
      for (const auto& [alpha, weight] : points) rows.push_back({b, int64_t(li), r.layers[li], alpha, weight, false});
      rows.push_back({b, int64_t(li), r.layers[li], 0.0, 0.0, true});
    }
  return rows;
}

void poll(const IgRequest& r, int64_t done, int64_t total) {
  if (r.progress) r.progress(done, total);
  if (r.cancelled && r.cancelled()) fail(codes::kAborted, "attribution cancelled after " + std::to_string(done) + " of " + std::to_string(total) + " rows");
}

// Cancellation inside a micro-batch, at every layer of the forward and of the backward pass, so that an
// abort settles within one layer's work whatever the memory budget (one micro-batch can be seconds).
void check_cancelled(const IgRequest& r, const char* where) {
  if (r.cancelled && r.cancelled()) fail(codes::kAborted, std::string("attribution cancelled ") + where);
}

void cancel_in_backward(const at::Tensor& x, const IgRequest& r) {
  if (r.cancelled) x.register_hook([&r](const auto&) { check_cancelled(r, "during the backward pass"); });
}

}  // namespace ig_detail

using namespace ig_detail;

std::vector<std::pair<double, double>> ig_rule_points(IgRule rule, int64_t m) {
  std::vector<std::pair<double, double>> out;
  const double md = double(m);
  switch (rule) {
    case IgRule::Left:
      for (int64_t k = 0; k < m; ++k) out.push_back({k / md, 1.0 / md});
      break;
    case IgRule::Right:
      for (int64_t k = 1; k <= m; ++k) out.push_back({k / md, 1.0 / md});
      break;
    case IgRule::Middle:
      for (int64_t k = 0; k < m; ++k) out.push_back({(k + 0.5) / md, 1.0 / md});
      break;
    case IgRule::Trapezoid:
      for (int64_t k = 0; k <= m; ++k) out.push_back({k / md, (k == 0 || k == m ? 0.5 : 1.0) / md});
      break;
  }
  return out;
}

IgResult ig_reference(const CausalLM& model, const IgRequest& r) {
  check(model, r);
  const bool pre_site = r.site == MlpSite::Pre;
  auto capture = [pre_site](std::vector<at::Tensor>& site) {
    Hooks h;
    if (pre_site) h.mlp_pre = [&site](int64_t l, const at::Tensor& p, const at::Tensor&) { return site[l] = p; };
    else h.mlp_post = [&site](int64_t l, const at::Tensor& p) { return site[l] = p; };
    return h;
  };
  auto replace = [pre_site](const SwapFn& swap) {
    Hooks h;
    if (pre_site) h.mlp_pre = [swap](int64_t l, const at::Tensor& p, const at::Tensor&) { return swap(l, p); };
    else h.mlp_post = swap;
    return h;
  };
  return reference_rows(model, r, model.info().d_mlp, capture, replace);
}

IgResult ig_fast(const CausalLM& model, const IgRequest& r) {
  check(model, r);
  const Geometry g = geometry(r);
  const ModelInfo& info = model.info();
  const int64_t S = g.T - g.p0;  // the suffix every row carries

  // (a) One clean run: activations, the residual each MLP adds to, keys/values, F(a).
  // post and resid hold the last S positions (or all T of them); both are read as their last S.
  // post: the site's activations; gate: at hook_pre of gated MLPs, the factor it is multiplied by.
  std::vector<at::Tensor> post(info.n_layers), gate(info.n_layers), resid(info.n_layers);
  const bool pre_site = r.site == MlpSite::Pre;
  Hooks capture;
  if (pre_site) {
    capture.mlp_pre = [&](int64_t l, const at::Tensor& p, const at::Tensor& gt) {
      check_cancelled(r, "during the clean forward pass");
      gate[l] = gt;
      return post[l] = p;
    };
  } else {
    capture.mlp_post = [&](int64_t l, const at::Tensor& p) {
      check_cancelled(r, "during the clean forward pass");  // layer by layer: this run holds every prompt at once
      return post[l] = p;
    };
  }
  capture.resid_mid = [&](int64_t l, const at::Tensor& x) { resid[l] = x.narrow(1, x.size(1) - S, S); };
  const CleanRun clean = clean_run(model, r, g, capture);

  // (b) Rows for layer j: the clean residual plus the MLP output of alpha * a at the scaled positions.
  auto join = [&](int64_t j, const at::Tensor& bidx, const at::Tensor& scaled, const std::vector<double>& alphas) {
    const int64_t n = bidx.size(0);
    const at::Tensor a = post[j].narrow(1, post[j].size(1) - S, S).index_select(0, bidx);
    const at::Tensor alpha = at::tensor(alphas, at::kDouble).to(a.device(), a.scalar_type()).view({n, 1, 1});
    const at::Tensor leaf = (a * alpha).detach().requires_grad_(true);
    at::Tensor mixed = at::where(scaled, leaf, a);
    if (pre_site) {  // on through the activation (and any hook_post scales), as finish_mlp does
      at::Tensor gt = gate[j].defined() ? gate[j].narrow(1, gate[j].size(1) - S, S).index_select(0, bidx) : at::Tensor();
      mixed = model.apply_mlp_scale(j, MlpSite::Post, model.mlp_activation(j, mixed, gt));
    }
    return Joined{resid[j].index_select(0, bidx) + model.mlp_out(j, mixed), leaf, a};
  };
  return fast_rows(model, r, g, clean, info.d_mlp, join);
}

namespace ig_detail {

CleanRun clean_run(const CausalLM& model, const IgRequest& r, const Geometry& g, const Hooks& capture) {
  const ModelInfo& info = model.info();
  const auto device = model.device();
  const int64_t B = r.ids.size(0), S = g.T - g.p0;
  CleanRun c;
  c.mask = r.mask.to(device);
  const at::Tensor ids = r.ids.to(device);
  at::NoGradGuard no_grad;
  const bool split = info.recurrent && g.p0 > 0;
  if (split) {
    Hooks poll_only;
    poll_only.resid_post = [&](int64_t, const at::Tensor& x) {
      check_cancelled(r, "during the clean forward pass");
      return x;
    };
    model.forward(ids.narrow(1, 0, g.p0), c.mask.narrow(1, 0, g.p0), &c.cache, &poll_only, /*last_only=*/true);
    c.prefix_conv = c.cache.conv_state;
    c.prefix_ssm = c.cache.ssm_state;
  }
  // The LM head only where F reads it: the last position when every target is one token.
  const at::Tensor logits = split ? model.forward(ids.narrow(1, g.p0, S), c.mask.narrow(1, g.p0, S), &c.cache, &capture, g.n_max == 1)
                                  : model.forward(ids, c.mask, &c.cache, &capture, /*last_only=*/g.n_max == 1);
  std::vector<int64_t> each(B);
  for (int64_t b = 0; b < B; ++b) each[b] = b;
  c.f_clean = objective_values(logits.narrow(1, logits.size(1) - g.n_max, g.n_max), each, r, g).cpu();
  c.positions = blocks::position_ids(c.mask, g.T).narrow(1, g.p0, S);
  c.scaled = g.scaled.narrow(1, g.p0, S).to(device).unsqueeze(-1);  // [B, S, 1]
  return c;
}

IgResult reference_rows(const CausalLM& model, const IgRequest& r, int64_t N, const CaptureFn& capture_site, const ReplaceFn& replace_site) {
  const Geometry g = geometry(r);
  const ModelInfo& info = model.info();
  const auto device = model.device();
  const int64_t B = r.ids.size(0), L = static_cast<int64_t>(r.layers.size());
  const auto points = ig_rule_points(r.rule, r.steps);
  at::Tensor att = at::zeros({B, L, N}, at::kFloat), f_full = at::zeros({B, L}, at::kFloat), f_base = at::zeros({B, L}, at::kFloat);
  const std::vector<Row> all_rows = make_rows(r, B);
  const int64_t total = static_cast<int64_t>(all_rows.size());
  int64_t done = 0, batches = 0;

  for (int64_t b = 0; b < B; ++b) {
    // This prompt alone, without padding.
    const int64_t first = g.first_real[b], Tb = g.T - first;
    const at::Tensor ids = r.ids[b].narrow(0, first, Tb).unsqueeze(0).to(device);
    const at::Tensor scaled = g.scaled[b].narrow(0, first, Tb).to(device).view({1, Tb, 1});
    Geometry gb = g;
    gb.n_max = g.n_target[b];
    std::vector<at::Tensor> post(info.n_layers);  // the site's values
    {
      at::NoGradGuard no_grad;
      const Hooks capture = capture_site(post);
      const at::Tensor logits = model.forward(ids, at::ones_like(ids), nullptr, &capture);
      const double fa = objective_values(logits.narrow(1, Tb - gb.n_max, gb.n_max), {b}, r, gb)[0].item<double>();
      f_full[b].fill_(fa);
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
        const at::Device here = post[layer].device();
        const at::Tensor alpha = at::tensor(alphas, at::kDouble).to(here, post[layer].scalar_type()).view({c, 1, 1});
        const at::Tensor scaled_here = scaled.to(here);
        const at::Tensor a = post[layer].expand({c, Tb, N});
        const at::Tensor leaf = (a * alpha).detach().requires_grad_(true);
        const SwapFn swap = [&](int64_t l, const at::Tensor& p) {
          check_cancelled(r, "during the forward pass");
          return l == layer ? at::where(scaled_here, leaf, p) : p;
        };
        const Hooks replace = replace_site(swap);
        const at::Tensor logits = model.forward(ids.expand({c, Tb}), at::ones({c, Tb}, ids.options()), nullptr, &replace);
        const at::Tensor f = objective_values(logits.narrow(1, Tb - gb.n_max, gb.n_max), std::vector<int64_t>(c, b), r, gb);
        f.sum().backward();
        const at::Tensor w = at::tensor(weights, at::kDouble).to(here, at::kFloat).view({c, 1});
        const at::Tensor contribution = (a.to(at::kFloat) * leaf.grad().to(at::kFloat) * scaled_here).sum(1);  // [c, N]
        att[b][li] += (contribution * w).sum(0).cpu();
        if (start + c == rows.size()) f_base[b][li] = f[c - 1].item<double>();
        done += c, ++batches;
        poll(r, done, total);
      }
    }
  }
  return {att, f_full, f_base, total, batches};
}


IgResult fast_rows(const CausalLM& model, const IgRequest& r, const Geometry& g, const CleanRun& c, int64_t N, const JoinFn& join) {
  const ModelInfo& info = model.info();
  const auto device = model.device();
  const int64_t B = r.ids.size(0), L = static_cast<int64_t>(r.layers.size());
  const int64_t S = g.T - g.p0;
  const std::vector<Row> rows = make_rows(r, B);
  const int64_t total = static_cast<int64_t>(rows.size());
  const int64_t min_layer = *std::min_element(r.layers.begin(), r.layers.end());
  const int64_t per_batch = rows_per_batch(info, r, info.n_layers - min_layer, S, g.T);
  at::Tensor att = at::zeros({B * L, N}, at::TensorOptions().device(device).dtype(at::kFloat));
  at::Tensor f_base = at::zeros({B, L}, at::kFloat);
  int64_t batches = 0;

  for (int64_t start = 0; start < total; start += per_batch) {
    std::vector<Row> batch(rows.begin() + start, rows.begin() + std::min(total, start + per_batch));
    std::stable_sort(batch.begin(), batch.end(), [](const Row& a, const Row& b) { return a.layer < b.layer; });
    at::AutoGradMode grad(true);
    // (c) Layer by layer: rows that started earlier pass through block j; rows for layer j join.
    at::Tensor x;
    std::vector<int64_t> row_prompt;
    struct Leaf {
      at::Tensor leaf, clean;
      size_t first, count;  // rows batch[first, first + count)
    };
    std::vector<Leaf> leaves;
    size_t next = 0;
    for (int64_t j = batch.front().layer; j < info.n_layers; ++j) {
      // Everything built for block j goes to its device; rows move there at the boundary.
      const at::Device dev = model.layer_device(j);
      if (x.defined()) {
        const at::Tensor idx = at::tensor(row_prompt, at::kLong).to(dev);
        KVCache cache;  // the clean prefix (positions < p0), shared by every row of a prompt
        cache.k.resize(info.n_layers);
        cache.v.resize(info.n_layers);
        cache.shared_k.resize(info.n_layers);
        cache.shared_v.resize(info.n_layers);
        if (g.p0 > 0) {
          std::map<int64_t, std::vector<int64_t>> rows_of;
          for (size_t i = 0; i < row_prompt.size(); ++i) rows_of[row_prompt[i]].push_back(int64_t(i));
          std::vector<int64_t> prompts_here;
          for (auto& [b, rows] : rows_of) {
            prompts_here.push_back(b);
            cache.group_rows.push_back(at::tensor(rows, at::kLong).to(dev));
          }
          const at::Tensor pidx = at::tensor(prompts_here, at::kLong).to(dev);
          if (info.recurrent) {
            cache.shared_conv.resize(info.n_layers);
            cache.shared_ssm.resize(info.n_layers);
            cache.shared_conv[j] = c.prefix_conv[j].index_select(0, pidx);
            cache.shared_ssm[j] = c.prefix_ssm[j].index_select(0, pidx);
          } else {
            cache.shared_k[j] = c.cache.k[j].narrow(2, 0, g.p0).index_select(0, pidx);
            cache.shared_v[j] = c.cache.v[j].narrow(2, 0, g.p0).index_select(0, pidx);
          }
        }
        cache.mask = c.mask.to(dev).index_select(0, idx);
        const at::Tensor pos = c.positions.to(dev).index_select(0, idx);
        check_cancelled(r, "during the forward pass");
        x = model.block(j, x.to(dev), BlockContext{cache, pos, nullptr});
        cancel_in_backward(x, r);
      }
      const size_t first = next;
      while (next < batch.size() && batch[next].layer == j) ++next;
      if (next == first) continue;
      std::vector<int64_t> prompts;
      std::vector<double> alphas;
      for (size_t i = first; i < next; ++i) prompts.push_back(batch[i].prompt), alphas.push_back(batch[i].alpha);
      const at::Tensor bidx = at::tensor(prompts, at::kLong).to(dev);
      const Joined joined = join(j, bidx, c.scaled.to(dev).index_select(0, bidx), alphas);
      x = x.defined() ? at::cat({x, joined.x}, 0) : joined.x;
      row_prompt.insert(row_prompt.end(), prompts.begin(), prompts.end());
      leaves.push_back({joined.leaf, joined.clean, first, next - first});
    }
    // (d) The objective at the prediction positions, one backward for every row.
    check_cancelled(r, "before the LM head");
    const at::Tensor logits = model.head(x.narrow(1, S - g.n_max, g.n_max));
    cancel_in_backward(logits, r);  // before the head's backward, the largest single product
    const at::Tensor f = objective_values(logits, row_prompt, r, g);
    f.sum().backward();
    const at::Tensor f_cpu = f.detach().cpu();
    for (const Leaf& lf : leaves) {
      std::vector<int64_t> targets;
      std::vector<double> weights;
      for (size_t i = lf.first; i < lf.first + lf.count; ++i) {
        targets.push_back(batch[i].prompt * L + batch[i].layer_index);
        weights.push_back(batch[i].weight);
        if (batch[i].baseline) f_base[batch[i].prompt][batch[i].layer_index] = f_cpu[i].item<double>();
      }
      const at::Device here = lf.leaf.device();  // the layer's: a device map may put it elsewhere than att
      const at::Tensor bidx = at::tensor(targets, at::kLong).to(here);
      const at::Tensor w = at::tensor(weights, at::kDouble).to(here, at::kFloat).view({-1, 1});
      const at::Tensor sc = c.scaled.to(here).index_select(0, bidx.div(L, "floor"));
      const at::Tensor contribution = (lf.clean.to(at::kFloat) * lf.leaf.grad().to(at::kFloat) * sc).sum(1);  // [n, N]
      att.index_add_(0, bidx.to(device), (contribution * w).to(device));
    }
    ++batches;
    poll(r, start + static_cast<int64_t>(batch.size()), total);
  }
  return {att.view({B, L, N}).cpu(), c.f_clean.view({B, 1}).expand({B, L}).contiguous(), f_base, total, batches};
}

}  // namespace ig_detail

}  // namespace neuroprune
