// Spawn probe: how long the parent spends creating a process that runs a trivial program, by
// three mechanisms. Runs on a libuv worker thread (a Promise in JS).
//
//   kind 0  fork():       _Fork(), the child execs the program. Timed: the fork call in the
//                         parent (copying the page tables is the cost that grows with memory).
//   kind 1  vfork()+exec: the parent is suspended until the child has exec'd. Timed: vfork
//                         until it returns in the parent (includes the exec).
//   kind 2  posix_spawn:  glibc's clone(CLONE_VM|CLONE_VFORK) + exec. Timed: the call.
//   kind 3  fork, store:  _Fork(); the child first reads `readBytes` bytes from `readFd` (an
//                         fd it inherited: the read moves the offset of the open file
//                         description it shares with the parent), then stores one 8-byte
//                         value at each listed address of its copy of Node's memory and exits
//                         0 (no exec): whether a fork reaches a mapping (a MADV_DONTFORK one is
//                         absent: SIGSEGV), and what it shares (memory copied, files not).
//
// Scheduling (kinds 0-2, `realtime`): the calling thread runs the call at SCHED_FIFO with
// SCHED_RESET_ON_FORK (its children start as normal tasks), restored once the call returned.
// Why: a vfork-style parent is woken by the exec onto the child's CPU, and a normal task does
// not preempt the child there, so the call returns only when the program itself has exited:
// 110 us or 550 us for /bin/true, at random, on an otherwise idle 2-CPU VM. At real-time
// priority the woken parent runs at once, and the time is the call's own.
//
// Every kind also reports the time until the child was reaped. The child is registered in
// the live-children registry (children.h) while it lives, waited for with a deadline, and
// reaped on every path. A child exiting non-zero (exec failed) is an error.
//
// Dying with Node: the fork and vfork children call child::DieWithParent before execve (the
// parent-death signal survives the exec), so a killed Node leaves no program running. For
// vfork those two syscalls fall inside the timed window: well under a microsecond against an
// exec's hundreds. posix_spawn offers
// no such attribute: its child outlives a killed Node until its program exits (the probe runs
// programs that exit at once, and a live Node kills it at the deadline).
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "children.h"
#include "errors.h"
#include "promise_worker.h"
#include "wait.h"

extern char** environ;

namespace cowlab {
namespace {

enum SpawnKind { kFork = 0, kVfork = 1, kPosixSpawn = 2, kForkStore = 3 };
const char* const kKindNames[] = {"fork", "vfork", "posix_spawn", "fork-store"};

class SpawnProbe : public PromiseWorker {
 public:
  SpawnProbe(Napi::Env env, Napi::Object opts)
      : PromiseWorker(env, "cowlab.spawnProbe") {
    const char* fn = "spawnProbe";
    kind_ = static_cast<int>(PropCount(env, opts, fn, "kind", kForkStore));
    deadlineMs_ = PropCount(env, opts, fn, "deadlineMs");
    if (kind_ == kForkStore) {
      Napi::Value a = opts.Get("addresses");
      if (!a.IsTypedArray() || a.As<Napi::TypedArray>().TypedArrayType() != napi_biguint64_array) {
        ThrowBadArg(env, fn, "addresses", "a BigUint64Array");
      }
      Napi::TypedArray t = a.As<Napi::TypedArray>();
      const uint64_t* v = reinterpret_cast<const uint64_t*>(static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset());
      stores_.assign(v, v + t.ElementLength());
      tag_ = PropAddress(env, opts, fn, "value");
      Napi::Value fd = opts.Get("readFd");
      readFd_ = fd.IsUndefined() ? -1 : static_cast<int>(PropCount(env, opts, fn, "readFd", 1 << 20));
      readBytes_ = readFd_ < 0 ? 0 : PropCount(env, opts, fn, "readBytes", sizeof readBuf_);
      path_ = "(no program: it stores and exits)";
      return;
    }
    Napi::Value rt = opts.Get("realtime");
    if (!rt.IsUndefined() && !rt.IsBoolean()) ThrowBadArg(env, fn, "realtime", "a boolean");
    realtime_ = rt.IsBoolean() && rt.As<Napi::Boolean>().Value();
    Napi::Value path = opts.Get("path");
    if (!path.IsString()) ThrowBadArg(env, fn, "path", "a string");
    args_.push_back(path.As<Napi::String>().Utf8Value());
    Napi::Value args = opts.Get("args");
    if (!args.IsUndefined()) {
      if (!args.IsArray()) ThrowBadArg(env, fn, "args", "an array of strings");
      Napi::Array a = args.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        Napi::Value v = a.Get(i);
        if (!v.IsString()) ThrowBadArg(env, fn, "args", "an array of strings");
        args_.push_back(v.As<Napi::String>().Utf8Value());
      }
    }
    path_ = args_[0];
    // argv is built here, before any fork: the child only calls execve with it.
    for (std::string& s : args_) argv_.push_back(&s[0]);
    argv_.push_back(nullptr);
  }


 protected:
  void Execute() override {
    pid_t pid = -1;
    const pid_t self = getpid();
    // This thread's policy, to restore: sched_* with pid 0 act on the calling thread.
    const int oldPolicy = sched_getscheduler(0);
    sched_param oldParam{};
    sched_getparam(0, &oldParam);
    if (realtime_) {
      sched_param rt{};
      rt.sched_priority = 1;
      if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &rt) != 0) {
        error_.setSyscall("sched_setscheduler", errno, "raising the calling thread to SCHED_FIFO for the timed call");
        return;
      }
    }
    uint64_t t0 = child::NowNs();
    if (kind_ == kForkStore) {
      pid = _Fork();
      if (pid == 0) {
        child::DieWithParent(self);
        for (size_t got = 0; got < readBytes_;) {
          ssize_t r = read(readFd_, readBuf_ + got, readBytes_ - got);
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) _exit(3);
          got += static_cast<size_t>(r);
        }
        for (uint64_t a : stores_) *reinterpret_cast<volatile uint64_t*>(a) = tag_;
        _exit(0);
      }
    } else if (kind_ == kFork) {
      pid = _Fork();
      if (pid == 0) {
        child::DieWithParent(self);
        execve(argv_[0], argv_.data(), environ);
        _exit(127);
      }
    } else if (kind_ == kVfork) {
      pid = vfork();
      if (pid == 0) {
        child::DieWithParent(self);  // the child's own task state only: fine while sharing memory
        execve(argv_[0], argv_.data(), environ);
        _exit(127);
      }
    } else {
      int err = posix_spawn(&pid, argv_[0], nullptr, nullptr, argv_.data(), environ);
      if (err != 0) {
        errno = err;
        pid = -1;
      }
    }
    uint64_t t1 = child::NowNs();
    if (realtime_) sched_setscheduler(0, oldPolicy, &oldParam);  // the wait below is not timed
    if (pid < 0) {
      error_.setSyscall(kKindNames[kind_], errno, std::string("starting ") + path_);
      return;
    }
    children::Register(pid);
    callNs_ = t1 - t0;
    int status = 0;
    if (!WaitExit(pid, t1 + deadlineMs_ * 1000000ULL)) {
      children::Unregister(pid);
      kill(pid, SIGKILL);
      Reap(pid, &status);
      error_.set("ERR_CHILD_DEADLINE", std::string("the ") + kKindNames[kind_] + " child running " + path_ +
                                           " did not exit within " + std::to_string(deadlineMs_) +
                                           " ms and was killed");
      return;
    }
    children::Unregister(pid);
    Reap(pid, &status);
    totalNs_ = child::NowNs() - t0;
    // The raw wait status as a fact: src/probes/spawn.ts says how the child ended.
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      error_
          .set("ERR_CHILD_FAILED", std::string("the ") + kKindNames[kind_] + " child running " + path_ + " did not exit with status 0")
          .with("status", static_cast<double>(status));
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_.isSet()) {
      deferred_.Reject(error_.toJs(env).Value());
      return;
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("callNs", static_cast<double>(callNs_));
    out.Set("totalNs", static_cast<double>(totalNs_));
    deferred_.Resolve(out);
  }


 private:
  // Waits until the child exits or the deadline passes (true: exited, not reaped).
  static bool WaitExit(pid_t pid, uint64_t deadline) {
    wait::Result w = wait::WaitExited(pid, deadline);
    return w != wait::kTimedOut;  // kFailed: no pidfd (Linux < 5.3): the caller's waitpid blocks instead
  }

  static void Reap(pid_t pid, int* status) {
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
  }

  int kind_ = kFork;
  bool realtime_ = false;  // the call at SCHED_FIFO (see the top of this file)
  uint64_t deadlineMs_ = 0;
  std::string path_;
  std::vector<std::string> args_;  // argv[0] is the path
  std::vector<char*> argv_;
  std::vector<uint64_t> stores_;  // fork-store: the addresses the child stores to
  uint64_t tag_ = 0;              // fork-store: the value it stores
  int readFd_ = -1;               // fork-store: the fd it reads from first (-1: none)
  uint64_t readBytes_ = 0;
  char readBuf_[4096] = {};       // part of the probe: the child's reads land in its own copy
  uint64_t callNs_ = 0, totalNs_ = 0;
  PendingError error_;
};

// spawnProbe({ kind, path, args?, deadlineMs }) -> Promise<{ callNs, totalNs }>
// spawnProbe({ kind: 3, addresses: BigUint64Array, value: bigint, deadlineMs }) -> the same
Napi::Value StartSpawnProbe(const Napi::CallbackInfo& info) {
  Napi::Object opts = ArgObject(info, 0, "spawnProbe", "options");
  return PromiseWorker::Start(new SpawnProbe(info.Env(), opts));
}

}  // namespace

void InitSpawnProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("spawnProbe", Napi::Function::New(env, StartSpawnProbe, "spawnProbe"));
}

}  // namespace cowlab
