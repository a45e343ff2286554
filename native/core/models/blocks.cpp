#include "models/blocks.h"

#include <limits>

#include "error.h"

namespace neuroprune::blocks {

at::Tensor split_heads(const at::Tensor& x, int64_t n_heads) {
  const auto B = x.size(0), T = x.size(1), E = x.size(2);
  return x.view({B, T, n_heads, E / n_heads}).transpose(1, 2);
}

at::Tensor merge_heads(const at::Tensor& x) {
  const auto B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
  return x.transpose(1, 2).contiguous().view({B, T, H * D});
}

at::Tensor position_ids(const at::Tensor& full_mask, int64_t new_tokens) {
  at::Tensor pos = (full_mask.to(at::kLong).cumsum(-1) - 1).clamp_min(0);
  return pos.narrow(1, pos.size(1) - new_tokens, new_tokens);
}

void cache_extend_mask(KVCache& cache, const at::Tensor& new_mask, int64_t n_layers) {
  at::Tensor m = new_mask.to(at::kBool);
  cache.mask = cache.mask.defined() ? at::cat({cache.mask, m}, 1) : m;
  if (cache.k.empty()) {
    cache.k.resize(n_layers);
    cache.v.resize(n_layers);
  }
}

std::pair<at::Tensor, at::Tensor> cache_append(KVCache& cache, int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor& ck = cache.k[layer];
  at::Tensor& cv = cache.v[layer];
  ck = ck.defined() ? at::cat({ck, k}, 2) : k;
  cv = cv.defined() ? at::cat({cv, v}, 2) : v;
  return {ck, cv};
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                            double scale) {
  const int64_t T = q.size(2), S = k.size(2);
  at::Tensor scores = at::matmul(q.to(at::kFloat), k.to(at::kFloat).transpose(-1, -2)) * scale;  // [B, H, T, S]
  // Query i (cache position S-T+i) may see key j when j <= S-T+i and key j is a real token.
  at::Tensor causal = at::ones({T, S}, key_mask.options().dtype(at::kBool)).tril(S - T);
  at::Tensor allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(key_mask.to(at::kBool).unsqueeze(1).unsqueeze(1));
  // A finite floor, not -inf: a padding query that sees nothing gets uniform weights instead of NaN.
  scores = scores.masked_fill(allowed.logical_not(), std::numeric_limits<float>::lowest());
  return at::matmul(at::softmax(scores, -1).to(v.scalar_type()), v);
}

bool is_known_activation(const std::string& name) {
  return name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast" || name == "gelu" ||
         name == "relu" || name == "silu" || name == "swish";
}

at::Tensor activation(const at::Tensor& x, const std::string& name) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return at::gelu(x, "tanh");  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  if (name == "gelu") return at::gelu(x);
  if (name == "relu") return at::relu(x);
  if (name == "silu" || name == "swish") return at::silu(x);
  fail(codes::kConfig, "unknown activation function \"" + name + "\"");
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return at::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

at::Tensor conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  auto out_shape = x.sizes().vec();
  out_shape.back() = weight.size(1);
  return at::addmm(bias, x.reshape({-1, x.size(-1)}), weight).view(out_shape);
}

}  // namespace neuroprune::blocks
