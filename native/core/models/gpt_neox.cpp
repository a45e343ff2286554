// GPT-NeoX / Pythia (HF GPTNeoXForCausalLM): LayerNorm, fused query_key_value stored per head as
// [q | k | v], rotary on the first rotary_pct of each head, parallel residual
// x + attn(ln1(x)) + mlp(ln2(x)), untied embed_out.
#include <cmath>

#include "checkpoint/safetensors.h"
#include "error.h"
#include "models/blocks.h"
#include "models/model.h"

namespace neuroprune {
namespace {

struct NeoXConfig {
  int64_t n_layer, hidden, n_head, head_dim, intermediate, vocab, max_pos;
  RopeParameters rope;
  int64_t rotary_dim;
  double eps;
  std::string act;
  bool parallel, tied, bias;

  explicit NeoXConfig(const ConfigReader& c)
      : n_layer(c.positive_int("num_hidden_layers")),
        hidden(c.positive_int("hidden_size")),
        n_head(c.positive_int("num_attention_heads")),
        head_dim(hidden / n_head),
        intermediate(c.positive_int("intermediate_size")),
        vocab(c.positive_int("vocab_size")),
        max_pos(c.positive_int("max_position_embeddings", 2048)),
        rope(read_rope(c, {10000.0, 0.25, {"rotary_emb_base", "rope_theta"}, {"rotary_pct", "partial_rotary_factor"}})),
        rotary_dim(static_cast<int64_t>(head_dim * rope.partial_rotary_factor)),
        eps(c.positive_number("layer_norm_eps", 1e-5)),
        act(c.string("hidden_act", "gelu")),
        parallel(c.boolean("use_parallel_residual", true)),
        tied(c.boolean("tie_word_embeddings", false)),
        bias(c.boolean("attention_bias", true)) {
    if (hidden % n_head != 0)
      c.invalid("hidden_size", "(" + std::to_string(hidden) + ") must be divisible by num_attention_heads (" + std::to_string(n_head) + ")");
    if (rotary_dim % 2 != 0 || rotary_dim > head_dim) c.invalid("partial_rotary_factor", "(rotary_pct) must give an even rotary size, got " + std::to_string(rotary_dim));
    if (!blocks::is_known_activation(act)) c.invalid("hidden_act", "is unknown: \"" + act + "\"");
  }

  std::vector<ParamSpec> specs() const {
    std::vector<ParamSpec> s = {{"gpt_neox.embed_in.weight", {vocab, hidden}}};
    for (int64_t l = 0; l < n_layer; ++l) {
      const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
      s.push_back({p + "input_layernorm.weight", {hidden}, 1.0});
      s.push_back({p + "input_layernorm.bias", {hidden}});
      s.push_back({p + "post_attention_layernorm.weight", {hidden}, 1.0});
      s.push_back({p + "post_attention_layernorm.bias", {hidden}});
      s.push_back({p + "attention.query_key_value.weight", {3 * hidden, hidden}});
      if (bias) s.push_back({p + "attention.query_key_value.bias", {3 * hidden}});
      s.push_back({p + "attention.dense.weight", {hidden, hidden}});
      if (bias) s.push_back({p + "attention.dense.bias", {hidden}});
      s.push_back({p + "mlp.dense_h_to_4h.weight", {intermediate, hidden}});
      s.push_back({p + "mlp.dense_h_to_4h.bias", {intermediate}});
      s.push_back({p + "mlp.dense_4h_to_h.weight", {hidden, intermediate}});
      s.push_back({p + "mlp.dense_4h_to_h.bias", {hidden}});
    }
    s.push_back({"gpt_neox.final_layer_norm.weight", {hidden}, 1.0});
    s.push_back({"gpt_neox.final_layer_norm.bias", {hidden}});
    if (!tied) s.push_back({"embed_out.weight", {vocab, hidden}});
    return s;
  }
};

class GPTNeoX final : public CausalLM {
 public:
  GPTNeoX(NeoXConfig cfg, blocks::Rotary rotary, ModelInfo info, Weights w, std::string config_json, at::Device device,
          at::ScalarType dtype)
      : CausalLM(std::move(info), std::move(w), std::move(config_json), device, dtype), cfg_(std::move(cfg)), rotary_(std::move(rotary)) {}

  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) const override {
    return at::embedding(weights_["gpt_neox.embed_in.weight"], ids);
  }

  at::Tensor block(int64_t l, const at::Tensor& x, const BlockContext& ctx) const override {
    const Weights& w = weights_;
    const int64_t B = x.size(0), T = x.size(1), H = cfg_.n_head, D = cfg_.head_dim;
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    auto opt = [&](const std::string& name) { return cfg_.bias ? w[name] : at::Tensor(); };
    // Attention on ln1(x); the fused projection is [B, T, H, 3D] = per head [q | k | v]
    at::Tensor a = at::layer_norm(x, {cfg_.hidden}, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], cfg_.eps);
    at::Tensor qkv = blocks::linear(a, w[p + "attention.query_key_value.weight"], opt(p + "attention.query_key_value.bias"))
                         .view({B, T, H, 3 * D})
                         .transpose(1, 2);  // [B, H, T, 3D]
    at::Tensor q = rotary_.apply(qkv.narrow(-1, 0, D), ctx.positions);
    at::Tensor k = rotary_.apply(qkv.narrow(-1, D, D), ctx.positions);
    at::Tensor z = blocks::attend(ctx.cache, l, q, k, qkv.narrow(-1, 2 * D, D), 1.0 / std::sqrt(double(D)));
    at::Tensor resid = x + blocks::linear(blocks::merge_heads(z), w[p + "attention.dense.weight"], opt(p + "attention.dense.bias"));
    // MLP on ln2(x) (parallel residual) or ln2(R) (sequential); pre = dense_h_to_4h(.) is hook_pre,
    // post = act(pre) is hook_post
    at::Tensor m = at::layer_norm(cfg_.parallel ? x : resid, {cfg_.hidden}, w[p + "post_attention_layernorm.weight"],
                                  w[p + "post_attention_layernorm.bias"], cfg_.eps);
    at::Tensor pre = blocks::linear(m, w[p + "mlp.dense_h_to_4h.weight"], w[p + "mlp.dense_h_to_4h.bias"]);
    return finish_mlp(l, resid, pre, at::Tensor(), ctx.hooks);
  }

  at::Tensor mlp_activation(int64_t, const at::Tensor& pre, const at::Tensor&) const override {
    return blocks::activation(pre, cfg_.act);
  }

  // Circuit graph: head h's q/k/v from its own ln1-normed inputs through its rows of the fused
  // query_key_value (stored per head as [q | k | v]); its output z_h dense[:, head h].
  at::Tensor graph_attn_norm(int64_t l, const at::Tensor& x) const override {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    return at::layer_norm(x, {cfg_.hidden}, weights_[p + "input_layernorm.weight"], weights_[p + "input_layernorm.bias"], cfg_.eps);
  }

  at::Tensor graph_heads(int64_t l, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                         const at::Tensor& positions) const override {
    const Weights& w = weights_;
    const int64_t H = cfg_.n_head, D = cfg_.head_dim, E = cfg_.hidden;
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    const at::Tensor W = w[p + "attention.query_key_value.weight"].view({H, 3, D, E});
    const at::Tensor b = cfg_.bias ? w[p + "attention.query_key_value.bias"].view({H, 3, D}) : at::Tensor();
    auto project = [&](const at::Tensor& a, int64_t j) {
      return blocks::head_linear(a, W.select(1, j), b.defined() ? b.select(1, j) : at::Tensor());
    };
    const at::Tensor q = rotary_.apply(project(q_in, 0), positions);
    const at::Tensor k = rotary_.apply(project(k_in, 1), positions);
    const at::Tensor key_mask = at::ones({q.size(0), q.size(2)}, q.options().dtype(at::kBool));
    at::Tensor z = blocks::causal_attention(q, k, project(v_in, 2), key_mask, 1.0 / std::sqrt(double(D)));
    return blocks::head_out(z, w[p + "attention.dense.weight"].view({E, H, D}).permute({1, 2, 0}));
  }

  at::Tensor graph_attn_bias(int64_t l) const override {
    return cfg_.bias ? weights_["gpt_neox.layers." + std::to_string(l) + ".attention.dense.bias"] : at::Tensor();
  }

  at::Tensor graph_mlp(int64_t l, const at::Tensor& x) const override {
    const Weights& w = weights_;
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".";
    at::Tensor m = at::layer_norm(x, {cfg_.hidden}, w[p + "post_attention_layernorm.weight"], w[p + "post_attention_layernorm.bias"], cfg_.eps);
    return mlp_from_pre(l, blocks::linear(m, w[p + "mlp.dense_h_to_4h.weight"], w[p + "mlp.dense_h_to_4h.bias"]), at::Tensor());
  }

  bool graph_parallel() const override { return cfg_.parallel; }

  at::Tensor mlp_out(int64_t l, const at::Tensor& post) const override {
    const std::string p = "gpt_neox.layers." + std::to_string(l) + ".mlp.dense_4h_to_h.";
    return blocks::linear(post, weights_[p + "weight"], weights_[p + "bias"]);
  }

  at::Tensor head(const at::Tensor& x) const override {
    at::Tensor h = at::layer_norm(x, {cfg_.hidden}, weights_["gpt_neox.final_layer_norm.weight"],
                                  weights_["gpt_neox.final_layer_norm.bias"], cfg_.eps);
    const at::Tensor& W = cfg_.tied ? weights_["gpt_neox.embed_in.weight"] : weights_["embed_out.weight"];
    return at::linear(h.to(W.device()), W);  // tied and split: the embedding sits on the first device
  }

  std::vector<NeuronParam> neuron_params(int64_t layer, bool full) const override {
    const std::string p = "gpt_neox.layers." + std::to_string(layer) + ".mlp.";
    std::vector<NeuronParam> out = {{p + "dense_4h_to_h.weight", 1}};  // [hidden, d_mlp]: a column per neuron
    if (full) out.insert(out.end(), {{p + "dense_h_to_4h.weight", 0}, {p + "dense_h_to_4h.bias", 0}});
    return out;
  }

 private:
  NeoXConfig cfg_;
  blocks::Rotary rotary_;
};

}  // namespace

std::unique_ptr<CausalLM> make_gpt_neox(const ConfigReader& config, const WeightSource& source, at::Device device,
                                        at::ScalarType dtype) {
  NeoXConfig cfg(config);
  Weights w = materialize(source, cfg.specs(), {}, device, dtype);
  blocks::Rotary rotary(cfg.rope, cfg.rotary_dim, device);
  ModelInfo info = describe("GPTNeoXForCausalLM", "gpt_neox", cfg.n_layer, cfg.hidden, cfg.n_head, cfg.intermediate, cfg.vocab, cfg.max_pos, w);
  return std::make_unique<GPTNeoX>(cfg, std::move(rotary), info, std::move(w), config.json().dump(), device, dtype);
}

}  // namespace neuroprune
