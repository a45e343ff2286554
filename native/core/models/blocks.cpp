#include "models/blocks.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
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

namespace {

// Query head h reads key/value head h / (H / KV).
at::Tensor expand_kv(const at::Tensor& kv, int64_t heads) {
  const int64_t group = heads / kv.size(1);
  return group > 1 ? kv.repeat_interleave(group, 1) : kv;
}

// Masks scores [B, H, T, S] (query i at position S - T + i) and normalises them in float32.
at::Tensor masked_softmax(at::Tensor scores, const at::Tensor& key_mask, int64_t sliding_window) {
  const int64_t T = scores.size(2), S = scores.size(3);
  // Query i may see key j when j <= S-T+i (and S-T+i - j < window) and key j is a real token.
  at::Tensor causal = at::ones({T, S}, key_mask.options().dtype(at::kBool)).tril(S - T);
  if (sliding_window > 0) causal = causal.logical_and(at::ones_like(causal).triu(S - T - sliding_window + 1));
  at::Tensor allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(key_mask.to(at::kBool).unsqueeze(1).unsqueeze(1));
  // A finite floor, not -inf: a padding query that sees nothing gets uniform weights instead of NaN.
  return at::softmax(scores.masked_fill(allowed.logical_not(), std::numeric_limits<float>::lowest()), -1);
}

// q [R, H, T, D] against keys [R, H, S, D]: [R, H, T, S] in float32. One query: a broadcast
// product, which beats R*H tiny matrix products.
at::Tensor scores_of(const at::Tensor& q, const at::Tensor& k, double scale) {
  if (q.size(2) == 1) return (q.to(at::kFloat) * k.to(at::kFloat)).sum(-1).unsqueeze(2) * scale;
  return at::matmul(q.to(at::kFloat), k.to(at::kFloat).transpose(-1, -2)) * scale;
}

at::Tensor weighted_values(const at::Tensor& probs, const at::Tensor& v) {
  if (probs.size(2) == 1) return (probs.squeeze(2).unsqueeze(-1).to(v.scalar_type()) * v).sum(2).unsqueeze(2);
  return at::matmul(probs.to(v.scalar_type()), v);
}

}  // namespace

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                            double scale, int64_t sliding_window) {
  const int64_t H = q.size(1);
  at::Tensor probs = masked_softmax(scores_of(q, expand_kv(k, H), scale), key_mask, sliding_window);
  return weighted_values(probs, expand_kv(v, H));
}

at::Tensor attend(KVCache& cache, int64_t layer, const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new,
                  double scale, int64_t sliding_window) {
  auto [k, v] = cache_append(cache, layer, k_new, v_new);
  // The mask and row groups are built once on the first device; a layer on another (device map) reads its copy.
  const at::Tensor mask = cache.mask.to(q.device());
  const bool shared = layer < static_cast<int64_t>(cache.shared_k.size()) && cache.shared_k[layer].defined();
  if (!shared) return causal_attention(q, k, v, mask, scale, sliding_window);
  // Rows of group g share prefix keys [H, P, D]: one [H, rows*T, D] x [H, D, P] product per group
  // instead of a copy of the prefix per row. Softmax over prefix and own keys together.
  const int64_t R = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const at::Tensor shared_k = expand_kv(cache.shared_k[layer], H), shared_v = expand_kv(cache.shared_v[layer], H);
  const int64_t P = shared_k.size(2);
  at::Tensor prefix = at::zeros({R, H, T, P}, q.options().dtype(at::kFloat));
  auto per_row = [&](const at::Tensor& x, const at::Tensor& rows) {  // [Rg, H, T, X] -> [H, Rg*T, X]
    return x.index_select(0, rows).permute({1, 0, 2, 3}).reshape({H, -1, x.size(3)});
  };
  auto per_group = [&](const at::Tensor& x, int64_t rows) {  // [H, Rg*T, X] -> [Rg, H, T, X]
    return x.view({H, rows, T, x.size(2)}).permute({1, 0, 2, 3});
  };
  for (size_t g = 0; g < cache.group_rows.size(); ++g) {
    const at::Tensor rows = cache.group_rows[g].to(q.device());
    at::Tensor s = at::bmm(per_row(q, rows).to(at::kFloat), shared_k[g].to(at::kFloat).transpose(1, 2)) * scale;
    prefix = prefix.index_copy(0, rows, per_group(s, rows.size(0)));
  }
  at::Tensor probs = masked_softmax(at::cat({prefix, scores_of(q, expand_kv(k, H), scale)}, -1), mask, sliding_window);
  at::Tensor out = weighted_values(probs.narrow(-1, P, probs.size(-1) - P), expand_kv(v, H));
  const at::Tensor p_prefix = probs.narrow(-1, 0, P);
  at::Tensor from_prefix = at::zeros({R, H, T, D}, out.options());
  for (size_t g = 0; g < cache.group_rows.size(); ++g) {
    const at::Tensor rows = cache.group_rows[g].to(q.device());
    at::Tensor o = at::bmm(per_row(p_prefix, rows).to(shared_v.scalar_type()), shared_v[g]);
    from_prefix = from_prefix.index_copy(0, rows, per_group(o, rows.size(0)));
  }
  return out + from_prefix;
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

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor h = x.to(at::kFloat);
  h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * h.to(x.scalar_type());
}

Rotary::Rotary(const RopeParameters& rope, int64_t dim, at::Device device) : dim_(dim) {
  // inv_freq_i = theta^(-2i/dim)
  at::Tensor inv = 1.0 / at::pow(rope.theta, at::arange(0, dim, 2, at::kLong).to(at::kFloat) / double(dim));
  const double factor = rope.factor;
  if (rope.type == "linear") {
    inv = inv / factor;  // positions divided by factor
  } else if (rope.type == "llama3") {
    // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
    const double low = rope.low_freq_factor, high = rope.high_freq_factor;
    const double old_len = rope.original_max_position_embeddings;
    at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > old_len / low, inv / factor, inv);
    at::Tensor smooth = (old_len / wavelen - low) / (high - low);
    at::Tensor blended = (1 - smooth) * scaled / factor + smooth * scaled;
    at::Tensor medium = (wavelen >= old_len / high).logical_and(wavelen <= old_len / low);
    inv = at::where(medium, blended, scaled);
  }
  inv_freq_ = inv.to(device);
}

at::Tensor Rotary::apply(const at::Tensor& x, const at::Tensor& positions) const {
  // angles [B, 1, T, dim]: position * inv_freq, repeated for both halves
  // positions and inv_freq_ live on the first device; a layer on another (device map) reads copies.
  at::Tensor freqs = positions.to(x.device(), at::kFloat).unsqueeze(-1) * inv_freq_.to(x.device());  // [B, T, dim/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);
  at::Tensor cos = emb.cos().to(x.scalar_type()), sin = emb.sin().to(x.scalar_type());
  at::Tensor rot = x.narrow(-1, 0, dim_);
  at::Tensor x1 = rot.narrow(-1, 0, dim_ / 2), x2 = rot.narrow(-1, dim_ / 2, dim_ / 2);
  at::Tensor rotated = rot * cos + at::cat({-x2, x1}, -1) * sin;
  if (dim_ == x.size(-1)) return rotated;
  return at::cat({rotated, x.narrow(-1, dim_, x.size(-1) - dim_)}, -1);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return bias.defined() ? at::linear(x, weight, bias) : at::linear(x, weight);
}

at::Tensor conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  auto out_shape = x.sizes().vec();
  out_shape.back() = weight.size(1);
  return at::addmm(bias, x.reshape({-1, x.size(-1)}), weight).view(out_shape);
}

namespace {

// x [B, T, H, d] is one [B, T, d] tensor seen by every head, and no gradient will be asked of it.
bool shared_over_heads(const at::Tensor& x) { return x.stride(2) == 0 && !at::GradMode::is_enabled(); }

}  // namespace

at::Tensor head_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), d = x.size(3), G = weight.size(0), D = weight.size(1);
  if (shared_over_heads(x)) {  // one product [B, T, d] x [d, G D], each weight head's output repeated for its query heads
    at::Tensor y = linear(x.select(2, 0), weight.reshape({G * D, d}), bias.defined() ? bias.reshape({G * D}) : at::Tensor());
    return y.view({B, T, G, 1, D}).expand({B, T, G, H / G, D}).reshape({B, T, H, D}).transpose(1, 2);
  }
  // [B, T, G, H/G, d] x [G, D, d] -> [B, G, H/G, T, D]
  at::Tensor out = at::einsum("btgkd,ged->bgkte", {x.reshape({B, T, G, H / G, d}), weight});
  if (bias.defined()) out = out + bias.view({1, G, 1, 1, D});
  return out.reshape({B, H, T, D});
}

at::Tensor head_out(const at::Tensor& z, const at::Tensor& weight) {
  return at::einsum("bhte,hed->bthd", {z, weight});
}

}  // namespace neuroprune::blocks
