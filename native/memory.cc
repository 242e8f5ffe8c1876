// Memory mechanisms: mmap of the four backings cowlab studies (anonymous or memfd, private or
// shared), munmap, mprotect, madvise, and a touch loop. Mappings come back to JS as a bigint
// address plus an external ArrayBuffer over the same bytes; the JS Mapping object owns the
// lifetime (the buffer has no finalizer, and is detached before the memory is unmapped).
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "mapping.h"
#include "page.h"

namespace cowlab {
namespace {

// mmap(bytes) of the given backing at an address aligned to `align` (a power of two >= the
// page size; 2 MiB for THP): MapBacking reserves, maps inside and trims (mapping.h).
uint8_t* MapAligned(Napi::Env env, size_t bytes, uint32_t backing, size_t align) {
  MapResult r = MapBacking(bytes, backing, align, "cowlab");
  switch (r.failed) {
    case MapStep::kNone: return r.address;
    case MapStep::kReserve: throw MakeSyscallError(env, "mmap", r.err, "reserving address space");
    case MapStep::kMemfd: throw MakeSyscallError(env, "memfd_create", r.err, "creating the memfd backing");
    case MapStep::kTruncate: throw MakeSyscallError(env, "ftruncate", r.err, "sizing the memfd backing");
    case MapStep::kMmap: break;
  }
  throw MakeSyscallError(env, "mmap", r.err, "mapping " + std::to_string(bytes) + " bytes");
}

// mapMemory(bytes, backing, align) -> { address: bigint, buffer: ArrayBuffer }
Napi::Value MapMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t bytes = ArgCount(info, 0, "mapMemory", "bytes");
  int32_t backing = ArgInt(info, 1, "mapMemory", "backing");
  uint64_t align = ArgCount(info, 2, "mapMemory", "align");
  if (bytes == 0 || bytes % PageSize() != 0) ThrowBadArg(env, "mapMemory", "bytes", "a positive multiple of the page size");
  if (backing < 0 || backing > static_cast<int32_t>(kMemfdShared)) ThrowBadArg(env, "mapMemory", "backing", "0..3");
  if (align < PageSize() || (align & (align - 1)) != 0) ThrowBadArg(env, "mapMemory", "align", "a power of two >= the page size");
  uint8_t* p = MapAligned(env, bytes, static_cast<uint32_t>(backing), align);
  Napi::Object out = Napi::Object::New(env);
  out.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p))));
  out.Set("buffer", Napi::ArrayBuffer::New(env, p, bytes));
  return out;
}

// detachBuffer(buffer): makes every view of the buffer zero-length before its memory goes.
Napi::Value DetachBuffer(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) ThrowBadArg(info.Env(), "detachBuffer", "buffer", "an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (!ab.IsDetached()) ab.Detach();
  return info.Env().Undefined();
}

Napi::Value UnmapMemory(const Napi::CallbackInfo& info) {
  uint64_t addr = ArgAddress(info, 0, "unmapMemory", "address");
  uint64_t bytes = ArgCount(info, 1, "unmapMemory", "bytes");
  if (munmap(reinterpret_cast<void*>(addr), bytes) != 0) {
    throw MakeSyscallError(info.Env(), "munmap", errno, "unmapping memory");
  }
  return info.Env().Undefined();
}

Napi::Value ProtectMemory(const Napi::CallbackInfo& info) {
  uint64_t addr = ArgAddress(info, 0, "protectMemory", "address");
  uint64_t bytes = ArgCount(info, 1, "protectMemory", "bytes");
  int32_t prot = ArgInt(info, 2, "protectMemory", "prot");
  if (mprotect(reinterpret_cast<void*>(addr), bytes, prot) != 0) {
    throw MakeSyscallError(info.Env(), "mprotect", errno, "changing protection");
  }
  return info.Env().Undefined();
}

Napi::Value AdviseMemory(const Napi::CallbackInfo& info) {
  uint64_t addr = ArgAddress(info, 0, "adviseMemory", "address");
  uint64_t bytes = ArgCount(info, 1, "adviseMemory", "bytes");
  int32_t advice = ArgInt(info, 2, "adviseMemory", "advice");
  if (madvise(reinterpret_cast<void*>(addr), bytes, advice) != 0) {
    throw MakeSyscallError(info.Env(), "madvise", errno, "advising memory (advice " + std::to_string(advice) + ")");
  }
  return info.Env().Undefined();
}

// touchPages(address, pages, write): reads (or rewrites in place) the first byte of each
// page, faulting every page in without changing content. Reading untouched anonymous
// memory maps the shared zero page; rewriting allocates (or breaks COW on) each page.
Napi::Value TouchPages(const Napi::CallbackInfo& info) {
  uint64_t addr = ArgAddress(info, 0, "touchPages", "address");
  uint64_t pages = ArgCount(info, 1, "touchPages", "pages");
  bool write = ArgBool(info, 2, "touchPages", "write");
  volatile uint8_t* p = reinterpret_cast<volatile uint8_t*>(addr);
  const size_t ps = PageSize();
  uint64_t sum = 0;
  for (uint64_t i = 0; i < pages; i++) {
    uint8_t v = p[i * ps];
    if (write) p[i * ps] = v;
    sum += v;
  }
  return Napi::Number::New(info.Env(), static_cast<double>(sum & 0xffff));
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("PAGE_SIZE", static_cast<double>(PageSize()));
  c.Set("PROT_NONE", PROT_NONE);
  c.Set("PROT_READ", PROT_READ);
  c.Set("PROT_WRITE", PROT_WRITE);
  c.Set("MADV_NORMAL", MADV_NORMAL);
  c.Set("MADV_DONTNEED", MADV_DONTNEED);
  c.Set("MADV_HUGEPAGE", MADV_HUGEPAGE);
  c.Set("MADV_NOHUGEPAGE", MADV_NOHUGEPAGE);
  c.Set("MADV_DONTFORK", MADV_DONTFORK);
  c.Set("MADV_DOFORK", MADV_DOFORK);
  c.Set("MADV_WIPEONFORK", MADV_WIPEONFORK);
  c.Set("MADV_KEEPONFORK", MADV_KEEPONFORK);
  c.Set("MADV_MERGEABLE", MADV_MERGEABLE);
  c.Set("MADV_UNMERGEABLE", MADV_UNMERGEABLE);
#ifdef MADV_POPULATE_READ
  c.Set("MADV_POPULATE_READ", MADV_POPULATE_READ);
  c.Set("MADV_POPULATE_WRITE", MADV_POPULATE_WRITE);
#else
  c.Set("MADV_POPULATE_READ", 22);
  c.Set("MADV_POPULATE_WRITE", 23);
#endif
  c.Set("BACKING_ANON_PRIVATE", static_cast<int>(kAnonPrivate));
  c.Set("BACKING_ANON_SHARED", static_cast<int>(kAnonShared));
  c.Set("BACKING_MEMFD_PRIVATE", static_cast<int>(kMemfdPrivate));
  c.Set("BACKING_MEMFD_SHARED", static_cast<int>(kMemfdShared));
  return c;
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mapMemory", Napi::Function::New(env, MapMemory, "mapMemory"));
  exports.Set("unmapMemory", Napi::Function::New(env, UnmapMemory, "unmapMemory"));
  exports.Set("detachBuffer", Napi::Function::New(env, DetachBuffer, "detachBuffer"));
  exports.Set("protectMemory", Napi::Function::New(env, ProtectMemory, "protectMemory"));
  exports.Set("adviseMemory", Napi::Function::New(env, AdviseMemory, "adviseMemory"));
  exports.Set("touchPages", Napi::Function::New(env, TouchPages, "touchPages"));
  exports.Set("constants", Constants(env));
}

}  // namespace cowlab
