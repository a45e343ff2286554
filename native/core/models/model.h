// The interface every architecture implements, and the weight store they share.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/device_map.h"

namespace neuroprune {

class Checkpoint;

struct ModelInfo {
  std::string architecture;  // e.g. "GPT2LMHeadModel"
  std::string model_type;    // config.json model_type, e.g. "gpt2"
  int64_t n_layers = 0;
  int64_t d_model = 0;
  int64_t n_heads = 0;
  int64_t d_mlp = 0;  // neurons per layer at blocks.{l}.<neuron_site>
  int64_t vocab_size = 0;
  int64_t max_positions = 0;  // 0: no limit
  int64_t n_params = 0;
  // Where the neurons sit, without the layer: "mlp.hook_post" (input of the down projection), or
  // "mixer.hook_post" for Mamba (input of out_proj).
  std::string neuron_site = "mlp.hook_post";
  // Whether blocks.{l}.mlp.hook_pre exists (the up projection's output before the activation); Mamba has none.
  bool has_pre_site = true;
  // The cache holds recurrent states (Mamba) rather than keys and values per position.
  bool recurrent = false;
  int64_t state_size = 0;  // recurrent models: SSM state per unit
};

// Key/value cache: per layer [B, H, S, D], and the key mask [B, S] (1 = token, 0 = padding).
// Optionally a prefix shared by groups of rows (attribution: every row of a prompt reads the same
// clean prefix): per layer [G, H, P, D], and per group the rows that read it. The mask then covers
// the P shared positions followed by the rows' own.
// Recurrent models (Mamba) keep per layer the state after the last cached position instead:
// conv_state [B, d_inner, kernel-1] (the last inputs of the causal convolution) and ssm_state
// [B, d_inner, N] (float32). Their shared-prefix variant is shared_conv/shared_ssm [G, ...]: the state
// after group g's prefix, which every row of the group starts from.
// The MLP sites neurons are read, scaled and attributed at: hook_post (input of the down projection;
// Mamba: mixer.hook_post) and hook_pre (the up projection's output before the activation). Neuron i
// is the same unit at both sites: hook_post_i = act(hook_pre_i), or act(gate_i) * hook_pre_i.
enum class MlpSite { Post = 0, Pre = 1 };

struct KVCache {
  std::vector<at::Tensor> k, v;
  at::Tensor mask;
  std::vector<at::Tensor> shared_k, shared_v;
  std::vector<at::Tensor> group_rows;  // [rows of group g] int64
  std::vector<at::Tensor> conv_state, ssm_state;
  std::vector<at::Tensor> shared_conv, shared_ssm;
  int64_t length() const { return mask.defined() ? mask.size(1) : 0; }
};

// Interventions at named activation sites. mlp_post sees blocks.{layer}.mlp.hook_post [B, T, d_mlp]
// and returns the tensor that flows on (itself, or a replacement of the same shape).
struct Hooks {
  std::function<at::Tensor(int64_t layer, const at::Tensor& post)> mlp_post;
  // Sees blocks.{layer}.mlp.hook_pre [B, T, d_mlp] and, for gated MLPs, `gate` = act(gate_proj(h)) (the
  // factor hook_pre is multiplied by; undefined otherwise); returns the tensor that flows on.
  std::function<at::Tensor(int64_t layer, const at::Tensor& pre, const at::Tensor& gate)> mlp_pre;
  // Sees the residual stream the MLP output is added to (x + attention), [B, T, d_model].
  std::function<void(int64_t layer, const at::Tensor& resid)> resid_mid;
  // Sees blocks.{layer}.hook_resid_post (a block's output, [B, T, d_model]) in CausalLM::forward and
  // returns what flows on (itself, or a replacement of the same shape).
  std::function<at::Tensor(int64_t layer, const at::Tensor& x)> resid_post;
};

// What a block needs besides its input: the cache (its mask covers every position, new ones
// included), the new tokens' positions [B, T], and hooks.
struct BlockContext {
  KVCache& cache;
  const at::Tensor& positions;
  const Hooks* hooks;
};

// How a parameter is drawn for a random model: N(0, std), or N(1, std) for norm gains.
struct ParamSpec {
  std::string name;  // the name save_pretrained writes
  std::vector<int64_t> shape;
  double mean = 0.0;
  double std = 0.02;
};

// Named parameters in one dtype, on one device or (--device-map) each layer's on its own device.
class Weights {
 public:
  // Loads every spec from the checkpoint, checking presence and shape, spec i onto devices[i]. A
  // stored name may lack one of `optional_prefixes` (e.g. "transformer." in the original GPT-2 files).
  static Weights load(const Checkpoint& ckpt, const std::vector<ParamSpec>& specs,
                      const std::vector<std::string>& optional_prefixes, const std::vector<at::Device>& devices, at::ScalarType dtype);
  // Draws every spec, reproducibly for a seed: all on devices[0]'s generator (a split model draws the
  // same numbers as an unsplit one), then spec i moves to devices[i].
  static Weights random(const std::vector<ParamSpec>& specs, const std::vector<at::Device>& devices, at::ScalarType dtype, uint64_t seed);

  const at::Tensor& operator[](const std::string& name) const;
  const std::vector<std::pair<std::string, at::Tensor>>& named() const { return named_; }
  // The device of each layer when the weights were split by a device map; empty otherwise.
  const std::vector<at::Device>& layer_devices() const { return layer_devices_; }
  void set_layer_devices(std::vector<at::Device> devices) { layer_devices_ = std::move(devices); }

 private:
  std::vector<std::pair<std::string, at::Tensor>> named_;
  std::map<std::string, size_t> index_;
  std::vector<at::Device> layer_devices_;
};

// A parameter that holds part of each MLP neuron: slice `index + offset` along `dim` belongs to
// neuron `index` (offset: where a fused projection's block for these neurons starts, e.g. Mamba's
// gate half of in_proj).
struct NeuronParam {
  std::string name;
  int64_t dim;
  int64_t offset = 0;
};

class CausalLM {
 public:
  virtual ~CausalLM() = default;
  const ModelInfo& info() const { return info_; }
  const Weights& weights() const { return weights_; }
  // For in-place edits (pruning); shapes never change.
  Weights& mutable_weights() { return weights_; }

  // The parameters of layer `layer`'s MLP neurons: the down projection, and with `full` also the
  // up/gate projections and their biases.
  virtual std::vector<NeuronParam> neuron_params(int64_t layer, bool full) const = 0;

  // Per-layer activation scales at a site ([d_mlp], undefined = none), applied by every later forward:
  // `all` at every position, `last` at the last position of each forward call only.
  void set_mlp_scale(int64_t layer, MlpSite site, const at::Tensor& all, const at::Tensor& last);
  // x [B, T, d_mlp] at a site with that site's scales applied.
  at::Tensor apply_mlp_scale(int64_t layer, MlpSite site, at::Tensor x) const;

  // Where each tensor came from when the checkpoint was sharded (name -> shard file), for save().
  const std::map<std::string, std::string>& source_shards() const { return source_shards_; }
  void set_source_shards(std::map<std::string, std::string> shards) { source_shards_ = std::move(shards); }
  const std::string& config_json() const { return config_json_; }
  // The device of the embeddings, where inputs go (with a device map: layer 0's).
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }
  // Where layer l's weights live: device() unless a device map split the layers. Activations move to
  // it at block boundaries; everything built for layer l (caches, masks, index tensors) lives there.
  at::Device layer_device(int64_t layer) const { return layer_devices_.empty() ? device_ : layer_devices_[layer]; }
  bool split() const { return !layer_devices_.empty(); }

  // ids [B, T] (int64) are the new tokens, mask [B, T] marks real tokens (0 = left padding).
  // The cache, when given, holds earlier tokens and is extended. Returns logits [B, T, vocab], or
  // [B, 1, vocab] for the last position only with last_only (the LM head is the costliest matmul).
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache, const Hooks* hooks = nullptr,
                     bool last_only = false) const;

  // The pieces of forward, one per architecture; attribution runs them on its own schedule.
  // Token (and learned position) embeddings [B, T, d_model].
  virtual at::Tensor embed(const at::Tensor& ids, const at::Tensor& positions) const = 0;
  // One block: x -> R + mlp_out(post), where R = x + attention and post = blocks.{l}.mlp.hook_post.
  virtual at::Tensor block(int64_t layer, const at::Tensor& x, const BlockContext& ctx) const = 0;
  // The MLP's contribution to the residual stream: down projection of post, plus its bias.
  virtual at::Tensor mlp_out(int64_t layer, const at::Tensor& post) const = 0;
  // Final norm and unembedding: logits [B, T, vocab].
  virtual at::Tensor head(const at::Tensor& x) const = 0;
  // hook_pre -> hook_post: act(pre), or gate * pre for gated MLPs (gate as the mlp_pre hook sees it).
  // Models without hook_pre (Mamba) fail with E_ARG.
  virtual at::Tensor mlp_activation(int64_t layer, const at::Tensor& pre, const at::Tensor& gate) const;

  // The circuit graph's view of a block (native/core/circuit): attention split into heads, each with
  // its own q, k and v input. graph_attn_norm is the attention's input norm over the last dimension
  // (the graph norms each head's inputs on their own). graph_heads takes the normed inputs q_in, k_in,
  // v_in [B, T, H, d_model] (head h's), positions [B, T] (every position a real token), and returns each
  // head's output in the residual stream, z_h W_O[:, head h], [B, T, H, d_model], without the output
  // bias. Grouped-query models compute query head h's k and v from its own input with the weights of
  // group h / (H / KV). Models without heads (Mamba) fail with E_SITE.
  virtual at::Tensor graph_attn_norm(int64_t layer, const at::Tensor& x) const;
  virtual at::Tensor graph_heads(int64_t layer, const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                 const at::Tensor& positions) const;
  // The attention output bias [d_model] (undefined when none): in the stream, part of no head.
  virtual at::Tensor graph_attn_bias(int64_t layer) const;
  // The MLP's output in the residual stream from its input x [..., d_model] (its norm included).
  virtual at::Tensor graph_mlp(int64_t layer, const at::Tensor& x) const;
  // Whether layer l's MLP reads the stream its attention reads (GPT-NeoX parallel residual).
  virtual bool graph_parallel() const { return false; }

 protected:
  // The end of every block: activation scales and hooks on post, then R + mlp_out(post).
  at::Tensor finish_block(int64_t layer, const at::Tensor& resid, at::Tensor post, const Hooks* hooks) const;
  // The MLP from hook_pre on: its scales and hook, the activation, then finish_block.
  at::Tensor finish_mlp(int64_t layer, const at::Tensor& resid, at::Tensor pre, const at::Tensor& gate, const Hooks* hooks) const;
  // hook_pre -> the MLP's output, with the sites' scales, as finish_mlp without hooks: graph_mlp's tail.
  at::Tensor mlp_from_pre(int64_t layer, at::Tensor pre, const at::Tensor& gate) const;

  CausalLM(ModelInfo info, Weights weights, std::string config_json, at::Device device, at::ScalarType dtype)
      : info_(std::move(info)), weights_(std::move(weights)), config_json_(std::move(config_json)), device_(device), dtype_(dtype),
        layer_devices_(weights_.layer_devices()) {}
  ModelInfo info_;
  Weights weights_;
  std::string config_json_;
  at::Device device_;
  at::ScalarType dtype_;
  std::vector<at::Device> layer_devices_;  // empty: every layer on device_
  struct SiteScale {
    at::Tensor all, last;
  };
  std::vector<SiteScale> mlp_scale_[2];  // [site][layer]
  std::map<std::string, std::string> source_shards_;
};

// Where the weights come from: a checkpoint folder, or a seed for random ones.
struct WeightSource {
  const Checkpoint* checkpoint = nullptr;
  uint64_t seed = 0;
  const DevicePlan* plan = nullptr;  // --device-map: each layer's weights on its device
};

// The weights a model is built from: loaded from the checkpoint, or drawn for the seed; on `device`,
// or with source.plan each layer's on its device (embeddings on the first, the rest after the layers on the last).
Weights materialize(const WeightSource& source, const std::vector<ParamSpec>& specs,
                    const std::vector<std::string>& optional_prefixes, at::Device device, at::ScalarType dtype);

// A ModelInfo whose parameter count is taken from the weights.
ModelInfo describe(std::string architecture, std::string model_type, int64_t n_layers, int64_t d_model, int64_t n_heads,
                   int64_t d_mlp, int64_t vocab_size, int64_t max_positions, const Weights& weights);

// One entry per architecture: builds the model from config.json and a weight source.
using ModelFactory = std::function<std::unique_ptr<CausalLM>(const ConfigReader&, const WeightSource&, at::Device, at::ScalarType)>;

// Loads the checkpoint folder `dir` (config.json + safetensors); with a plan, split over its devices
// (`device` is then ignored: the embeddings go to the plan's first).
std::unique_ptr<CausalLM> load_causal_lm(const std::string& dir, at::Device device, at::ScalarType dtype,
                                         const DevicePlan* plan = nullptr);
// Builds a randomly initialised model from config.json text, straight on the device (or the plan's).
std::unique_ptr<CausalLM> random_causal_lm(const std::string& config_json, at::Device device, at::ScalarType dtype, uint64_t seed,
                                           const DevicePlan* plan = nullptr);
// The model_type values this build knows.
std::vector<std::string> known_model_types();

}  // namespace neuroprune
