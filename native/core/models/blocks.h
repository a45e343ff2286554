// Building blocks shared by the architectures.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "models/model.h"

namespace neuroprune::blocks {

// [B, T, H*D] -> [B, H, T, D] and back.
at::Tensor split_heads(const at::Tensor& x, int64_t n_heads);
at::Tensor merge_heads(const at::Tensor& x);

// Position of each new token, counting only real tokens: cumsum(mask) - 1 over the whole sequence
// (cache included), so a left-padded row sees the same positions as the row alone.
at::Tensor position_ids(const at::Tensor& full_mask, int64_t new_tokens);

// Appends this layer's new keys/values and, for layer 0, the new mask columns to the cache.
// Returns the full keys and values [B, H, S, D].
std::pair<at::Tensor, at::Tensor> cache_append(KVCache& cache, int64_t layer, const at::Tensor& k, const at::Tensor& v);
void cache_extend_mask(KVCache& cache, const at::Tensor& new_mask, int64_t n_layers);

// softmax(q k^T * scale + causal/padding mask) v, with the scores and softmax in float32.
// q [B, H, T, D]; k, v [B, H, S, D]; key_mask [B, S]; query i sits at cache position S - T + i.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                            double scale);

// Activation functions by their HF names (gelu_new, gelu, relu, silu, ...).
at::Tensor activation(const at::Tensor& x, const std::string& name);
bool is_known_activation(const std::string& name);

// LayerNorm over the last dimension.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// HF Conv1D: x @ W + b with W stored [in, out].
at::Tensor conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace neuroprune::blocks
