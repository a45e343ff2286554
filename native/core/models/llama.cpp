// Llama family (HF LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM): RMSNorm, rotary
// positions, grouped-query attention, SwiGLU MLP. Mistral adds a sliding window; Qwen2 q/k/v biases.
#include <cmath>

#include "checkpoint/safetensors.h"
#include "error.h"
#include "models/blocks.h"
#include "models/model.h"

namespace neuroprune {
namespace {

struct LlamaConfig {
  std::string type;
  int64_t n_layer, hidden, n_head, n_kv, head_dim, intermediate, vocab, max_pos;
  double eps;
  RopeParameters rope;
  std::string act;
  bool tied, qkv_bias, o_bias, mlp_bias;
  std::vector<int64_t> windows;  // sliding window per layer, 0: full attention

  LlamaConfig(const ConfigReader& c, const std::string& model_type)
      : type(model_type),
        n_layer(c.positive_int("num_hidden_layers")),
        hidden(c.positive_int("hidden_size")),
        n_head(c.positive_int("num_attention_heads")),
        n_kv(c.positive_int("num_key_value_heads", n_head)),
        head_dim(c.positive_int("head_dim", hidden / n_head)),
        intermediate(c.positive_int("intermediate_size")),
        vocab(c.positive_int("vocab_size")),
        max_pos(c.positive_int("max_position_embeddings", 2048)),
        eps(c.positive_number("rms_norm_eps", 1e-6)),
        rope(read_rope(c)),
        act(c.string("hidden_act", "silu")),
        tied(c.boolean("tie_word_embeddings", false)),
        qkv_bias(model_type == "qwen2" || c.boolean("attention_bias", false)),
        o_bias(model_type != "qwen2" && c.boolean("attention_bias", false)),
        mlp_bias(c.boolean("mlp_bias", false)) {
    if (!c.has("head_dim") && hidden % n_head != 0)
      c.invalid("hidden_size", "(" + std::to_string(hidden) + ") must be divisible by num_attention_heads (" + std::to_string(n_head) + ")");
    if (n_head % n_kv != 0)
      c.invalid("num_key_value_heads", "(" + std::to_string(n_kv) + ") must divide num_attention_heads (" + std::to_string(n_head) + ")");
    if (!blocks::is_known_activation(act)) c.invalid("hidden_act", "is unknown: \"" + act + "\"");
    if (rope.partial_rotary_factor != 1.0) c.invalid("partial_rotary_factor", "must be 1 for the Llama family (every feature rotated)");
    windows = read_attention_windows(c, model_type, n_layer);
  }

  std::vector<ParamSpec> specs() const {
    const int64_t q = n_head * head_dim, kv = n_kv * head_dim;
    std::vector<ParamSpec> s = {{"model.embed_tokens.weight", {vocab, hidden}}};
    for (int64_t l = 0; l < n_layer; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      s.push_back({p + "input_layernorm.weight", {hidden}, 1.0});
      s.push_back({p + "self_attn.q_proj.weight", {q, hidden}});
      s.push_back({p + "self_attn.k_proj.weight", {kv, hidden}});
      s.push_back({p + "self_attn.v_proj.weight", {kv, hidden}});
      if (qkv_bias) {
        s.push_back({p + "self_attn.q_proj.bias", {q}});
        s.push_back({p + "self_attn.k_proj.bias", {kv}});
        s.push_back({p + "self_attn.v_proj.bias", {kv}});
      }
      s.push_back({p + "self_attn.o_proj.weight", {hidden, q}});
      if (o_bias) s.push_back({p + "self_attn.o_proj.bias", {hidden}});
      s.push_back({p + "post_attention_layernorm.weight", {hidden}, 1.0});
      s.push_back({p + "mlp.gate_proj.weight", {intermediate, hidden}});
      s.push_back({p + "mlp.up_proj.weight", {intermediate, hidden}});
      s.push_back({p + "mlp.down_proj.weight", {hidden, intermediate}});
      if (mlp_bias) {
        s.push_back({p + "mlp.gate_proj.bias", {intermediate}});
        s.push_back({p + "mlp.up_proj.bias", {intermediate}});
        s.push_back({p + "mlp.down_proj.bias", {hidden}});
      }
    }
    s.push_back({"model.norm.weight", {hidden}, 1.0});
    if (!tied) s.push_back({"lm_head.weight", {vocab, hidden}});
    return s;
  }
};

class Llama final : public CausalLM {
 public:
  Llama(LlamaConfig cfg, blocks::Rotary rotary, ModelInfo info, Weights w, std::string config_json, at::Device device,
        at::ScalarType dtype)
      : CausalLM(std::move(info), std::move(w), std::move(config_json), device, dtype), cfg_(std::move(cfg)), rotary_(std::move(rotary)) {}

  at::Tensor embed(const at::Tensor& ids, const at::Tensor&) const override {
    return at::embedding(weights_["model.embed_tokens.weight"], ids);
  }

  at::Tensor block(int64_t l, const at::Tensor& x, const BlockContext& ctx) const override {
    const Weights& w = weights_;
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto opt = [&](const std::string& name, bool present) { return present ? w[name] : at::Tensor(); };
    // Attention: R = x + o_proj(softmax(rope(q) rope(k)^T / sqrt(d)) v), k/v shared by groups of heads
    at::Tensor a = blocks::rms_norm(x, w[p + "input_layernorm.weight"], cfg_.eps);
    at::Tensor q = blocks::linear(a, w[p + "self_attn.q_proj.weight"], opt(p + "self_attn.q_proj.bias", cfg_.qkv_bias));
    at::Tensor k = blocks::linear(a, w[p + "self_attn.k_proj.weight"], opt(p + "self_attn.k_proj.bias", cfg_.qkv_bias));
    at::Tensor v = blocks::linear(a, w[p + "self_attn.v_proj.weight"], opt(p + "self_attn.v_proj.bias", cfg_.qkv_bias));
    q = rotary_.apply(blocks::split_heads(q, cfg_.n_head), ctx.positions);
    k = rotary_.apply(blocks::split_heads(k, cfg_.n_kv), ctx.positions);
    const int64_t window = cfg_.windows[l];
    at::Tensor z = blocks::attend(ctx.cache, l, q, k, blocks::split_heads(v, cfg_.n_kv), 1.0 / std::sqrt(double(cfg_.head_dim)), window);
    at::Tensor resid = x + blocks::linear(blocks::merge_heads(z), w[p + "self_attn.o_proj.weight"], opt(p + "self_attn.o_proj.bias", cfg_.o_bias));
    // SwiGLU MLP: pre = up(h) is blocks.{l}.mlp.hook_pre, post = act(gate(h)) * pre is blocks.{l}.mlp.hook_post
    at::Tensor h = blocks::rms_norm(resid, w[p + "post_attention_layernorm.weight"], cfg_.eps);
    at::Tensor gate = blocks::linear(h, w[p + "mlp.gate_proj.weight"], opt(p + "mlp.gate_proj.bias", cfg_.mlp_bias));
    at::Tensor up = blocks::linear(h, w[p + "mlp.up_proj.weight"], opt(p + "mlp.up_proj.bias", cfg_.mlp_bias));
    return finish_mlp(l, resid, up, blocks::activation(gate, cfg_.act), ctx.hooks);
  }

  at::Tensor mlp_activation(int64_t, const at::Tensor& pre, const at::Tensor& gate) const override { return gate * pre; }

  // Circuit graph: head h's q from its own normed input, its k and v from theirs with the weights of
  // its key/value group (no copy of the weights); its output z_h o_proj[:, head h].
  at::Tensor graph_attn_norm(int64_t l, const at::Tensor& x) const override {
    return blocks::rms_norm(x, weights_["model.layers." + std::to_string(l) + ".input_layernorm.weight"], cfg_.eps);
  }

  at::Tensor graph_heads(int64_t l, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                         const at::Tensor& positions) const override {
    const Weights& w = weights_;
    const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
    const int64_t D = cfg_.head_dim, E = cfg_.hidden;
    auto project = [&](const at::Tensor& a, const char* name, int64_t groups) {
      const std::string n = p + name;
      at::Tensor bias = cfg_.qkv_bias ? w[n + ".bias"].view({groups, D}) : at::Tensor();
      return blocks::head_linear(a, w[n + ".weight"].view({groups, D, E}), bias);
    };
    const at::Tensor q = rotary_.apply(project(q_in, "q_proj", cfg_.n_head), positions);
    const at::Tensor k = rotary_.apply(project(k_in, "k_proj", cfg_.n_kv), positions);
    const at::Tensor key_mask = at::ones({q.size(0), q.size(2)}, q.options().dtype(at::kBool));
    at::Tensor z = blocks::causal_attention(q, k, project(v_in, "v_proj", cfg_.n_kv), key_mask, 1.0 / std::sqrt(double(D)), cfg_.windows[l]);
    return blocks::head_out(z, w[p + "o_proj.weight"].view({E, cfg_.n_head, D}).permute({1, 2, 0}));
  }

  at::Tensor graph_attn_bias(int64_t l) const override {
    return cfg_.o_bias ? weights_["model.layers." + std::to_string(l) + ".self_attn.o_proj.bias"] : at::Tensor();
  }

  at::Tensor graph_mlp(int64_t l, const at::Tensor& x) const override {
    const Weights& w = weights_;
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto opt = [&](const std::string& name) { return cfg_.mlp_bias ? w[name] : at::Tensor(); };
    at::Tensor h = blocks::rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg_.eps);
    at::Tensor gate = blocks::linear(h, w[p + "mlp.gate_proj.weight"], opt(p + "mlp.gate_proj.bias"));
    at::Tensor up = blocks::linear(h, w[p + "mlp.up_proj.weight"], opt(p + "mlp.up_proj.bias"));
    return mlp_from_pre(l, up, blocks::activation(gate, cfg_.act));
  }

  at::Tensor mlp_out(int64_t l, const at::Tensor& post) const override {
    const std::string p = "model.layers." + std::to_string(l) + ".mlp.down_proj.";
    return blocks::linear(post, weights_[p + "weight"], cfg_.mlp_bias ? weights_[p + "bias"] : at::Tensor());
  }

  at::Tensor head(const at::Tensor& x) const override {
    at::Tensor h = blocks::rms_norm(x, weights_["model.norm.weight"], cfg_.eps);
    const at::Tensor& W = cfg_.tied ? weights_["model.embed_tokens.weight"] : weights_["lm_head.weight"];
    return at::linear(h.to(W.device()), W);  // tied and split: the embedding sits on the first device
  }

  std::vector<NeuronParam> neuron_params(int64_t layer, bool full) const override {
    const std::string p = "model.layers." + std::to_string(layer) + ".mlp.";
    std::vector<NeuronParam> out = {{p + "down_proj.weight", 1}};  // [hidden, d_mlp]: a column per neuron
    if (full) {
      out.insert(out.end(), {{p + "gate_proj.weight", 0}, {p + "up_proj.weight", 0}});
      if (cfg_.mlp_bias) out.insert(out.end(), {{p + "gate_proj.bias", 0}, {p + "up_proj.bias", 0}});
    }
    return out;
  }

 private:
  LlamaConfig cfg_;
  blocks::Rotary rotary_;
};

std::unique_ptr<CausalLM> make(const ConfigReader& config, const WeightSource& source, at::Device device,
                               at::ScalarType dtype, const std::string& type, const std::string& architecture) {
  LlamaConfig cfg(config, type);
  Weights w = materialize(source, cfg.specs(), {}, device, dtype);
  blocks::Rotary rotary(cfg.rope, cfg.head_dim, device);
  // Rotary positions have no table, but the model was trained for max_position_embeddings: the context.
  ModelInfo info = describe(architecture, type, cfg.n_layer, cfg.hidden, cfg.n_head, cfg.intermediate, cfg.vocab, cfg.max_pos, w);
  return std::make_unique<Llama>(cfg, std::move(rotary), info, std::move(w), config.json().dump(), device, dtype);
}

}  // namespace

std::unique_ptr<CausalLM> make_llama(const ConfigReader& c, const WeightSource& s, at::Device d, at::ScalarType t) {
  return make(c, s, d, t, "llama", "LlamaForCausalLM");
}
std::unique_ptr<CausalLM> make_mistral(const ConfigReader& c, const WeightSource& s, at::Device d, at::ScalarType t) {
  return make(c, s, d, t, "mistral", "MistralForCausalLM");
}
std::unique_ptr<CausalLM> make_qwen2(const ConfigReader& c, const WeightSource& s, at::Device d, at::ScalarType t) {
  return make(c, s, d, t, "qwen2", "Qwen2ForCausalLM");
}

}  // namespace neuroprune
