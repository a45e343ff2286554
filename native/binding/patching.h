// N-API glue for residual-stream reads and patches (task vectors); the work is in core/patching.
#pragma once
#include <napi.h>

#include <memory>

#include "common.h"

namespace neuroprune::binding {

// residuals(ids, mask, batch, seqLen, layers: Int32Array, allPositions?, withLogits?, nextToken?) -> Promise<Float32Array[]>,
// one [B, d_model] array of blocks.{l}.hook_resid_post at each row's last position per requested layer
// (allPositions: [B, T, d_model] at every position), then with withLogits the same forward's
// [B, T, vocab] logits and with nextToken its next-token log-probs and hits [B, T] each (allPositions only).
Napi::Value residuals(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state);

// generatePatched(ids, mask, batch, seqLen, maxNewTokens, eos, layer, vectors: Float32Array [B, d_model],
// cancel?) -> Promise<{tokens: Int32Array, steps, cancelled}>: generate() with blocks.{layer}.hook_resid_post
// at the prompt's last position replaced by each row's vector in the prompt forward.
Napi::Value generate_patched(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state);

}  // namespace neuroprune::binding
