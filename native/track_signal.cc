// Write tracking by SIGSEGV, two ways, over the same pages (native/tracking.h):
//   mprotect  the pages are made read-only (one mprotect); the first store to a page raises
//             SIGSEGV and the handler makes that page writable again (mprotect of one page)
//             and marks it written. No copy: a dirty tracker, the floor of every signal-based
//             userspace COW.
//   remap     the region's design, bare: the pages are a MAP_SHARED mapping of a memfd, made
//             read-only; the handler copies the page (and up to `around` following unwritten
//             pages) into fresh frames of the memfd and maps them over it with one
//             mmap(MAP_FIXED|MAP_SHARED|MAP_POPULATE); the old frames stay the snapshot.
//             Armed like the region's view.fork(): a new read-only view of the frames.
//             `dontfork` adds the region's madvise(MADV_DONTFORK) of the new mapping.
// The handler is installed for the run only, owns only SEGV_ACCERR faults inside the tracked
// range while a run is active, hands everything else to the handler that was installed
// before (Node's WebAssembly trap handler, or the region's: native/sigchain.h), and is
// replaced by that handler again when the run ends. Runs on the JS thread, synchronously.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "addon.h"
#include "errors.h"
#include "sigchain.h"
#include "tracking.h"

namespace cowlab {
namespace {

struct SignalRun {
  uintptr_t base = 0, end = 0;
  size_t ps = 4096, pages = 0;
  int mode = 0;  // 0 mprotect, 1 remap
  uint8_t* written = nullptr;
  int memfd = -1;
  uint8_t* staging = nullptr;  // every frame of the memfd, read-write
  size_t nextFrame = 0, maxFrames = 0, around = 0;
  bool dontfork = false;
  int err = 0;
  const char* errCall = nullptr;
  size_t faults = 0;
};

SignalRun g_run;
std::atomic<bool> g_active{false};
struct sigaction g_prev;

void Fail(const char* call, int err) {
  if (g_run.err == 0) {
    g_run.err = err;
    g_run.errCall = call;
  }
}

// Makes page p writable so the store completes, whatever else failed.
void Resolve(size_t p) {
  SignalRun& r = g_run;
  uint8_t* page = reinterpret_cast<uint8_t*>(r.base) + p * r.ps;
  r.faults++;
  if (r.mode == 0) {
    if (mprotect(page, r.ps, PROT_READ | PROT_WRITE) != 0) Fail("mprotect", errno);
    r.written[p] = 1;
    return;
  }
  size_t n = 1;
  while (n <= r.around && p + n < r.pages && r.written[p + n] == 0) n++;
  if (r.nextFrame + n > r.maxFrames) {
    Fail("pool", ENOSPC);
    if (mprotect(page, r.ps, PROT_READ | PROT_WRITE) != 0) Fail("mprotect", errno);
    return;
  }
  // Frame to frame through the staging mapping, as the region copies: reading the view's page
  // instead would fault it in, only for the mmap below to tear that entry down again.
  memcpy(r.staging + r.nextFrame * r.ps, r.staging + p * r.ps, n * r.ps);
  void* m = mmap(page, n * r.ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, r.memfd,
                 static_cast<off_t>(r.nextFrame * r.ps));
  if (m == MAP_FAILED) {
    Fail("mmap", errno);
    if (mprotect(page, r.ps, PROT_READ | PROT_WRITE) != 0) Fail("mprotect", errno);
    return;
  }
  if (r.dontfork && madvise(page, n * r.ps, MADV_DONTFORK) != 0) Fail("madvise", errno);
  r.nextFrame += n;
  for (size_t i = 0; i < n; i++) r.written[p + i] = 1;
}

void OnSegv(int sig, siginfo_t* info, void* ucontext) {
  int saved = errno;
  uintptr_t a = info != nullptr ? reinterpret_cast<uintptr_t>(info->si_addr) : 0;
  if (g_active.load(std::memory_order_acquire) && info->si_code == SEGV_ACCERR && a >= g_run.base && a < g_run.end &&
      g_run.written[(a - g_run.base) / g_run.ps] == 0) {
    Resolve((a - g_run.base) / g_run.ps);
  } else {
    ChainSignal(g_prev, sig, info, ucontext);
  }
  errno = saved;
}

// The memory of one run, released on every path.
struct Memory {
  uint8_t* view = nullptr;
  size_t viewBytes = 0;
  uint8_t* staging = nullptr;
  size_t stagingBytes = 0;
  int memfd = -1;
  ~Memory() {
    if (view != nullptr) munmap(view, viewBytes);
    if (staging != nullptr) munmap(staging, stagingBytes);
    if (memfd >= 0) close(memfd);
  }
};

// trackSignal({ mode: 0 mprotect | 1 remap, around, dontfork, pages, order, fill, tag, content })
//   -> tracking.h's result, plus faults (handler calls) and, on a failure inside the handler,
//   handlerErrno / handlerCall (the run's stores still completed).
Napi::Value TrackSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "trackSignal";
  tracking::Input in = tracking::ReadInput(info, fn);
  Napi::Object o = info[0].As<Napi::Object>();
  const int mode = static_cast<int>(PropCount(env, o, fn, "mode", 1));
  const size_t around = PropCount(env, o, fn, "around", 256);
  const bool dontfork = o.Get("dontfork").ToBoolean().Value();
  if (g_active.load()) throw MakeError(env, "ERR_BUSY", "a signal-tracking run is already active");
  const size_t ps = PageSize();
  const size_t bytes = in.pages * ps;
  Memory mem;
  mem.viewBytes = bytes;
  uint64_t setup0 = child::NowNs();
  if (mode == 0) {
    mem.view = tracking::MapFilledAnon(env, in);
  } else {
    mem.memfd = memfd_create("cowlab-track", MFD_CLOEXEC);
    if (mem.memfd < 0) throw MakeSyscallError(env, "memfd_create", errno, "creating the frames of the remap tracker");
    // Frames 0..N-1 hold the pages; N..2N-1 receive the copies.
    mem.stagingBytes = 2 * bytes;
    if (ftruncate(mem.memfd, static_cast<off_t>(mem.stagingBytes)) != 0) {
      throw MakeSyscallError(env, "ftruncate", errno, "sizing the remap tracker's memfd");
    }
    void* s = mmap(nullptr, mem.stagingBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mem.memfd, 0);
    if (s == MAP_FAILED) throw MakeSyscallError(env, "mmap", errno, "mapping the remap tracker's frames");
    mem.staging = static_cast<uint8_t*>(s);
    tracking::FillPages(mem.staging, in);
    for (size_t i = bytes; i < mem.stagingBytes; i += ps) mem.staging[i] = 1;  // copies never pay a first touch
  }
  double setupNs = static_cast<double>(child::NowNs() - setup0);
  tracking::Buffers buf(in);
  std::vector<uint8_t> written(in.pages, 0);

  tracking::WarmLoop();
  // Arming. mprotect: the populated pages become read-only. remap: as the region's
  // view.fork(), a new read-only view maps the frames (not populated: its first store faults
  // straight into SIGSEGV, and the mmap over it has no page table entry to tear down).
  uint64_t a0 = child::NowNs();
  int armErr = 0;
  if (mode == 0) {
    armErr = mprotect(mem.view, bytes, PROT_READ) == 0 ? 0 : errno;
  } else {
    void* v = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, mem.memfd, 0);
    if (v == MAP_FAILED) armErr = errno;
    else mem.view = static_cast<uint8_t*>(v);
    if (armErr == 0 && dontfork && madvise(mem.view, bytes, MADV_DONTFORK) != 0) armErr = errno;
  }
  uint64_t a1 = child::NowNs();
  if (armErr != 0) throw MakeSyscallError(env, mode == 0 ? "mprotect" : "mmap", armErr, "arming the tracker (read-only pages)");

  g_run = SignalRun();
  g_run.base = reinterpret_cast<uintptr_t>(mem.view);
  g_run.end = g_run.base + bytes;
  g_run.ps = ps;
  g_run.pages = in.pages;
  g_run.mode = mode;
  g_run.written = written.data();
  g_run.memfd = mem.memfd;
  g_run.staging = mem.staging;
  g_run.nextFrame = in.pages;
  g_run.maxFrames = 2 * in.pages;
  g_run.around = around;
  g_run.dontfork = dontfork;

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnSegv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, &g_prev) != 0) throw MakeSyscallError(env, "sigaction", errno, "installing the tracker's SIGSEGV handler");
  g_active.store(true, std::memory_order_release);
  child::TimedStores(mem.view, ps, in.order.data(), in.order.size(), in.tag, buf.latNs.data());
  uint64_t c0 = child::NowNs();
  for (size_t p = 0; p < in.pages; p++) buf.reported[p] = written[p];
  uint64_t c1 = child::NowNs();

  g_active.store(false, std::memory_order_release);
  sigaction(SIGSEGV, &g_prev, nullptr);
  Napi::Object out = tracking::MakeResult(env, in, buf, setupNs, static_cast<double>(a1 - a0), static_cast<double>(c1 - c0),
                                          mem.view, mode == 1 ? mem.staging : nullptr);
  out.Set("faults", static_cast<double>(g_run.faults));
  if (g_run.err != 0) {
    out.Set("handlerErrno", ErrnoName(g_run.err));
    out.Set("handlerCall", g_run.errCall);
  }
  return out;
}

}  // namespace

void InitTrackSignal(Napi::Env env, Napi::Object exports) {
  exports.Set("trackSignal", Napi::Function::New(env, TrackSignal, "trackSignal"));
}

}  // namespace cowlab
