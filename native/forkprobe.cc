// Fork probe: fork the Node process once and time, page by page, the stores that make the
// kernel copy (or reuse) shared pages. Runs on a libuv worker thread (a Promise in JS).
//
// Protocol (two pipes; every wait in the parent has a deadline):
//
//   parent                                   child (async-signal-safe code only)
//   ------                                   -----
//   fork() timed
//   pagemap -> P.afterFork                   pagemap -> C.afterFork
//                     <------ 'R' ---------
//   ------ 'G' ------>
//                                            [child writes: vmstat, rusage, timed stores]
//                     <------ 'W' ---------  pagemap -> C.afterChildWrites
//   pagemap -> P.afterChildWrites
//   [parent writes while the child lives]
//   ------ 'F' ------>                       pagemap -> C.end, hold, _exit(0)
//   wait for exit (pidfd)
//   [parent writes after the child exited]
//   pagemap -> P.end
//
// The child reports into a MAP_SHARED mapping the parent pre-touched; the parent keeps its
// own results in a MADV_DONTFORK mapping so its writes after the fork are not COW faults.
//
// Options beyond plain timed stores:
//   childAccess 1   the child does not store: the kernel writes each page with pread(2) from
//                   a memfd prepared before the fork (the "copyout" case: COW broken inside
//                   the kernel). Values and readback are the same as for stores.
//   parentPaceNs    the parent's stores are paced, one per interval, with a start timestamp
//                   each (a writer at a set rate while the child holds its snapshot).
// The child is in the live-children registry (children.h) from fork to reaping; a paced
// writer stops early with ERR_INTERRUPTED when killAllChildren() runs meanwhile. The child
// dies with the Node process (child::DieWithParent): killing Node alone leaves no orphan.
//
// Results are raw: latencies, fault counts, /proc/vmstat text, pagemap entries as read.
// Failures reject with a CowlabError whose `facts` say what happened (src/forkwrite/probe.ts
// words them): cause "step" (the child reported a failed `step`, errno in errno), "died"
// (waitStatus), "deadline" (deadlineMs) or "interrupted" (done of total stores), with childPid
// and the parent's `stage` ("child-pagemap", "child-writes", "child-exit"; absent: finishing).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "children.h"
#include "errors.h"
#include "page.h"
#include "promise_worker.h"
#include "wait.h"

namespace cowlab {
namespace {

constexpr size_t kVmstatCap = 16384;
constexpr size_t kStackTouch = 128 * 1024;

enum ParentWhen { kParentNone = 0, kParentWhileChildAlive = 1, kParentAfterChildExit = 2 };

enum ChildAccess { kAccessStore = 0, kAccessRead = 1 };

// Steps a child can fail at; their names go into the failure's facts.
enum ChildStep { kStepNone = -1, kStepPagemapAfterFork = 0, kStepVmstat, kStepPagemapAfterWrites,
                 kStepPagemapEnd, kStepRead, kStepProtocol };
const char* const kChildStepNames[] = {"pagemap-after-fork", "vmstat", "pagemap-after-writes",
                                       "pagemap-end", "read", "protocol"};

// Written by the child only, read by the parent after the child is gone.
struct ChildReport {
  uint64_t minfltBefore, minfltAfter, majfltBefore, majfltAfter;
  uint64_t timerOverheadNs;
  int64_t vmstatBeforeLen, vmstatAfterLen;
  int32_t failedStep;
  int32_t failedErrno;
};

// A mapping carved into arrays, pre-touched before the fork.
class Arena {
 public:
  ~Arena() {
    if (base_ != nullptr) munmap(base_, size_);
  }
  // shared: MAP_SHARED (the child writes, the parent reads). Otherwise private and
  // MADV_DONTFORK: absent in the child, so the parent's stores never take a COW fault.
  int Map(size_t bytes, bool shared) {
    size_ = RoundUp(bytes == 0 ? 1 : bytes, PageSize());
    int flags = MAP_ANONYMOUS | (shared ? MAP_SHARED : MAP_PRIVATE);
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED) return errno;
    base_ = static_cast<uint8_t*>(p);
    if (!shared && madvise(p, size_, MADV_DONTFORK) != 0) return errno;
    memset(p, 0, size_);
    return 0;
  }
  template <typename T>
  T* Take(size_t count) {
    used_ = RoundUp(used_, 64);
    T* p = reinterpret_cast<T*>(base_ + used_);
    used_ += count * sizeof(T);
    return p;
  }
  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  // Bytes needed for a list of (count, elementSize) arrays taken in order.
  static size_t Need(std::initializer_list<size_t> bytes) {
    size_t total = 0;
    for (size_t b : bytes) total = RoundUp(total, 64) + b;
    return total + 64;
  }

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  size_t used_ = 0;
};

struct SideBuffers {
  uint32_t* order = nullptr;
  uint64_t* latNs = nullptr;
  uint64_t* startNs = nullptr;  // paced parent only
  uint64_t* readback = nullptr;
  uint64_t* pmAfterFork = nullptr;
  uint64_t* pmAfterChildWrites = nullptr;
  uint64_t* pmEnd = nullptr;
  char* vmstatBefore = nullptr;
  char* vmstatAfter = nullptr;
  int64_t vmstatBeforeLen = 0, vmstatAfterLen = 0;
  uint64_t minfltBefore = 0, minfltAfter = 0, majfltBefore = 0, majfltAfter = 0;
};

class ForkProbe : public PromiseWorker {
 public:
  ForkProbe(Napi::Env env, Napi::Object opts)
      : PromiseWorker(env, "cowlab.forkProbe") {
    const char* fn = "forkProbe";
    base_ = reinterpret_cast<uint8_t*>(PropAddress(env, opts, fn, "address"));
    pages_ = PropCount(env, opts, fn, "pages", 1ULL << 32);
    Napi::Uint32Array childOrder = PropU32Array(env, opts, fn, "childOrder");
    Napi::Uint32Array parentOrder = PropU32Array(env, opts, fn, "parentOrder");
    parentWhen_ = static_cast<int>(PropCount(env, opts, fn, "parentWhen", 2));
    childTag_ = PropAddress(env, opts, fn, "childTag");
    parentTag_ = PropAddress(env, opts, fn, "parentTag");
    deadlineMs_ = PropCount(env, opts, fn, "deadlineMs");
    holdMs_ = PropCount(env, opts, fn, "holdMs");
    Napi::Value kpc = opts.Get("kpagecount");
    if (kpc.IsObject()) {
      Napi::Object layout = kpc.As<Napi::Object>();
      kpagecount_ = true;
      pfnMask_ = PropAddress(env, layout, fn, "pfnMask");
      presentMask_ = PropAddress(env, layout, fn, "presentMask");
    } else if (!kpc.IsNull()) {
      ThrowBadArg(env, fn, "kpagecount", "null or { pfnMask, presentMask }");
    }
    childAccess_ = static_cast<int>(PropCount(env, opts, fn, "childAccess", kAccessRead));
    parentPaceNs_ = PropCount(env, opts, fn, "parentPaceNs");
    childN_ = childOrder.ElementLength();
    parentN_ = parentOrder.ElementLength();
    if (parentN_ > 0 && parentWhen_ == kParentNone) ThrowBadArg(env, fn, "parentWhen", "set when parentOrder is not empty");
    for (size_t i = 0; i < childN_; i++) {
      if (childOrder[i] >= pages_) ThrowBadArg(env, fn, "childOrder", "page indices below pages");
    }
    for (size_t i = 0; i < parentN_; i++) {
      if (parentOrder[i] >= pages_) ThrowBadArg(env, fn, "parentOrder", "page indices below pages");
    }
    // Buffers are prepared here, on the JS thread, before anything is forked.
    const size_t P = pages_ * 8;
    int err = shared_.Map(Arena::Need({sizeof(ChildReport), childN_ * 4, childN_ * 8, childN_ * 8,
                                       P, P, P, kVmstatCap, kVmstatCap}), true);
    if (err != 0) throw MakeSyscallError(env, "mmap", err, "mapping the child's report buffer");
    err = own_.Map(Arena::Need({parentN_ * 4, parentN_ * 8, parentN_ * 8, P, P, P, kVmstatCap, kVmstatCap, P}), false);
    if (err != 0) throw MakeSyscallError(env, "mmap", err, "mapping the parent's result buffer");
    report_ = shared_.Take<ChildReport>(1);
    report_->failedStep = kStepNone;
    Carve(shared_, &child_, childN_, true);
    Carve(own_, &parent_, parentN_, false);
    kpcAfterFork_ = own_.Take<uint64_t>(pages_);
    memcpy(child_.order, childOrder.Data(), childN_ * 4);
    memcpy(parent_.order, parentOrder.Data(), parentN_ * 4);
    if (childAccess_ == kAccessRead && childN_ > 0) PrepareReadSource(env);
  }

  ~ForkProbe() override {
    if (readFd_ >= 0) close(readFd_);
  }


 protected:
  void Execute() override {
    epoch_ = children::KillEpoch();
    if (pipe2(toChild_, O_CLOEXEC) != 0 || pipe2(fromChild_, O_CLOEXEC) != 0) {
      error_.setSyscall("pipe2", errno, "creating the pipes to the forked child");
      CloseAll();
      return;
    }
    parentPid_ = getpid();
    uint64_t t0 = child::NowNs();
    pid_t pid = _Fork();  // fork without atfork handlers: the child runs none of Node's code
    uint64_t t1 = child::NowNs();
    if (pid == 0) ChildMain();
    if (pid < 0) {
      error_.setSyscall("fork", errno, "forking the Node process");
      CloseAll();
      return;
    }
    pid_ = pid;
    children::Register(pid);
    forkNs_ = t1 - t0;
    forkedAtNs_ = t1;
    deadline_ = t1 + deadlineMs_ * 1000000ULL;
    close(toChild_[0]);
    close(fromChild_[1]);
    toChild_[0] = fromChild_[1] = -1;
    child::PretouchStack(kStackTouch);
    RunParent();
    CloseAll();
    if (pid_ > 0) KillAndReap();  // every path reaps the child: no zombies, ever
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_.isSet()) {
      deferred_.Reject(error_.toJs(env).Value());
      return;
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("forkNs", static_cast<double>(forkNs_));
    out.Set("forkedAtNs", static_cast<double>(forkedAtNs_));
    out.Set("childPid", static_cast<double>(childPid_));
    out.Set("child", Side(env, child_, childN_, true));
    out.Set("parent", Side(env, parent_, parentN_, false));
    out.Set("timerOverheadNs", static_cast<double>(report_->timerOverheadNs));
    if (kpagecount_) {
      Napi::Float64Array kpc = Napi::Float64Array::New(env, pages_);
      for (size_t i = 0; i < pages_; i++) kpc[i] = static_cast<double>(kpcAfterFork_[i]);
      out.Set("kpagecountAfterFork", kpc);
    } else {
      out.Set("kpagecountAfterFork", env.Null());
    }
    deferred_.Resolve(out);
  }


 private:
  // The values the child's pread(2)s deliver, in a memfd: entry i is what a store to
  // order[i] would have written.
  void PrepareReadSource(Napi::Env env) {
    readFd_ = memfd_create("cowlab-copyout", MFD_CLOEXEC);
    if (readFd_ < 0) throw MakeSyscallError(env, "memfd_create", errno, "creating the copyout source");
    for (size_t i = 0; i < childN_; i++) {
      uint64_t v = childTag_ + child_.order[i];
      if (pwrite(readFd_, &v, 8, static_cast<off_t>(i * 8)) != 8) {
        throw MakeSyscallError(env, "pwrite", errno, "filling the copyout source");
      }
    }
  }

  void Carve(Arena& a, SideBuffers* s, size_t n, bool isChild) {
    s->order = a.Take<uint32_t>(n);
    s->latNs = a.Take<uint64_t>(n);
    if (!isChild) s->startNs = a.Take<uint64_t>(n);
    if (isChild) s->readback = a.Take<uint64_t>(n);
    s->pmAfterFork = a.Take<uint64_t>(pages_);
    s->pmAfterChildWrites = a.Take<uint64_t>(pages_);
    s->pmEnd = a.Take<uint64_t>(pages_);
    s->vmstatBefore = a.Take<char>(kVmstatCap);
    s->vmstatAfter = a.Take<char>(kVmstatCap);
  }

  // ---- the child: async-signal-safe from here to _exit ----

  [[noreturn]] void ChildFail(ChildStep step, int err) {
    report_->failedStep = step;
    report_->failedErrno = err;
    child::WriteByte(fromChild_[1], 'X');
    _exit(3);
  }

  [[noreturn]] void ChildMain() {
    child::DieWithParent(parentPid_);  // killed Node: no orphan living out its hold
    child::PretouchStack(kStackTouch);
    child::PretouchWrite(shared_.base(), shared_.size(), PageSize());
    WarmUpCodePaths();
    report_->timerOverheadNs = child::TimerOverheadNs();
    int r = child::ReadPagemap("/proc/self/pagemap", Addr(), pages_, PageSize(), child_.pmAfterFork);
    if (r < 0) ChildFail(kStepPagemapAfterFork, -r);
    if (!child::WriteByte(fromChild_[1], 'R') || child::ReadByte(toChild_[0]) != 'G') _exit(4);
    if (childN_ > 0) {
      int readErr = TimedWrites(&child_, childN_, childTag_, RUSAGE_SELF);
      if (readErr != 0) ChildFail(kStepRead, readErr);
      if (child_.vmstatBeforeLen < 0) ChildFail(kStepVmstat, static_cast<int>(-child_.vmstatBeforeLen));
      for (size_t i = 0; i < childN_; i++) {
        child_.readback[i] = *reinterpret_cast<volatile uint64_t*>(base_ + child_.order[i] * PageSize());
      }
    }
    r = child::ReadPagemap("/proc/self/pagemap", Addr(), pages_, PageSize(), child_.pmAfterChildWrites);
    if (r < 0) ChildFail(kStepPagemapAfterWrites, -r);
    if (!child::WriteByte(fromChild_[1], 'W') || child::ReadByte(toChild_[0]) != 'F') _exit(4);
    r = child::ReadPagemap("/proc/self/pagemap", Addr(), pages_, PageSize(), child_.pmEnd);
    if (r < 0) ChildFail(kStepPagemapEnd, -r);
    if (holdMs_ > 0) child::SleepMs(holdMs_);
    _exit(0);
  }

  // Fork does not copy the page tables of file mappings without anonymous pages, so the
  // child's first run through the timing code and the vDSO takes minor faults. One pass over
  // a scratch buffer on the (already pre-touched) stack takes them before anything is timed.
  __attribute__((noinline)) void WarmUpCodePaths() {
    alignas(64) uint8_t scratch[4 * 4096 + 8];
    uint32_t order[4] = {0, 1, 2, 3};
    uint64_t lat[4];
    uint64_t a, b;
    child::TimedStores(scratch, 4096, order, 4, 0, lat);
    if (childAccess_ == kAccessRead && childN_ > 0) child::TimedReads(readFd_, scratch, 4096, order, 1, lat);
    child::Faults(RUSAGE_SELF, &a, &b);
    __asm__ volatile("" : : "r"(scratch), "r"(lat) : "memory");
  }

  // vmstat and fault counts around the timed accesses; shared by child and parent. The child
  // stores or (childAccess read) preads; the parent stores, paced when parentPaceNs is set.
  // Returns 0, or the errno of a failed child read.
  int TimedWrites(SideBuffers* s, size_t n, uint64_t tag, int rusageWho) {
    const bool isChild = rusageWho == RUSAGE_SELF;
    int err = 0;
    s->vmstatBeforeLen = child::ReadFileInto("/proc/vmstat", s->vmstatBefore, kVmstatCap);
    child::Faults(rusageWho, &s->minfltBefore, &s->majfltBefore);
    if (isChild && childAccess_ == kAccessRead) {
      err = child::TimedReads(readFd_, base_, PageSize(), s->order, n, s->latNs);
    } else if (!isChild && parentPaceNs_ > 0) {
      const uint64_t epoch = epoch_;
      parentDone_ = child::PacedStores(base_, PageSize(), s->order, n, tag, child::NowNs(), parentPaceNs_,
                                       s->latNs, s->startNs, [epoch] { return children::KillEpoch() != epoch; });
    } else {
      child::TimedStores(base_, PageSize(), s->order, n, tag, s->latNs);
    }
    child::Faults(rusageWho, &s->minfltAfter, &s->majfltAfter);
    s->vmstatAfterLen = child::ReadFileInto("/proc/vmstat", s->vmstatAfter, kVmstatCap);
    if (rusageWho == RUSAGE_SELF) {
      report_->minfltBefore = s->minfltBefore;
      report_->minfltAfter = s->minfltAfter;
      report_->majfltBefore = s->majfltBefore;
      report_->majfltAfter = s->majfltAfter;
      report_->vmstatBeforeLen = s->vmstatBeforeLen;
      report_->vmstatAfterLen = s->vmstatAfterLen;
    }
    return err;
  }

  // ---- the parent (worker thread) ----

  void RunParent() {
    if (!ReadOwnPagemap(parent_.pmAfterFork)) return;
    if (kpagecount_ && !ReadKpagecount()) return;
    stage_ = "child-pagemap";  // waiting for the child to read its pagemap
    if (!Expect('R')) return;
    if (!child::WriteByte(toChild_[1], 'G')) return ChildGone();
    stage_ = "child-writes";  // waiting for the child's writes
    if (!Expect('W')) return;
    if (!ReadOwnPagemap(parent_.pmAfterChildWrites)) return;
    if (parentWhen_ == kParentWhileChildAlive && !ParentWrites()) return;
    if (!child::WriteByte(toChild_[1], 'F')) return ChildGone();
    stage_ = "child-exit";  // waiting for the child to exit
    if (!WaitExit()) return;
    if (parentWhen_ == kParentAfterChildExit && !ParentWrites()) return;
    if (!ReadOwnPagemap(parent_.pmEnd)) return;
    // The child's report is complete now; copy what it measured into its side's view.
    child_.minfltBefore = report_->minfltBefore;
    child_.minfltAfter = report_->minfltAfter;
    child_.majfltBefore = report_->majfltBefore;
    child_.majfltAfter = report_->majfltAfter;
    child_.vmstatBeforeLen = report_->vmstatBeforeLen;
    child_.vmstatAfterLen = report_->vmstatAfterLen;
    stage_ = nullptr;
  }

  bool ParentWrites() {
    if (parentN_ == 0) return true;
    parentDone_ = parentN_;
    TimedWrites(&parent_, parentN_, parentTag_, RUSAGE_THREAD);
    if (parentDone_ < parentN_) {
      error_.set("ERR_INTERRUPTED", "the paced writer was interrupted")
          .with("cause", "interrupted")
          .with("done", static_cast<double>(parentDone_))
          .with("total", static_cast<double>(parentN_));
      return false;
    }
    return true;
  }

  // /proc/kpagecount of every present page right after the fork, while both processes map
  // it (root only). One pread per page: PFNs of 4 KiB pages are rarely contiguous. It has to
  // happen here, between the fork and the child's writes, so the frame of each entry is found
  // with the layout TypeScript passed (src/pagemap/pagemap.ts decodes pagemap entries):
  // present when `entry & presentMask`, frame `entry & pfnMask`.
  bool ReadKpagecount() {
    int fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error_.setSyscall("open", errno, "opening /proc/kpagecount (root only)");
      return false;
    }
    for (uint64_t i = 0; i < pages_; i++) {
      uint64_t e = parent_.pmAfterFork[i];
      uint64_t pfn = e & pfnMask_;
      kpcAfterFork_[i] = 0;
      if ((e & presentMask_) == 0 || pfn == 0) continue;
      if (child::PreadFull(fd, &kpcAfterFork_[i], 8, static_cast<off_t>(pfn * 8)) != 8) {
        error_.setSyscall("pread", errno, "reading /proc/kpagecount");
        close(fd);
        return false;
      }
    }
    close(fd);
    return true;
  }

  bool ReadOwnPagemap(uint64_t* out) {
    int r = child::ReadPagemap("/proc/self/pagemap", Addr(), pages_, PageSize(), out);
    if (r < 0) error_.setSyscall("pread", -r, "reading /proc/self/pagemap in the parent");
    return r >= 0;
  }

  // Waits for one byte from the child until the deadline.
  bool Expect(char want) {
    char c = 0;
    wait::Result w = wait::WaitByte(fromChild_[0], deadline_, &c);
    if (w == wait::kTimedOut) return Timeout();
    if (w == wait::kFailed) {
      error_.setSyscall("poll", errno, "waiting for the forked child");
      return false;
    }
    if (w == wait::kReady && c == want) return true;
    ChildGone();
    return false;
  }

  bool WaitExit() {
    wait::Result w = wait::WaitExited(pid_, deadline_);
    if (w == wait::kTimedOut) return Timeout();
    if (w == wait::kFailed) {
      error_.setSyscall("pidfd_open", errno, "watching the forked child");
      return false;
    }
    int status = 0;
    children::Unregister(pid_);
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    childPid_ = pid_;
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return Died(status);
    return true;
  }

  // The child closed its pipe or said 'X': reap it and say what went wrong.
  void ChildGone() {
    int status = 0;
    children::Unregister(pid_);
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    childPid_ = pid_;
    pid_ = -1;
    Died(status);
  }

  // The child failed a step it reports, or ended otherwise: its wait status.
  bool Died(int status) {
    if (report_->failedStep >= 0 && report_->failedStep <= kStepProtocol) {
      error_.setSyscall("child", report_->failedErrno, "", "ERR_CHILD_FAILED")
          .with("cause", "step")
          .with("step", kChildStepNames[report_->failedStep]);
    } else {
      error_.set("ERR_CHILD_FAILED", "the forked child ended early").with("cause", "died").with("waitStatus", status);
    }
    return WithWhere();
  }

  bool Timeout() {
    KillAndReap();  // childPid_ names the child from here on
    error_.set("ERR_CHILD_DEADLINE", "the forked child did not finish in time and was killed")
        .with("cause", "deadline")
        .with("deadlineMs", static_cast<double>(deadlineMs_));
    return WithWhere();
  }

  // Every failure of the child says which child and what the parent was waiting for.
  bool WithWhere() {
    error_.with("childPid", childPid_);
    if (stage_ != nullptr) error_.with("stage", stage_);
    return false;
  }

  void KillAndReap() {
    children::Unregister(pid_);
    kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    childPid_ = pid_;
    pid_ = -1;
  }

  void CloseAll() {
    for (int* fd : {&toChild_[0], &toChild_[1], &fromChild_[0], &fromChild_[1]}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
  }

  uint64_t Addr() const { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(base_)); }

  Napi::Object Side(Napi::Env env, const SideBuffers& s, size_t n, bool isChild) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Float64Array lat = Napi::Float64Array::New(env, n);
    for (size_t i = 0; i < n; i++) lat[i] = static_cast<double>(s.latNs[i]);
    o.Set("latencyNs", lat);
    o.Set("written", static_cast<double>(n));
    if (s.startNs != nullptr && parentPaceNs_ > 0) {
      Napi::Float64Array start = Napi::Float64Array::New(env, n);
      for (size_t i = 0; i < n; i++) start[i] = static_cast<double>(s.startNs[i]);
      o.Set("startNs", start);
    } else {
      o.Set("startNs", env.Null());
    }
    o.Set("minorFaults", static_cast<double>(s.minfltAfter - s.minfltBefore));
    o.Set("majorFaults", static_cast<double>(s.majfltAfter - s.majfltBefore));
    o.Set("vmstatBefore", Text(env, s.vmstatBefore, s.vmstatBeforeLen));
    o.Set("vmstatAfter", Text(env, s.vmstatAfter, s.vmstatAfterLen));
    if (isChild) {
      Napi::ArrayBuffer rb = Napi::ArrayBuffer::New(env, n * 8);
      if (n > 0) memcpy(rb.Data(), s.readback, n * 8);
      o.Set("readback", rb);
    }
    Napi::Object pm = Napi::Object::New(env);
    pm.Set("afterFork", Copy(env, s.pmAfterFork, pages_ * 8));
    pm.Set("afterChildWrites", Copy(env, s.pmAfterChildWrites, pages_ * 8));
    pm.Set("end", Copy(env, s.pmEnd, pages_ * 8));
    o.Set("pagemap", pm);
    return o;
  }

  static Napi::Value Text(Napi::Env env, const char* p, int64_t len) {
    if (len <= 0) return env.Null();
    return Napi::String::New(env, p, static_cast<size_t>(len));
  }

  static Napi::ArrayBuffer Copy(Napi::Env env, const void* p, size_t bytes) {
    Napi::ArrayBuffer b = Napi::ArrayBuffer::New(env, bytes);
    memcpy(b.Data(), p, bytes);
    return b;
  }

  uint8_t* base_ = nullptr;
  uint64_t pages_ = 0;
  size_t childN_ = 0, parentN_ = 0;
  int parentWhen_ = kParentNone;
  uint64_t childTag_ = 0, parentTag_ = 0, deadlineMs_ = 0, holdMs_ = 0;
  bool kpagecount_ = false;
  uint64_t pfnMask_ = 0, presentMask_ = 0;  // kpagecount: the pagemap layout, from TypeScript
  int childAccess_ = kAccessStore;
  uint64_t parentPaceNs_ = 0;
  int readFd_ = -1;            // childAccess read: the memfd the child preads from
  uint64_t epoch_ = 0;         // children::KillEpoch() when the run started
  size_t parentDone_ = 0;      // stores the (paced) parent completed
  uint64_t* kpcAfterFork_ = nullptr;

  Arena shared_, own_;
  ChildReport* report_ = nullptr;
  SideBuffers child_, parent_;
  int toChild_[2] = {-1, -1};
  int fromChild_[2] = {-1, -1};

  pid_t parentPid_ = -1; // this process, as the child's getppid() must see it
  pid_t pid_ = -1;       // live child, -1 once reaped
  pid_t childPid_ = -1;  // for reports
  uint64_t forkNs_ = 0, forkedAtNs_ = 0, deadline_ = 0;
  const char* stage_ = nullptr;
  PendingError error_;
};

// forkProbe(options) -> Promise<result>; see src/forkwrite/probe.ts for the typed contract.
Napi::Value StartForkProbe(const Napi::CallbackInfo& info) {
  Napi::Object opts = ArgObject(info, 0, "forkProbe", "options");
  return PromiseWorker::Start(new ForkProbe(info.Env(), opts));
}

}  // namespace

void InitForkProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("forkProbe", Napi::Function::New(env, StartForkProbe, "forkProbe"));
}

}  // namespace cowlab
