// Eager copy: what a fork without copy-on-write would pay up front. copyMemory() copies a
// region into a destination it maps itself and times the memcpy alone (clock_gettime around
// it). With `fresh`, the destination is newly mapped and untouched, so the time includes
// allocating and zeroing every destination page on its first-touch fault, as an eager fork
// must; otherwise the destination is populated first and only the copy is timed. The
// destination is unmapped before returning. Synchronous: one memcpy on the JS thread.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "errors.h"

namespace cowlab {
namespace {

// copyMemory({ source: bigint, bytes, fresh }) -> { ns }
Napi::Value CopyMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "copyMemory";
  Napi::Object opts = ArgObject(info, 0, fn, "options");
  uint64_t source = PropAddress(env, opts, fn, "source");
  uint64_t bytes = PropCount(env, opts, fn, "bytes");
  bool fresh = opts.Get("fresh").ToBoolean().Value();
  if (bytes == 0) ThrowBadArg(env, fn, "bytes", "positive");
  void* dst = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (dst == MAP_FAILED) throw MakeSyscallError(env, "mmap", errno, "mapping the copy's destination");
  // Same page size as the source regions cowlab measures: no THP on the destination.
  madvise(dst, bytes, MADV_NOHUGEPAGE);
  if (!fresh) memset(dst, 1, bytes);
  uint64_t t0 = child::NowNs();
  __asm__ volatile("" ::: "memory");
  memcpy(dst, reinterpret_cast<const void*>(static_cast<uintptr_t>(source)), bytes);
  __asm__ volatile("" : : "r"(dst) : "memory");
  uint64_t t1 = child::NowNs();
  munmap(dst, bytes);
  Napi::Object out = Napi::Object::New(env);
  out.Set("ns", static_cast<double>(t1 - t0));
  return out;
}

}  // namespace

void InitEagerCopy(Napi::Env env, Napi::Object exports) {
  exports.Set("copyMemory", Napi::Function::New(env, CopyMemory, "copyMemory"));
}

}  // namespace cowlab
