// Write tracking by the soft-dirty bit (native/tracking.h; Documentation/admin-guide/mm/
// soft-dirty.rst). Arming writes "4" to /proc/self/clear_refs, which clears the bit and
// write-protects every page table entry of the whole process (not only the N pages: its cost
// grows with the process); the first store to a page takes a kernel fault that sets the bit
// again, with no user round trip; collection reads the N pagemap entries (bit 55).
// softDirtyProbe() gives the raw facts src/tracking/ decides availability from: a page of its
// own, written, cleared (its entry), written again (its entry). A kernel without
// CONFIG_MEM_SOFT_DIRTY accepts the clear and never sets the bit.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "addon.h"
#include "errors.h"
#include "fd.h"
#include "tracking.h"

namespace cowlab {
namespace {

constexpr uint64_t kSoftDirty = 1ULL << 55;


bool ClearSoftDirty(int fd) { return pwrite(fd, "4", 1, 0) == 1; }

uint64_t EntryOf(int pagemap, const void* addr) {
  uint64_t e = 0;
  off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(addr) / PageSize() * 8);
  if (pread(pagemap, &e, 8, at) != 8) return ~0ULL;
  return e;
}

// softDirtyProbe() -> { clearErrno, pagemapErrno, cleared: bigint, rewritten: bigint } (raw
// pagemap entries of one own page after clear_refs 4, and after a store that followed it).
Napi::Value SoftDirtyProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  Fd clear(open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC));
  Fd pagemap(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  out.Set("pagemapErrno", pagemap.fd < 0 ? ErrnoName(errno) : std::string(""));
  void* m = mmap(nullptr, PageSize(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw MakeSyscallError(env, "mmap", errno, "mapping the soft-dirty probe's page");
  volatile uint8_t* p = static_cast<volatile uint8_t*>(m);
  p[0] = 1;
  int clearErr = clear.fd < 0 ? EACCES : (ClearSoftDirty(clear.fd) ? 0 : errno);
  out.Set("clearErrno", clear.fd < 0 ? std::string("open: ") + ErrnoName(errno) : clearErr != 0 ? ErrnoName(clearErr) : std::string(""));
  uint64_t cleared = pagemap.fd >= 0 ? EntryOf(pagemap.fd, m) : 0;
  p[0] = 2;
  uint64_t rewritten = pagemap.fd >= 0 ? EntryOf(pagemap.fd, m) : 0;
  munmap(m, PageSize());
  out.Set("cleared", Napi::BigInt::New(env, cleared));
  out.Set("rewritten", Napi::BigInt::New(env, rewritten));
  return out;
}

struct Anon {
  uint8_t* p = nullptr;
  size_t bytes = 0;
  ~Anon() { if (p != nullptr) munmap(p, bytes); }
};

// trackSoftDirty({ pages, order, fill, tag, content }) -> tracking.h's result (no snapshot).
Napi::Value TrackSoftDirty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tracking::Input in = tracking::ReadInput(info, "trackSoftDirty");
  const size_t ps = PageSize();
  uint64_t s0 = child::NowNs();
  Fd clear(open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC));
  if (clear.fd < 0) throw MakeSyscallError(env, "open", errno, "opening /proc/self/clear_refs");
  Fd pagemap(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (pagemap.fd < 0) throw MakeSyscallError(env, "open", errno, "opening /proc/self/pagemap");
  Anon mem;
  mem.bytes = in.pages * ps;
  mem.p = tracking::MapFilledAnon(env, in);
  double setupNs = static_cast<double>(child::NowNs() - s0);
  tracking::Buffers buf(in);
  std::vector<uint64_t> entries(in.pages, 0);
  tracking::WarmLoop();

  uint64_t a0 = child::NowNs();
  int armErr = ClearSoftDirty(clear.fd) ? 0 : errno;
  uint64_t a1 = child::NowNs();
  if (armErr == 0) child::TimedStores(mem.p, ps, in.order.data(), in.order.size(), in.tag, buf.latNs.data());
  int readErr = 0;
  uint64_t c0 = child::NowNs();
  if (armErr == 0) {
    ssize_t r = child::PreadFull(pagemap.fd, entries.data(), in.pages * 8,
                                 static_cast<off_t>(reinterpret_cast<uintptr_t>(mem.p) / ps * 8));
    if (r != static_cast<ssize_t>(in.pages * 8)) readErr = r < 0 ? static_cast<int>(-r) : EIO;
    for (size_t p = 0; p < in.pages; p++) buf.reported[p] = (entries[p] & kSoftDirty) != 0 ? 1 : 0;
  }
  uint64_t c1 = child::NowNs();
  if (armErr != 0) throw MakeSyscallError(env, "write", armErr, "writing 4 to /proc/self/clear_refs");
  if (readErr != 0) throw MakeSyscallError(env, "pread", readErr, "reading /proc/self/pagemap");
  return tracking::MakeResult(env, in, buf, setupNs, static_cast<double>(a1 - a0), static_cast<double>(c1 - c0), mem.p,
                              nullptr);
}

}  // namespace

void InitTrackSoftDirty(Napi::Env env, Napi::Object exports) {
  exports.Set("softDirtyProbe", Napi::Function::New(env, SoftDirtyProbe, "softDirtyProbe"));
  exports.Set("trackSoftDirty", Napi::Function::New(env, TrackSoftDirty, "trackSoftDirty"));
}

}  // namespace cowlab
