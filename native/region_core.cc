// The region manager's tables and its COW operations. Everything here that runs under the
// lock is async-signal-safe (the SIGSEGV handler calls it): no malloc, no stdio, no
// exceptions, raw syscalls only. Memory is allocated only by the Alloc* functions, which run
// on a JS thread without the lock.
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "region.h"

namespace cowlab {
namespace region {

namespace {

// A write fault maps the new frame with MAP_POPULATE: the store that faulted then runs on a
// present PTE instead of taking a second (kernel) fault to map it.
constexpr bool kPopulateOnFault = true;

// ---- the lock ----

std::atomic<uintptr_t> g_owner{0};
pid_t g_pid = 0;  // the process whose views the tables describe

uintptr_t Self() { return reinterpret_cast<uintptr_t>(reinterpret_cast<void*>(pthread_self())); }

void SpinUntilTaken(uintptr_t me) {
  for (unsigned i = 0;; i++) {
    uintptr_t expected = 0;
    if (g_owner.compare_exchange_weak(expected, me, std::memory_order_acquire, std::memory_order_relaxed)) return;
    if (i < 128) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      sched_yield();
    }
  }
}

// ---- handles: slot + generation, so a released view's handle never finds a new view ----

View* g_viewSlots[kMaxViews];
uint64_t g_viewGen[kMaxViews];
uint32_t g_viewHint = 0;
Region* g_regionSlots[kMaxRegions];
uint64_t g_regionGen[kMaxRegions];
struct Borrow {
  uint64_t view = 0;  // 0: free
  uint64_t gen = 0;
};
Borrow g_borrows[kMaxBorrows];

// Views sorted by start address, for the handler's lookup.
struct AddrEntry {
  uintptr_t start, end;
  View* view;
};
AddrEntry g_addr[kMaxViews];
size_t g_addrCount = 0;

// ---- bitmaps ----

inline bool Bit(const uint64_t* b, uint64_t i) { return (b[i >> 6] >> (i & 63)) & 1; }
inline void SetBit(uint64_t* b, uint64_t i) { b[i >> 6] |= 1ULL << (i & 63); }
inline void ClearBit(uint64_t* b, uint64_t i) { b[i >> 6] &= ~(1ULL << (i & 63)); }

// First set bit in [from, limit), or limit.
uint64_t FindSet(const uint64_t* b, uint64_t from, uint64_t limit) {
  if (from >= limit) return limit;
  uint64_t w = from >> 6;
  const uint64_t lastW = (limit - 1) >> 6;
  uint64_t word = b[w] & (~0ULL << (from & 63));
  for (;;) {
    if (word != 0) {
      uint64_t i = (w << 6) + static_cast<uint64_t>(__builtin_ctzll(word));
      return i < limit ? i : limit;
    }
    if (++w > lastW) return limit;
    word = b[w];
  }
}

constexpr uint64_t kNone = ~0ULL;

// Last set bit below `before`, or kNone.
uint64_t FindSetBelow(const uint64_t* b, uint64_t before) {
  if (before == 0) return kNone;
  uint64_t i = before - 1;
  uint64_t w = i >> 6;
  uint64_t word = b[w] & ((i & 63) == 63 ? ~0ULL : ((1ULL << ((i & 63) + 1)) - 1));
  for (;;) {
    if (word != 0) return (w << 6) + 63 - static_cast<uint64_t>(__builtin_clzll(word));
    if (w == 0) return kNone;
    word = b[--w];
  }
}

uint8_t* Staging(const Region* r, uint64_t frame) { return r->staging + frame * PageSize(); }
uint8_t* PageAddr(const View* v, uint64_t page) { return v->base + page * PageSize(); }

// ---- frames ----

// Writes one byte per frame through the staging mapping, so the frame's staging translation
// exists before a copy needs it (MADV_POPULATE_WRITE fills the guest page table; on a VM with
// shadow paging the first real access still traps to the host).
void Pretouch(Region* r, uint64_t first, uint64_t n) {
  for (uint64_t f = first; f < first + n; f++) *reinterpret_cast<volatile uint8_t*>(Staging(r, f)) = 0;
}

// Takes up to `want` free frames, contiguous, preferring to start at `hint` (the frame after
// the previous page's, so the mappings merge). Needs freeCount > 0. Returns how many.
uint64_t TakeRun(Region* r, uint64_t want, uint64_t hint, uint32_t* first) {
  uint64_t start;
  if (hint < r->poolFrames && Bit(r->freeBits, hint)) {
    start = hint;
  } else {
    start = FindSet(r->freeBits, r->cursor, r->poolFrames);
    if (start == r->poolFrames) start = FindSet(r->freeBits, 0, r->poolFrames);
  }
  uint64_t len = 0;
  while (len < want && start + len < r->poolFrames && Bit(r->freeBits, start + len)) {
    ClearBit(r->freeBits, start + len);
    len++;
  }
  r->freeCount -= len;
  r->cursor = start + len < r->poolFrames ? start + len : 0;
  *first = static_cast<uint32_t>(start);
  return len;
}

// Frames taken but never mapped go back to the free bitmap.
void PutBack(Region* r, uint64_t first, uint64_t n) {
  for (uint64_t f = first; f < first + n; f++) SetBit(r->freeBits, f);
  r->freeCount += n;
}

void AddRef(Region* r, uint32_t f) {
  if (r->refcount[f]++ == 0) r->inUse++;
}

void DropRef(Region* r, uint32_t f) {
  if (--r->refcount[f] == 0) {
    SetBit(r->freeBits, f);
    r->freeCount++;
    r->inUse--;
  }
}

// Maps frames [frame, frame+n) at pages [page, page+n) of v. `committed` says whether the
// page now maps the new frames (mmap succeeded), even if a later step failed. With a failed
// mmap the old mapping is intact (Linux >= 6.12 undoes the unmap of a failed MAP_FIXED).
Status MapFrames(View* v, uint64_t page, uint64_t n, uint32_t frame, int prot, bool populate, bool dontfork,
                 bool* committed) {
  const size_t ps = PageSize();
  void* at = PageAddr(v, page);
  int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
  *committed = false;
  if (mmap(at, n * ps, prot, flags, v->region->fd, static_cast<off_t>(frame) * static_cast<off_t>(ps)) == MAP_FAILED) {
    return Status::Sys("mmap", errno);
  }
  *committed = true;
  if (dontfork && madvise(at, n * ps, MADV_DONTFORK) != 0) return Status::Sys("madvise", errno);
  return Status();
}

// Gives pages [p, q) of v new frames, filled from `from[i]` (a copy of that frame) or with
// zeros (from == null; `fresh`: the frames come zeroed from a new file, skip the memset),
// mapped read-write. Drops the counts of the frames they replace.
Status CopyRun(View* v, uint64_t p, uint64_t q, const uint32_t* from, Counters* c, bool fresh = false) {
  Region* r = v->region;
  const size_t ps = PageSize();
  Status s = Grow(r, q - p);
  if (!s.ok()) return s;
  uint64_t i = p;
  while (i < q) {
    uint64_t hint = r->cursor;
    if (i > 0 && v->state[i - 1] == kWritable) hint = static_cast<uint64_t>(v->frame[i - 1]) + 1;
    uint32_t first;
    uint64_t got = TakeRun(r, q - i, hint, &first);
    for (uint64_t k = 0; k < got; k++) {
      uint8_t* dst = Staging(r, first + k);
      uint32_t src = from != nullptr ? from[i + k] : kNoFrame;
      if (src != kNoFrame) memcpy(dst, Staging(r, src), ps);
      else if (!fresh) memset(dst, 0, ps);
    }
    bool committed;
    s = MapFrames(v, i, got, first, PROT_READ | PROT_WRITE, kPopulateOnFault, true, &committed);
    if (!committed) {
      PutBack(r, first, got);
      return s;
    }
    v->anonVma = true;
    for (uint64_t k = 0; k < got; k++) {
      uint32_t old = v->frame[i + k];
      bool copied = from != nullptr && from[i + k] != kNoFrame;
      v->frame[i + k] = first + static_cast<uint32_t>(k);
      v->state[i + k] = kWritable;
      AddRef(r, first + static_cast<uint32_t>(k));
      if (old != kNoFrame) DropRef(r, old);
      if (copied) c->copies++;
      else c->zeroFills++;
    }
    if (!s.ok()) return s;
    i += got;
  }
  return Status();
}

enum Action { kSkip, kReuse, kCopy, kFill };

Action ActionOf(const View* v, uint64_t p) {
  switch (v->state[p]) {
    case kWritable: return kSkip;
    case kCow: return v->region->refcount[v->frame[p]] == 1 ? kReuse : kCopy;
    default: return kFill;
  }
}

// mprotect over each maximal run of pages in [from, to) that `pick` selects.
template <typename Pick>
Status ProtectRuns(View* v, uint64_t from, uint64_t to, Pick pick, int prot) {
  const size_t ps = PageSize();
  uint64_t p = from;
  while (p < to) {
    if (!pick(v, p)) {
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < to && pick(v, q)) q++;
    if (mprotect(PageAddr(v, p), (q - p) * ps, prot) != 0) return Status::Sys("mprotect", errno);
    p = q;
  }
  return Status();
}

bool WritableByUser(const View* v, uint64_t p) { return v->state[p] == kWritable && v->readOnly[p] == 0; }
bool WritableButReadOnly(const View* v, uint64_t p) { return v->state[p] == kWritable && v->readOnly[p] != 0; }

// Zero-page pages of a new view: readable, and mapped now (fork copies zero-page PTEs).
Status MapZeroPages(View* v) {
  const size_t ps = PageSize();
  uint64_t p = 0;
  while (p < v->pages) {
    if (v->state[p] != kZeroPage) {
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < v->pages && v->state[q] == kZeroPage) q++;
    if (mprotect(PageAddr(v, p), (q - p) * ps, PROT_READ) != 0) return Status::Sys("mprotect", errno);
    if (madvise(PageAddr(v, p), (q - p) * ps, MADV_POPULATE_READ) != 0) return Status::Sys("madvise", errno);
    p = q;
  }
  return Status();
}

// Lazy snapshot: dst maps every frame of src read-only, and both mark them COW.
Status ShareInto(View* src, View* dst) {
  Region* r = src->region;
  const uint64_t n = src->pages;
  dst->anonVma = src->anonVma;
  memcpy(dst->readOnly, src->readOnly, n);
  for (uint64_t p = 0; p < n; p++) {
    dst->state[p] = src->state[p] == kZeroPage && !src->anonVma ? static_cast<uint8_t>(kUntouched) : src->state[p];
    dst->frame[p] = src->frame[p];
    if (src->frame[p] != kNoFrame) AddRef(r, src->frame[p]);
  }
  uint64_t p = 0;
  while (p < n) {
    if (dst->frame[p] == kNoFrame) {
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < n && dst->frame[q] != kNoFrame && dst->frame[q] == dst->frame[q - 1] + 1) q++;
    bool committed;
    Status s = MapFrames(dst, p, q - p, dst->frame[p], PROT_READ, false, false, &committed);
    if (!s.ok()) return s;
    p = q;
  }
  Status s = MapZeroPages(dst);
  if (!s.ok()) return s;
  // One madvise for every mapping made above (each new mmap starts without VM_DONTCOPY).
  if (madvise(dst->base, n * PageSize(), MADV_DONTFORK) != 0) return Status::Sys("madvise", errno);
  return Status();
}

// Eager snapshot: dst gets a copy of every frame of src (the naive fork).
Status CopyInto(View* src, View* dst, Counters* c) {
  const uint64_t n = src->pages;
  dst->anonVma = src->anonVma;
  memcpy(dst->readOnly, src->readOnly, n);
  for (uint64_t p = 0; p < n; p++) {
    if (src->state[p] == kZeroPage && src->anonVma) dst->state[p] = kZeroPage;
  }
  uint64_t framed = 0;
  for (uint64_t p = 0; p < n; p++) framed += src->frame[p] != kNoFrame;
  Status s = Grow(src->region, framed);
  if (!s.ok()) return s;
  uint64_t p = 0;
  while (p < n) {
    if (src->frame[p] == kNoFrame) {
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < n && src->frame[q] != kNoFrame) q++;
    s = CopyRun(dst, p, q, src->frame, c);
    if (!s.ok()) return s;
    p = q;
  }
  // The copies were mapped read-write; pages the user made read-only stay so in the copy.
  s = ProtectRuns(dst, 0, n, WritableButReadOnly, PROT_READ);
  if (!s.ok()) return s;
  return MapZeroPages(dst);
}

}  // namespace

// ---- the lock ----

void Lock() {
  uintptr_t me = Self();
  if (g_owner.load(std::memory_order_relaxed) == me) Fatal("cowlab: fatal: the region lock was taken twice by one thread (a cowlab bug)\n");
  SpinUntilTaken(me);
}

bool LockFromHandler() {
  uintptr_t me = Self();
  uintptr_t expected = 0;
  if (g_owner.compare_exchange_strong(expected, me, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  if (expected == me) return false;
  // Contended. A child forked (or cloned) while another thread held the lock inherits it held,
  // with nobody to release it; it has none of the views either (MADV_DONTFORK), so none of its
  // faults are ours.
  if (static_cast<pid_t>(syscall(SYS_getpid)) != g_pid) return false;
  SpinUntilTaken(me);
  return true;
}

void RecordOwnerProcess() { g_pid = static_cast<pid_t>(syscall(SYS_getpid)); }

// ---- fork hooks ----
// A fork() (glibc's, which runs pthread_atfork handlers: Node's child_process, a library's
// fork) waits for the table operation or fault in flight, so the child never inherits a lock
// held by a thread it does not have, and never a mapping made by a fault but not yet advised
// MADV_DONTFORK (the window between the fault's mmap and its madvise). A thread that forks
// while holding the lock itself (a cowlab bug, or a fork from a signal handler interrupting
// it) does not wait for itself. _Fork() and raw clone() run no hooks: for them the window
// stays (and the lock-held-in-the-child case is handled in LockFromHandler).
namespace {
bool g_forkTookLock = false;  // written only by the lock's holder

void BeforeFork() {
  uintptr_t me = Self();
  if (g_owner.load(std::memory_order_relaxed) == me) return;  // g_forkTookLock stays false
  SpinUntilTaken(me);
  g_forkTookLock = true;
}

void AfterFork() {
  if (!g_forkTookLock) return;
  g_forkTookLock = false;
  Unlock();
}
}  // namespace

int InstallForkHooks() {
  static bool installed = false;  // InstallHandler runs this once at a time (its state guard)
  if (installed) return 0;
  int e = pthread_atfork(BeforeFork, AfterFork, AfterFork);
  installed = e == 0;
  return e;
}

void Unlock() { g_owner.store(0, std::memory_order_release); }

// ---- handles and tables ----

uint64_t Handle(uint32_t slot, uint64_t gen, size_t slots) { return gen * slots + slot; }

Region* FindRegion(uint64_t handle) {
  size_t slot = handle % kMaxRegions;
  Region* r = g_regionSlots[slot];
  return r != nullptr && r->gen == handle / kMaxRegions ? r : nullptr;
}

View* FindView(uint64_t handle) {
  size_t slot = handle % kMaxViews;
  View* v = g_viewSlots[slot];
  return v != nullptr && v->gen == handle / kMaxViews ? v : nullptr;
}

View* ViewAt(uintptr_t addr) {
  size_t lo = 0, hi = g_addrCount;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (g_addr[mid].end <= addr) lo = mid + 1;
    else hi = mid;
  }
  if (lo < g_addrCount && g_addr[lo].start <= addr && addr < g_addr[lo].end) return g_addr[lo].view;
  return nullptr;
}

bool AddRegion(Region* r) {
  for (size_t i = 0; i < kMaxRegions; i++) {
    if (g_regionSlots[i] == nullptr) {
      r->slot = static_cast<uint32_t>(i);
      r->gen = ++g_regionGen[i];
      g_regionSlots[i] = r;
      return true;
    }
  }
  return false;
}

void RemoveRegion(Region* r) {
  if (g_regionSlots[r->slot] == r) g_regionSlots[r->slot] = nullptr;
}

bool AddView(View* v) {
  if (g_addrCount >= kMaxViews) return false;
  size_t slot = kMaxViews;
  for (size_t k = 0; k < kMaxViews; k++) {
    size_t i = (g_viewHint + k) % kMaxViews;
    if (g_viewSlots[i] == nullptr) {
      slot = i;
      break;
    }
  }
  if (slot == kMaxViews) return false;
  g_viewHint = static_cast<uint32_t>((slot + 1) % kMaxViews);
  v->slot = static_cast<uint32_t>(slot);
  v->gen = ++g_viewGen[slot];
  g_viewSlots[slot] = v;
  // Insert into the address table, keeping it sorted.
  uintptr_t start = reinterpret_cast<uintptr_t>(v->base);
  size_t at = 0;
  while (at < g_addrCount && g_addr[at].start < start) at++;
  memmove(&g_addr[at + 1], &g_addr[at], (g_addrCount - at) * sizeof(AddrEntry));
  g_addr[at] = {start, start + v->pages * PageSize(), v};
  g_addrCount++;
  Region* r = v->region;
  v->prev = nullptr;
  v->next = r->views;
  if (r->views != nullptr) r->views->prev = v;
  r->views = v;
  r->viewCount++;
  return true;
}

void RemoveView(View* v) {
  for (size_t i = 0; i < g_addrCount; i++) {
    if (g_addr[i].view == v) {
      memmove(&g_addr[i], &g_addr[i + 1], (g_addrCount - i - 1) * sizeof(AddrEntry));
      g_addrCount--;
      break;
    }
  }
  if (g_viewSlots[v->slot] == v) g_viewSlots[v->slot] = nullptr;
  Region* r = v->region;
  if (v->prev != nullptr) v->prev->next = v->next;
  else r->views = v->next;
  if (v->next != nullptr) v->next->prev = v->prev;
  r->viewCount--;
}

uint64_t AddBorrow(uint64_t viewHandle) {
  for (size_t i = 0; i < kMaxBorrows; i++) {
    if (g_borrows[i].view == 0) {
      g_borrows[i].view = viewHandle;
      return Handle(static_cast<uint32_t>(i), ++g_borrows[i].gen, kMaxBorrows);
    }
  }
  return 0;
}

bool DropBorrow(uint64_t borrowHandle, uint64_t* viewHandle) {
  Borrow& b = g_borrows[borrowHandle % kMaxBorrows];
  if (b.view == 0 || b.gen != borrowHandle / kMaxBorrows) return false;
  *viewHandle = b.view;
  b.view = 0;
  return true;
}

// ---- the pool ----

Status Grow(Region* r, uint64_t need) {
  const size_t ps = PageSize();
  // Punched-out frames first: they are already inside the file. A batch (or what is
  // missing) at a time, so one fault never repopulates a whole trimmed pool.
  while (r->freeCount < need && r->holeCount > 0) {
    const uint64_t want = need - r->freeCount > r->batchFrames ? need - r->freeCount : r->batchFrames;
    uint64_t f = FindSet(r->holeBits, 0, r->poolFrames);
    uint64_t len = 0;
    while (len < want && f + len < r->poolFrames && Bit(r->holeBits, f + len)) len++;
    if (madvise(Staging(r, f), len * ps, MADV_POPULATE_WRITE) != 0) return Status::Sys("madvise", errno);
    Pretouch(r, f, len);
    for (uint64_t i = f; i < f + len; i++) {
      ClearBit(r->holeBits, i);
      SetBit(r->freeBits, i);
    }
    r->holeCount -= len;
    r->freeCount += len;
  }
  if (r->freeCount >= need) return Status();
  uint64_t missing = need - r->freeCount;
  uint64_t add = (missing + r->batchFrames - 1) / r->batchFrames * r->batchFrames;
  if (r->poolFrames + add > r->maxFrames) add = r->maxFrames - r->poolFrames;
  if (add < missing) return Status::Full();
  const uint64_t old = r->poolFrames;
  if (ftruncate(r->fd, static_cast<off_t>((old + add) * ps)) != 0) return Status::Sys("ftruncate", errno);
  if (madvise(Staging(r, old), add * ps, MADV_POPULATE_WRITE) != 0) {
    int e = errno;
    if (ftruncate(r->fd, static_cast<off_t>(old * ps)) != 0) {
      // The file stays larger; the frames beyond poolFrames are simply unused.
    }
    return Status::Sys("madvise", e);
  }
  Pretouch(r, old, add);
  for (uint64_t f = old; f < old + add; f++) SetBit(r->freeBits, f);
  r->poolFrames = old + add;
  r->freeCount += add;
  return Status();
}

void Trim(Region* r, bool all) {
  const size_t ps = PageSize();
  // Free frames are a warm cache for the next copies: keep as many as are in use (at least a
  // batch), and give back the excess once it is more than twice that. `all`: keep one batch.
  const uint64_t keep = !all && r->inUse > r->batchFrames ? r->inUse : r->batchFrames;
  if (r->freeCount <= (all ? keep : 2 * keep)) return;
  uint64_t excess = r->freeCount - keep;
  uint64_t top = r->poolFrames;
  while (excess > 0) {
    uint64_t hi = FindSetBelow(r->freeBits, top);
    if (hi == kNone) break;
    uint64_t lo = hi;
    while (lo > 0 && hi - lo + 1 < excess && Bit(r->freeBits, lo - 1)) lo--;
    uint64_t len = hi - lo + 1;
    if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(lo * ps),
                  static_cast<off_t>(len * ps)) != 0) {
      break;  // the frames stay free and populated
    }
    for (uint64_t f = lo; f <= hi; f++) {
      ClearBit(r->freeBits, f);
      SetBit(r->holeBits, f);
    }
    r->freeCount -= len;
    r->holeCount += len;
    excess -= len;
    top = lo;
  }
  // A tail of holes leaves the file.
  uint64_t end = r->poolFrames;
  while (end > 0 && Bit(r->holeBits, end - 1)) end--;
  if (end != r->poolFrames && ftruncate(r->fd, static_cast<off_t>(end * ps)) == 0) {
    for (uint64_t f = end; f < r->poolFrames; f++) ClearBit(r->holeBits, f);
    r->holeCount -= r->poolFrames - end;
    r->poolFrames = end;
    if (r->cursor >= end) r->cursor = 0;
  }
}

// ---- COW operations ----

Status MakeWritable(View* v, uint64_t start, uint64_t end, Counters* c) {
  const size_t ps = PageSize();
  for (uint64_t p = start; p < end; p++) {
    if (v->readOnly[p] != 0) {
      Status s;
      s.readOnlyPage = static_cast<int64_t>(p);
      return s;
    }
  }
  uint64_t p = start;
  while (p < end) {
    Action a = ActionOf(v, p);
    uint64_t q = p + 1;
    while (q < end && ActionOf(v, q) == a) q++;
    Status s;
    switch (a) {
      case kSkip:
        break;
      case kReuse:
        if (mprotect(PageAddr(v, p), (q - p) * ps, PROT_READ | PROT_WRITE) != 0) return Status::Sys("mprotect", errno);
        for (uint64_t i = p; i < q; i++) v->state[i] = kWritable;
        c->reuses += q - p;
        break;
      case kCopy:
        s = CopyRun(v, p, q, v->frame, c);
        break;
      case kFill:
        s = CopyRun(v, p, q, nullptr, c);
        break;
    }
    if (!s.ok()) return s;
    p = q;
  }
  return Status();
}

Status Protect(View* v, uint64_t start, uint64_t end, bool readOnly) {
  const size_t ps = PageSize();
  uint64_t p = start;
  while (p < end) {
    if (v->state[p] != kWritable) {
      v->readOnly[p] = readOnly;  // read-only (or nothing) already; a store faults either way
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < end && v->state[q] == kWritable) q++;
    if (mprotect(PageAddr(v, p), (q - p) * ps, readOnly ? PROT_READ : PROT_READ | PROT_WRITE) != 0) {
      return Status::Sys("mprotect", errno);
    }
    for (uint64_t i = p; i < q; i++) v->readOnly[i] = readOnly;
    p = q;
  }
  return Status();
}

Status ForkInto(View* src, View* dst, Counters* c) {
  Region* r = src->region;
  const uint64_t n = src->pages;
  // 1. Stop stores into src: its writable pages become read-only. From here on a store by
  //    another thread faults and waits for the lock; what it would have written goes to a
  //    copy, after the snapshot is complete.
  uint64_t p = 0;
  Status s;
  while (p < n) {
    if (src->state[p] != kWritable) {
      p++;
      continue;
    }
    uint64_t q = p + 1;
    while (q < n && src->state[q] == kWritable) q++;
    if (mprotect(PageAddr(src, p), (q - p) * PageSize(), PROT_READ) != 0) {
      s = Status::Sys("mprotect", errno);
      break;
    }
    if (r->policy != kEager) {
      for (uint64_t i = p; i < q; i++) src->state[i] = kCow;
    }
    p = q;
  }
  // 2. Build dst.
  if (s.ok()) s = r->policy == kEager ? CopyInto(src, dst, c) : ShareInto(src, dst);
  // 3. Eager: src was only paused; its writable pages are writable again.
  if (r->policy == kEager) {
    Status back = ProtectRuns(src, 0, p, WritableByUser, PROT_READ | PROT_WRITE);
    if (s.ok()) s = back;
  }
  return s;
}

void ReleaseLocked(View* v) {
  Region* r = v->region;
  RemoveView(v);
  munmap(v->base, v->pages * PageSize());
  v->base = nullptr;
  DropFrames(v);
  Trim(r, false);
}

void DropFrames(View* v) {
  for (uint64_t p = 0; p < v->pages; p++) {
    if (v->frame[p] != kNoFrame) DropRef(v->region, v->frame[p]);
    v->frame[p] = kNoFrame;
  }
}

bool HandleFault(uintptr_t addr, int write) {
  if (!LockFromHandler()) return false;
  View* v = ViewAt(addr);
  if (v == nullptr) {
    Unlock();
    return false;
  }
  const size_t ps = PageSize();
  Region* r = v->region;
  uint64_t p = (addr - reinterpret_cast<uintptr_t>(v->base)) / ps;
  uint8_t* page = PageAddr(v, p);
  Counters c;
  Status s;
  bool mine = true;
  // A store to a page the user made read-only is the user's fault, not COW.
  if (v->readOnly[p] != 0 && write != 0) {
    Unlock();
    return false;
  }
  switch (v->state[p]) {
    case kWritable:
      // Another thread made it writable first (or a stale TLB entry faulted): if the page
      // really is writable the store just runs again. If it is not, someone else made it
      // read-only behind cowlab's back, and the fault is not ours.
      mine = write != 0 && madvise(page, ps, MADV_POPULATE_WRITE) == 0;
      break;
    case kUntouched:
      if (write == 0) {
        if (mprotect(page, ps, PROT_READ) != 0) s = Status::Sys("mprotect", errno);
        else {
          v->state[p] = kZeroPage;  // the load runs again and maps the zero page
          c.zeroMaps++;
        }
      } else {
        s = MakeWritable(v, p, p + 1, &c);
      }
      break;
    case kZeroPage:
      if (write == 0) mine = false;
      else s = MakeWritable(v, p, p + 1, &c);
      break;
    case kCow: {
      if (write == 0) {
        mine = false;
        break;
      }
      uint64_t end = p + 1;
      if (r->policy == kFaultAround && r->refcount[v->frame[p]] > 1) {
        while (end < v->pages && end - p <= r->faultAround && v->state[end] == kCow && v->readOnly[end] == 0 &&
               r->refcount[v->frame[end]] > 1) {
          end++;
        }
      }
      s = MakeWritable(v, p, end, &c);
      break;
    }
  }
  if (!mine) {
    Unlock();
    return false;
  }
  if (!s.ok()) FatalFault(addr, v, p, s);  // the lock stays held: nothing runs after this
  c.faults = 1;
  v->counters.add(c);
  r->counters.add(c);
  Unlock();
  return true;
}

// ---- memory outside the lock ----

Status AllocRegion(Region* r, uint64_t pages, uint64_t maxFrames, uint64_t batchFrames) {
  const size_t ps = PageSize();
  r->pages = pages;
  r->maxFrames = maxFrames;
  r->batchFrames = batchFrames;
  r->fd = memfd_create("cowlab-region", MFD_CLOEXEC);
  if (r->fd < 0) return Status::Sys("memfd_create", errno);
  // The staging mapping covers every frame the pool may ever hold, so growing the pool never
  // moves it: growth is ftruncate plus populating the new part.
  void* st = mmap(nullptr, maxFrames * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, r->fd, 0);
  if (st == MAP_FAILED) return Status::Sys("mmap", errno);
  r->staging = static_cast<uint8_t*>(st);
  if (madvise(st, maxFrames * ps, MADV_DONTFORK) != 0) return Status::Sys("madvise", errno);
  const uint64_t words = (maxFrames + 63) / 64;
  r->tableBytes = maxFrames * sizeof(uint32_t) + 2 * words * sizeof(uint64_t);
  void* t = mmap(nullptr, r->tableBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (t == MAP_FAILED) return Status::Sys("mmap", errno);
  if (madvise(t, r->tableBytes, MADV_DONTFORK) != 0) return Status::Sys("madvise", errno);
  r->refcount = static_cast<uint32_t*>(t);
  r->freeBits = reinterpret_cast<uint64_t*>(static_cast<uint8_t*>(t) + maxFrames * sizeof(uint32_t));
  r->holeBits = r->freeBits + words;
  return Status();
}

void FreeRegionMemory(Region* r) {
  const size_t ps = PageSize();
  if (r->staging != nullptr) munmap(r->staging, r->maxFrames * ps);
  if (r->refcount != nullptr) munmap(r->refcount, r->tableBytes);
  if (r->fd >= 0) close(r->fd);
  r->staging = nullptr;
  r->refcount = nullptr;
  r->fd = -1;
}

Status AllocView(View* v, Region* r) {
  const size_t ps = PageSize();
  v->region = r;
  v->pages = r->pages;
  void* base = mmap(nullptr, v->pages * ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return Status::Sys("mmap", errno);
  v->base = static_cast<uint8_t*>(base);
  if (madvise(base, v->pages * ps, MADV_DONTFORK) != 0) return Status::Sys("madvise", errno);
  v->tableBytes = v->pages * (sizeof(uint32_t) + 2);
  void* t = mmap(nullptr, v->tableBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (t == MAP_FAILED) return Status::Sys("mmap", errno);
  v->frame = static_cast<uint32_t*>(t);
  v->state = static_cast<uint8_t*>(t) + v->pages * sizeof(uint32_t);
  v->readOnly = v->state + v->pages;
  memset(v->frame, 0xff, v->pages * sizeof(uint32_t));  // kNoFrame
  return Status();
}

void FreeViewMemory(View* v) {
  if (v->base != nullptr) munmap(v->base, v->pages * PageSize());
  if (v->frame != nullptr) munmap(v->frame, v->tableBytes);
  v->base = nullptr;
  v->frame = nullptr;
  v->state = nullptr;
  v->readOnly = nullptr;
}

Status PopulateRoot(View* v, Populate populate) {
  if (populate == kPopulateRead) {
    for (uint64_t p = 0; p < v->pages; p++) v->state[p] = kZeroPage;
    return MapZeroPages(v);
  }
  if (populate != kPopulateWrite) return Status();
  // A fresh pool: the frames come straight from the file, zeroed, in one contiguous run.
  Counters created;  // creating the region is not a zero-fill fault
  return CopyRun(v, 0, v->pages, nullptr, &created, true);
}

}  // namespace region
}  // namespace cowlab
