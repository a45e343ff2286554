#include "circuit.h"

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "circuit/ablate.h"
#include "circuit/eap.h"
#include "circuit/graph.h"
#include "runtime.h"

namespace neuroprune::binding {
namespace {

// An Int32Array at info[i] of rows * seqLen token ids -> [rows, seqLen] int64 (ranges checked by the core).
at::Tensor rows_from_js(const Napi::CallbackInfo& info, size_t i, int64_t rows, int64_t T, const char* what) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_coded(env, codes::kArgument, std::string(what) + " must be an Int32Array");
  auto a = info[i].As<Napi::Int32Array>();
  if (rows <= 0 || T <= 0) throw_coded(env, codes::kArgument, std::string(what) + ": rows and length must be positive");
  if (static_cast<int64_t>(a.ElementLength()) != rows * T)
    throw_coded(env, codes::kArgument, std::string(what) + " must hold rows * seqLen = " + std::to_string(rows * T) + " ids");
  at::Tensor t = at::empty({rows, T}, at::kLong);
  int64_t* p = t.data_ptr<int64_t>();
  const int32_t* src = a.Data();
  for (int64_t k = 0; k < rows * T; ++k) p[k] = src[k];
  return t;
}

std::vector<int64_t> ids_from_js(Napi::Env env, Napi::Value v, const char* what) {
  std::vector<int64_t> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_coded(env, codes::kArgument, std::string("metric.") + what + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  out.assign(a.Data(), a.Data() + a.ElementLength());
  return out;
}

circuit::Metric metric_from_js(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsObject()) throw_coded(env, codes::kArgument, "metric must be an object {kind, answer, wrong?}");
  Napi::Object o = info[i].As<Napi::Object>();
  const std::string kind = o.Get("kind").IsString() ? o.Get("kind").As<Napi::String>().Utf8Value() : "";
  circuit::Metric m;
  if (kind == "logit_diff") m.kind = circuit::MetricKind::LogitDiff;
  else if (kind == "logprob") m.kind = circuit::MetricKind::LogProb;
  else if (kind == "kl") m.kind = circuit::MetricKind::KL;
  else throw_coded(env, codes::kArgument, "metric.kind must be logit_diff, logprob or kl");
  m.answer = ids_from_js(env, o.Get("answer"), "answer");
  m.wrong = ids_from_js(env, o.Get("wrong"), "wrong");
  return m;
}

int64_t option_int(Napi::Object o, const char* key, int64_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? static_cast<int64_t>(v.As<Napi::Number>().DoubleValue()) : fallback;
}

Napi::Uint8Array bytes_to_js(Napi::Env env, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kByte).contiguous();
  auto a = Napi::Uint8Array::New(env, c.numel());
  std::memcpy(a.Data(), c.data_ptr<uint8_t>(), c.numel());
  return a;
}

}  // namespace

Napi::Value circuit_graph(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state) {
  Napi::Env env = info.Env();
  const circuit::Graph g = sync(env, [&] { return circuit::build_graph(*state->model); });
  Napi::Object o = Napi::Object::New(env);
  auto names = [&](const std::vector<std::string>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t k = 0; k < v.size(); ++k) a.Set(static_cast<uint32_t>(k), v[k]);
    return a;
  };
  o.Set("writers", names(g.writers));
  o.Set("readers", names(g.readers));
  o.Set("edges", bytes_to_js(env, g.edges));
  return o;
}

Napi::Value edge_scores(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state) {
  Napi::Env env = info.Env();
  const int64_t rows = arg_int(info, 2, "rows"), T = arg_int(info, 3, "seqLen");
  auto request = std::make_shared<circuit::EdgeScoreRequest>();
  request->clean = rows_from_js(info, 0, rows, T, "clean");
  request->corrupted = rows_from_js(info, 1, rows, T, "corrupted");
  request->metric = metric_from_js(info, 4);
  if (info.Length() <= 5 || !info[5].IsObject()) throw_coded(env, codes::kArgument, "options must be an object");
  Napi::Object opt = info[5].As<Napi::Object>();
  request->steps = option_int(opt, "steps", 1);
  request->memory_budget_bytes = option_int(opt, "memoryBudgetBytes", request->memory_budget_bytes);
  auto cancel = cancel_from_js(info, 7);
  request->cancelled = [cancel] { return cancel->raised(); };
  std::shared_ptr<Napi::ThreadSafeFunction> progress;
  if (info.Length() > 6 && info[6].IsFunction()) {
    progress = std::make_shared<Napi::ThreadSafeFunction>(
        Napi::ThreadSafeFunction::New(env, info[6].As<Napi::Function>(), "neuroprune-circuit-progress", 0, 1));
    request->progress = [progress](int64_t done, int64_t total) {
      progress->NonBlockingCall([done, total](Napi::Env env, Napi::Function fn) {
        fn.Call({Napi::Number::New(env, double(done)), Napi::Number::New(env, double(total))});
      });
    };
  }
  auto out = std::make_shared<circuit::EdgeScoreResult>();
  return PromiseWorker::Run(
      env,
      [state, request, out, progress] {
        OnExit on_exit{[progress] {
          if (progress) progress->Release();
          release_free_host_memory();
        }};
        std::lock_guard<std::mutex> lock(state->mutex);
        *out = circuit::edge_scores(*state->model, *request);
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("scores", floats_to_js(env, out->scores));
        r.Set("metricClean", out->metric_clean);
        r.Set("metricCorrupted", out->metric_corrupted);
        r.Set("microBatches", double(out->micro_batches));
        return r;
      });
}

Napi::Value ablated_run(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state) {
  Napi::Env env = info.Env();
  const int64_t rows = arg_int(info, 1, "rows"), T = arg_int(info, 2, "seqLen");
  auto request = std::make_shared<circuit::AblatedRunRequest>();
  request->clean = rows_from_js(info, 0, rows, T, "clean");
  if (info.Length() <= 3 || !info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_coded(env, codes::kArgument, "kept must be a Uint8Array");
  auto kept = info[3].As<Napi::Uint8Array>();
  const circuit::Graph g = sync(env, [&] { return circuit::build_graph(*state->model); });
  const int64_t size = g.n_writers() * g.n_readers(), length = static_cast<int64_t>(kept.ElementLength());
  if (length == 0 || length % size != 0)
    throw_coded(env, codes::kShape, "kept must hold masks x writers x readers = K x " + std::to_string(g.n_writers()) + " x " +
                                        std::to_string(g.n_readers()) + " entries, got " + std::to_string(length));
  request->kept = at::empty({length / size, g.n_writers(), g.n_readers()}, at::kBool);
  const uint8_t* src = kept.Data();
  bool* dst = request->kept.data_ptr<bool>();
  for (size_t k = 0; k < kept.ElementLength(); ++k) dst[k] = src[k] != 0;
  const std::string ablation = arg_string(info, 4, "ablation");
  if (ablation == "corrupted") request->ablation = circuit::AblationKind::Corrupted;
  else if (ablation == "mean") request->ablation = circuit::AblationKind::Mean;
  else if (ablation == "zero") request->ablation = circuit::AblationKind::Zero;
  else throw_coded(env, codes::kArgument, "ablation must be corrupted, mean or zero");
  if (request->ablation != circuit::AblationKind::Zero)
    request->corrupted = rows_from_js(info, 5, arg_int(info, 6, "corruptedRows"), T, "corrupted");
  request->metric = metric_from_js(info, 7);
  if (info.Length() > 8 && info[8].IsObject()) {
    Napi::Object opt = info[8].As<Napi::Object>();
    request->top_k = option_int(opt, "topK", request->top_k);
    request->memory_budget_bytes = option_int(opt, "memoryBudgetBytes", request->memory_budget_bytes);
  }
  auto cancel = cancel_from_js(info, 9);
  request->cancelled = [cancel] { return cancel->raised(); };
  auto out = std::make_shared<circuit::AblatedRunResult>();
  return PromiseWorker::Run(
      env,
      [state, request, out] {
        OnExit on_exit{[] { release_free_host_memory(); }};
        std::lock_guard<std::mutex> lock(state->mutex);
        *out = circuit::ablated_run(*state->model, *request);
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        r.Set("metric", floats_to_js(env, out->metric));
        r.Set("topTokens", ints_to_js(env, out->top_tokens));
        r.Set("answerRank", ints_to_js(env, out->answer_rank));
        return r;
      });
}

Napi::Value logit_lens(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state) {
  Napi::Env env = info.Env();
  const int64_t rows = arg_int(info, 1, "rows"), T = arg_int(info, 2, "seqLen");
  const at::Tensor clean = rows_from_js(info, 0, rows, T, "clean");
  const std::vector<int64_t> answer = ids_from_js(env, info.Length() > 3 ? info[3] : env.Undefined(), "answer");
  const int64_t budget = info.Length() > 4 && info[4].IsNumber() ? static_cast<int64_t>(info[4].As<Napi::Number>().DoubleValue())
                                                                  : int64_t(2) << 30;
  auto out = std::make_shared<at::Tensor>();
  return PromiseWorker::Run(
      env,
      [state, clean, answer, budget, out] {
        std::lock_guard<std::mutex> lock(state->mutex);
        *out = circuit::logit_lens(*state->model, clean, answer, budget);
      },
      [out](Napi::Env env) -> Napi::Value { return ints_to_js(env, *out); });
}

Napi::Value forward_backward_ms(const Napi::CallbackInfo& info, std::shared_ptr<ModelState> state) {
  const int64_t rows = arg_int(info, 1, "rows"), T = arg_int(info, 2, "seqLen");
  const at::Tensor clean = rows_from_js(info, 0, rows, T, "clean");
  const circuit::Metric metric = metric_from_js(info, 3);
  auto out = std::make_shared<double>(0);
  return PromiseWorker::Run(
      info.Env(),
      [state, clean, metric, out] {
        std::lock_guard<std::mutex> lock(state->mutex);
        *out = circuit::forward_backward_ms(*state->model, clean, metric);
      },
      [out](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *out); });
}

}  // namespace neuroprune::binding
