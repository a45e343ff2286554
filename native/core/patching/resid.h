// Reads and patches of the residual stream (blocks.{l}.hook_resid_post) at each row's last position
// (or every position, for reads):
// the primitive behind task vectors (Hendel et al. 2023), on the Hooks every forward takes.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "models/model.h"

namespace neuroprune {

// Checks a layer index against the model: E_RANGE when outside [0, n_layers).
void check_resid_layer(const CausalLM& model, int64_t layer, const char* what);

// One forward of ids, mask [B, T] (left padded, so the last position is every row's last token);
// returns, per requested layer, blocks.{l}.hook_resid_post at the last position, [B, d_model].
std::vector<at::Tensor> last_position_resid(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask,
                                            const std::vector<int64_t>& layers);

// One forward of ids, mask [B, T]; per requested layer blocks.{l}.hook_resid_post at every position,
// [B, T, d_model] (padding positions included: left padding, the caller skips them). With `logits`,
// the same forward's logits [B, T, vocab] go there (one pass for residuals and scores).
std::vector<at::Tensor> all_positions_resid(const CausalLM& model, const at::Tensor& ids, const at::Tensor& mask,
                                            const std::vector<int64_t>& layers, at::Tensor* logits = nullptr);

// Hooks that replace blocks.{layer}.hook_resid_post at the last position of the forward's input by
// `vectors` [B, d_model] (row b gets vectors[b]); every other position and layer flows unchanged.
// Meant for the forward of a whole prompt (generate_greedy's prompt_hooks). E_SHAPE when vectors
// is not [B, d_model] for the batch it meets, E_RANGE for a bad layer.
Hooks patch_last_position(const CausalLM& model, int64_t layer, at::Tensor vectors);

}  // namespace neuroprune
