#include "models/rope_config.h"

#include <cmath>
#include <set>

namespace neuroprune {
namespace {

using nlohmann::json;

// Keys each rope type reads; any other key in the rope dict would change the math we do not do.
const std::set<std::string>& keys_of(const std::string& type) {
  static const std::set<std::string> base = {"rope_type", "type", "rope_theta", "partial_rotary_factor"};
  static const std::set<std::string> linear = [] { auto s = base; s.insert("factor"); return s; }();
  static const std::set<std::string> llama3 = [] {
    auto s = base;
    s.insert({"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"});
    return s;
  }();
  if (type == "linear") return linear;
  if (type == "llama3") return llama3;
  return base;
}

double positive_number(const ConfigReader& c, const json& j, const std::string& key, const std::string& name, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() <= 0)
    c.invalid(name, "must be a positive number, got " + v.dump());
  return v.get<double>();
}

// The rope dict of transformers 5 may be keyed by layer type ({"full_attention": {...}, ...}).
const json& single_rope_dict(const ConfigReader& c, const json& rp) {
  if (rp.empty() || !rp.begin()->is_object()) return rp;
  for (const auto& [key, value] : rp.items()) {
    if (!value.is_object()) c.invalid("rope_parameters." + key, "must be an object, got " + value.dump());
    if (value != rp.begin().value())
      c.invalid("rope_parameters", "differs between layer types (" + rp.begin().key() + " vs " + key + "); not supported");
  }
  return rp.begin().value();
}

void read_scaling(const ConfigReader& c, const json& d, const std::string& prefix, RopeParameters& r) {
  const std::string type_key = d.contains("rope_type") ? "rope_type" : "type";
  if (d.contains(type_key) && !d[type_key].is_null()) {
    if (!d[type_key].is_string()) c.invalid(prefix + type_key, "must be a string, got " + d[type_key].dump());
    r.type = d[type_key].get<std::string>();
  }
  if (r.type != "default" && r.type != "linear" && r.type != "llama3")
    c.invalid(prefix + type_key, "is \"" + r.type + "\"; supported: default, linear, llama3");
  for (const auto& [key, value] : d.items()) {
    if (!keys_of(r.type).count(key))
      c.invalid(prefix + key, "is not read for rope type \"" + r.type + "\" and would change the rotary embedding");
  }
  if (r.type == "linear" || r.type == "llama3") {
    if (!d.contains("factor")) c.invalid(prefix + "factor", "is required for rope type \"" + r.type + "\"");
    r.factor = positive_number(c, d, "factor", prefix + "factor", 1.0);
  }
  if (r.type == "llama3") {
    r.low_freq_factor = positive_number(c, d, "low_freq_factor", prefix + "low_freq_factor", r.low_freq_factor);
    r.high_freq_factor = positive_number(c, d, "high_freq_factor", prefix + "high_freq_factor", r.high_freq_factor);
    r.original_max_position_embeddings = positive_number(c, d, "original_max_position_embeddings",
                                                         prefix + "original_max_position_embeddings", r.original_max_position_embeddings);
    if (r.high_freq_factor <= r.low_freq_factor) c.invalid(prefix + "high_freq_factor", "must exceed low_freq_factor");
  }
}

// The first of `keys` present at the top level, as a positive number.
double legacy_number(const ConfigReader& c, const std::vector<std::string>& keys, double fallback) {
  for (const auto& key : keys)
    if (c.has(key)) return positive_number(c, c.json(), key, key, fallback);
  return fallback;
}

}  // namespace

RopeParameters read_rope(const ConfigReader& c, const RopeDefaults& defaults) {
  RopeParameters r;
  const json& j = c.json();
  r.theta = legacy_number(c, defaults.legacy_theta_keys, defaults.theta);
  r.partial_rotary_factor = legacy_number(c, defaults.legacy_partial_keys, defaults.partial_rotary_factor);
  const bool has_scaling = c.has("rope_scaling");
  if (has_scaling && !j["rope_scaling"].is_object()) c.invalid("rope_scaling", "must be an object or null, got " + j["rope_scaling"].dump());

  if (c.has("rope_parameters")) {  // transformers 5
    if (!j["rope_parameters"].is_object()) c.invalid("rope_parameters", "must be an object, got " + j["rope_parameters"].dump());
    const json& d = single_rope_dict(c, j["rope_parameters"]);
    const double legacy_theta = r.theta;
    r.theta = positive_number(c, d, "rope_theta", "rope_parameters.rope_theta", r.theta);
    r.partial_rotary_factor = positive_number(c, d, "partial_rotary_factor", "rope_parameters.partial_rotary_factor", r.partial_rotary_factor);
    read_scaling(c, d, "rope_parameters.", r);
    // A 4.x key beside it must say the same, or we cannot know which one the writer meant.
    for (const auto& key : defaults.legacy_theta_keys)
      if (c.has(key) && legacy_theta != r.theta)
        c.invalid(key, "(" + j[key].dump() + ") disagrees with rope_parameters.rope_theta (" + std::to_string(r.theta) + ")");
    if (has_scaling) {
      RopeParameters legacy = r;
      legacy.type = "default";
      read_scaling(c, j["rope_scaling"], "rope_scaling.", legacy);
      if (legacy.type != r.type || legacy.factor != r.factor)
        c.invalid("rope_scaling", "disagrees with rope_parameters (" + legacy.type + " vs " + r.type + ")");
    }
  } else if (has_scaling) {  // transformers 4.x
    read_scaling(c, j["rope_scaling"], "rope_scaling.", r);
  }
  if (r.partial_rotary_factor > 1.0) c.invalid("partial_rotary_factor", "must be at most 1, got " + std::to_string(r.partial_rotary_factor));
  return r;
}

std::vector<int64_t> read_attention_windows(const ConfigReader& c, const std::string& model_type, int64_t n_layer) {
  const json& j = c.json();
  int64_t window = 0;
  if (model_type != "llama" && c.has("sliding_window")) window = c.positive_int("sliding_window");
  std::vector<int64_t> windows(n_layer, 0);

  if (c.has("layer_types")) {
    const json& types = j["layer_types"];
    if (!types.is_array() || int64_t(types.size()) != n_layer)
      c.invalid("layer_types", "must list one entry per layer (" + std::to_string(n_layer) + ")");
    for (int64_t l = 0; l < n_layer; ++l) {
      const json& t = types[l];
      const std::string name = "layer_types[" + std::to_string(l) + "]";
      if (!t.is_string() || (t != "full_attention" && t != "sliding_attention"))
        c.invalid(name, "is " + t.dump() + "; supported: \"full_attention\", \"sliding_attention\"");
      const bool sliding = t == "sliding_attention";
      if (sliding && window == 0) c.invalid(name, "is sliding_attention but sliding_window is not set");
      if (model_type == "llama" && sliding) c.invalid(name, "is sliding_attention, which LlamaForCausalLM does not do");
      // HF's Mistral applies its window to every layer and ignores layer_types: a mix is ambiguous.
      if (model_type == "mistral" && sliding != (window > 0))
        c.invalid(name, "disagrees with sliding_window, which MistralForCausalLM applies to every layer");
      windows[l] = sliding ? window : 0;
    }
    if (model_type == "mistral") std::fill(windows.begin(), windows.end(), window);
    return windows;
  }
  if (model_type == "mistral") {
    std::fill(windows.begin(), windows.end(), window);
  } else if (model_type == "qwen2" && c.boolean("use_sliding_window", false) && window > 0) {
    int64_t from = 28;  // HF's default; layers below max_window_layers attend fully
    if (c.has("max_window_layers")) {
      const json& v = j["max_window_layers"];
      if (!v.is_number_integer() || v.get<int64_t>() < 0) c.invalid("max_window_layers", "must be a non-negative integer, got " + v.dump());
      from = v.get<int64_t>();
    }
    for (int64_t l = from; l < n_layer; ++l) windows[l] = window;
  }
  return windows;
}

}  // namespace neuroprune
