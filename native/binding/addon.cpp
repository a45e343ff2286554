// N-API glue: converts arguments, queues core calls on worker threads, converts results. No algorithms.
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard, at::AutoGradMode (not in ATen.h on 2.x)
#include <napi.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <cstdlib>
#include <thread>
#include <memory>
#include <mutex>

#include "attribution/ig.h"
#include "checkpoint/files.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/save.h"
#include "edit/editor.h"
#include "models/generate.h"
#include "models/model.h"
#include "models/next_token.h"
#include "circuit.h"
#include "common.h"
#include "patching.h"
#include "promise_worker.h"
#include "edit/units.h"
#include "train/trainer.h"
#include "runtime.h"

namespace neuroprune::binding {
namespace {

// (layers: Int32Array, indices: Int32Array) at info[first], info[first + 1] -> neurons.
std::vector<Neuron> neurons_from_js(const Napi::CallbackInfo& info, size_t first) {
  Napi::Env env = info.Env();
  if (info.Length() < first + 2 || !info[first].IsTypedArray() || !info[first + 1].IsTypedArray() ||
      info[first].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[first + 1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_coded(env, codes::kArgument, "neurons must be given as (layers: Int32Array, indices: Int32Array)");
  auto layers = info[first].As<Napi::Int32Array>();
  auto indices = info[first + 1].As<Napi::Int32Array>();
  if (layers.ElementLength() != indices.ElementLength())
    throw_coded(env, codes::kArgument, "layers and indices must have the same length");
  std::vector<Neuron> out;
  for (size_t i = 0; i < layers.ElementLength(); ++i) out.push_back({layers[i], indices[i]});
  return out;
}

Napi::Object info_to_js(Napi::Env env, const CausalLM& model) {
  const ModelInfo& i = model.info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", i.architecture);
  o.Set("modelType", i.model_type);
  o.Set("nLayers", double(i.n_layers));
  o.Set("dModel", double(i.d_model));
  o.Set("nHeads", double(i.n_heads));
  o.Set("dMlp", double(i.d_mlp));
  o.Set("neuronSite", i.neuron_site);
  o.Set("hasPreSite", i.has_pre_site);
  o.Set("vocabSize", double(i.vocab_size));
  o.Set("maxPositions", double(i.max_positions));
  o.Set("nParams", double(i.n_params));
  o.Set("dtype", dtype_name(model.dtype()));
  o.Set("device", model.device().str());
  // With --device-map: the device of each layer (the embeddings sit on the first, the head on the last).
  if (model.split()) {
    Napi::Array layers = Napi::Array::New(env, i.n_layers);
    for (int64_t l = 0; l < i.n_layers; ++l) layers.Set(uint32_t(l), model.layer_device(l).str());
    o.Set("layerDevices", layers);
  }
  o.Set("config", model.config_json());
  return o;
}

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static void Register(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "NativeModel",
                                      {InstanceMethod("info", &NativeModel::Info), InstanceMethod("logits", &NativeModel::Logits),
                                       InstanceMethod("generate", &NativeModel::Generate),
                                       InstanceMethod("activations", &NativeModel::Activations),
                                       InstanceMethod("residuals", &NativeModel::Residuals),
                                       InstanceMethod("generatePatched", &NativeModel::GeneratePatched),
                                       InstanceMethod("attribute", &NativeModel::Attribute),
                                       InstanceMethod("prune", &NativeModel::Prune),
                                       InstanceMethod("scale", &NativeModel::Scale),
                                       InstanceMethod("removeEdit", &NativeModel::RemoveEdit),
                                       InstanceMethod("removeAllEdits", &NativeModel::RemoveAllEdits),
                                       InstanceMethod("save", &NativeModel::Save),
                                       InstanceMethod("pruneUnits", &NativeModel::PruneUnits),
                                       InstanceMethod("unitNorms", &NativeModel::UnitNorms),
                                       InstanceMethod("startTraining", &NativeModel::StartTraining),
                                       InstanceMethod("trainStep", &NativeModel::TrainStep),
                                       InstanceMethod("endTraining", &NativeModel::EndTraining),
                                       InstanceMethod("saveTrainingState", &NativeModel::SaveTrainingState),
                                       InstanceMethod("digest", &NativeModel::Digest),
                                       InstanceMethod("circuitGraph", &NativeModel::CircuitGraph),
                                       InstanceMethod("edgeScores", &NativeModel::EdgeScores),
                                       InstanceMethod("ablatedRun", &NativeModel::AblatedRun),
                                       InstanceMethod("logitLens", &NativeModel::LogitLens),
                                       InstanceMethod("forwardBackwardMs", &NativeModel::ForwardBackwardMs),
                                       InstanceMethod("dispose", &NativeModel::Dispose)});
    env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(ctor)));
    exports.Set("NativeModel", ctor);
  }

  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<ModelState> state) {
    Napi::Object obj = env.GetInstanceData<Napi::FunctionReference>()->New({});
    Unwrap(obj)->state_ = std::move(state);
    return obj;
  }

  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {}

 private:
  std::shared_ptr<ModelState> live(Napi::Env env) {
    if (!state_) throw_coded(env, codes::kArgument, "model has been disposed");
    return state_;
  }

  // Calls not yet made to follow a --device-map split (their tensors are built on one device).
  std::shared_ptr<ModelState> unsplit(Napi::Env env, const std::string& what) {
    auto state = live(env);
    if (state->model->split())
      throw_coded(env, codes::kDevice, what + " does not run on a model split by --device-map yet; load it on one device");
    return state;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) { return info_to_js(info.Env(), *live(info.Env())->model); }

  // logits(ids, mask, batch, seqLen, lastOnly, chunkSize) -> Promise<Float32Array> of [B, T or 1, V].
  // chunkSize > 0 feeds the sequence through the KV cache that many tokens at a time.
  Napi::Value Logits(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    auto [ids, mask] = tokens_from_js(info, 0, state->model->info().vocab_size);
    const bool last_only = info.Length() > 4 && info[4].ToBoolean();
    const int64_t chunk = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().Int64Value() : 0;
    auto out = std::make_shared<at::Tensor>();
    return PromiseWorker::Run(
        info.Env(),
        [state, ids = ids, mask = mask, last_only, chunk, out] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          const CausalLM& m = *state->model;
          at::Tensor logits = forward_chunked(m, ids.to(m.device()), mask.to(m.device()), chunk, last_only);
          *out = logits.to(at::kCPU, at::kFloat).contiguous();
        },
        [out](Napi::Env env) -> Napi::Value {
          auto arr = Napi::Float32Array::New(env, out->numel());
          std::memcpy(arr.Data(), out->data_ptr<float>(), out->numel() * sizeof(float));
          return arr;
        });
  }

  // generate(ids, mask, batch, seqLen, maxNewTokens, eos, cancel?) -> Promise<{tokens: Int32Array, steps}>
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto state = live(env);
    auto [ids, mask] = tokens_from_js(info, 0, state->model->info().vocab_size);
    const int64_t max_new = arg_int(info, 4, "maxNewTokens");
    const int64_t eos = arg_int(info, 5, "eos");
    if (max_new < 0) throw_coded(env, codes::kArgument, "maxNewTokens must be >= 0");
    auto cancel = cancel_from_js(info, 6);
    auto out = std::make_shared<at::Tensor>();
    return PromiseWorker::Run(
        env,
        [state, ids = ids, mask = mask, max_new, eos, cancel, out] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          const CausalLM& m = *state->model;
          if (max_new == 0) {
            *out = at::empty({ids.size(0), 0}, at::kInt);
            return;
          }
          at::Tensor tokens = generate_greedy(m, ids.to(m.device()), mask.to(m.device()), max_new, eos,
                                              [cancel] { return cancel->raised(); });
          *out = tokens.to(at::kCPU, at::kInt).contiguous();
        },
        [out, cancel](Napi::Env env) -> Napi::Value { return generation_to_js(env, *out, cancel->raised()); });
  }

  // activations(ids, mask, batch, seqLen, layers: Int32Array, site?: 'post'|'pre', withLogits?, nextToken?) -> Promise<Float32Array[]>,
  // one [B, T, d_mlp] array of blocks.{l}.mlp.hook_post (or hook_pre) per requested layer, then with
  // withLogits the same forward's [B, T, vocab] logits, then with nextToken its next-token log-probs
  // and hits, [B, T] each (models/next_token.h).
  Napi::Value Activations(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto state = live(env);
    auto [ids, mask] = tokens_from_js(info, 0, state->model->info().vocab_size);
    const std::vector<int64_t> layers = layers_from_js(info, 4, *state->model);
    const MlpSite site = site_arg(info, 5, *state->model);
    const bool with_logits = info.Length() > 6 && info[6].ToBoolean();
    const bool next_token = info.Length() > 7 && info[7].ToBoolean();
    auto out = std::make_shared<std::vector<at::Tensor>>();
    return PromiseWorker::Run(
        env,
        [state, ids = ids, mask = mask, layers, site, with_logits, next_token, out] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          const CausalLM& m = *state->model;
          std::map<int64_t, at::Tensor> seen;
          Hooks hooks;
          if (site == MlpSite::Pre) {
            hooks.mlp_pre = [&seen](int64_t layer, const at::Tensor& pre, const at::Tensor&) { return seen[layer] = pre; };
          } else {
            hooks.mlp_post = [&seen](int64_t layer, const at::Tensor& post) { return seen[layer] = post; };
          }
          at::Tensor logits = m.forward(ids.to(m.device()), mask.to(m.device()), nullptr, &hooks, !(with_logits || next_token));
          for (int64_t l : layers) out->push_back(seen.at(l).to(at::kCPU, at::kFloat).contiguous());
          if (with_logits) out->push_back(logits.to(at::kCPU, at::kFloat).contiguous());
          if (next_token) {
            NextTokenScores s = next_token_scores(logits, ids);
            out->push_back(s.logprob.contiguous());
            out->push_back(s.hit.contiguous());
          }
        },
        [out](Napi::Env env) -> Napi::Value { return float_arrays_to_js(env, *out); });
  }

  // Residual-stream reads and patches: native/binding/patching.cpp.
  Napi::Value Residuals(const Napi::CallbackInfo& info) { return residuals(info, live(info.Env())); }
  Napi::Value GeneratePatched(const Napi::CallbackInfo& info) { return generate_patched(info, live(info.Env())); }

  // Circuits: native/binding/circuit.cpp.
  Napi::Value CircuitGraph(const Napi::CallbackInfo& info) { return circuit_graph(info, unsplit(info.Env(), "the circuit graph")); }
  Napi::Value EdgeScores(const Napi::CallbackInfo& info) { return edge_scores(info, unsplit(info.Env(), "edgeScores")); }
  Napi::Value AblatedRun(const Napi::CallbackInfo& info) { return ablated_run(info, unsplit(info.Env(), "ablatedRun")); }
  Napi::Value LogitLens(const Napi::CallbackInfo& info) { return logit_lens(info, unsplit(info.Env(), "logitLens")); }
  Napi::Value ForwardBackwardMs(const Napi::CallbackInfo& info) { return forward_backward_ms(info, unsplit(info.Env(), "forwardBackwardMs")); }

  // attribute(ids, mask, batch, seqLen, prompts, options, onProgress?, cancel?) -> Promise<{...}>
  //   prompts: [{target: number[], distractor: number, labels: number[]}]
  //   options: {method: 'fast'|'reference', objective, rule, positions, steps, layers: number[], memoryBudgetMB,
  //             site?: 'post'|'pre'|'resid' (resid: blocks.{l}.hook_resid_post, [B, layers, d_model])}
  Napi::Value Attribute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto state = live(env);
    auto [ids, mask] = tokens_from_js(info, 0, state->model->info().vocab_size);
    if (info.Length() < 6 || !info[4].IsArray() || !info[5].IsObject())
      throw_coded(env, codes::kArgument, "attribute needs (ids, mask, batch, seqLen, prompts[], options)");
    auto request = std::make_shared<IgRequest>();
    request->ids = ids;
    request->mask = mask;
    auto ints = [&](Napi::Value v, const std::string& what) {
      std::vector<int64_t> out;
      if (v.IsUndefined() || v.IsNull()) return out;
      if (!v.IsArray()) throw_coded(env, codes::kArgument, what + " must be an array of integers");
      auto a = v.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).ToNumber().Int64Value());
      return out;
    };
    auto prompts = info[4].As<Napi::Array>();
    for (uint32_t i = 0; i < prompts.Length(); ++i) {
      Napi::Object o = prompts.Get(i).As<Napi::Object>();
      IgPrompt p;
      p.target = ints(o.Get("target"), "target");
      p.labels = ints(o.Get("labels"), "labels");
      p.distractor = o.Has("distractor") && o.Get("distractor").IsNumber() ? o.Get("distractor").As<Napi::Number>().Int64Value() : -1;
      request->prompts.push_back(std::move(p));
    }
    Napi::Object opt = info[5].As<Napi::Object>();
    auto pick = [&](const char* key, const std::map<std::string, int>& names) {
      const std::string v = opt.Get(key).ToString().Utf8Value();
      auto it = names.find(v);
      if (it == names.end()) throw_coded(env, codes::kArgument, std::string("unknown ") + key + " \"" + v + "\"");
      return it->second;
    };
    request->objective = static_cast<IgObjective>(pick("objective", {{"prob", 0}, {"logprob", 1}, {"logit_diff", 2}, {"copy", 3}}));
    request->rule = static_cast<IgRule>(pick("rule", {{"riemann_left", 0}, {"riemann_right", 1}, {"riemann_middle", 2}, {"riemann_trapezoid", 3}}));
    request->positions = static_cast<IgPositions>(pick("positions", {{"last", 0}, {"answer", 1}, {"all", 2}}));
    const bool fast = pick("method", {{"reference", 0}, {"fast", 1}}) == 1;
    if (opt.Has("site") && !opt.Get("site").IsUndefined()) {
      const int site = pick("site", {{"post", 0}, {"pre", 1}, {"resid", 2}});
      if (site == 2) request->resid_post = true;  // blocks.{l}.hook_resid_post
      else request->site = static_cast<MlpSite>(site);
    }
    request->steps = opt.Get("steps").ToNumber().Int64Value();
    request->layers = ints(opt.Get("layers"), "layers");
    request->memory_budget_bytes = static_cast<int64_t>(opt.Get("memoryBudgetMB").ToNumber().DoubleValue() * (1 << 20));

    auto cancel = std::make_shared<CancelFlag>();
    if (info.Length() > 7 && info[7].IsTypedArray() && info[7].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
      auto flag = info[7].As<Napi::Int32Array>();
      cancel->ref = Napi::Persistent(flag);
      cancel->cell = flag.Data();
    }
    request->cancelled = [cancel] { return cancel->raised(); };
    std::shared_ptr<Napi::ThreadSafeFunction> progress;
    if (info.Length() > 6 && info[6].IsFunction()) {
      progress = std::make_shared<Napi::ThreadSafeFunction>(
          Napi::ThreadSafeFunction::New(env, info[6].As<Napi::Function>(), "neuroprune-progress", 0, 1));
      request->progress = [progress](int64_t done, int64_t total) {
        progress->NonBlockingCall([done, total](Napi::Env env, Napi::Function fn) {
          fn.Call({Napi::Number::New(env, double(done)), Napi::Number::New(env, double(total))});
        });
      };
    }
    auto out = std::make_shared<IgResult>();
    auto release = [progress] {
      if (progress) progress->Release();
      release_free_host_memory();
    };
    return PromiseWorker::Run(
        env,
        [state, request, fast, out, release] {
          OnExit on_exit{release};
          std::lock_guard<std::mutex> lock(state->mutex);
          const CausalLM& m = *state->model;
          if (request->resid_post) *out = fast ? ig_resid_fast(m, *request) : ig_resid_reference(m, *request);
          else *out = fast ? ig_fast(m, *request) : ig_reference(m, *request);
        },
        [out](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("attributions", floats_to_js(env, out->attributions));
          r.Set("fFull", floats_to_js(env, out->f_full));
          r.Set("fBaseline", floats_to_js(env, out->f_baseline));
          r.Set("rows", double(out->rows));
          r.Set("microBatches", double(out->micro_batches));
          return r;
        });
  }

  // prune(layers, indices, full) -> Promise<handle>
  Napi::Value Prune(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    auto neurons = neurons_from_js(info, 0);
    const bool full = info.Length() > 2 && info[2].ToBoolean();
    auto handle = std::make_shared<int64_t>(0);
    return PromiseWorker::Run(
        info.Env(),
        [state, neurons, full, handle] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          *handle = state->edits().prune(neurons, full);
        },
        [handle](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*handle)); });
  }

  // scale(layers, indices, factor, site?: 'post'|'pre', lastOnly?: boolean) -> Promise<handle>
  Napi::Value Scale(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    auto neurons = neurons_from_js(info, 0);
    if (info.Length() < 3 || !info[2].IsNumber()) throw_coded(info.Env(), codes::kArgument, "factor must be a number");
    const double factor = info[2].As<Napi::Number>().DoubleValue();
    const MlpSite site = site_arg(info, 3, *state->model);
    const bool last_only = info.Length() > 4 && info[4].ToBoolean();
    auto handle = std::make_shared<int64_t>(0);
    return PromiseWorker::Run(
        info.Env(),
        [state, neurons, factor, site, last_only, handle] {
          std::lock_guard<std::mutex> lock(state->mutex);
          *handle = state->edits().scale(neurons, factor, site, last_only);
        },
        [handle](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, double(*handle)); });
  }

  Napi::Value RemoveEdit(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    const int64_t handle = arg_int(info, 0, "handle");
    return PromiseWorker::Run(
        info.Env(),
        [state, handle] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          state->edits().remove(handle);
        },
        nullptr);
  }

  Napi::Value RemoveAllEdits(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    return PromiseWorker::Run(
        info.Env(),
        [state] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          state->edits().remove_all();
        },
        nullptr);
  }

  // pruneUnits(kind: 'mlp'|'resid', layers, indices, inputs: boolean) -> Promise<void>: zeroes the
  // units' weights for good (see edit/units.h); no edit is recorded, so training may follow.
  Napi::Value PruneUnits(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    const UnitKind kind = unit_kind(info.Env(), info.Length() > 0 ? info[0] : info.Env().Undefined());
    auto units = neurons_from_js(info, 1);
    const bool inputs = info.Length() > 3 && info[3].ToBoolean();
    return PromiseWorker::Run(
        info.Env(),
        [state, kind, units, inputs] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          zero_slices(*state->model, unit_slices(*state->model, kind, units, inputs));
        },
        nullptr);
  }

  // unitNorms(kind, layers, indices) -> Promise<Float64Array>: each unit's output-weight L2 norm.
  Napi::Value UnitNorms(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    const UnitKind kind = unit_kind(info.Env(), info.Length() > 0 ? info[0] : info.Env().Undefined());
    auto units = neurons_from_js(info, 1);
    auto norms = std::make_shared<std::vector<double>>();
    return PromiseWorker::Run(
        info.Env(),
        [state, kind, units, norms] {
          std::lock_guard<std::mutex> lock(state->mutex);
          at::NoGradGuard no_grad;
          *norms = unit_output_norms(*state->model, kind, units);
        },
        [norms](Napi::Env env) -> Napi::Value {
          auto out = Napi::Float64Array::New(env, norms->size());
          for (size_t i = 0; i < norms->size(); ++i) out[i] = (*norms)[i];
          return out;
        });
  }

  static UnitKind unit_kind(Napi::Env env, Napi::Value v) {
    const std::string k = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
    if (k != "mlp" && k != "resid") throw_coded(env, codes::kArgument, "unit kind must be 'mlp' or 'resid'");
    return k == "mlp" ? UnitKind::Mlp : UnitKind::Resid;
  }

  // startTraining({steps, warmup, lr, minLrRatio, weightDecay, beta1, beta2, gradClip, startStep,
  //   frozenKind?, frozenLayers?: Int32Array, frozenIndices?: Int32Array, loadState?: path}) -> Promise<void>
  // loadState: an optimizer state saveTrainingState wrote at step startStep.
  Napi::Value StartTraining(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto state = unsplit(env, "training");
    if (info.Length() < 1 || !info[0].IsObject()) throw_coded(env, codes::kArgument, "startTraining needs an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* key, double fallback) { return o.Has(key) && o.Get(key).IsNumber() ? o.Get(key).As<Napi::Number>().DoubleValue() : fallback; };
    TrainConfig c;
    c.total_steps = static_cast<int64_t>(num("steps", 1000));
    c.warmup_steps = static_cast<int64_t>(num("warmup", 100));
    c.lr = num("lr", 1e-3);
    c.min_lr_ratio = num("minLrRatio", 0.1);
    c.weight_decay = num("weightDecay", 0.1);
    c.beta1 = num("beta1", 0.9);
    c.beta2 = num("beta2", 0.95);
    c.grad_clip = num("gradClip", 1.0);
    c.start_step = static_cast<int64_t>(num("startStep", 0));
    std::vector<Neuron> frozen;
    UnitKind frozen_kind = UnitKind::Mlp;
    if (o.Has("frozenKind") && !o.Get("frozenKind").IsUndefined()) {
      frozen_kind = unit_kind(env, o.Get("frozenKind"));
      Napi::Value layers = o.Get("frozenLayers"), indices = o.Get("frozenIndices");
      if (!layers.IsTypedArray() || !indices.IsTypedArray() || layers.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
          indices.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
        throw_coded(env, codes::kArgument, "frozenLayers and frozenIndices must be Int32Arrays");
      auto l = layers.As<Napi::Int32Array>();
      auto i = indices.As<Napi::Int32Array>();
      if (l.ElementLength() != i.ElementLength()) throw_coded(env, codes::kArgument, "frozenLayers and frozenIndices must have the same length");
      for (size_t k = 0; k < l.ElementLength(); ++k) frozen.push_back({l[k], i[k]});
    }
    std::string load_state;
    if (o.Has("loadState") && o.Get("loadState").IsString()) load_state = o.Get("loadState").As<Napi::String>().Utf8Value();
    return PromiseWorker::Run(
        env,
        [state, c, frozen, frozen_kind, load_state] {
          std::lock_guard<std::mutex> lock(state->mutex);
          if (state->editor && state->editor->size() > 0)
            fail(codes::kArgument, "restore the model's edits before training (pruned weights would train back)");
          state->trainer.reset();
          state->trainer = std::make_unique<Trainer>(*state->model, c);
          if (!frozen.empty()) state->trainer->freeze(unit_slices(*state->model, frozen_kind, frozen));
          if (!load_state.empty()) state->trainer->load_state(load_state);
        },
        nullptr);
  }

  // saveTrainingState(path, weights?) -> Promise<void>: the running trainer's optimizer state (with
  // weights: and every weight), atomically.
  Napi::Value SaveTrainingState(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    const std::string file = arg_string(info, 0, "file");
    const bool weights = info.Length() > 1 && info[1].ToBoolean();
    return PromiseWorker::Run(
        info.Env(),
        [state, file, weights] {
          std::lock_guard<std::mutex> lock(state->mutex);
          if (!state->trainer) fail(codes::kArgument, "call startTraining first");
          state->trainer->save_state(file, weights);
        },
        nullptr);
  }

  // trainStep(ids, mask, batch, seqLen) -> Promise<{loss, gradNorm, lr, tokens, step}>
  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto state = live(env);
    auto [ids, mask] = tokens_from_js(info, 0, state->model->info().vocab_size);
    auto out = std::make_shared<StepStats>();
    auto step = std::make_shared<int64_t>(0);
    return PromiseWorker::Run(
        env,
        [state, ids = ids, mask = mask, out, step] {
          std::lock_guard<std::mutex> lock(state->mutex);
          if (!state->trainer) fail(codes::kArgument, "call startTraining first");
          const CausalLM& m = *state->model;
          *out = state->trainer->step(ids.to(m.device()), mask.to(m.device()));
          *step = state->trainer->steps_done();
        },
        [out, step](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("loss", out->loss);
          r.Set("gradNorm", out->grad_norm);
          r.Set("lr", out->lr);
          r.Set("tokens", double(out->tokens));
          r.Set("step", double(*step));
          return r;
        });
  }

  Napi::Value EndTraining(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    return PromiseWorker::Run(
        info.Env(),
        [state] {
          std::lock_guard<std::mutex> lock(state->mutex);
          state->trainer.reset();
        },
        nullptr);
  }

  // save(dir) -> Promise<void>: the current weights as safetensors in `dir` (which must exist).
  Napi::Value Save(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    const std::string dir = arg_string(info, 0, "folder");
    return PromiseWorker::Run(
        info.Env(),
        [state, dir] {
          std::lock_guard<std::mutex> lock(state->mutex);
          save_weights(*state->model, dir);
        },
        nullptr);
  }

  Napi::Value Digest(const Napi::CallbackInfo& info) {
    auto state = live(info.Env());
    auto out = std::make_shared<std::string>();
    return PromiseWorker::Run(
        info.Env(),
        [state, out] {
          std::lock_guard<std::mutex> lock(state->mutex);
          *out = weights_digest(*state->model);
        },
        [out](Napi::Env env) -> Napi::Value { return Napi::String::New(env, *out); });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    state_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<ModelState> state_;
};

// The optional device map at info[i] (models/device_map.h), parsed (and its devices checked) now.
std::shared_ptr<DevicePlan> plan_from_js(const Napi::CallbackInfo& info, size_t i, at::ScalarType dtype) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  const std::string spec = arg_string(info, i, "deviceMap");
  auto plan = std::make_shared<DevicePlan>(sync(info.Env(), [&] { return DevicePlan::parse(spec); }));
  sync(info.Env(), [&] {
    for (const auto& d : plan->devices) check_device_dtype(d, dtype);
    for (const auto& r : plan->ranges) check_device_dtype(r.device, dtype);
  });
  return plan;
}

// loadModel(dir, device, dtype, deviceMap?) -> Promise<NativeModel>
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string dir = arg_string(info, 0, "model folder");
  const at::Device device = sync(env, [&] { return parse_device(arg_string(info, 1, "device")); });
  const at::ScalarType dtype = sync(env, [&] { return parse_dtype(arg_string(info, 2, "dtype")); });
  sync(env, [&] { check_device_dtype(device, dtype); });
  auto plan = plan_from_js(info, 3, dtype);
  auto state = std::make_shared<ModelState>();
  return PromiseWorker::Run(
      env, [state, dir, device, dtype, plan] { state->model = load_causal_lm(dir, device, dtype, plan.get()); },
      [state](Napi::Env env) -> Napi::Value { return NativeModel::Wrap(env, state); });
}

// randomModel(configJson, device, dtype, seed, deviceMap?) -> Promise<NativeModel>
Napi::Value RandomModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string config = arg_string(info, 0, "config");
  const at::Device device = sync(env, [&] { return parse_device(arg_string(info, 1, "device")); });
  const at::ScalarType dtype = sync(env, [&] { return parse_dtype(arg_string(info, 2, "dtype")); });
  const uint64_t seed = static_cast<uint64_t>(arg_int(info, 3, "seed"));
  sync(env, [&] { check_device_dtype(device, dtype); });
  auto plan = plan_from_js(info, 4, dtype);
  auto state = std::make_shared<ModelState>();
  return PromiseWorker::Run(
      env, [state, config, device, dtype, seed, plan] { state->model = random_causal_lm(config, device, dtype, seed, plan.get()); },
      [state](Napi::Env env) -> Napi::Value { return NativeModel::Wrap(env, state); });
}

// writeRandomCheckpoint(configJson, file, dtype, seed) -> Promise<void>: the weights save_pretrained would write.
Napi::Value WriteRandomCheckpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string config = arg_string(info, 0, "config");
  const std::string file = arg_string(info, 1, "file");
  const at::ScalarType dtype = sync(env, [&] { return parse_dtype(arg_string(info, 2, "dtype")); });
  const uint64_t seed = static_cast<uint64_t>(arg_int(info, 3, "seed"));
  return PromiseWorker::Run(
      env,
      [config, file, dtype, seed] {
        // Drawn in float32 (so every dtype gets the same numbers), stored in the asked dtype.
        auto model = random_causal_lm(config, at::Device(at::kCPU), at::kFloat, seed);
        std::vector<std::pair<std::string, at::Tensor>> tensors;
        for (const auto& [name, t] : model->weights().named()) tensors.emplace_back(name, t.to(dtype));
        write_safetensors(file, tensors, {{"format", "pt"}});
      },
      nullptr);
}

// readSafetensors(file) -> Promise<{metadata, tensors: {name: {dtype, shape, data: Buffer}}}> (raw bytes)
Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  const std::string file = arg_string(info, 0, "file");
  auto st = std::make_shared<std::unique_ptr<SafetensorsFile>>();
  auto data = std::make_shared<std::vector<std::pair<std::string, at::Tensor>>>();
  return PromiseWorker::Run(
      info.Env(),
      [file, st, data] {
        *st = std::make_unique<SafetensorsFile>(file);
        for (auto& [name, _] : (*st)->entries()) data->emplace_back(name, (*st)->load(name, at::Device(at::kCPU)));
      },
      [st, data](Napi::Env env) -> Napi::Value {
        Napi::Object result = Napi::Object::New(env), tensors = Napi::Object::New(env), meta = Napi::Object::New(env);
        for (auto& [k, v] : (*st)->metadata()) meta.Set(k, v);
        for (auto& [name, t] : *data) {
          Napi::Object o = Napi::Object::New(env);
          o.Set("dtype", (*st)->entry(name).dtype);
          Napi::Array shape = Napi::Array::New(env);
          for (size_t i = 0; i < (size_t)t.dim(); ++i) shape.Set(i, double(t.size(i)));
          o.Set("shape", shape);
          o.Set("data", Napi::Buffer<uint8_t>::Copy(env, static_cast<uint8_t*>(t.data_ptr()), t.numel() * t.element_size()));
          tensors.Set(name, o);
        }
        result.Set("metadata", meta);
        result.Set("tensors", tensors);
        return result;
      });
}

// writeSafetensors(file, [{name, dtype, shape, data: Buffer}], metadata?) -> Promise<void>, atomic.
Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string file = arg_string(info, 0, "file");
  if (info.Length() < 2 || !info[1].IsArray()) throw_coded(env, codes::kArgument, "tensors must be an array");
  auto list = info[1].As<Napi::Array>();
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Object o = list.Get(i).As<Napi::Object>();
    const std::string name = o.Get("name").ToString().Utf8Value();
    const at::ScalarType type =
        sync(env, [&] { return scalar_type_from_safetensors(o.Get("dtype").ToString().Utf8Value(), "tensor \"" + name + "\""); });
    std::vector<int64_t> shape;
    auto js_shape = o.Get("shape").As<Napi::Array>();
    int64_t numel = 1;
    for (uint32_t d = 0; d < js_shape.Length(); ++d) {
      shape.push_back(js_shape.Get(d).As<Napi::Number>().Int64Value());
      numel *= shape.back();
    }
    if (!o.Get("data").IsTypedArray()) throw_coded(env, codes::kArgument, "tensor \"" + name + "\": data must be a Buffer or typed array");
    auto bytes = o.Get("data").As<Napi::TypedArray>();
    const size_t n = bytes.ByteLength();
    if (n != static_cast<size_t>(numel) * c10::elementSize(type))
      throw_coded(env, codes::kShape, "tensor \"" + name + "\": " + std::to_string(n) + " bytes do not fill its shape");
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
    if (n) std::memcpy(t.data_ptr(), static_cast<uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset(), n);
    tensors.emplace_back(name, t);
  }
  std::map<std::string, std::string> metadata;
  if (info.Length() > 2 && info[2].IsObject()) {
    auto m = info[2].As<Napi::Object>();
    auto keys = m.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      auto k = keys.Get(i).ToString().Utf8Value();
      metadata[k] = m.Get(k).ToString().Utf8Value();
    }
  }
  return PromiseWorker::Run(env, [file, tensors, metadata] { write_safetensors(file, tensors, metadata); }, nullptr);
}

Napi::Value Runtime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const LibTorchInfo torch = libtorch_info();
  o.Set("torchVersion", torch.version);
  o.Set("cuda", torch.cuda_available);
  o.Set("gpus", double(torch.cuda_available ? at::getNumGPUs() : 0));  // --devices all, the devices bench
  o.Set("cudaBuild", torch.cuda_build);
  o.Set("cudaVersion", torch.cuda_version.empty() ? env.Null() : Napi::String::New(env, torch.cuda_version));
  o.Set("torchLibraryDir", torch.library_dir);
  o.Set("torchBuiltLibraryDir", torch.built_library_dir);
  o.Set("cxxStandard", double(torch.cxx_standard));
  o.Set("threads", double(at::get_num_threads()));
  Napi::Array types = Napi::Array::New(env);
  auto known = known_model_types();
  for (size_t i = 0; i < known.size(); ++i) types.Set(i, known[i]);
  o.Set("modelTypes", types);
  return o;
}

}  // namespace

// checkModelFile(dir, path, code): the core's rule for a model file (a regular file inside the model
// folder or its HF cache repo once symlinks are resolved), for the files TypeScript reads; its size.
Napi::Value CheckModelFile(const Napi::CallbackInfo& info) {
  const std::string dir = arg_string(info, 0, "dir"), path = arg_string(info, 1, "path"), code = arg_string(info, 2, "code");
  const size_t size = sync(info.Env(), [&] { return check_model_file(path, model_roots(dir), code.c_str()); });
  return Napi::Number::New(info.Env(), double(size));
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int64_t n = arg_int(info, 0, "threads");
  if (n <= 0) throw_coded(info.Env(), codes::kArgument, "threads must be positive");
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // LibTorch defaults to the physical core count, often 1 on small VMs; use every core unless the
  // user set OMP_NUM_THREADS.
  if (!std::getenv("OMP_NUM_THREADS")) at::set_num_threads(std::max(1u, std::thread::hardware_concurrency()));
  NativeModel::Register(env, exports);
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("checkModelFile", Napi::Function::New(env, CheckModelFile));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel));
  exports.Set("randomModel", Napi::Function::New(env, RandomModel));
  exports.Set("writeRandomCheckpoint", Napi::Function::New(env, WriteRandomCheckpoint));
  exports.Set("readSafetensors", Napi::Function::New(env, ReadSafetensors));
  exports.Set("writeSafetensors", Napi::Function::New(env, WriteSafetensors));
  exports.Set("runtime", Napi::Function::New(env, Runtime));
  return exports;
}

}  // namespace neuroprune::binding

static Napi::Object InitNeuroprune(Napi::Env env, Napi::Object exports) { return neuroprune::binding::Init(env, exports); }

NODE_API_MODULE(neuroprune, InitNeuroprune)
