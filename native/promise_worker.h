// An AsyncWorker whose result is a Promise. Execute() runs on the libuv pool; the subclass
// settles deferred_ in OnOK (with a value, or with the PendingError its Execute recorded).
// An exception from Execute (SetError) rejects the promise here.
#pragma once

#include <napi.h>

namespace cowlab {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  Napi::Promise Promise() { return deferred_.Promise(); }

  // Queues `w` and returns its promise; the worker deletes itself once it has settled it.
  static Napi::Value Start(PromiseWorker* w) {
    Napi::Promise p = w->Promise();
    w->Queue();
    return p;
  }

 protected:
  PromiseWorker(Napi::Env env, const char* resourceName)
      : Napi::AsyncWorker(env, resourceName), deferred_(Napi::Promise::Deferred::New(env)) {}

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;
};

}  // namespace cowlab
