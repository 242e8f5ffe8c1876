// Write tracking by userfaultfd write-protection (native/tracking.h), two ways:
//   sync   UFFD_FEATURE_PAGEFAULT_FLAG_WP: a store to a protected page blocks in the kernel
//          and queues a message; a handler thread reads it, copies the page out (the
//          snapshot), marks it written and un-protects it (UFFDIO_WRITEPROTECT, mode 0), which
//          wakes the store. One user round trip per first store to a page.
//   async  UFFD_FEATURE_WP_ASYNC (Linux 6.7): the kernel resolves the fault itself by dropping
//          the page's uffd-wp bit; collection asks PAGEMAP_SCAN for PAGE_IS_WRITTEN pages.
//          No per-fault round trip, no copy.
// Arming is UFFDIO_WRITEPROTECT (mode WP) over the N populated pages, after UFFDIO_REGISTER
// (setup). uffdProbe() says what the kernel offers: the errno of userfaultfd(2) and of
// UFFDIO_API, and the feature bits; src/tracking/ decides what is available and words why not.
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>

#include "addon.h"
#include "errors.h"
#include "fd.h"
#include "pagemap_scan.h"
#include "tracking.h"

namespace cowlab {
namespace {

// Newer than some system headers (include/uapi/linux/userfaultfd.h, fs.h).
constexpr uint64_t kFeatureWpAsync = 1ULL << 15;
constexpr uint64_t kFeatureWp = 1ULL << 0;
using pagemap_scan::kPagemapScan;
using pagemap_scan::PageRegion;
using pagemap_scan::PmScanArg;
constexpr uint64_t kPageIsWritten = 1ULL << 1;  // PAGE_IS_WPALLOWED is bit 0
constexpr uint64_t kScanCheckWpAsync = 1ULL << 1;


int OpenUffd() { return static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)); }

// uffdProbe() -> { openErrno, apiErrno, features }: 0 errnos when it worked; features is what
// UFFDIO_API reports the kernel supports (as a number; bits below 2^53).
Napi::Value UffdProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Fd fd(OpenUffd());
  out.Set("openErrno", fd.fd < 0 ? ErrnoName(errno) : std::string(""));
  uffdio_api api;
  memset(&api, 0, sizeof(api));
  api.api = UFFD_API;
  int apiErr = fd.fd < 0 ? 0 : (ioctl(fd.fd, UFFDIO_API, &api) == 0 ? 0 : errno);
  out.Set("apiErrno", apiErr != 0 ? ErrnoName(apiErr) : std::string(""));
  out.Set("features", static_cast<double>(fd.fd < 0 || apiErr != 0 ? 0 : api.features));
  return out;
}

struct Handler {
  int uffd = -1, stop = -1;
  uint8_t* base = nullptr;
  uint8_t* snapshot = nullptr;
  uint8_t* written = nullptr;
  size_t ps = 4096, pages = 0;
  std::atomic<int> err{0};
  const char* errCall = nullptr;
  size_t faults = 0;

  void fail(const char* call, int e) {
    int z = 0;
    if (err.compare_exchange_strong(z, e)) errCall = call;
    // Never leave a store blocked: un-protect everything.
    uffdio_writeprotect wp = {{reinterpret_cast<uint64_t>(base), pages * ps}, 0};
    ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
  }

  void loop() {
    pollfd fds[2] = {{uffd, POLLIN, 0}, {stop, POLLIN, 0}};
    for (;;) {
      int n = poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("poll", errno);
        return;
      }
      if ((fds[0].revents & POLLIN) != 0) {
        uffd_msg msg;
        ssize_t r = read(uffd, &msg, sizeof(msg));
        if (r < 0) {
          if (errno == EAGAIN || errno == EINTR) continue;
          fail("read", errno);
          return;
        }
        if (r != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT) continue;
        uint64_t addr = msg.arg.pagefault.address & ~static_cast<uint64_t>(ps - 1);
        size_t p = (addr - reinterpret_cast<uint64_t>(base)) / ps;
        if (p >= pages) continue;
        faults++;
        memcpy(snapshot + p * ps, base + p * ps, ps);
        written[p] = 1;
        uffdio_writeprotect wp = {{addr, ps}, 0};  // un-protect and wake the store
        if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) != 0) fail("ioctl(UFFDIO_WRITEPROTECT)", errno);
      } else if ((fds[1].revents & POLLIN) != 0) {
        return;
      }
    }
  }
};

struct Anon {
  uint8_t* p = nullptr;
  size_t bytes = 0;
  ~Anon() { if (p != nullptr) munmap(p, bytes); }
};

// trackUffd({ async, pages, order, fill, tag, content }) -> tracking.h's result, plus faults
// (messages the handler resolved; sync only) and, when the handler failed, handlerErrno /
// handlerCall. Throws ERR_SYSCALL with the syscall and errno when the kernel refuses a step.
Napi::Value TrackUffd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "trackUffd";
  tracking::Input in = tracking::ReadInput(info, fn);
  const bool async = info[0].As<Napi::Object>().Get("async").ToBoolean().Value();
  const size_t ps = PageSize();
  const size_t bytes = in.pages * ps;

  uint64_t s0 = child::NowNs();
  Fd uffd(OpenUffd());
  if (uffd.fd < 0) throw MakeSyscallError(env, "userfaultfd", errno, "");
  uffdio_api api;
  memset(&api, 0, sizeof(api));
  api.api = UFFD_API;
  api.features = async ? kFeatureWpAsync : kFeatureWp;
  if (ioctl(uffd.fd, UFFDIO_API, &api) != 0) throw MakeSyscallError(env, "ioctl(UFFDIO_API)", errno, "");
  Anon mem;
  mem.bytes = bytes;
  mem.p = tracking::MapFilledAnon(env, in);
  uffdio_register reg;
  memset(&reg, 0, sizeof(reg));
  reg.range = {reinterpret_cast<uint64_t>(mem.p), bytes};
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd.fd, UFFDIO_REGISTER, &reg) != 0) throw MakeSyscallError(env, "ioctl(UFFDIO_REGISTER)", errno, "");
  double setupNs = static_cast<double>(child::NowNs() - s0);
  Fd pagemap(async ? open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) : -1);
  if (async && pagemap.fd < 0) throw MakeSyscallError(env, "open", errno, "opening /proc/self/pagemap");

  tracking::Buffers buf(in);
  std::vector<uint8_t> written(in.pages, 0);
  Anon snap;
  Fd stop;
  Handler h;
  std::thread thread;
  if (!async) {
    snap.bytes = bytes;
    void* s = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (s == MAP_FAILED) throw MakeSyscallError(env, "mmap", errno, "mapping the snapshot copies");
    snap.p = static_cast<uint8_t*>(s);
    madvise(snap.p, bytes, MADV_NOHUGEPAGE);
    memset(snap.p, 0, bytes);
    stop.fd = eventfd(0, EFD_CLOEXEC);
    if (stop.fd < 0) throw MakeSyscallError(env, "eventfd", errno, "");
    h.uffd = uffd.fd;
    h.stop = stop.fd;
    h.base = mem.p;
    h.snapshot = snap.p;
    h.written = written.data();
    h.ps = ps;
    h.pages = in.pages;
    thread = std::thread([&h] { h.loop(); });
  }
  std::vector<PageRegion> vec(async ? in.pages : 0);
  tracking::WarmLoop();

  uffdio_writeprotect wp = {{reinterpret_cast<uint64_t>(mem.p), bytes}, UFFDIO_WRITEPROTECT_MODE_WP};
  uint64_t a0 = child::NowNs();
  int armErr = ioctl(uffd.fd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : errno;
  uint64_t a1 = child::NowNs();
  if (armErr == 0) child::TimedStores(mem.p, ps, in.order.data(), in.order.size(), in.tag, buf.latNs.data());
  int scanErr = 0;
  uint64_t c0 = child::NowNs();
  if (async && armErr == 0) {
    PmScanArg a = {sizeof(PmScanArg), kScanCheckWpAsync, reinterpret_cast<uint64_t>(mem.p),
                   reinterpret_cast<uint64_t>(mem.p) + bytes, 0, reinterpret_cast<uint64_t>(vec.data()),
                   vec.size(), 0, 0, kPageIsWritten, 0, kPageIsWritten};
    int n = ioctl(pagemap.fd, kPagemapScan, &a);
    if (n < 0) scanErr = errno;
    for (int i = 0; i < n; i++) {
      size_t from = (vec[i].start - reinterpret_cast<uint64_t>(mem.p)) / ps;
      size_t to = (vec[i].end - reinterpret_cast<uint64_t>(mem.p)) / ps;
      memset(buf.reported.data() + from, 1, to - from);
    }
  } else if (!async) {
    for (size_t p = 0; p < in.pages; p++) buf.reported[p] = written[p];
  }
  uint64_t c1 = child::NowNs();

  if (!async) {
    uint64_t one = 1;
    if (write(stop.fd, &one, sizeof(one)) != sizeof(one)) h.fail("write(eventfd)", errno);
    thread.join();
  }
  if (armErr != 0) throw MakeSyscallError(env, "ioctl(UFFDIO_WRITEPROTECT)", armErr, "");
  if (scanErr != 0) throw MakeSyscallError(env, "ioctl(PAGEMAP_SCAN)", scanErr, "");
  Napi::Object out = tracking::MakeResult(env, in, buf, setupNs, static_cast<double>(a1 - a0),
                                          static_cast<double>(c1 - c0), mem.p, async ? nullptr : snap.p);
  out.Set("faults", static_cast<double>(h.faults));
  if (h.err.load() != 0) {
    out.Set("handlerErrno", ErrnoName(h.err.load()));
    out.Set("handlerCall", h.errCall);
  }
  return out;
}

}  // namespace

void InitTrackUffd(Napi::Env env, Napi::Object exports) {
  exports.Set("uffdProbe", Napi::Function::New(env, UffdProbe, "uffdProbe"));
  exports.Set("trackUffd", Napi::Function::New(env, TrackUffd, "trackUffd"));
}

}  // namespace cowlab
