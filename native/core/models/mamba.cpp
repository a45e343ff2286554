// Mamba (HF MambaForCausalLM), numerically HF transformers' slow path (MambaMixer without the CUDA
// kernels). Each block is x -> x + out_proj(post), post = y * silu(z) = blocks.{l}.mixer.hook_post,
// where in_proj(rmsnorm(x)) = [x_in, z], x_in goes through a causal depthwise conv1d and the activation,
// and y is the selective scan over time (float32). The cache holds each layer's conv and SSM states.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "error.h"
#include "models/blocks.h"
#include "models/model.h"

namespace neuroprune {
namespace {

struct MambaConfig {
  int64_t n_layer, hidden, state, expand, d_inner, kernel, dt_rank, vocab;
  double eps;
  bool use_bias, conv_bias, tied, resid_fp32;
  std::string act;

  explicit MambaConfig(const ConfigReader& c)
      : n_layer(c.positive_int("num_hidden_layers")),
        hidden(c.positive_int("hidden_size")),
        state(c.positive_int("state_size", 16)),
        expand(c.positive_int("expand", 2)),
        d_inner(expand * hidden),
        kernel(c.positive_int("conv_kernel", 4)),
        dt_rank(read_dt_rank(c, hidden)),
        vocab(c.positive_int("vocab_size")),
        eps(c.positive_number("layer_norm_epsilon", 1e-5)),
        use_bias(c.boolean("use_bias", false)),
        conv_bias(c.boolean("use_conv_bias", true)),
        tied(c.boolean("tie_word_embeddings", true)),
        resid_fp32(c.boolean("residual_in_fp32", true)),
        act(c.string("hidden_act", "silu")) {
    if (!blocks::is_known_activation(act)) c.invalid("hidden_act", "is unknown: \"" + act + "\"");
    if (c.has("intermediate_size") && c.positive_int("intermediate_size") != d_inner)
      c.invalid("intermediate_size", "(" + std::to_string(c.positive_int("intermediate_size")) + ") must be expand * hidden_size (" +
                                         std::to_string(d_inner) + ")");
  }

  // "auto" (HF's default) = ceil(hidden_size / 16), else a positive integer.
  static int64_t read_dt_rank(const ConfigReader& c, int64_t hidden) {
    if (!c.has("time_step_rank")) return (hidden + 15) / 16;
    const auto& v = c.json()["time_step_rank"];
    if (v.is_string()) {
      if (v.get<std::string>() != "auto") c.invalid("time_step_rank", "must be \"auto\" or a positive integer, got " + v.dump());
      return (hidden + 15) / 16;
    }
    return c.positive_int("time_step_rank");
  }

  std::vector<ParamSpec> specs() const {
    std::vector<ParamSpec> s = {{"backbone.embeddings.weight", {vocab, hidden}}};
    for (int64_t l = 0; l < n_layer; ++l) {
      const std::string p = "backbone.layers." + std::to_string(l) + ".";
      const std::string m = p + "mixer.";
      s.push_back({p + "norm.weight", {hidden}, 1.0});
      s.push_back({m + "in_proj.weight", {2 * d_inner, hidden}, 0.0, 1.0 / std::sqrt(double(hidden))});
      if (use_bias) s.push_back({m + "in_proj.bias", {2 * d_inner}});
      s.push_back({m + "conv1d.weight", {d_inner, 1, kernel}, 0.0, 1.0 / std::sqrt(double(kernel))});
      if (conv_bias) s.push_back({m + "conv1d.bias", {d_inner}});
      s.push_back({m + "x_proj.weight", {dt_rank + 2 * state, d_inner}, 0.0, 1.0 / std::sqrt(double(d_inner))});
      s.push_back({m + "dt_proj.weight", {d_inner, dt_rank}, 0.0, 0.5 / std::sqrt(double(dt_rank))});
      s.push_back({m + "dt_proj.bias", {d_inner}});  // random models: HF's dt init, see make_mamba
      s.push_back({m + "A_log", {d_inner, state}});   // random models: log(1..N)
      s.push_back({m + "D", {d_inner}, 1.0, 0.0});
      s.push_back({m + "out_proj.weight", {hidden, d_inner}});
      if (use_bias) s.push_back({m + "out_proj.bias", {hidden}});
    }
    s.push_back({"backbone.norm_f.weight", {hidden}, 1.0});
    if (!tied) s.push_back({"lm_head.weight", {vocab, hidden}});
    return s;
  }
};

class Mamba final : public CausalLM {
 public:
  Mamba(MambaConfig cfg, ModelInfo info, Weights w, std::string config_json, at::Device device, at::ScalarType dtype)
      : CausalLM(std::move(info), std::move(w), std::move(config_json), device, dtype), cfg_(std::move(cfg)) {}

  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) const override {
    return at::embedding(weights_["backbone.embeddings.weight"], ids);
  }

  at::Tensor block(int64_t l, const at::Tensor& x, const BlockContext& ctx) const override {
    const Weights& w = weights_;
    const std::string m = "backbone.layers." + std::to_string(l) + ".mixer.";
    auto opt = [&](const std::string& name, bool present) { return present ? w[name] : at::Tensor(); };
    KVCache& cache = ctx.cache;
    if (static_cast<int64_t>(cache.conv_state.size()) < cfg_.n_layer) {
      cache.conv_state.resize(cfg_.n_layer);
      cache.ssm_state.resize(cfg_.n_layer);
    }
    const int64_t B = x.size(0), T = x.size(1), Di = cfg_.d_inner, N = cfg_.state, K = cfg_.kernel;
    // The new tokens' mask: padded positions are zeroed before and after in_proj (an in_proj bias
    // would leak in) and after the conv, as HF's attention_mask does, so they leave the states at zero
    // and a left-padded row equals its row alone.
    const at::Tensor keep = cache.mask.narrow(1, cache.mask.size(1) - T, T).unsqueeze(-1).to(x.device(), dtype_);  // [B, T, 1]

    at::Tensor h = blocks::rms_norm(x.to(dtype_), w["backbone.layers." + std::to_string(l) + ".norm.weight"], cfg_.eps) * keep;
    const at::Tensor resid = cfg_.resid_fp32 ? x.to(at::kFloat) : x;
    at::Tensor xz = blocks::linear(h, w[m + "in_proj.weight"], opt(m + "in_proj.bias", cfg_.use_bias));  // [B, T, 2 Di]
    at::Tensor xs = xz.narrow(-1, 0, Di) * keep;
    const at::Tensor z = xz.narrow(-1, Di, Di);

    // Causal depthwise conv over the cached last K-1 inputs followed by the new ones.
    at::Tensor conv_prev = previous_state(cache, cache.conv_state, cache.shared_conv, l, {B, Di, K - 1}, xs.options());
    at::Tensor seq = at::cat({conv_prev.to(dtype_), xs.transpose(1, 2)}, 2);  // [B, Di, K-1+T]
    cache.conv_state[l] = seq.narrow(2, T, K - 1);
    at::Tensor u = at::conv1d(seq, w[m + "conv1d.weight"], opt(m + "conv1d.bias", cfg_.conv_bias), at::IntArrayRef{1},
                              at::IntArrayRef{0}, at::IntArrayRef{1}, Di);  // [B, Di, T]
    u = blocks::activation(u, cfg_.act).transpose(1, 2) * keep;  // [B, T, Di]

    // Input-dependent dt, B, C; A and D are per unit.
    const auto parts = blocks::linear(u, w[m + "x_proj.weight"]).split_with_sizes({cfg_.dt_rank, N, N}, -1);
    const at::Tensor dt = at::softplus(blocks::linear(parts[0], w[m + "dt_proj.weight"]).to(at::kFloat) +
                                       w[m + "dt_proj.bias"].to(at::kFloat));                   // [B, T, Di]
    const at::Tensor A = -at::exp(w[m + "A_log"].to(at::kFloat));                              // [Di, N]
    const at::Tensor dA = at::exp(dt.unsqueeze(-1) * A);                                       // [B, T, Di, N]
    const at::Tensor dBu = dt.unsqueeze(-1) * parts[1].to(at::kFloat).unsqueeze(2) * u.to(at::kFloat).unsqueeze(-1);
    const at::Tensor C = parts[2];                                                              // [B, T, N]

    // Selective scan: h_t = exp(dt A) h_{t-1} + dt B_t x_t, y_t = C_t h_t + D x_t (D added below).
    at::Tensor state = previous_state(cache, cache.ssm_state, cache.shared_ssm, l, {B, Di, N}, dt.options());
    std::vector<at::Tensor> ys;
    ys.reserve(T);
    for (int64_t t = 0; t < T; ++t) {
      state = dA.select(1, t) * state + dBu.select(1, t);
      ys.push_back(at::matmul(state.to(dtype_), C.select(1, t).unsqueeze(-1)).squeeze(-1));  // [B, Di]
    }
    cache.ssm_state[l] = state;
    at::Tensor y = at::stack(ys, 1).to(at::kFloat) + u.to(at::kFloat) * w[m + "D"].to(at::kFloat);  // [B, T, Di]
    at::Tensor post = (y * at::silu(z).to(at::kFloat)).to(dtype_);
    return finish_block(l, resid, post, ctx.hooks);
  }

  at::Tensor mlp_out(int64_t l, const at::Tensor& post) const override {
    const std::string m = "backbone.layers." + std::to_string(l) + ".mixer.";
    return blocks::linear(post, weights_[m + "out_proj.weight"], cfg_.use_bias ? weights_[m + "out_proj.bias"] : at::Tensor());
  }

  at::Tensor head(const at::Tensor& x) const override {
    at::Tensor h = blocks::rms_norm(x, weights_["backbone.norm_f.weight"], cfg_.eps).to(dtype_);
    const at::Tensor& W = cfg_.tied ? weights_["backbone.embeddings.weight"] : weights_["lm_head.weight"];
    return at::linear(h.to(W.device()), W);  // tied and split: the embedding sits on the first device
  }

  // Unit i of layer l: column i of out_proj; with `full` every parameter of the unit (its x and z rows
  // of in_proj, conv row, x_proj column, dt_proj row, A_log row, D), so that it neither outputs nor
  // feeds the other units' dt, B and C.
  std::vector<NeuronParam> neuron_params(int64_t layer, bool full) const override {
    const std::string m = "backbone.layers." + std::to_string(layer) + ".mixer.";
    std::vector<NeuronParam> out = {{m + "out_proj.weight", 1}};  // [hidden, d_inner]: a column per unit
    if (full) {
      out.insert(out.end(), {{m + "in_proj.weight", 0, 0}, {m + "in_proj.weight", 0, cfg_.d_inner}, {m + "conv1d.weight", 0},
                             {m + "x_proj.weight", 1}, {m + "dt_proj.weight", 0}, {m + "dt_proj.bias", 0}, {m + "A_log", 0},
                             {m + "D", 0}});
      if (cfg_.use_bias) out.insert(out.end(), {{m + "in_proj.bias", 0, 0}, {m + "in_proj.bias", 0, cfg_.d_inner}});
      if (cfg_.conv_bias) out.push_back({m + "conv1d.bias", 0});
    }
    return out;
  }

 private:
  // The state this forward starts from: the row's cached one, its group's shared prefix state, or zeros.
  static at::Tensor previous_state(const KVCache& cache, const std::vector<at::Tensor>& own, const std::vector<at::Tensor>& shared,
                                   int64_t l, at::IntArrayRef shape, const at::TensorOptions& options) {
    if (own[l].defined()) return own[l];
    if (l < static_cast<int64_t>(shared.size()) && shared[l].defined()) {
      at::Tensor group_of = at::zeros({shape[0]}, at::TensorOptions().dtype(at::kLong).device(shared[l].device()));
      for (size_t g = 0; g < cache.group_rows.size(); ++g) group_of.index_fill_(0, cache.group_rows[g].to(group_of.device()), int64_t(g));
      return shared[l].index_select(0, group_of);
    }
    return at::zeros(shape, options);
  }

  MambaConfig cfg_;
};

// HF's init for what a normal draw would make wild: A_log = log(1..N) per unit, D = 1, and dt_proj's
// bias the inverse softplus of dt drawn log-uniformly in [1e-3, 1e-1].
void init_random_ssm(Weights& w, const MambaConfig& cfg, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x6d616d6261ULL);
  const at::Tensor A = at::log(at::arange(1, cfg.state + 1, at::kFloat)).unsqueeze(0).expand({cfg.d_inner, cfg.state});
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    const std::string m = "backbone.layers." + std::to_string(l) + ".mixer.";
    at::Tensor u = at::empty({cfg.d_inner}, at::kFloat);
    u.uniform_(0.0, 1.0, gen);
    const at::Tensor dt = at::exp(u * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3)).clamp_min(1e-4);
    const at::Tensor inv_dt = dt + at::log(-at::expm1(-dt));  // softplus(inv_dt) = dt
    w[m + "dt_proj.bias"].copy_(inv_dt);
    w[m + "A_log"].copy_(A);
    w[m + "D"].fill_(1.0);
  }
}

}  // namespace

std::unique_ptr<CausalLM> make_mamba(const ConfigReader& config, const WeightSource& source, at::Device device, at::ScalarType dtype) {
  MambaConfig cfg(config);
  Weights w = materialize(source, cfg.specs(), {}, device, dtype);
  if (!source.checkpoint) init_random_ssm(w, cfg, source.seed);
  ModelInfo info = describe("MambaForCausalLM", "mamba", cfg.n_layer, cfg.hidden, 0, cfg.d_inner, cfg.vocab, 0, w);
  info.neuron_site = "mixer.hook_post";
  info.has_pre_site = false;
  info.recurrent = true;
  info.state_size = cfg.state;
  return std::make_unique<Mamba>(cfg, info, std::move(w), config.json().dump(), device, dtype);
}

}  // namespace neuroprune
