// The live-children registry (see children.h) and its JS functions:
//   killAllChildren() -> number   SIGKILL every registered child (Ctrl-C in `cowlab run`)
//   liveChildren()    -> number[] pids of the registered children (a sampler watching the
//                                 child of a running probe; tests checking for leaks); process
//                                 groups are not listed
// An entry is a pid (> 0) or a process group (stored as -pgid, which is what kill() takes).
#include "children.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <mutex>

#include "addon.h"

namespace cowlab {
namespace children {
namespace {

constexpr int kSlots = 1024;

std::mutex lock;
pid_t slots[kSlots];  // 0: free; > 0: a pid; < 0: a process group (-pgid)
std::atomic<uint64_t> epoch{0};

// Both with the lock held.
bool Add(pid_t entry) {
  for (pid_t& s : slots) {
    if (s == 0) {
      s = entry;
      return true;
    }
  }
  return false;
}

void Remove(pid_t entry) {
  for (pid_t& s : slots) {
    if (s == entry) s = 0;
  }
}

}  // namespace

bool Register(pid_t pid) {
  std::lock_guard<std::mutex> g(lock);
  return pid > 0 && Add(pid);
}

void Unregister(pid_t pid) {
  std::lock_guard<std::mutex> g(lock);
  if (pid > 0) Remove(pid);
}

bool RegisterGroup(pid_t pgid) {
  std::lock_guard<std::mutex> g(lock);
  return pgid > 0 && Add(-pgid);
}

void UnregisterGroup(pid_t pgid) {
  std::lock_guard<std::mutex> g(lock);
  if (pgid > 0) Remove(-pgid);
}

pid_t ReapInGroup(pid_t pgid, pid_t pid, int* status) {
  std::lock_guard<std::mutex> g(lock);
  pid_t r = waitpid(pid, status, WNOHANG);
  int e = errno;
  // kill(-pgid, 0) finds zombies too: ESRCH only once no member is left at all.
  if (r == pid && pgid > 0 && kill(-pgid, 0) != 0 && errno == ESRCH) Remove(-pgid);
  errno = e;
  return r;
}

int KillAll() {
  std::lock_guard<std::mutex> g(lock);
  epoch.fetch_add(1);
  int n = 0;
  for (pid_t s : slots) {
    if (s != 0 && kill(s, SIGKILL) == 0) n++;  // s < 0: the whole group
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
