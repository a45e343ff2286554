// Rotary and per-layer attention settings from config.json, read in one place for both schemas:
// transformers 5 (`rope_parameters`, `layer_types`) and 4.x (`rope_theta`, `rope_scaling`,
// `rotary_pct`, `use_sliding_window`/`max_window_layers`). A key that would change the math and that
// we do not implement is E_CONFIG naming it, never ignored.
#pragma once
#include <string>
#include <vector>

#include "models/config.h"

namespace neuroprune {

struct RopeParameters {
  std::string type = "default";  // default | linear | llama3
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;  // share of each head that is rotated
  double factor = 1.0;                 // linear and llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  double original_max_position_embeddings = 8192.0;      // llama3
};

struct RopeDefaults {
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;
  std::vector<std::string> legacy_theta_keys = {"rope_theta"};
  std::vector<std::string> legacy_partial_keys = {"partial_rotary_factor"};
};

RopeParameters read_rope(const ConfigReader& config, const RopeDefaults& defaults = {});

// Sliding window per layer (0 = full attention) for the Llama family, from `layer_types` when present,
// else from `sliding_window` (Mistral: every layer) or `use_sliding_window` + `max_window_layers` (Qwen2).
std::vector<int64_t> read_attention_windows(const ConfigReader& config, const std::string& model_type, int64_t n_layer);

}  // namespace neuroprune
