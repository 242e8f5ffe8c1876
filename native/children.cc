// The live-children registry (see children.h) and its JS functions:
//   killAllChildren() -> number   SIGKILL every registered child (Ctrl-C in `cowlab run`)
//   liveChildren()    -> number[] pids of the registered children (a sampler watching the
//                                 child of a running probe; tests checking for leaks)
#include "children.h"

#include <signal.h>

#include <atomic>
#include <mutex>

#include "addon.h"

namespace cowlab {
namespace children {
namespace {

constexpr int kSlots = 1024;

std::mutex lock;
pid_t slots[kSlots];  // 0: free
std::atomic<uint64_t> epoch{0};

}  // namespace

bool Register(pid_t pid) {
  std::lock_guard<std::mutex> g(lock);
  for (pid_t& s : slots) {
    if (s == 0) {
      s = pid;
      return true;
    }
  }
  return false;
}

void Unregister(pid_t pid) {
  std::lock_guard<std::mutex> g(lock);
  for (pid_t& s : slots) {
    if (s == pid) s = 0;
  }
}

int KillAll() {
  std::lock_guard<std::mutex> g(lock);
  epoch.fetch_add(1);
  int n = 0;
  for (pid_t s : slots) {
    if (s > 0 && kill(s, SIGKILL) == 0) n++;
  }
  return n;
}

uint64_t KillEpoch() { return epoch.load(); }

}  // namespace children

namespace {

Napi::Value KillAllChildren(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), children::KillAll());
}

Napi::Value LiveChildren(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t copy[children::kSlots];
  int n = 0;
  {
    std::lock_guard<std::mutex> g(children::lock);
    for (pid_t s : children::slots) {
      if (s > 0) copy[n++] = s;
    }
  }
  Napi::Array out = Napi::Array::New(env, n);
  for (int i = 0; i < n; i++) out.Set(i, Napi::Number::New(env, copy[i]));
  return out;
}

}  // namespace

void InitChildren(Napi::Env env, Napi::Object exports) {
  exports.Set("killAllChildren", Napi::Function::New(env, KillAllChildren, "killAllChildren"));
  exports.Set("liveChildren", Napi::Function::New(env, LiveChildren, "liveChildren"));
}

}  // namespace cowlab
