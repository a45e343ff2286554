// Next-token scores of a forward's logits, computed where the logits are: at position t of ids
// [B, T], log p(ids[t + 1]) = log_softmax(logits[t])[ids[t + 1]] and whether ids[t + 1] is the top
// prediction (argmax, the first of equal maxima). What held-out loss and accuracy read, without
// sending [B, T, vocab] logits to the caller.
#pragma once
#include <ATen/ATen.h>

namespace neuroprune {

struct NextTokenScores {
  at::Tensor logprob;  // [B, T] float32; position T - 1 (no next token) is 0
  at::Tensor hit;      // [B, T] float32 1 or 0; position T - 1 is 0
};

// logits [B, T, vocab], ids [B, T] (left padding: positions before a row's first token score
// garbage the caller skips, as it skips their logits).
NextTokenScores next_token_scores(const at::Tensor& logits, const at::Tensor& ids);

}  // namespace neuroprune
