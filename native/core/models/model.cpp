#include "models/model.h"

#include <ATen/CPUGeneratorImpl.h>

#include <sys/stat.h>

#include <mutex>

#include "checkpoint/files.h"
#include "checkpoint/safetensors.h"
#include "error.h"
#include "models/blocks.h"

namespace neuroprune {
namespace {

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

// Defined in one file per architecture.
std::unique_ptr<CausalLM> make_gpt2(const ConfigReader&, const WeightSource&, at::Device, at::ScalarType);
std::unique_ptr<CausalLM> make_llama(const ConfigReader&, const WeightSource&, at::Device, at::ScalarType);
std::unique_ptr<CausalLM> make_mistral(const ConfigReader&, const WeightSource&, at::Device, at::ScalarType);
std::unique_ptr<CausalLM> make_qwen2(const ConfigReader&, const WeightSource&, at::Device, at::ScalarType);
std::unique_ptr<CausalLM> make_gpt_neox(const ConfigReader&, const WeightSource&, at::Device, at::ScalarType);
std::unique_ptr<CausalLM> make_mamba(const ConfigReader&, const WeightSource&, at::Device, at::ScalarType);

static const std::map<std::string, ModelFactory>& registry() {
  static const std::map<std::string, ModelFactory> r = {
      {"gpt2", make_gpt2},   {"llama", make_llama},         {"mistral", make_mistral},
      {"qwen2", make_qwen2}, {"gpt_neox", make_gpt_neox}, {"mamba", make_mamba},
  };
  return r;
}

std::vector<std::string> known_model_types() {
  std::vector<std::string> out;
  for (auto& [k, _] : registry()) out.push_back(k);
  return out;
}

static std::unique_ptr<CausalLM> build(const ConfigReader& config, const WeightSource& source, at::Device device,
                                       at::ScalarType dtype) {
  if (!config.has("model_type")) config.invalid("model_type", "is required");
  const std::string type = config.string("model_type", "");
  auto it = registry().find(type);
  if (it == registry().end()) {
    std::string known;
    for (auto& k : known_model_types()) known += (known.empty() ? "" : ", ") + k;
    fail(codes::kConfig, config.source() + ": unknown model_type \"" + type + "\" (known: " + known + ")");
  }
  return it->second(config, source, device, dtype);
}

// A config can only ask for what its checkpoint holds: a layer count up to the number of tensors and
// sizes up to the number of elements. Checked before an architecture lists its tensors (a config of a
// million layers took 10 s and 1.3 GB only to be refused) or allocates anything.
static void check_sizes_against(const ConfigReader& config, const Checkpoint& ckpt) {
  const auto names = ckpt.names();
  const int64_t tensors = static_cast<int64_t>(names.size());
  int64_t elements = 0;
  for (const auto& name : names) {
    int64_t n = 1;
    for (int64_t d : ckpt.entry(name).shape) n *= d;  // cannot overflow: the reader checked each file
    elements += n;
  }
  auto bound = [&](const char* field, int64_t limit, const std::string& what) {
    if (!config.has(field) || !config.json()[field].is_number_integer()) return;  // the architecture reports type errors
    const int64_t v = config.json()[field].get<int64_t>();
    if (v > limit)
      config.invalid(field, "is " + std::to_string(v) + ", more than the checkpoint's " + std::to_string(limit) + " " + what);
  };
  for (const char* f : {"n_layer", "num_hidden_layers"}) bound(f, tensors, "tensors");
  for (const char* f : {"n_embd", "hidden_size", "intermediate_size", "n_inner", "vocab_size", "n_head", "num_attention_heads",
                        "num_key_value_heads", "head_dim", "n_positions", "state_size", "expand", "conv_kernel"})
    bound(f, elements, "weights in all");
}

std::unique_ptr<CausalLM> load_causal_lm(const std::string& dir, at::Device device, at::ScalarType dtype, const DevicePlan* plan) {
  if (plan) device = plan->first();
  struct stat st {};
  if (::stat((dir + "/config.json").c_str(), &st) == 0) check_model_file(dir + "/config.json", model_roots(dir), codes::kConfig);
  const ConfigReader config = ConfigReader::from_file(dir + "/config.json");
  // Resolve the architecture before touching the weights: an unknown model_type is a config error.
  if (!registry().count(config.string("model_type", ""))) build(config, {}, device, dtype);
  Checkpoint ckpt(dir);
  check_sizes_against(config, ckpt);
  WeightSource source;
  source.checkpoint = &ckpt;
  source.plan = plan;
  auto model = build(config, source, device, dtype);
  if (ckpt.sharded()) {
    std::map<std::string, std::string> shards;
    for (const auto& [name, _] : model->weights().named()) {
      const std::string& file = ckpt.file_of(ckpt.has(name) ? name : name.substr(name.find('.') + 1));
      shards[name] = file.substr(file.find_last_of('/') + 1);
    }
    model->set_source_shards(std::move(shards));
  }
  return model;
}

void CausalLM::set_mlp_scale(int64_t layer, MlpSite site, const at::Tensor& all, const at::Tensor& last) {
  auto& scales = mlp_scale_[static_cast<int>(site)];
  if (scales.empty()) scales.resize(info_.n_layers);
  auto on_device = [&](const at::Tensor& t) { return t.defined() ? t.to(layer_device(layer), dtype_) : t; };
  scales.at(layer) = {on_device(all), on_device(last)};
}

at::Tensor CausalLM::apply_mlp_scale(int64_t layer, MlpSite site, at::Tensor x) const {
  const auto& scales = mlp_scale_[static_cast<int>(site)];
  if (scales.empty()) return x;
  const SiteScale& s = scales.at(layer);
  if (s.all.defined()) x = x * s.all;  // [.., d_mlp] * [d_mlp]
  if (s.last.defined()) {
    const int64_t T = x.size(1);
    x = at::cat({x.narrow(1, 0, T - 1), x.narrow(1, T - 1, 1) * s.last}, 1);
  }
  return x;
}

at::Tensor CausalLM::mlp_activation(int64_t, const at::Tensor&, const at::Tensor&) const {
  fail(codes::kArgument, info_.model_type + " has no mlp.hook_pre site (its neurons sit at " + info_.neuron_site + ")");
}

at::Tensor CausalLM::graph_heads(int64_t, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&) const {
  fail(codes::kSite, info_.model_type + " (" + info_.architecture + ") has no attention heads, so it has no circuit graph");
}

at::Tensor CausalLM::graph_attn_norm(int64_t, const at::Tensor&) const {
  fail(codes::kSite, info_.model_type + " (" + info_.architecture + ") has no attention heads, so it has no circuit graph");
}

at::Tensor CausalLM::graph_attn_bias(int64_t) const { return {}; }

at::Tensor CausalLM::graph_mlp(int64_t, const at::Tensor&) const {
  fail(codes::kSite, info_.model_type + " (" + info_.architecture + ") has no attention heads, so it has no circuit graph");
}

at::Tensor CausalLM::mlp_from_pre(int64_t layer, at::Tensor pre, const at::Tensor& gate) const {
  pre = apply_mlp_scale(layer, MlpSite::Pre, pre);
  return mlp_out(layer, apply_mlp_scale(layer, MlpSite::Post, mlp_activation(layer, pre, gate)));
}

at::Tensor CausalLM::finish_block(int64_t layer, const at::Tensor& resid, at::Tensor post, const Hooks* hooks) const {
  post = apply_mlp_scale(layer, MlpSite::Post, post);
  if (hooks && hooks->mlp_post) post = hooks->mlp_post(layer, post);
  if (hooks && hooks->resid_mid) hooks->resid_mid(layer, resid);
  return resid + mlp_out(layer, post);
}

at::Tensor CausalLM::finish_mlp(int64_t layer, const at::Tensor& resid, at::Tensor pre, const at::Tensor& gate,
                                const Hooks* hooks) const {
  pre = apply_mlp_scale(layer, MlpSite::Pre, pre);
  if (hooks && hooks->mlp_pre) pre = hooks->mlp_pre(layer, pre, gate);
  return finish_block(layer, resid, mlp_activation(layer, pre, gate), hooks);
}

at::Tensor CausalLM::forward(const at::Tensor& ids, const at::Tensor& mask, KVCache* cache_in, const Hooks* hooks,
                             bool last_only) const {
  KVCache local;
  KVCache& cache = cache_in ? *cache_in : local;
  const int64_t T = ids.size(1);
  blocks::cache_extend_mask(cache, mask, info_.n_layers);
  const at::Tensor pos = blocks::position_ids(cache.mask, T);
  at::Tensor x = embed(ids, pos);
  const BlockContext ctx{cache, pos, hooks};
  for (int64_t l = 0; l < info_.n_layers; ++l) {
    x = block(l, x.to(layer_device(l)), ctx);  // a no-op unless a device map put layer l elsewhere
    if (hooks && hooks->resid_post) x = hooks->resid_post(l, x);
  }
  if (last_only) x = x.narrow(1, T - 1, 1);
  return head(x);
}

std::unique_ptr<CausalLM> random_causal_lm(const std::string& config_json, at::Device device, at::ScalarType dtype,
                                           uint64_t seed, const DevicePlan* plan) {
  const ConfigReader config = ConfigReader::from_string(config_json, "config");
  WeightSource source;
  source.seed = seed;
  source.plan = plan;
  return build(config, source, plan ? plan->first() : device, dtype);
}

Weights Weights::load(const Checkpoint& ckpt, const std::vector<ParamSpec>& specs,
                      const std::vector<std::string>& optional_prefixes, const std::vector<at::Device>& devices,
                      at::ScalarType dtype) {
  // Every tensor is found and its shape checked against the header before the first is allocated.
  std::vector<std::string> stored_names;
  for (const auto& spec : specs) {
    std::string stored = spec.name;
    for (const auto& prefix : optional_prefixes)
      if (!ckpt.has(stored) && spec.name.rfind(prefix, 0) == 0 && ckpt.has(spec.name.substr(prefix.size())))
        stored = spec.name.substr(prefix.size());
    if (!ckpt.has(stored))
      fail(codes::kMissingTensor, ckpt.dir() + ": tensor \"" + spec.name + "\" is missing (the config needs it)");
    const auto& entry = ckpt.entry(stored);
    if (at::IntArrayRef(entry.shape) != at::IntArrayRef(spec.shape))
      fail(codes::kShape, ckpt.file_of(stored) + ": tensor \"" + stored + "\" has shape " + shape_str(entry.shape) +
                              " but the config needs " + shape_str(spec.shape));
    stored_names.push_back(std::move(stored));
  }
  Weights w;
  for (size_t i = 0; i < specs.size(); ++i) {
    w.index_[specs[i].name] = w.named_.size();
    w.named_.emplace_back(specs[i].name, ckpt.load(stored_names[i], devices[i], dtype));
  }
  return w;
}

Weights Weights::random(const std::vector<ParamSpec>& specs, const std::vector<at::Device>& devices, at::ScalarType dtype,
                        uint64_t seed) {
  Weights w;
  const at::Device device = devices.front();
  auto opts = at::TensorOptions().device(device).dtype(dtype);
  // CPU: a private generator. Other devices: their default generator, reseeded under its lock.
  at::Generator gen = device.is_cpu() ? at::make_generator<at::CPUGeneratorImpl>(seed)
                                      : at::globalContext().defaultGenerator(device);
  if (!device.is_cpu()) {
    std::lock_guard<std::mutex> lock(gen.mutex());  // released before normal_, which takes it again
    gen.set_current_seed(seed);
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    at::Tensor t = at::empty(specs[i].shape, opts);
    t.normal_(specs[i].mean, specs[i].std, gen);
    w.index_[specs[i].name] = w.named_.size();
    w.named_.emplace_back(specs[i].name, t.to(devices[i]));
  }
  return w;
}

Weights materialize(const WeightSource& source, const std::vector<ParamSpec>& specs,
                    const std::vector<std::string>& optional_prefixes, at::Device device, at::ScalarType dtype) {
  std::vector<at::Device> devices(specs.size(), device), layer_devices;
  if (source.plan) {
    // Per layer its weights' bytes; what comes before the first layer (embeddings) goes to the
    // first device, what comes after the last (final norm, head) to the last device.
    std::vector<int64_t> layer_bytes;
    int64_t before = 0, after = 0;
    const int64_t elem = at::elementSize(dtype);
    for (const auto& spec : specs) {
      int64_t bytes = elem;
      for (int64_t d : spec.shape) bytes *= d;
      const int64_t l = layer_of(spec.name);
      if (l >= 0) {
        if (l >= static_cast<int64_t>(layer_bytes.size())) layer_bytes.resize(l + 1, 0);
        layer_bytes[l] += bytes;
      } else {
        (layer_bytes.empty() ? before : after) += bytes;
      }
    }
    if (layer_bytes.empty()) fail(codes::kArgument, "--device-map: the model has no layers to split");
    layer_devices = source.plan->resolve(layer_bytes, before, after);
    bool seen_layer = false;
    for (size_t i = 0; i < specs.size(); ++i) {
      const int64_t l = layer_of(specs[i].name);
      seen_layer = seen_layer || l >= 0;
      devices[i] = l >= 0 ? layer_devices[l] : seen_layer ? layer_devices.back() : layer_devices.front();
    }
  }
  Weights w = source.checkpoint ? Weights::load(*source.checkpoint, specs, optional_prefixes, devices, dtype)
                                : Weights::random(specs, devices, dtype, source.seed);
  w.set_layer_devices(std::move(layer_devices));
  return w;
}

ModelInfo describe(std::string architecture, std::string model_type, int64_t n_layers, int64_t d_model, int64_t n_heads,
                   int64_t d_mlp, int64_t vocab_size, int64_t max_positions, const Weights& weights) {
  ModelInfo info{std::move(architecture), std::move(model_type), n_layers, d_model, n_heads, d_mlp, vocab_size, max_positions, 0};
  for (const auto& [_, t] : weights.named()) info.n_params += t.numel();
  return info;
}

const at::Tensor& Weights::operator[](const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(codes::kMissingTensor, "no weight \"" + name + "\"");
  return named_[it->second].second;
}

}  // namespace neuroprune
