// What every write-tracking mechanism (native/track_*.cc) shares: its input (pages, the store
// order, the fill pattern, the tag), the measured memory filled page by page, and the result
// object. Each mechanism arms tracking over N pages (timed), stores one 8-byte word per
// listed page at offset 0 (`tag + page`, each store timed alone, child::TimedStores), and
// collects the pages it saw written (timed). Raw numbers only: src/tracking/ checks the
// content (the set reported against the set written, the snapshot copies against the fill)
// and summarizes.
#pragma once
#include <napi.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "args.h"
#include "child.h"
#include "errors.h"
#include "page.h"

namespace cowlab {
namespace tracking {

struct Input {
  size_t pages = 0;
  std::vector<uint32_t> order;  // pages to store to, in order (each < pages)
  std::vector<uint32_t> fill;   // every u32 of page p holds fill[p] before the stores
  uint64_t tag = 0;
  bool content = false;         // return copies of the live pages (and the snapshot, if any)
};

// Reads { pages, order: Uint32Array, fill: Uint32Array (pages long), tag: bigint, content }.
inline Input ReadInput(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  Napi::Object o = ArgObject(info, 0, fn, "options");
  Input in;
  in.pages = PropCount(env, o, fn, "pages", 1u << 24);
  if (in.pages == 0) ThrowBadArg(env, fn, "pages", "positive");
  Napi::Uint32Array order = PropU32Array(env, o, fn, "order");
  Napi::Uint32Array fill = PropU32Array(env, o, fn, "fill");
  if (fill.ElementLength() != in.pages) ThrowBadArg(env, fn, "fill", "one word per page");
  in.order.assign(order.Data(), order.Data() + order.ElementLength());
  for (uint32_t p : in.order) {
    if (p >= in.pages) ThrowBadArg(env, fn, "order", "pages below `pages`");
  }
  in.fill.assign(fill.Data(), fill.Data() + fill.ElementLength());
  in.tag = PropAddress(env, o, fn, "tag");
  in.content = o.Get("content").ToBoolean().Value();
  return in;
}

// Writes fill[p] into every u32 of page p of `base`.
inline void FillPages(uint8_t* base, const Input& in) {
  const size_t ps = PageSize();
  for (size_t p = 0; p < in.pages; p++) {
    uint32_t* w = reinterpret_cast<uint32_t*>(base + p * ps);
    for (size_t i = 0; i < ps / 4; i++) w[i] = in.fill[p];
  }
}

// A private anonymous mapping of the input's pages (4 KiB pages: MADV_NOHUGEPAGE), filled.
inline uint8_t* MapFilledAnon(Napi::Env env, const Input& in) {
  const size_t bytes = in.pages * PageSize();
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw MakeSyscallError(env, "mmap", errno, "mapping the tracked pages");
  madvise(m, bytes, MADV_NOHUGEPAGE);
  FillPages(static_cast<uint8_t*>(m), in);
  return static_cast<uint8_t*>(m);
}

// The timed part's own memory, written before any timing starts.
struct Buffers {
  std::vector<uint64_t> latNs;
  std::vector<uint8_t> reported;
  explicit Buffers(const Input& in) : latNs(in.order.size() + 1, 0), reported(in.pages, 0) {
    child::PretouchStack(64 * 1024);
  }
};

// A warm-up of the timed loop's code and the clock: one untimed pass over an own page.
inline void WarmLoop() {
  static uint8_t page[8192] __attribute__((aligned(4096)));
  uint32_t zero = 0;
  uint64_t lat = 0;
  child::TimedStores(page, PageSize(), &zero, 1, 0, &lat);
}

inline Napi::ArrayBuffer CopyOut(Napi::Env env, const uint8_t* p, size_t bytes) {
  Napi::ArrayBuffer b = Napi::ArrayBuffer::New(env, bytes);
  memcpy(b.Data(), p, bytes);
  return b;
}

// { setupNs, armNs, latencyNs: Float64Array, collectNs, reported: Uint8Array, live, snapshot }
// live / snapshot: ArrayBuffers of every page (null unless asked for, or for snapshot, when
// the mechanism keeps no copy).
inline Napi::Object MakeResult(Napi::Env env, const Input& in, const Buffers& b, double setupNs, double armNs,
                               double collectNs, const uint8_t* live, const uint8_t* snapshot) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("setupNs", setupNs);
  out.Set("armNs", armNs);
  out.Set("collectNs", collectNs);
  Napi::Float64Array lat = Napi::Float64Array::New(env, in.order.size());
  for (size_t i = 0; i < in.order.size(); i++) lat[i] = static_cast<double>(b.latNs[i]);
  out.Set("latencyNs", lat);
  Napi::Uint8Array rep = Napi::Uint8Array::New(env, in.pages);
  memcpy(rep.Data(), b.reported.data(), in.pages);
  out.Set("reported", rep);
  const size_t bytes = in.pages * PageSize();
  out.Set("live", in.content && live != nullptr ? Napi::Value(CopyOut(env, live, bytes)) : env.Null());
  out.Set("snapshot", in.content && snapshot != nullptr ? Napi::Value(CopyOut(env, snapshot, bytes)) : env.Null());
  return out;
}

}  // namespace tracking
}  // namespace cowlab
