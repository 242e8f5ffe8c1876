// The userspace copy-on-write region manager: the kernel's COW algorithm done with memfd
// frames, per-frame reference counts, mmap/mprotect and a SIGSEGV handler.
//
//   region   a memfd frame pool (grown with ftruncate, pre-touched through a staging mapping
//            whose address range is reserved up front, given back with PUNCH_HOLE), a
//            reference count per frame and a free bitmap
//   view     an address range of `pages` pages, each page in one PageState, mapping a frame
//            (MAP_SHARED of the memfd) or the kernel's zero page, or nothing yet
//
// Every table lives behind one spinlock, taken by JS-facing calls (any thread) and by the
// SIGSEGV handler (any thread). Code under the lock never calls V8 and never touches view
// memory: copies go frame to frame through the staging mapping. Split in three files:
// region_core.cc (tables and COW operations, async-signal-safe), region_signal.cc (the
// handler and its chaining), region.cc (the JS bindings).
#pragma once
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "page.h"

namespace cowlab {
namespace region {

constexpr uint32_t kNoFrame = 0xffffffffu;
constexpr size_t kMaxViews = 65536;    // live views in the process (handles: slot + generation)
constexpr size_t kMaxRegions = 4096;   // live regions in the process
constexpr size_t kMaxBorrows = 4096;   // views attached from other threads (CowView.attach)

// A view's page, as a page table entry would say it.
enum PageState : uint8_t {
  kUntouched = 0,  // PROT_NONE, no frame: a read maps the zero page, a write allocates
  kZeroPage = 1,   // PROT_READ private anonymous, the kernel's zero page: a write allocates
  kCow = 2,        // PROT_READ on a frame: a write copies (count > 1) or reuses (count 1)
  kWritable = 3,   // PROT_READ|PROT_WRITE on a frame only this view maps (count 1)
};

enum Policy : uint8_t { kLazy = 0, kEager = 1, kFaultAround = 2 };
enum Populate : uint8_t { kPopulateNone = 0, kPopulateRead = 1, kPopulateWrite = 2 };

struct Counters {
  uint64_t copies = 0;       // pages given a new frame holding a copy of the shared one
  uint64_t reuses = 0;       // COW pages made writable in place (their frame was no longer shared)
  uint64_t zeroFills = 0;    // pages given a fresh zeroed frame (untouched or zero page before)
  uint64_t zeroMaps = 0;     // untouched pages mapped to the zero page by a read
  uint64_t faults = 0;       // SIGSEGV faults the handler resolved

  void add(const Counters& o) {
    copies += o.copies; reuses += o.reuses; zeroFills += o.zeroFills; zeroMaps += o.zeroMaps; faults += o.faults;
  }
};

struct View;

struct Region {
  uint32_t slot = 0;
  uint64_t gen = 0;
  int fd = -1;                  // the memfd holding every frame
  uint8_t* staging = nullptr;   // maxFrames pages reserved; MAP_SHARED over the memfd
  uint64_t maxFrames = 0;
  uint64_t poolFrames = 0;      // memfd size in frames
  uint64_t batchFrames = 0;     // growth step; also the free frames kept when trimming
  uint32_t* refcount = nullptr; // maxFrames entries: views mapping the frame
  uint64_t* freeBits = nullptr; // 1: free and populated (ready for a copy)
  uint64_t* holeBits = nullptr; // 1: punched out (below poolFrames), populated again before use
  uint64_t freeCount = 0, holeCount = 0, inUse = 0;
  uint64_t cursor = 0;          // next-fit allocation hint
  Policy policy = kLazy;
  uint32_t faultAround = 0;     // K: following pages copied with a faulting one
  uint64_t pages = 0;           // pages per view
  Counters counters;
  View* views = nullptr;        // live views (intrusive list)
  uint32_t viewCount = 0;
  bool closed = false;          // destroyed once closed and without views
  size_t tableBytes = 0;        // size of the refcount + bitmap mapping
};

struct View {
  uint32_t slot = 0;
  uint64_t gen = 0;
  Region* region = nullptr;
  uint8_t* base = nullptr;
  uint64_t pages = 0;
  uint32_t* frame = nullptr;    // per page; kNoFrame when none
  uint8_t* state = nullptr;     // PageState per page
  uint8_t* readOnly = nullptr;  // 1: made read-only by the user (view.protect): a store there is not ours
  Counters counters;
  // Like a VMA's anon_vma: set once any page of the view (or of the view it was forked from)
  // got a frame. A fork copies zero-page entries only then: Linux copies no page table entry
  // of a private mapping that never allocated an anonymous page.
  bool anonVma = false;
  uint32_t borrows = 0;         // live CowView.attach() borrowers
  bool orphaned = false;        // its owner's buffer was collected while borrowed: release at last detach
  View* prev = nullptr;
  View* next = nullptr;
  size_t tableBytes = 0;
};

// What went wrong in a table operation (no allocation, usable in the handler).
struct Status {
  int err = 0;                  // errno of the failed syscall
  const char* syscall = nullptr;
  bool poolFull = false;        // maxFrames reached
  int64_t readOnlyPage = -1;    // a page the user made read-only cannot be made writable
  bool ok() const { return err == 0 && !poolFull && readOnlyPage < 0; }
  static Status Sys(const char* sc, int e) { Status s; s.syscall = sc; s.err = e; return s; }
  static Status Full() { Status s; s.poolFull = true; return s; }
};

// ---- the lock (region_core.cc) ----
// Taken by JS-facing calls; a recursive take is a cowlab bug and aborts with a message.
void Lock();
void Unlock();
// Taken by the handler; false when this thread already holds it (a fault inside cowlab's own
// critical section is never ours to fix: it goes to the previous handler).
bool LockFromHandler();
// Remembers this process as the one the tables belong to (at handler installation).
void RecordOwnerProcess();
// Registers the pthread_atfork hooks that make a fork() wait for the lock (once; 0 or errno).
int InstallForkHooks();

struct Guard {
  Guard() { Lock(); }
  ~Guard() { Unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
};

// ---- tables and operations (region_core.cc); every function below needs the lock ----
uint64_t Handle(uint32_t slot, uint64_t gen, size_t slots);
Region* FindRegion(uint64_t handle);
View* FindView(uint64_t handle);
View* ViewAt(uintptr_t addr);       // the view whose range holds addr, or null
bool AddRegion(Region* r);          // false: no free slot
void RemoveRegion(Region* r);
bool AddView(View* v);              // links into the region and the address table
void RemoveView(View* v);
// Borrow records: one per CowView.attach(); handle -> view handle.
uint64_t AddBorrow(uint64_t viewHandle);  // 0: no free slot
bool DropBorrow(uint64_t borrowHandle, uint64_t* viewHandle);

Status Grow(Region* r, uint64_t need);
// Gives free frames back (fallocate PUNCH_HOLE) beyond what the pool keeps warm; `all`: all
// but one batch.
void Trim(Region* r, bool all);
// Makes pages [start, end) of v writable: reuse, copy or zero-fill, run by run.
Status MakeWritable(View* v, uint64_t start, uint64_t end, Counters* c);
// view.protect: pages [start, end) read-only (true) or writable again where the view alone
// maps the frame (false), like mprotect on private memory (Linux >= 6.0).
Status Protect(View* v, uint64_t start, uint64_t end, bool readOnly);
// Maps [0, pages) of the new view dst (reserved, PROT_NONE) as a snapshot of src, by policy.
Status ForkInto(View* src, View* dst, Counters* c);
// Unmaps v and drops its frames' counts. v is unlinked; the caller frees it (FreeViewMemory).
void ReleaseLocked(View* v);
// Drops the counts of every frame v's table names (a view that never became live).
void DropFrames(View* v);
// Resolves a fault at addr; `write` is 1 (write), 0 (read) or -1 (unknown). False: not ours.
bool HandleFault(uintptr_t addr, int write);

// ---- memory outside the lock (region_core.cc) ----
// Reserves the view's address range (PROT_NONE, MADV_DONTFORK) and its page tables.
Status AllocView(View* v, Region* r);
void FreeViewMemory(View* v);
Status AllocRegion(Region* r, uint64_t pages, uint64_t maxFrames, uint64_t batchFrames);
void FreeRegionMemory(Region* r);
// Creates the root view's pages by `populate` (the caller holds the lock).
Status PopulateRoot(View* v, Populate populate);

// ---- the signal handler (region_signal.cc) ----
// Installs the SIGSEGV handler once, after whatever is installed now (Node's); 0 or errno.
int InstallHandler();
// What the handler chains to: "siginfo", "handler", "default", "ignore"; "none" before install.
const char* PreviousHandlerKind();
// Writes `msg` to stderr and aborts (async-signal-safe).
[[noreturn]] void Fatal(const char* msg);
[[noreturn]] void FatalFault(uintptr_t addr, const View* v, uint64_t page, const Status& s);

}  // namespace region
}  // namespace cowlab
