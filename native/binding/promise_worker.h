// Runs a job on libuv's thread pool and settles a Promise; native errors become JS Errors with `code`.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "runtime.h"

namespace neuroprune::binding {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Job = std::function<void()>;                         // off the JS thread: no napi calls
  using Settle = std::function<Napi::Value(Napi::Env env)>;  // on the JS thread: builds the result

  static Napi::Promise Run(Napi::Env env, Job job, Settle settle) {
    auto* worker = new PromiseWorker(env, std::move(job), std::move(settle));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 private:
  PromiseWorker(Napi::Env env, Job job, Settle settle)
      : Napi::AsyncWorker(env, "neuroprune"), deferred_(Napi::Promise::Deferred::New(env)), job_(std::move(job)),
        settle_(std::move(settle)) {}

  void Execute() override {
    try {
      with_torch_errors([&] { job_(); });
    } catch (const Error& e) {
      code_ = e.code();
      SetError(e.what());
    }
  }

  void OnOK() override {
    try {
      deferred_.Resolve(settle_ ? settle_(Env()) : Env().Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("code", Napi::String::New(Env(), code_));
    deferred_.Reject(err.Value());
  }

  Napi::Promise::Deferred deferred_;
  Job job_;
  Settle settle_;
  std::string code_ = codes::kTorch;
};

// Throws a JS Error with a code, synchronously.
[[noreturn]] inline void throw_coded(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

}  // namespace neuroprune::binding
