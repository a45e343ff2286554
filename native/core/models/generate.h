// Greedy decoding with the key/value cache.
#pragma once
#include <ATen/ATen.h>

#include <functional>

#include "models/model.h"

namespace neuroprune {

// ids, mask [B, T] (left padded). Returns the new tokens [B, max_new_tokens] (int64); a row that has
// produced `eos` (>= 0) keeps emitting it, and decoding stops once every row has. `should_stop` is
// polled between tokens. `prompt_hooks`, when given, apply to the prompt's forward only (the one that
// fills the cache and yields the first token); later steps run unhooked.
at::Tensor generate_greedy(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, int64_t max_new_tokens,
                           int64_t eos, const std::function<bool()>& should_stop = nullptr,
                           const Hooks* prompt_hooks = nullptr);

// Logits [B, T, V] of a whole sequence, fed `chunk` tokens at a time through the KV cache (0: all at
// once). With last_only, only the final chunk's logits are kept.
at::Tensor forward_chunked(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, int64_t chunk,
                           bool last_only);

}  // namespace neuroprune
