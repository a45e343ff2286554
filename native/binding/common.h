// What every binding file shares: the loaded model's state, argument readers and the cancel flag.
#pragma once
#include <napi.h>

#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "edit/editor.h"
#include "error.h"
#include "models/model.h"
#include "promise_worker.h"
#include "runtime.h"
#include "train/trainer.h"

namespace neuroprune::binding {

// A loaded model. Workers hold the shared_ptr, so dispose() while a call runs frees it afterwards.
struct ModelState {
  std::unique_ptr<CausalLM> model;
  std::unique_ptr<Editor> editor;
  std::unique_ptr<Trainer> trainer;
  std::mutex mutex;  // one call at a time per model
  Editor& edits() {
    if (!editor) editor = std::make_unique<Editor>(*model);
    return *editor;
  }
};

inline std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw_coded(info.Env(), codes::kArgument, std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

inline int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) throw_coded(info.Env(), codes::kArgument, std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

// A cancel flag shared with JS: an Int32Array over a SharedArrayBuffer; non-zero means stop.
struct CancelFlag {
  Napi::Reference<Napi::Int32Array> ref;
  int32_t* cell = nullptr;
  bool raised() const { return cell && __atomic_load_n(cell, __ATOMIC_RELAXED) != 0; }
};

// Copies token ids [B, T] (Int32Array) and mask (Uint8Array) into tensors, checking ranges.
inline std::pair<at::Tensor, at::Tensor> tokens_from_js(const Napi::CallbackInfo& info, size_t first, int64_t vocab) {
  Napi::Env env = info.Env();
  if (info.Length() < first + 4 || !info[first].IsTypedArray() || !info[first + 1].IsTypedArray())
    throw_coded(env, codes::kArgument, "expected (ids: Int32Array, mask: Uint8Array, batch, seqLen)");
  auto ids = info[first].As<Napi::TypedArray>();
  auto mask = info[first + 1].As<Napi::TypedArray>();
  if (ids.TypedArrayType() != napi_int32_array || mask.TypedArrayType() != napi_uint8_array)
    throw_coded(env, codes::kArgument, "ids must be an Int32Array and mask a Uint8Array");
  const int64_t B = arg_int(info, first + 2, "batch"), T = arg_int(info, first + 3, "seqLen");
  if (B <= 0 || T <= 0) throw_coded(env, codes::kArgument, "batch and sequence length must be positive");
  if (static_cast<int64_t>(ids.ElementLength()) != B * T || static_cast<int64_t>(mask.ElementLength()) != B * T)
    throw_coded(env, codes::kArgument, "ids and mask must hold batch*seqLen = " + std::to_string(B * T) + " entries");
  const int32_t* id = ids.As<Napi::Int32Array>().Data();
  const uint8_t* m = mask.As<Napi::Uint8Array>().Data();
  at::Tensor t_ids = at::empty({B, T}, at::kLong), t_mask = at::empty({B, T}, at::kLong);
  int64_t* pi = t_ids.data_ptr<int64_t>();
  int64_t* pm = t_mask.data_ptr<int64_t>();
  for (int64_t i = 0; i < B * T; ++i) {
    if (m[i] > 1) throw_coded(env, codes::kArgument, "mask entries must be 0 or 1");
    if (m[i] && (id[i] < 0 || id[i] >= vocab))
      throw_coded(env, codes::kRange, "token id " + std::to_string(id[i]) + " at row " + std::to_string(i / T) +
                                          ", position " + std::to_string(i % T) + " is outside the vocabulary [0, " +
                                          std::to_string(vocab) + ")");
    pi[i] = m[i] ? id[i] : 0;  // padding ids are never looked at; 0 keeps the embedding lookup in range
    pm[i] = m[i];
  }
  return {t_ids, t_mask};
}

// The optional cancel flag at info[i] (an Int32Array over a SharedArrayBuffer); never raised when absent.
inline std::shared_ptr<CancelFlag> cancel_from_js(const Napi::CallbackInfo& info, size_t i) {
  auto cancel = std::make_shared<CancelFlag>();
  if (info.Length() > i && info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto flag = info[i].As<Napi::Int32Array>();
    cancel->ref = Napi::Persistent(flag);
    cancel->cell = flag.Data();
  }
  return cancel;
}

// A layer index from JS, checked against the model: E_RANGE names `what`.
inline int64_t layer_arg(const Napi::CallbackInfo& info, int64_t value, const CausalLM& model, const std::string& what) {
  if (value < 0 || value >= model.info().n_layers)
    throw_coded(info.Env(), codes::kRange, what + " = " + std::to_string(value) + " is out of range [0, " +
                                               std::to_string(model.info().n_layers) + ")");
  return value;
}

// The Int32Array of layer indices at info[i], each checked.
inline std::vector<int64_t> layers_from_js(const Napi::CallbackInfo& info, size_t i, const CausalLM& model) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_coded(info.Env(), codes::kArgument, "layers must be an Int32Array");
  auto js_layers = info[i].As<Napi::Int32Array>();
  std::vector<int64_t> layers;
  for (size_t k = 0; k < js_layers.ElementLength(); ++k)
    layers.push_back(layer_arg(info, js_layers[k], model, "layers[" + std::to_string(k) + "]"));
  return layers;
}

// The MLP site at info[i]: 'post' (default when absent) or 'pre'; E_ARG for pre on a model without it.
inline MlpSite site_arg(const Napi::CallbackInfo& info, size_t i, const CausalLM& model) {
  if (info.Length() <= i || info[i].IsUndefined()) return MlpSite::Post;
  const std::string v = info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
  if (v == "post") return MlpSite::Post;
  if (v != "pre") throw_coded(info.Env(), codes::kArgument, "site must be \"post\" or \"pre\"");
  if (!model.info().has_pre_site)
    throw_coded(info.Env(), codes::kArgument, model.info().model_type + " has no mlp.hook_pre site (its neurons sit at " + model.info().neuron_site + ")");
  return MlpSite::Pre;
}

// Runs `fn` on the JS thread, turning native errors into JS errors with codes.
template <typename Fn>
auto sync(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return with_torch_errors(std::forward<Fn>(fn));
  } catch (const Error& e) {
    throw_coded(env, e.code(), e.what());
  }
}

// Runs fn when a worker's scope ends, however it ends (releasing its progress function, freed host memory).
struct OnExit {
  std::function<void()> fn;
  ~OnExit() { fn(); }
};

// A tensor as a Float32Array / Int32Array (converted and copied to the CPU).
inline Napi::Float32Array floats_to_js(Napi::Env env, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  auto a = Napi::Float32Array::New(env, c.numel());
  if (c.numel()) std::memcpy(a.Data(), c.data_ptr<float>(), c.numel() * sizeof(float));
  return a;
}
inline Napi::Int32Array ints_to_js(Napi::Env env, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kInt).contiguous();
  auto a = Napi::Int32Array::New(env, c.numel());
  if (c.numel()) std::memcpy(a.Data(), c.data_ptr<int32_t>(), c.numel() * sizeof(int32_t));
  return a;
}

// float32 CPU tensors -> an array of Float32Arrays.
inline Napi::Value float_arrays_to_js(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  Napi::Array arr = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) arr.Set(i, floats_to_js(env, tensors[i]));
  return arr;
}

// New tokens [B, steps] (int32, CPU) -> {tokens: Int32Array, steps, cancelled}.
inline Napi::Value generation_to_js(Napi::Env env, const at::Tensor& tokens, bool cancelled) {
  Napi::Object r = Napi::Object::New(env);
  auto arr = Napi::Int32Array::New(env, tokens.numel());
  if (tokens.numel()) std::memcpy(arr.Data(), tokens.data_ptr<int32_t>(), tokens.numel() * sizeof(int32_t));
  r.Set("tokens", arr);
  r.Set("steps", double(tokens.size(1)));
  r.Set("cancelled", cancelled);
  return r;
}

}  // namespace neuroprune::binding
