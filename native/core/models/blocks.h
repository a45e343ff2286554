// Building blocks shared by the architectures.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <string>

#include "models/model.h"
#include "models/rope_config.h"

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

// Appends this layer's new keys/values to the cache and attends over everything the cache holds
// (its shared prefix included): what every architecture's block calls.
at::Tensor attend(KVCache& cache, int64_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  double scale, int64_t sliding_window = 0);

// softmax(q k^T * scale + causal/padding mask) v, with the scores and softmax in float32.
// q [B, H, T, D]; k, v [B, KV, S, D] with H a multiple of KV (grouped-query attention: query head h
// reads key/value head h / (H/KV)); key_mask [B, S]; query i sits at cache position S - T + i.
// sliding_window > 0 also hides keys sliding_window or more positions back (Mistral).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                            double scale, int64_t sliding_window = 0);

// RMSNorm (Llama): x / sqrt(mean(x^2) + eps) in float32, cast back, times the gain.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// Rotary position embeddings (HF convention: rotate_half over [first half, second half]) applied to
// the first `dim` features of each head; the rest pass through (GPT-NeoX partial rotary).
class Rotary {
 public:
  // theta and scaling (default, linear or llama3) as read by read_rope.
  Rotary(const RopeParameters& rope, int64_t dim, at::Device device);
  // x [B, H, T, D], positions [B, T] (int64).
  at::Tensor apply(const at::Tensor& x, const at::Tensor& positions) const;
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_;
  at::Tensor inv_freq_;  // [dim / 2], float32
};

// Activation functions by their HF names (gelu_new, gelu, relu, silu, ...).
at::Tensor activation(const at::Tensor& x, const std::string& name);
bool is_known_activation(const std::string& name);

// LayerNorm over the last dimension.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

// nn.Linear: x @ W^T + b with W stored [out, in]; bias may be undefined.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// HF Conv1D: x @ W + b with W stored [in, out].
at::Tensor conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// A norm of per-head inputs x [B, T, H, d] (the circuit graph's q/k/v inputs). Without gradients, an
// input that is one tensor expanded over the heads (stride 0: no edge into them ablated) is normed once
// and stays shared, so that head_linear can take the fused path.
at::Tensor head_norm(const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& norm);

// Per-head projection for the circuit graph, where every query head has its own input:
// x [B, T, H, d] (head h's input), weight [G, D, d] per weight head (nn.Linear layout), bias [G, D]
// or undefined. Query head h uses weight head h / (H / G) (grouped-query k/v: no copy of the weights).
// Returns [B, H, T, D]: out[b, h, t] = W[h / (H/G)] x[b, t, h] + b[h / (H/G)]. Without gradients, a
// shared input (see head_norm) takes one fused product, as the normal forward does.
at::Tensor head_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// Each head's output in the residual stream: z [B, H, T, D] and the output projection per head
// weight [H, D, d]; returns [B, T, H, d] with out[b, t, h] = z[b, h, t] @ weight[h].
at::Tensor head_out(const at::Tensor& z, const at::Tensor& weight);

}  // namespace neuroprune::blocks
