#include "patching/resid.h"

#include <functional>
#include <map>
#include <string>

#include "error.h"

namespace neuroprune {

void check_resid_layer(const CausalLM& model, int64_t layer, const char* what) {
  const int64_t n = model.info().n_layers;
  if (layer < 0 || layer >= n)
    fail(codes::kRange, std::string(what) + " " + std::to_string(layer) + " is out of range [0, " + std::to_string(n) + ")");
}

namespace {

// One forward of ids that keeps, per requested layer, take(hook_resid_post); the logits when wanted
// (without them the LM head runs at the last position only, its output dropped).
std::vector<at::Tensor> read_resid(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, const std::vector<int64_t>& layers,
                                   const std::function<at::Tensor(const at::Tensor&)>& take, at::Tensor* logits) {
  for (int64_t l : layers) check_resid_layer(model, l, "layer");
  std::map<int64_t, at::Tensor> seen;
  for (int64_t l : layers) seen[l] = at::Tensor();
  Hooks hooks;
  hooks.resid_post = [&seen, &take](int64_t layer, const at::Tensor& x) {
    auto it = seen.find(layer);
    if (it != seen.end()) it->second = take(x);
    return x;
  };
  at::Tensor out = model.forward(ids, mask, nullptr, &hooks, /*last_only=*/logits == nullptr);
  if (logits) *logits = out;
  std::vector<at::Tensor> result;
  for (int64_t l : layers) result.push_back(seen.at(l));
  return result;
}

}  // namespace

std::vector<at::Tensor> last_position_resid(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask,
                                            const std::vector<int64_t>& layers) {
  // [B, d_model], cloned so the rest of x can go
  return read_resid(model, ids, mask, layers, [](const at::Tensor& x) { return x.select(1, x.size(1) - 1).clone(); }, nullptr);
}

std::vector<at::Tensor> all_positions_resid(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask,
                                            const std::vector<int64_t>& layers, at::Tensor* logits) {
  // [B, T, d_model]; x is never changed in place
  return read_resid(model, ids, mask, layers, [](const at::Tensor& x) { return x; }, logits);
}

Hooks patch_last_position(const CausalLM& model, int64_t layer, at::Tensor vectors) {
  check_resid_layer(model, layer, "layer");
  const int64_t d = model.info().d_model;
  if (vectors.dim() != 2 || vectors.size(1) != d)
    fail(codes::kShape, "patch vectors must be [batch, d_model = " + std::to_string(d) + "], got " +
                            std::to_string(vectors.dim()) + " dimensions" +
                            (vectors.dim() == 2 ? " of width " + std::to_string(vectors.size(1)) : std::string()));
  vectors = vectors.to(model.layer_device(layer), model.dtype());
  Hooks hooks;
  hooks.resid_post = [layer, vectors](int64_t l, const at::Tensor& x) {
    if (l != layer) return x;
    if (vectors.size(0) != x.size(0))
      fail(codes::kShape, "patch vectors hold " + std::to_string(vectors.size(0)) + " rows for a batch of " +
                              std::to_string(x.size(0)));
    const int64_t T = x.size(1);
    return at::cat({x.narrow(1, 0, T - 1), vectors.unsqueeze(1)}, 1);
  };
  return hooks;
}

}  // namespace neuroprune
