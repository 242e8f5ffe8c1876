// Pin probe: does a page pinned read-only by vmsplice(2) ever show a write the other process
// made after the pin? The cases of the kernel's own tools/testing/selftests/mm/cow.c (the
// class of bug behind CVE-2020-29374), on memory this probe maps itself, forking the Node
// process once. Runs on a libuv worker thread (a Promise in JS).
//
//   case 0  vmsplice in the child: fork; the child pins the (shared) page into a pipe and
//           unmaps it; the parent then writes 0xff over its page; the child reads the pipe.
//   case 1  vmsplice before fork: the parent pins its page, forks; the child writes 0xff
//           and exits; the parent unmaps its page and reads the pipe.
//   case 2  vmsplice after fork: as case 1, with the pin taken after the fork.
//
// Backings: a base page (MADV_NOHUGEPAGE), a PMD-mapped THP, a PTE-mapped THP (one subpage
// mprotected read-only and back, which splits the PMD mapping), and a MAP_SHARED page: the
// control, where the other process's write is meant to show (so a probe that could not see a
// leak would fail there). Every byte starts as 1.
//
// Results are raw: the bytes read back through the pipe (as many as vmsplice transferred: a
// pipe holds 64 KiB by default), and the pagemap entry of the region's last page after the
// first byte was touched (present: the kernel gave a huge page). src/probes/pins.ts decides.
// Failures reject with a CowlabError whose facts say which step failed (`step`, errno) or how
// the child ended (`waitStatus`), and the child's pid.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "children.h"
#include "errors.h"
#include "mapping.h"
#include "page.h"
#include "promise_worker.h"
#include "wait.h"

namespace cowlab {
namespace {

enum PinCase { kInChild = 0, kBeforeFork = 1, kAfterFork = 2 };
enum PinBacking { kBase = 0, kThp = 1, kThpPte = 2, kShared = 3 };

class PinProbe : public PromiseWorker {
 public:
  PinProbe(Napi::Env env, Napi::Object opts) : PromiseWorker(env, "cowlab.pinProbe") {
    const char* fn = "pinProbe";
    case_ = static_cast<int>(PropCount(env, opts, fn, "case", kAfterFork));
    backing_ = static_cast<int>(PropCount(env, opts, fn, "backing", kShared));
    deadlineMs_ = PropCount(env, opts, fn, "deadlineMs");
    size_ = backing_ == kBase || backing_ == kShared ? PageSize() : kHugePageBytes;
    // What the child reads from the pipe (case 0) comes back through shared memory.
    void* p = mmap(nullptr, size_ + 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw MakeSyscallError(env, "mmap", errno, "mapping the read-back buffer");
    readBack_ = static_cast<uint8_t*>(p);
    memset(readBack_, 0, size_ + 64);  // pre-touched: the child's first store must not fault
    *transferredInChild() = 0;
  }

  ~PinProbe() override {
    if (mem_ != nullptr) munmap(mem_, size_);
    if (readBack_ != nullptr) munmap(readBack_, size_ + 64);
  }

 protected:
  void Execute() override {
    if (!Prepare()) return;
    int comm[2][2] = {{-1, -1}, {-1, -1}};  // child ready, parent ready
    if (pipe2(data_, O_CLOEXEC) != 0 || pipe2(comm[0], O_CLOEXEC) != 0 || pipe2(comm[1], O_CLOEXEC) != 0) {
      Fail("pipe2", errno);
    } else {
      Run(comm);
    }
    for (int* fds : {data_, comm[0], comm[1]}) {
      for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0) close(fds[i]);
      }
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_.isSet()) {
      deferred_.Reject(error_.toJs(env).Value());
      return;
    }
    Napi::Object out = Napi::Object::New(env);
    const size_t n = static_cast<size_t>(transferred_);
    Napi::ArrayBuffer b = Napi::ArrayBuffer::New(env, n);
    if (n > 0) memcpy(b.Data(), readBack_, n);
    out.Set("bytes", b);
    out.Set("size", static_cast<double>(size_));
    out.Set("lastPageEntry", Napi::BigInt::New(env, lastPageEntry_));
    out.Set("childPid", static_cast<double>(childPid_));
    deferred_.Resolve(out);
  }

 private:
  // The region: mapped, advised, its first byte touched (the fault that may allocate a huge
  // page), the last page's pagemap entry read, every byte set to 1, and for a PTE-mapped THP
  // one subpage mprotected read-only and back.
  bool Prepare() {
    const size_t ps = PageSize();
    const bool huge = backing_ == kThp || backing_ == kThpPte;
    MapResult m = MapBacking(size_, backing_ == kShared ? kAnonShared : kAnonPrivate, huge ? kHugePageBytes : ps, "cowlab-pins");
    if (m.failed != MapStep::kNone) return Fail("mmap", m.err);
    mem_ = m.address;
    if (madvise(mem_, size_, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) return Fail("madvise", errno);
    mem_[0] = 1;
    uint64_t entry = 0;
    int r = child::ReadPagemap("/proc/self/pagemap", reinterpret_cast<uint64_t>(mem_ + size_ - ps), 1, ps, &entry);
    if (r < 0) return Fail("pread", -r);
    lastPageEntry_ = entry;
    memset(mem_, 1, size_);
    if (backing_ == kThpPte) {
      if (mprotect(mem_ + ps, ps, PROT_READ) != 0 || mprotect(mem_ + ps, ps, PROT_READ | PROT_WRITE) != 0) {
        return Fail("mprotect", errno);
      }
    }
    return true;
  }

  uint64_t* transferredInChild() { return reinterpret_cast<uint64_t*>(readBack_ + size_); }

  // vmsplice of the region into the data pipe (a read-only pin of its pages); bytes or -errno.
  ssize_t Pin() {
    struct iovec iov = {mem_, size_};
    ssize_t n = vmsplice(data_[1], &iov, 1, 0);
    return n < 0 ? -errno : n;
  }

  // Reads `n` bytes from the data pipe into the read-back buffer; 0 or an errno.
  int Drain(ssize_t n) {
    for (ssize_t got = 0; got < n;) {
      ssize_t r = read(data_[0], readBack_ + got, static_cast<size_t>(n - got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return r < 0 ? errno : EIO;
      got += r;
    }
    return 0;
  }

  void Run(int comm[2][2]) {
    if (case_ == kBeforeFork) {
      transferred_ = Pin();
      if (transferred_ < 0) return (void)Fail("vmsplice", static_cast<int>(-transferred_));
    }
    const pid_t self = getpid();
    pid_t pid = _Fork();  // no atfork handlers: the child runs none of Node's code
    if (pid == 0) ChildMain(self, comm);
    if (pid < 0) return (void)Fail("fork", errno);
    children::Register(pid);
    childPid_ = pid;
    deadline_ = child::NowNs() + deadlineMs_ * 1000000ULL;
    child::PretouchStack(64 * 1024);  // this thread's stack is COW-shared with the child now
    if (case_ == kAfterFork) {
      transferred_ = Pin();
      if (transferred_ < 0) {
        Fail("vmsplice", static_cast<int>(-transferred_));
        return Reap(true);
      }
    }
    char c = 0;
    if (wait::WaitByte(comm[0][0], deadline_, &c) != wait::kReady) return Reap(true, "waiting for the child");
    if (case_ == kInChild) {
      memset(mem_, 0xff, size_);  // the write the child's pin must not see
    } else {
      munmap(mem_, size_);  // the pipe's pin is all that is left of the parent's page
      mem_ = nullptr;
    }
    if (!child::WriteByte(comm[1][1], 'G')) return Reap(true, "talking to the child");
    Reap(false);
    if (error_.isSet()) return;
    if (case_ == kInChild) {
      transferred_ = static_cast<ssize_t>(*transferredInChild());
      return;
    }
    int e = Drain(transferred_);
    if (e != 0) Fail("read", e);
  }

  // ---- the child: async-signal-safe from here to _exit ----
  [[noreturn]] void ChildMain(pid_t parent, int comm[2][2]) {
    child::DieWithParent(parent);
    if (case_ == kInChild) {
      ssize_t n = Pin();
      if (n < 0) _exit(10);
      if (munmap(mem_, size_) != 0) _exit(11);
      *transferredInChild() = static_cast<uint64_t>(n);
      if (!child::WriteByte(comm[0][1], 'R') || child::ReadByte(comm[1][0]) != 'G') _exit(12);
      if (Drain(n) != 0) _exit(13);
      _exit(0);
    }
    if (!child::WriteByte(comm[0][1], 'R') || child::ReadByte(comm[1][0]) != 'G') _exit(12);
    memset(mem_, 0xff, size_);  // the write the parent's pin must not see
    _exit(0);
  }

  // Waits for the child (kills it first when `kill`, or at the deadline) and reaps it; a child
  // that did not exit 0 is an error with its wait status.
  void Reap(bool kill, const char* waiting = nullptr) {
    if (!kill && wait::WaitExited(childPid_, deadline_) == wait::kTimedOut) kill = true;
    children::Unregister(childPid_);
    if (kill) ::kill(childPid_, SIGKILL);
    int status = 0;
    while (waitpid(childPid_, &status, 0) < 0 && errno == EINTR) {
    }
    if (error_.isSet()) return;
    if (kill) {
      error_.set("ERR_CHILD_FAILED", "the pin probe's child was killed").with("cause", "killed").with("childPid", childPid_);
      if (waiting != nullptr) error_.with("waiting", waiting);
      return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      error_.set("ERR_CHILD_FAILED", "the pin probe's child failed").with("cause", "died").with("waitStatus", status).with("childPid", childPid_);
    }
  }

  bool Fail(const char* syscall, int err) {
    error_.setSyscall(syscall, err, "").with("cause", "step").with("step", syscall);
    return false;
  }

  int case_ = kAfterFork, backing_ = kBase;
  uint64_t deadlineMs_ = 0, deadline_ = 0;
  size_t size_ = 0;
  uint8_t* mem_ = nullptr;
  uint8_t* readBack_ = nullptr;  // size_ bytes, then the child's transferred count
  int data_[2] = {-1, -1};
  ssize_t transferred_ = 0;
  uint64_t lastPageEntry_ = 0;
  pid_t childPid_ = -1;
  PendingError error_;
};

// pinProbe({ case, backing, deadlineMs }) -> Promise<{ bytes, size, lastPageEntry, childPid }>;
// see src/probes/pins.ts for the typed contract.
Napi::Value StartPinProbe(const Napi::CallbackInfo& info) {
  Napi::Object opts = ArgObject(info, 0, "pinProbe", "options");
  return PromiseWorker::Start(new PinProbe(info.Env(), opts));
}

}  // namespace

void InitPinProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("pinProbe", Napi::Function::New(env, StartPinProbe, "pinProbe"));
}

}  // namespace cowlab
