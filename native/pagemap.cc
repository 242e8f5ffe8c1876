// Page-table inspection: batch reads of /proc/<pid>/pagemap (one pread per range) and of
// /proc/kpagecount and /proc/kpageflags for a list of PFNs (sorted and coalesced into runs,
// one pread per run of consecutive PFNs). Entries come back raw (8 bytes each) in an
// ArrayBuffer; decoding the bit fields is done in TypeScript (src/pagemap/).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "errors.h"
#include "fd.h"
#include "pagemap_scan.h"
#include "page.h"

namespace cowlab {
namespace {


std::string PagemapPath(int pid) {
  return pid == 0 ? std::string("/proc/self/pagemap") : "/proc/" + std::to_string(pid) + "/pagemap";
}

// readPagemap(pid, address, pages) -> ArrayBuffer of pages * 8 raw entries. pid 0 = self.
Napi::Value ReadPagemap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t pid = ArgInt(info, 0, "readPagemap", "pid");
  uint64_t addr = ArgAddress(info, 1, "readPagemap", "address");
  uint64_t pages = ArgCount(info, 2, "readPagemap", "pages", 1ULL << 40);
  if (addr % PageSize() != 0) ThrowBadArg(env, "readPagemap", "address", "page-aligned");
  std::string path = PagemapPath(pid);
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0) throw MakeSyscallError(env, "open", errno, "opening " + path);
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, pages * 8);
  ssize_t r = child::PreadFull(fd.fd, out.Data(), pages * 8, static_cast<off_t>((addr / PageSize()) * 8));
  if (r < 0) throw MakeSyscallError(env, "pread", static_cast<int>(-r), "reading " + path);
  if (static_cast<uint64_t>(r) != pages * 8) {
    throw MakeError(env, "ERR_SHORT_READ", "reading " + path + ": got " + std::to_string(r / 8) +
                                               " of " + std::to_string(pages) + " entries");
  }
  return out;
}

// readKpage(file, pfns) -> ArrayBuffer with one raw 8-byte entry per input PFN, in input
// order. `file` is "count" (/proc/kpagecount) or "flags" (/proc/kpageflags). Duplicate PFNs
// are read once; consecutive PFNs are read with one pread per run.
Napi::Value ReadKpage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString()) ThrowBadArg(env, "readKpage", "file", "'count' or 'flags'");
  std::string which = info[0].As<Napi::String>().Utf8Value();
  const char* path = which == "count" ? "/proc/kpagecount" : which == "flags" ? "/proc/kpageflags" : nullptr;
  if (path == nullptr) ThrowBadArg(env, "readKpage", "file", "'count' or 'flags'");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    ThrowBadArg(env, "readKpage", "pfns", "a Float64Array");
  }
  Napi::Float64Array pfns = info[1].As<Napi::Float64Array>();
  const size_t n = pfns.ElementLength();

  std::vector<std::pair<uint64_t, uint32_t>> order(n);
  for (size_t i = 0; i < n; i++) order[i] = {static_cast<uint64_t>(pfns[i]), static_cast<uint32_t>(i)};
  std::sort(order.begin(), order.end());

  Fd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0) throw MakeSyscallError(env, "open", errno, std::string("opening ") + path);
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, n * 8);
  uint64_t* dst = static_cast<uint64_t*>(out.Data());
  std::vector<uint64_t> run;
  size_t i = 0;
  while (i < n) {
    // Collect the run of consecutive (or repeated) PFNs starting at order[i].
    uint64_t first = order[i].first, last = first;
    size_t j = i + 1;
    while (j < n && (order[j].first == last || order[j].first == last + 1)) last = order[j++].first;
    size_t count = static_cast<size_t>(last - first + 1);
    run.resize(count);
    ssize_t r = child::PreadFull(fd.fd, run.data(), count * 8, static_cast<off_t>(first * 8));
    if (r < 0) throw MakeSyscallError(env, "pread", static_cast<int>(-r), std::string("reading ") + path);
    if (static_cast<size_t>(r) != count * 8) {
      throw MakeError(env, "ERR_SHORT_READ", std::string("reading ") + path + ": PFN " +
                                                 std::to_string(first) + " is beyond the end");
    }
    for (size_t k = i; k < j; k++) dst[order[k].second] = run[order[k].first - first];
    i = j;
  }
  return out;
}

// PAGEMAP_SCAN (Linux 6.7, include/uapi/linux/fs.h; older system headers lack it). Unlike
// the PFN field, its page categories need no privilege: PAGE_IS_PFNZERO tells the (huge) zero
// page apart from a shared anonymous page without reading /proc/kpageflags.
using pagemap_scan::kPagemapScan;
using pagemap_scan::PageRegion;
using pagemap_scan::PmScanArg;
// PAGE_IS_FILE | PAGE_IS_PRESENT | PAGE_IS_SWAPPED | PAGE_IS_PFNZERO | PAGE_IS_HUGE: the
// categories every kernel with PAGEMAP_SCAN knows.
constexpr uint64_t kScanCategories = 0x7c;

// readPageCategories(pid, address, pages) -> ArrayBuffer of one uint8 per page: bit i set when
// the page is in category PAGE_IS_* (1 << i) (bits 2-6 are reported). pid 0 = self.
Napi::Value ReadPageCategories(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t pid = ArgInt(info, 0, "readPageCategories", "pid");
  uint64_t addr = ArgAddress(info, 1, "readPageCategories", "address");
  uint64_t pages = ArgCount(info, 2, "readPageCategories", "pages", 1ULL << 40);
  const size_t ps = PageSize();
  if (addr % ps != 0) ThrowBadArg(env, "readPageCategories", "address", "page-aligned");
  std::string path = PagemapPath(pid);
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0) throw MakeSyscallError(env, "open", errno, "opening " + path);
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, pages);
  uint8_t* dst = static_cast<uint8_t*>(out.Data());
  memset(dst, 0, pages);
  std::vector<PageRegion> vec(512);
  const uint64_t end = addr + pages * ps;
  uint64_t at = addr;
  while (at < end) {
    PmScanArg a = {sizeof(PmScanArg), 0, at, end, 0, reinterpret_cast<uint64_t>(vec.data()), vec.size(), 0, 0, 0,
                   0, kScanCategories};
    int n = ioctl(fd.fd, kPagemapScan, &a);
    if (n < 0) throw MakeSyscallError(env, "ioctl", errno, "PAGEMAP_SCAN of " + path + " (Linux >= 6.7)");
    for (int i = 0; i < n; i++) {
      uint64_t from = (vec[i].start - addr) / ps, to = (vec[i].end - addr) / ps;
      memset(dst + from, static_cast<int>(vec[i].categories & 0xff), to - from);
    }
    if (a.walkEnd <= at) break;  // no progress: do not spin
    at = a.walkEnd;
  }
  return out;
}

// probeOwnPfn() -> ArrayBuffer of one raw pagemap entry (as readPagemap): maps one private
// anonymous page, writes it, reads its own entry and unmaps it. Done here rather than through a JS Mapping because an
// ArrayBuffer detached on unmap makes V8 slow down every typed-array access in the process
// from then on (its "detached" protector is invalidated once and for all).
Napi::Value ProbeOwnPfn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  void* p = mmap(nullptr, PageSize(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw MakeSyscallError(env, "mmap", errno, "mapping the PFN probe page");
  *static_cast<volatile uint64_t*>(p) = 1;
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, 8);
  int r = child::ReadPagemap("/proc/self/pagemap", reinterpret_cast<uintptr_t>(p), 1, PageSize(),
                             static_cast<uint64_t*>(out.Data()));
  munmap(p, PageSize());
  if (r < 0) throw MakeSyscallError(env, "pread", -r, "reading /proc/self/pagemap");
  return out;
}

}  // namespace

void InitPagemap(Napi::Env env, Napi::Object exports) {
  exports.Set("probeOwnPfn", Napi::Function::New(env, ProbeOwnPfn, "probeOwnPfn"));
  exports.Set("readPagemap", Napi::Function::New(env, ReadPagemap, "readPagemap"));
  exports.Set("readKpage", Napi::Function::New(env, ReadKpage, "readKpage"));
  exports.Set("readPageCategories", Napi::Function::New(env, ReadPageCategories, "readPageCategories"));
}

}  // namespace cowlab
