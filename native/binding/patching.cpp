#include "patching.h"

#include <ATen/core/grad_mode.h>

#include <cstring>
#include <string>
#include <vector>

#include "models/generate.h"
#include "models/next_token.h"
#include "patching/resid.h"

namespace neuroprune::binding {

Napi::Value residuals(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state) {
  Napi::Env env = info.Env();
  const CausalLM& model = *state->model;
  auto [ids, mask] = tokens_from_js(info, 0, model.info().vocab_size);
  const std::vector<int64_t> layers = layers_from_js(info, 4, model);
  const bool all = info.Length() > 5 && info[5].ToBoolean();
  const bool with_logits = info.Length() > 6 && info[6].ToBoolean();
  const bool next_token = info.Length() > 7 && info[7].ToBoolean();
  if ((with_logits || next_token) && !all) throw_coded(env, codes::kArgument, "withLogits and nextToken need every position");
  auto out = std::make_shared<std::vector<at::Tensor>>();
  return PromiseWorker::Run(
      env,
      [state, ids = ids, mask = mask, layers, all, with_logits, next_token, out] {
        std::lock_guard<std::mutex> lock(state->mutex);
        at::NoGradGuard no_grad;
        const CausalLM& m = *state->model;
        at::Tensor logits;
        const bool need_logits = with_logits || next_token;
        const std::vector<at::Tensor> got = all ? all_positions_resid(m, ids.to(m.device()), mask.to(m.device()), layers, need_logits ? &logits : nullptr)
                                                : last_position_resid(m, ids.to(m.device()), mask.to(m.device()), layers);
        for (const auto& t : got) out->push_back(t.to(at::kCPU, at::kFloat).contiguous());
        if (with_logits) out->push_back(logits.to(at::kCPU, at::kFloat).contiguous());
        if (next_token) {
          NextTokenScores s = next_token_scores(logits, ids);
          out->push_back(s.logprob.contiguous());
          out->push_back(s.hit.contiguous());
        }
      },
      [out](Napi::Env env) -> Napi::Value { return float_arrays_to_js(env, *out); });
}

Napi::Value generate_patched(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state) {
  Napi::Env env = info.Env();
  const CausalLM& model = *state->model;
  auto [ids, mask] = tokens_from_js(info, 0, model.info().vocab_size);
  const int64_t B = ids.size(0), d = model.info().d_model;
  const int64_t max_new = arg_int(info, 4, "maxNewTokens");
  const int64_t eos = arg_int(info, 5, "eos");
  if (max_new < 0) throw_coded(env, codes::kArgument, "maxNewTokens must be >= 0");
  const int64_t layer = layer_arg(info, arg_int(info, 6, "layer"), model, "layer");
  if (info.Length() < 8 || !info[7].IsTypedArray() || info[7].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_coded(env, codes::kArgument, "vectors must be a Float32Array");
  auto js_vectors = info[7].As<Napi::Float32Array>();
  if (static_cast<int64_t>(js_vectors.ElementLength()) != B * d)
    throw_coded(env, codes::kShape, "vectors hold " + std::to_string(js_vectors.ElementLength()) +
                                        " values; a batch of " + std::to_string(B) + " rows needs batch * d_model = " +
                                        std::to_string(B * d));
  at::Tensor vectors = at::empty({B, d}, at::kFloat);
  std::memcpy(vectors.data_ptr<float>(), js_vectors.Data(), B * d * sizeof(float));
  auto cancel = cancel_from_js(info, 8);
  auto out = std::make_shared<at::Tensor>();
  return PromiseWorker::Run(
      env,
      [state, ids = ids, mask = mask, max_new, eos, layer, vectors, cancel, out] {
        std::lock_guard<std::mutex> lock(state->mutex);
        at::NoGradGuard no_grad;
        const CausalLM& m = *state->model;
        if (max_new == 0) {
          *out = at::empty({ids.size(0), 0}, at::kInt);
          return;
        }
        const Hooks hooks = patch_last_position(m, layer, vectors);
        at::Tensor tokens = generate_greedy(m, ids.to(m.device()), mask.to(m.device()), max_new, eos,
                                            [cancel] { return cancel->raised(); }, &hooks);
        *out = tokens.to(at::kCPU, at::kInt).contiguous();
      },
      [out, cancel](Napi::Env env) -> Napi::Value { return generation_to_js(env, *out, cancel->raised()); });
}

}  // namespace neuroprune::binding
