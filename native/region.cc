// JS bindings of the region manager (src/region/ is the typed API over them). Handles are
// numbers (slot + generation): a released view's handle never reaches another view. Every
// buffer handed to JS is external memory of a view; its finalizer releases the view (owner)
// or drops the borrow (CowView.attach) if JS did not do it first. No V8 call is made while the
// region lock is held, so a finalizer can never run inside it.
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "child.h"
#include "errors.h"
#include "page.h"
#include "region.h"

namespace cowlab {
namespace {

using region::Counters;
using region::Guard;
using region::Region;
using region::Status;
using region::View;

constexpr const char* kReleased = "the view was released";

enum HintKind { kOwner = 0, kBorrower = 1 };
struct BufferHint {
  HintKind kind;
  uint64_t handle;
};

// What a release unlinked under the lock, freed after it.
struct Unlinked {
  View* view = nullptr;
  Region* region = nullptr;
};

Unlinked ReleaseView(View* v) {
  Unlinked u;
  Region* r = v->region;
  region::ReleaseLocked(v);
  u.view = v;
  if (r->closed && r->viewCount == 0) {
    region::RemoveRegion(r);
    u.region = r;
  }
  return u;
}

void FreeUnlinked(const Unlinked& u) {
  if (u.view != nullptr) {
    region::FreeViewMemory(u.view);
    delete u.view;
  }
  if (u.region != nullptr) {
    region::FreeRegionMemory(u.region);
    delete u.region;
  }
}

// Drops a borrow (explicitly or by the borrowed buffer's finalizer); lock held.
Unlinked DropBorrowLocked(uint64_t borrow) {
  uint64_t viewHandle;
  if (!region::DropBorrow(borrow, &viewHandle)) return Unlinked();
  View* v = region::FindView(viewHandle);
  if (v == nullptr) return Unlinked();
  v->borrows--;
  return v->orphaned && v->borrows == 0 ? ReleaseView(v) : Unlinked();
}

void FinalizeBuffer(Napi::Env, void*, BufferHint* hint) {
  Unlinked u;
  {
    Guard g;
    if (hint->kind == kBorrower) {
      u = DropBorrowLocked(hint->handle);
    } else if (View* v = region::FindView(hint->handle)) {
      if (v->borrows == 0) u = ReleaseView(v);
      else v->orphaned = true;
    }
  }
  FreeUnlinked(u);
  delete hint;
}

Napi::ArrayBuffer ViewBuffer(Napi::Env env, uint8_t* base, uint64_t pages, HintKind kind, uint64_t handle) {
  return Napi::ArrayBuffer::New(env, base, pages * PageSize(), FinalizeBuffer, new BufferHint{kind, handle});
}

Napi::Value Address(Napi::Env env, const void* p) {
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)));
}

// A failed table operation as a CowlabError: what failed (a page made read-only by the user,
// the frame pool, or a syscall) and its facts (`cause`: "read-only" with `page`, "pool-full"
// with `maxFrames`, or "syscall"; ENOMEM is ERR_TOO_LARGE). src/region/region.ts says what the
// call was doing and what to do about it (at ENOMEM, whether vm.max_map_count was reached).
Napi::Error StatusError(Napi::Env env, const Status& s, uint64_t maxFrames) {
  PendingError e;
  if (s.readOnlyPage >= 0) {
    e.set("ERR_INVALID_OPTION", "page " + std::to_string(s.readOnlyPage) + " is read-only")
        .with("cause", "read-only")
        .with("page", static_cast<double>(s.readOnlyPage));
  } else if (s.poolFull) {
    e.set("ERR_TOO_LARGE", "the frame pool is full")
        .with("cause", "pool-full")
        .with("maxFrames", static_cast<double>(maxFrames));
  } else {
    e.setSyscall(s.syscall, s.err, "", s.err == ENOMEM ? "ERR_TOO_LARGE" : "ERR_SYSCALL").with("cause", "syscall");
  }
  return e.toJs(env);
}

[[noreturn]] void ThrowReleased(Napi::Env env) { throw MakeError(env, "ERR_RELEASED", kReleased); }

// regionCreate({ pages, policy, faultAround, populate, maxFrames, batchFrames })
//   -> { region, view, address, buffer }
Napi::Value RegionCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "regionCreate";
  Napi::Object o = ArgObject(info, 0, fn, "options");
  uint64_t pages = PropCount(env, o, fn, "pages", 0xffffffffULL);
  uint64_t policy = PropCount(env, o, fn, "policy", region::kFaultAround);
  uint64_t faultAround = PropCount(env, o, fn, "faultAround", 1u << 20);
  uint64_t populate = PropCount(env, o, fn, "populate", region::kPopulateWrite);
  uint64_t maxFrames = PropCount(env, o, fn, "maxFrames", 0xfffffffeULL);
  uint64_t batchFrames = PropCount(env, o, fn, "batchFrames", 1u << 24);
  if (pages == 0) ThrowBadArg(env, fn, "pages", "at least 1");
  if (batchFrames == 0) ThrowBadArg(env, fn, "batchFrames", "at least 1");
  if (maxFrames < pages) ThrowBadArg(env, fn, "maxFrames", "at least pages");

  int err = region::InstallHandler();
  if (err != 0) throw MakeSyscallError(env, "sigaction", err, "installing the region SIGSEGV handler");
  Region* r = new Region();
  r->policy = static_cast<region::Policy>(policy);
  r->faultAround = static_cast<uint32_t>(faultAround);
  View* v = new View();
  Status s = region::AllocRegion(r, pages, maxFrames, batchFrames);
  if (s.ok()) s = region::AllocView(v, r);
  bool slots = true;
  uint64_t regionHandle = 0, viewHandle = 0;
  if (s.ok()) {
    Guard g;
    if (!region::AddRegion(r)) {
      slots = false;
    } else {
      s = region::PopulateRoot(v, static_cast<region::Populate>(populate));
      if (s.ok() && !region::AddView(v)) slots = false;
      if (!s.ok() || !slots) region::RemoveRegion(r);
      else {
        regionHandle = region::Handle(r->slot, r->gen, region::kMaxRegions);
        viewHandle = region::Handle(v->slot, v->gen, region::kMaxViews);
      }
    }
  }
  if (!s.ok() || !slots) {
    region::FreeViewMemory(v);
    region::FreeRegionMemory(r);
    delete v;
    delete r;
    if (!slots) throw MakeError(env, "ERR_TOO_LARGE", "too many cowlab regions or views in this process");
    throw StatusError(env, s, maxFrames);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("region", static_cast<double>(regionHandle));
  out.Set("view", static_cast<double>(viewHandle));
  out.Set("address", Address(env, v->base));
  out.Set("buffer", ViewBuffer(env, v->base, v->pages, kOwner, viewHandle));
  return out;
}

// regionFork(view, wipe) -> { view, address, buffer, ns }. wipe: the new view starts with
// every page untouched and the source is left alone (MADV_WIPEONFORK semantics).
Napi::Value RegionFork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = ArgCount(info, 0, "regionFork", "view");
  bool wipe = ArgBool(info, 1, "regionFork", "wipe");
  uint64_t t0 = child::NowNs();
  Region* r = nullptr;
  {
    Guard g;
    if (View* v = region::FindView(h)) r = v->region;
  }
  if (r == nullptr) ThrowReleased(env);
  // Only the owning thread forks or releases its views, so r lives on between the two locks.
  View* d = new View();
  Status s = region::AllocView(d, r);
  bool released = false, slots = true;
  uint64_t handle = 0;
  if (s.ok()) {
    Guard g;
    View* src = region::FindView(h);
    if (src == nullptr) {
      released = true;
    } else {
      Counters c;
      if (!wipe) s = region::ForkInto(src, d, &c);
      else memcpy(d->readOnly, src->readOnly, d->pages);  // the protection is inherited, the pages are not
      if (s.ok() && !region::AddView(d)) slots = false;
      if (s.ok() && slots) {
        d->counters.add(c);
        r->counters.add(c);
        handle = region::Handle(d->slot, d->gen, region::kMaxViews);
      } else {
        region::DropFrames(d);
      }
    }
  }
  uint64_t t1 = child::NowNs();
  if (!s.ok() || released || !slots) {
    uint64_t maxFrames = r->maxFrames;
    region::FreeViewMemory(d);
    delete d;
    if (released) throw MakeError(env, "ERR_RELEASED", kReleased);
    if (!slots) throw MakeError(env, "ERR_TOO_LARGE", "too many cowlab views in this process");
    throw StatusError(env, s, maxFrames);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("view", static_cast<double>(handle));
  out.Set("address", Address(env, d->base));
  out.Set("buffer", ViewBuffer(env, d->base, d->pages, kOwner, handle));
  out.Set("ns", static_cast<double>(t1 - t0));
  return out;
}

// regionRelease(view): unmaps the view and drops its frames' counts.
Napi::Value RegionRelease(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = ArgCount(info, 0, "regionRelease", "view");
  Unlinked u;
  bool found = false;
  uint32_t borrows = 0;
  {
    Guard g;
    View* v = region::FindView(h);
    found = v != nullptr;
    if (found) borrows = v->borrows;
    if (found && borrows == 0) u = ReleaseView(v);
  }
  FreeUnlinked(u);
  if (!found) ThrowReleased(env);
  if (borrows > 0) {
    PendingError e;
    e.set("ERR_BUSY", "the view is attached in other threads").with("cause", "attached").with("borrows", borrows);
    throw e.toJs(env);
  }
  return env.Undefined();
}

// regionAttach(view) -> { borrow, address, pages, buffer }: the view in this thread.
Napi::Value RegionAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = ArgCount(info, 0, "regionAttach", "view");
  uint64_t borrow = 0;
  uint8_t* base = nullptr;
  uint64_t pages = 0;
  {
    Guard g;
    if (View* v = region::FindView(h)) {
      base = v->base;
      pages = v->pages;
      borrow = region::AddBorrow(h);
      if (borrow != 0) v->borrows++;
    }
  }
  if (base == nullptr) ThrowReleased(env);
  if (borrow == 0) throw MakeError(env, "ERR_TOO_LARGE", "too many attached cowlab views in this process");
  Napi::Object out = Napi::Object::New(env);
  out.Set("borrow", static_cast<double>(borrow));
  out.Set("address", Address(env, base));
  out.Set("pages", static_cast<double>(pages));
  out.Set("buffer", ViewBuffer(env, base, pages, kBorrower, borrow));
  return out;
}

// regionDetach(borrow): the attached view is no longer used by this thread.
Napi::Value RegionDetach(const Napi::CallbackInfo& info) {
  uint64_t b = ArgCount(info, 0, "regionDetach", "borrow");
  Unlinked u;
  {
    Guard g;
    u = DropBorrowLocked(b);
  }
  FreeUnlinked(u);
  return info.Env().Undefined();
}

// The shape of regionPrepareWrite and regionProtect: arguments (view, start, end, ...), `op`
// on the view's pages [start, end) under the lock, its failure thrown as a StatusError.
template <typename Op>
void PageRangeCall(const Napi::CallbackInfo& info, const char* fn, Op op) {
  Napi::Env env = info.Env();
  uint64_t h = ArgCount(info, 0, fn, "view");
  uint64_t start = ArgCount(info, 1, fn, "start");
  uint64_t end = ArgCount(info, 2, fn, "end");
  Status s;
  uint64_t maxFrames = 0;
  bool found = false, inRange = false;
  {
    Guard g;
    View* v = region::FindView(h);
    found = v != nullptr;
    inRange = found && start <= end && end <= v->pages;
    if (inRange) {
      maxFrames = v->region->maxFrames;
      s = op(v, start, end);
    }
  }
  if (!found) ThrowReleased(env);
  if (!inRange) ThrowBadArg(env, fn, "end", "within the view, not below start");
  if (!s.ok()) throw StatusError(env, s, maxFrames);
}

// regionPrepareWrite(view, start, end): breaks COW for pages [start, end) now.
Napi::Value RegionPrepareWrite(const Napi::CallbackInfo& info) {
  PageRangeCall(info, "regionPrepareWrite", [](View* v, uint64_t start, uint64_t end) {
    Counters c;
    Status s = region::MakeWritable(v, start, end, &c);
    v->counters.add(c);
    v->region->counters.add(c);
    return s;
  });
  return info.Env().Undefined();
}

// regionProtect(view, start, end, readOnly): view.protect.
Napi::Value RegionProtect(const Napi::CallbackInfo& info) {
  bool readOnly = ArgBool(info, 3, "regionProtect", "readOnly");
  PageRangeCall(info, "regionProtect",
                [readOnly](View* v, uint64_t start, uint64_t end) { return region::Protect(v, start, end, readOnly); });
  return info.Env().Undefined();
}

// regionViewPages(view) -> { state: Uint8Array, frame: Uint32Array, refcount: Uint32Array, readOnly: Uint8Array }
Napi::Value RegionViewPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = ArgCount(info, 0, "regionViewPages", "view");
  uint64_t pages = 0;
  {
    Guard g;
    if (View* v = region::FindView(h)) pages = v->pages;
  }
  if (pages == 0) ThrowReleased(env);
  Napi::Uint8Array state = Napi::Uint8Array::New(env, pages);
  Napi::Uint32Array frame = Napi::Uint32Array::New(env, pages);
  Napi::Uint32Array refcount = Napi::Uint32Array::New(env, pages);
  Napi::Uint8Array readOnly = Napi::Uint8Array::New(env, pages);
  uint8_t* sp = state.Data();
  uint8_t* op = readOnly.Data();
  uint32_t* fp = frame.Data();
  uint32_t* rp = refcount.Data();
  bool found = false;
  {
    Guard g;
    View* v = region::FindView(h);
    found = v != nullptr;
    if (found) {
      memcpy(sp, v->state, pages);
      memcpy(op, v->readOnly, pages);
      memcpy(fp, v->frame, pages * sizeof(uint32_t));
      for (uint64_t p = 0; p < pages; p++) rp[p] = fp[p] == region::kNoFrame ? 0 : v->region->refcount[fp[p]];
    }
  }
  if (!found) ThrowReleased(env);
  Napi::Object out = Napi::Object::New(env);
  out.Set("state", state);
  out.Set("frame", frame);
  out.Set("refcount", refcount);
  out.Set("readOnly", readOnly);
  return out;
}

struct ViewStat {
  uint64_t handle = 0, present = 0, shared = 0, exclusive = 0, zeroPage = 0, borrows = 0;
  Counters counters;
};

Napi::Object CountersObject(Napi::Env env, const Counters& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("copies", static_cast<double>(c.copies));
  o.Set("reuses", static_cast<double>(c.reuses));
  o.Set("zeroFills", static_cast<double>(c.zeroFills));
  o.Set("zeroMaps", static_cast<double>(c.zeroMaps));
  o.Set("faults", static_cast<double>(c.faults));
  return o;
}

// regionStats(region) -> { frames, counters, views: [...] }
Napi::Value RegionStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = ArgCount(info, 0, "regionStats", "region");
  std::vector<ViewStat> views;
  views.reserve(64);
  Region snapshot;
  bool found = false;
  {
    Guard g;
    Region* r = region::FindRegion(h);
    found = r != nullptr && !r->closed;
    for (View* v = found ? r->views : nullptr; v != nullptr; v = v->next) {
      ViewStat s;
      s.handle = region::Handle(v->slot, v->gen, region::kMaxViews);
      s.borrows = v->borrows;
      s.counters = v->counters;
      for (uint64_t p = 0; p < v->pages; p++) {
        uint8_t st = v->state[p];
        if (st == region::kUntouched) continue;
        s.present++;
        if (st == region::kZeroPage) s.zeroPage++;
        if (v->frame[p] != region::kNoFrame && r->refcount[v->frame[p]] == 1) s.exclusive++;
        else s.shared++;
      }
      views.push_back(s);
    }
    if (found) snapshot = *r;
  }
  if (!found) throw MakeError(env, "ERR_RELEASED", "the region was closed");
  Napi::Object out = Napi::Object::New(env);
  out.Set("framesInUse", static_cast<double>(snapshot.inUse));
  out.Set("freeFrames", static_cast<double>(snapshot.freeCount));
  out.Set("holeFrames", static_cast<double>(snapshot.holeCount));
  out.Set("poolFrames", static_cast<double>(snapshot.poolFrames));
  out.Set("maxFrames", static_cast<double>(snapshot.maxFrames));
  out.Set("batchFrames", static_cast<double>(snapshot.batchFrames));
  out.Set("stagingAddress", Address(env, snapshot.staging));
  out.Set("counters", CountersObject(env, snapshot.counters));
  Napi::Array list = Napi::Array::New(env, views.size());
  // The region's list is newest first; report oldest first.
  for (size_t i = 0; i < views.size(); i++) {
    const ViewStat& s = views[views.size() - 1 - i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("view", static_cast<double>(s.handle));
    o.Set("present", static_cast<double>(s.present));
    o.Set("shared", static_cast<double>(s.shared));
    o.Set("exclusive", static_cast<double>(s.exclusive));
    o.Set("zeroPage", static_cast<double>(s.zeroPage));
    o.Set("borrows", static_cast<double>(s.borrows));
    o.Set("counters", CountersObject(env, s.counters));
    list.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("views", list);
  return out;
}

// regionClose(region): the region goes once its last view is released.
Napi::Value RegionClose(const Napi::CallbackInfo& info) {
  uint64_t h = ArgCount(info, 0, "regionClose", "region");
  Unlinked u;
  {
    Guard g;
    Region* r = region::FindRegion(h);
    if (r != nullptr) {
      r->closed = true;
      if (r->viewCount == 0) {
        region::RemoveRegion(r);
        u.region = r;
      }
    }
  }
  FreeUnlinked(u);
  return info.Env().Undefined();
}

// regionTrim(region): gives every free frame but one batch back to the kernel.
Napi::Value RegionTrim(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t h = ArgCount(info, 0, "regionTrim", "region");
  bool found = false;
  {
    Guard g;
    Region* r = region::FindRegion(h);
    found = r != nullptr && !r->closed;
    if (found) region::Trim(r, true);
  }
  if (!found) throw MakeError(env, "ERR_RELEASED", "the region was closed");
  return env.Undefined();
}

__attribute__((noinline)) void TimedLoads(const uint8_t* base, size_t ps, const uint32_t* order, size_t n,
                                          uint64_t* latNs, uint64_t* sink) {
  uint64_t acc = 0;
  for (size_t i = 0; i < n; i++) {
    const volatile uint64_t* p = reinterpret_cast<const volatile uint64_t*>(base + order[i] * ps);
    uint64_t t0 = child::NowNs();
    __asm__ volatile("" ::: "memory");
    acc += *p;
    __asm__ volatile("" ::: "memory");
    uint64_t t1 = child::NowNs();
    latNs[i] = t1 - t0;
  }
  *sink = acc;
}

// regionTimedAccess(view, order, write, tag) -> Float64Array: one timed 8-byte store
// (`tag + page`, at offset 0) or load per listed page, in order, on this thread.
Napi::Value RegionTimedAccess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "regionTimedAccess";
  uint64_t h = ArgCount(info, 0, fn, "view");
  if (info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    ThrowBadArg(env, fn, "order", "a Uint32Array");
  }
  Napi::Uint32Array order = info[1].As<Napi::Uint32Array>();
  bool write = ArgBool(info, 2, fn, "write");
  uint64_t tag = ArgAddress(info, 3, fn, "tag");
  uint8_t* base = nullptr;
  uint64_t pages = 0;
  {
    Guard g;
    if (View* v = region::FindView(h)) {
      base = v->base;
      pages = v->pages;
    }
  }
  if (base == nullptr) ThrowReleased(env);
  const size_t n = order.ElementLength();
  for (size_t i = 0; i < n; i++) {
    if (order[i] >= pages) ThrowBadArg(env, fn, "order", "page indices below the view's pages");
  }
  std::vector<uint32_t> idx(order.Data(), order.Data() + n);
  std::vector<uint64_t> lat(n);  // value-initialized: every page of it is touched before timing
  uint64_t sink = 0;
  child::PretouchStack(64 * 1024);
  if (write) child::TimedStores(base, PageSize(), idx.data(), n, tag, lat.data());
  else TimedLoads(base, PageSize(), idx.data(), n, lat.data(), &sink);
  Napi::Float64Array out = Napi::Float64Array::New(env, n);
  for (size_t i = 0; i < n; i++) out[i] = static_cast<double>(lat[i]);
  return out;
}

// regionHandlerInfo() -> { installed, previous }: what the SIGSEGV handler chains to.
Napi::Value RegionHandlerInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* prev = region::PreviousHandlerKind();
  Napi::Object out = Napi::Object::New(env);
  out.Set("installed", strcmp(prev, "none") != 0);
  out.Set("previous", prev);
  return out;
}

}  // namespace

void InitRegion(Napi::Env env, Napi::Object exports) {
  exports.Set("regionCreate", Napi::Function::New(env, RegionCreate, "regionCreate"));
  exports.Set("regionFork", Napi::Function::New(env, RegionFork, "regionFork"));
  exports.Set("regionRelease", Napi::Function::New(env, RegionRelease, "regionRelease"));
  exports.Set("regionAttach", Napi::Function::New(env, RegionAttach, "regionAttach"));
  exports.Set("regionDetach", Napi::Function::New(env, RegionDetach, "regionDetach"));
  exports.Set("regionPrepareWrite", Napi::Function::New(env, RegionPrepareWrite, "regionPrepareWrite"));
  exports.Set("regionProtect", Napi::Function::New(env, RegionProtect, "regionProtect"));
  exports.Set("regionViewPages", Napi::Function::New(env, RegionViewPages, "regionViewPages"));
  exports.Set("regionStats", Napi::Function::New(env, RegionStats, "regionStats"));
  exports.Set("regionClose", Napi::Function::New(env, RegionClose, "regionClose"));
  exports.Set("regionTrim", Napi::Function::New(env, RegionTrim, "regionTrim"));
  exports.Set("regionTimedAccess", Napi::Function::New(env, RegionTimedAccess, "regionTimedAccess"));
  exports.Set("regionHandlerInfo", Napi::Function::New(env, RegionHandlerInfo, "regionHandlerInfo"));
}

}  // namespace cowlab
