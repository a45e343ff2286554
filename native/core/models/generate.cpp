#include "models/generate.h"

namespace neuroprune {

at::Tensor generate_greedy(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, int64_t max_new_tokens,
                           int64_t eos, const std::function<bool()>& should_stop, const Hooks* prompt_hooks) {
  const int64_t B = ids.size(0);
  KVCache cache;
  at::Tensor logits = model.forward(ids, mask, &cache, prompt_hooks, /*last_only=*/true);
  // On the logits' device: with a device map the head may sit elsewhere than the embeddings.
  at::Tensor done = at::zeros({B}, logits.options().dtype(at::kBool));
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < max_new_tokens; ++i) {
    at::Tensor next = logits.select(1, 0).argmax(-1);  // [B]
    if (eos >= 0) {
      next = next.masked_fill(done, eos);
      done = done.logical_or(next == eos);
    }
    out.push_back(next);
    if (i + 1 == max_new_tokens || (eos >= 0 && done.all().item<bool>()) || (should_stop && should_stop())) break;
    logits = model.forward(next.unsqueeze(1).to(ids.device()), at::ones({B, 1}, mask.options()), &cache, nullptr, true);
  }
  if (out.empty()) return at::empty({B, 0}, ids.options());
  return at::stack(out, 1);
}

at::Tensor forward_chunked(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask, int64_t chunk,
                           bool last_only) {
  const int64_t T = ids.size(1);
  if (chunk <= 0 || chunk >= T) return model.forward(ids, mask, nullptr, nullptr, last_only);
  KVCache cache;
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < T; start += chunk) {
    const int64_t n = std::min(chunk, T - start);
    at::Tensor logits = model.forward(ids.narrow(1, start, n), mask.narrow(1, start, n), &cache, nullptr, last_only);
    if (!last_only || start + n == T) parts.push_back(logits);
  }
  return at::cat(parts, 1);
}

}  // namespace neuroprune
