// Page-table inspection: batch reads of /proc/<pid>/pagemap (one pread per range) and of
// /proc/kpagecount and /proc/kpageflags for a list of PFNs (sorted and coalesced into runs,
// one pread per run of consecutive PFNs). Entries come back raw (8 bytes each) in an
// ArrayBuffer; decoding the bit fields is done in TypeScript (src/pagemap/).
#include <fcntl.h>
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

namespace cowlab {
namespace {

size_t PageSize() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// RAII for a file descriptor opened here.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

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

}  // namespace

void InitPagemap(Napi::Env env, Napi::Object exports) {
  exports.Set("readPagemap", Napi::Function::New(env, ReadPagemap, "readPagemap"));
  exports.Set("readKpage", Napi::Function::New(env, ReadKpage, "readKpage"));
}

}  // namespace cowlab
