#include "models/next_token.h"

#include "error.h"

namespace neuroprune {

NextTokenScores next_token_scores(const at::Tensor& logits, const at::Tensor& ids) {
  if (logits.dim() != 3 || ids.dim() != 2 || logits.size(0) != ids.size(0) || logits.size(1) != ids.size(1))
    fail(codes::kShape, "next-token scores need logits [B, T, vocab] and ids [B, T] of the same B and T");
  const int64_t B = ids.size(0), T = ids.size(1);
  NextTokenScores out{at::zeros({B, T}, at::kFloat), at::zeros({B, T}, at::kFloat)};
  if (T < 2) return out;
  const at::Tensor z = logits.narrow(1, 0, T - 1).to(at::kFloat);                 // predictions of tokens 1..T-1
  const at::Tensor next = ids.narrow(1, 1, T - 1).to(logits.device()).unsqueeze(-1);  // [B, T-1, 1]
  const at::Tensor logprob = at::log_softmax(z, -1).gather(2, next).squeeze(-1);  // log p(next)
  const at::Tensor hit = (z.argmax(-1, /*keepdim=*/true) == next).squeeze(-1).to(at::kFloat);
  out.logprob.narrow(1, 0, T - 1).copy_(logprob.cpu());
  out.hit.narrow(1, 0, T - 1).copy_(hit.cpu());
  return out;
}

}  // namespace neuroprune
