// Writes a model's current weights as HF safetensors: one model.safetensors, or the source's shard
// files plus model.safetensors.index.json when it was loaded from shards.
#pragma once
#include <string>

#include "models/model.h"

namespace neuroprune {

void save_weights(const CausalLM& model, const std::string& dir);

// FNV-1a 64 over every weight's name, dtype, shape and bytes, as 16 hex digits: equal digests mean
// bit-identical weights.
std::string weights_digest(const CausalLM& model);

}  // namespace neuroprune
