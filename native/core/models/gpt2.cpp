// GPT-2 (HF GPT2LMHeadModel): learned positions, pre-LayerNorm blocks, Conv1D projections stored
// [in, out], gelu_new MLP, final LayerNorm, lm_head tied to the token embedding.
#include <cmath>

#include "checkpoint/safetensors.h"
#include "error.h"
#include "models/blocks.h"
#include "models/model.h"

namespace neuroprune {
namespace {

struct GPT2Config {
  int64_t n_layer, n_embd, n_head, n_inner, vocab_size, n_positions;
  double eps;
  std::string act;
  bool tied, scale_attn_weights, scale_by_layer;

  explicit GPT2Config(const ConfigReader& c)
      : n_layer(c.positive_int("n_layer", 12)),
        n_embd(c.positive_int("n_embd", 768)),
        n_head(c.positive_int("n_head", 12)),
        n_inner(c.positive_int("n_inner", 4 * n_embd)),
        vocab_size(c.positive_int("vocab_size", 50257)),
        n_positions(c.positive_int("n_positions", 1024)),
        eps(c.positive_number("layer_norm_epsilon", 1e-5)),
        act(c.string("activation_function", "gelu_new")),
        tied(c.boolean("tie_word_embeddings", true)),
        scale_attn_weights(c.boolean("scale_attn_weights", true)),
        scale_by_layer(c.boolean("scale_attn_by_inverse_layer_idx", false)) {
    if (n_embd % n_head != 0) c.invalid("n_embd", "(" + std::to_string(n_embd) + ") must be divisible by n_head (" + std::to_string(n_head) + ")");
    if (!blocks::is_known_activation(act)) c.invalid("activation_function", "is unknown: \"" + act + "\"");
  }

  std::vector<ParamSpec> specs() const {
    const double proj_std = 0.02 / std::sqrt(2.0 * n_layer);  // HF scales residual projections
    std::vector<ParamSpec> s = {{"transformer.wte.weight", {vocab_size, n_embd}},
                                {"transformer.wpe.weight", {n_positions, n_embd}, 0.0, 0.01}};
    for (int64_t l = 0; l < n_layer; ++l) {
      const std::string p = "transformer.h." + std::to_string(l) + ".";
      s.push_back({p + "ln_1.weight", {n_embd}, 1.0});
      s.push_back({p + "ln_1.bias", {n_embd}});
      s.push_back({p + "attn.c_attn.weight", {n_embd, 3 * n_embd}});
      s.push_back({p + "attn.c_attn.bias", {3 * n_embd}});
      s.push_back({p + "attn.c_proj.weight", {n_embd, n_embd}, 0.0, proj_std});
      s.push_back({p + "attn.c_proj.bias", {n_embd}});
      s.push_back({p + "ln_2.weight", {n_embd}, 1.0});
      s.push_back({p + "ln_2.bias", {n_embd}});
      s.push_back({p + "mlp.c_fc.weight", {n_embd, n_inner}});
      s.push_back({p + "mlp.c_fc.bias", {n_inner}});
      s.push_back({p + "mlp.c_proj.weight", {n_inner, n_embd}, 0.0, proj_std});
      s.push_back({p + "mlp.c_proj.bias", {n_embd}});
    }
    s.push_back({"transformer.ln_f.weight", {n_embd}, 1.0});
    s.push_back({"transformer.ln_f.bias", {n_embd}});
    if (!tied) s.push_back({"lm_head.weight", {vocab_size, n_embd}});
    return s;
  }
};

class GPT2 final : public CausalLM {
 public:
  GPT2(GPT2Config cfg, ModelInfo info, Weights w, std::string config_json, at::Device device, at::ScalarType dtype)
      : CausalLM(std::move(info), std::move(w), std::move(config_json), device, dtype), cfg_(std::move(cfg)) {}

  at::Tensor embed(const at::Tensor& ids, const at::Tensor& pos) const override {
    if (pos.numel() > 0 && pos.max().item<int64_t>() >= cfg_.n_positions)
      fail(codes::kRange, "sequence needs position " + std::to_string(pos.max().item<int64_t>()) +
                              " but the model has n_positions=" + std::to_string(cfg_.n_positions));
    return at::embedding(weights_["transformer.wte.weight"], ids) + at::embedding(weights_["transformer.wpe.weight"], pos);
  }

  at::Tensor block(int64_t l, const at::Tensor& x, const BlockContext& ctx) const override {
    const Weights& w = weights_;
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    // Attention: R = x + c_proj(softmax(q k^T / sqrt(d)) v)
    at::Tensor a = blocks::layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], cfg_.eps);
    auto qkv = blocks::conv1d(a, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]).split(cfg_.n_embd, -1);
    double scale = cfg_.scale_attn_weights ? 1.0 / std::sqrt(double(cfg_.n_embd / cfg_.n_head)) : 1.0;
    if (cfg_.scale_by_layer) scale /= double(l + 1);
    at::Tensor z = blocks::attend(ctx.cache, l, blocks::split_heads(qkv[0], cfg_.n_head), blocks::split_heads(qkv[1], cfg_.n_head),
                                  blocks::split_heads(qkv[2], cfg_.n_head), scale);
    at::Tensor resid = x + blocks::conv1d(blocks::merge_heads(z), w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"]);
    // MLP: pre = c_fc(ln_2(R)) is blocks.{l}.mlp.hook_pre, post = act(pre) is blocks.{l}.mlp.hook_post
    at::Tensor m = blocks::layer_norm(resid, w[p + "ln_2.weight"], w[p + "ln_2.bias"], cfg_.eps);
    at::Tensor pre = blocks::conv1d(m, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"]);
    return finish_mlp(l, resid, pre, at::Tensor(), ctx.hooks);
  }

  at::Tensor mlp_activation(int64_t, const at::Tensor& pre, const at::Tensor&) const override {
    return blocks::activation(pre, cfg_.act);
  }

  // Circuit graph: head h's q/k/v from its own ln_1-normed inputs through its slice of c_attn; its
  // output z_h c_proj[head h rows] (c_proj's bias stays in the stream).
  at::Tensor graph_attn_norm(int64_t l, const at::Tensor& x) const override {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    return blocks::layer_norm(x, weights_[p + "ln_1.weight"], weights_[p + "ln_1.bias"], cfg_.eps);
  }

  at::Tensor graph_heads(int64_t l, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                         const at::Tensor&) const override {
    const Weights& w = weights_;
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    const int64_t E = cfg_.n_embd, H = cfg_.n_head, D = E / H;
    const at::Tensor& W = w[p + "attn.c_attn.weight"];  // Conv1D [E, 3E]: columns [q | k | v], head-major
    const at::Tensor& b = w[p + "attn.c_attn.bias"];
    auto project = [&](const at::Tensor& a, int64_t j) {
      return blocks::head_linear(a, W.narrow(1, j * E, E).view({E, H, D}).permute({1, 2, 0}), b.narrow(0, j * E, E).view({H, D}));
    };
    double scale = cfg_.scale_attn_weights ? 1.0 / std::sqrt(double(D)) : 1.0;
    if (cfg_.scale_by_layer) scale /= double(l + 1);
    const at::Tensor q = project(q_in, 0);
    const at::Tensor key_mask = at::ones({q.size(0), q.size(2)}, q.options().dtype(at::kBool));
    at::Tensor z = blocks::causal_attention(q, project(k_in, 1), project(v_in, 2), key_mask, scale);
    return blocks::head_out(z, w[p + "attn.c_proj.weight"].view({H, D, E}));
  }

  at::Tensor graph_attn_bias(int64_t l) const override { return weights_["transformer.h." + std::to_string(l) + ".attn.c_proj.bias"]; }

  at::Tensor graph_mlp(int64_t l, const at::Tensor& x) const override {
    const std::string p = "transformer.h." + std::to_string(l) + ".";
    at::Tensor m = blocks::layer_norm(x, weights_[p + "ln_2.weight"], weights_[p + "ln_2.bias"], cfg_.eps);
    return mlp_from_pre(l, blocks::conv1d(m, weights_[p + "mlp.c_fc.weight"], weights_[p + "mlp.c_fc.bias"]), at::Tensor());
  }

  at::Tensor mlp_out(int64_t l, const at::Tensor& post) const override {
    const std::string p = "transformer.h." + std::to_string(l) + ".mlp.";
    return blocks::conv1d(post, weights_[p + "c_proj.weight"], weights_[p + "c_proj.bias"]);
  }

  at::Tensor head(const at::Tensor& x) const override {
    at::Tensor h = blocks::layer_norm(x, weights_["transformer.ln_f.weight"], weights_["transformer.ln_f.bias"], cfg_.eps);
    const at::Tensor& W = cfg_.tied ? weights_["transformer.wte.weight"] : weights_["lm_head.weight"];
    return at::linear(h.to(W.device()), W);  // tied and split: the embedding sits on the first device
  }

  std::vector<NeuronParam> neuron_params(int64_t layer, bool full) const override {
    const std::string p = "transformer.h." + std::to_string(layer) + ".mlp.";
    std::vector<NeuronParam> out = {{p + "c_proj.weight", 0}};  // Conv1D [in=d_mlp, out]: a row per neuron
    if (full) out.insert(out.end(), {{p + "c_fc.weight", 1}, {p + "c_fc.bias", 0}});
    return out;
  }

 private:
  GPT2Config cfg_;
};

}  // namespace

std::unique_ptr<CausalLM> make_gpt2(const ConfigReader& config, const WeightSource& source, at::Device device,
                                    at::ScalarType dtype) {
  GPT2Config cfg(config);
  Weights w = materialize(source, cfg.specs(), {"transformer."}, device, dtype);
  ModelInfo info = describe("GPT2LMHeadModel", "gpt2", cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_inner, cfg.vocab_size,
                            cfg.n_positions, w);
  return std::make_unique<GPT2>(cfg, info, std::move(w), config.json().dump(), device, dtype);
}

}  // namespace neuroprune
