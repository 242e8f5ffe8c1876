// The native command loop of a trace process (see proctree.h for the shared layout).
//
// Everything in this file runs in a process made by clone() from Node (p0) or from another
// trace process, so only async-signal-safe code is allowed: raw syscalls through their thin
// glibc wrappers, vDSO clock reads, memory prepared before the fork (the shared control and
// stack mappings), no malloc, no stdio, no V8, no libuv, no exceptions, `_exit` at the end.
// No function here writes private memory other than the trace regions: state lives in the
// process's slot block and on its own (MAP_SHARED) stack. With p0InNode, p0's commands run
// here too, on Node's worker thread (ExecuteInNode, called by Tree::Command): the same rules
// hold there after a fork, since that thread's private memory is then COW-shared.
//
// Life of a process:
//   start    (p0, or with p0InNode a child of Node: own process group, default signal
//            dispositions with SIGPIPE ignored, no rseq, stdin/stdout/stderr on /dev/null,
//            pinned to one CPU), close every fd except the channels of its own
//            slot and of the slots its future descendants will use, pre-touch its stack and
//            slot, prefault the code it runs (text is not copied at fork), run every timed
//            path once, then say 'R' on its reply pipe.
//   loop     read one byte from its command pipe (EOF: Node is gone or done -> _exit(0)),
//            execute the command in its slot, write the results, reply 'K' or 'E'.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "child.h"
#include "children.h"
#include "mapping.h"
#include "page.h"
#include "proctree.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace cowlab {
namespace proctree {
namespace {

constexpr size_t kStackTouch = kStackBytes - 16 * 1024;

// Minor and major faults: a swap-in that reads the page from the device is a major fault.
inline uint64_t PageFaults() {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<uint64_t>(ru.ru_minflt) + static_cast<uint64_t>(ru.ru_majflt);
}

inline void PretouchRead(const void* p, size_t bytes, size_t pageSize) {
  const volatile char* c = static_cast<const volatile char*>(p);
  for (size_t i = 0; i < bytes; i += pageSize) (void)c[i];
}

// How an access loop runs: what it does to each page, and at what pace.
struct AccessMode {
  bool write;
  bool shared;   // mincore() first: was the page in the page cache (a shared mapping)
  uint32_t via;  // write: a store, or pread(2) of the value from readFd at offset 8 * i
  int readFd;
  uint64_t tag;
  uint64_t paceNs;  // > 0: access i starts no earlier than startAt + i * paceNs
  uint64_t startAt;
  bool stoppable;  // Node's thread (p0InNode): a paced loop stops when killAllChildren() runs
  uint64_t epoch;
};

// The per-access results of a loop.
struct AccessOut {
  uint64_t* lat;
  uint64_t* start;
  uint32_t* faults;
  uint8_t* flags;
  uint64_t* values;
};

// Sleeps until `due` (CLOCK_MONOTONIC, absolute: a schedule that does not drift).
inline void SleepUntil(uint64_t due) {
  struct timespec ts = {static_cast<time_t>(due / 1000000000ULL), static_cast<long>(due % 1000000000ULL)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// The measured loop: for each listed page, one 8-byte access at offset 0 timed with
// CLOCK_MONOTONIC, and the minor-fault count read before and after it (outside the timed
// window). A write stores `tag + page` (or has the kernel write it with pread(2): the COW break
// then happens in the kernel's copy to user memory); a read keeps the value it loaded. For a
// shared mapping, mincore() first records whether the page was already in the page cache (a
// fault on it maps an existing frame; a fault on a page not in the cache allocates a fresh
// one). Returns how many accesses were done; fewer than n with *err set when a pread failed
// (its errno, EIO for a short read) or a paced loop was stopped (EINTR). Never inlined: the
// warm-up runs exactly this code.
__attribute__((noinline)) size_t AccessLoop(uint8_t* base, size_t ps, const uint32_t* pages, size_t n,
                                            const AccessMode& m, const AccessOut& out, int* err) {
  for (size_t i = 0; i < n; i++) {
    if (m.paceNs > 0) {
      if (m.stoppable && children::KillEpoch() != m.epoch) {
        *err = EINTR;
        return i;
      }
      SleepUntil(m.startAt + i * m.paceNs);
    }
    volatile uint64_t* p = reinterpret_cast<volatile uint64_t*>(base + static_cast<size_t>(pages[i]) * ps);
    uint8_t fl = 0;
    if (m.shared) {
      unsigned char v = 0;
      if (mincore(const_cast<uint64_t*>(p), ps, &v) == 0 && (v & 1) != 0) fl = kInCore;
    }
    uint64_t value = 0;
    ssize_t got = 8;
    uint64_t f0 = PageFaults();
    uint64_t t0 = child::NowNs();
    __asm__ volatile("" ::: "memory");
    if (!m.write) {
      value = *p;
    } else if (m.via == kViaPread) {
      got = pread(m.readFd, const_cast<uint64_t*>(p), 8, static_cast<off_t>(i * 8));
    } else {
      *p = m.tag + pages[i];
    }
    __asm__ volatile("" ::: "memory");
    uint64_t t1 = child::NowNs();
    uint64_t f1 = PageFaults();
    if (got != 8) {
      *err = got < 0 ? errno : EIO;
      return i;
    }
    out.lat[i] = t1 - t0;
    out.start[i] = t0;
    out.faults[i] = static_cast<uint32_t>(f1 - f0);
    out.flags[i] = fl;
    out.values[i] = value;
  }
  return n;
}

// Runs the timed paths once on a scratch buffer on the (pre-touched) stack, so the code pages,
// the vDSO and the syscall wrappers are mapped before anything is measured.
__attribute__((noinline)) void WarmUp(const Header* h) {
  const size_t ps = h->pageSize;
  alignas(4096) uint8_t scratch[4 * 4096];
  uint32_t pages[4] = {0, 1, 2, 3};
  uint64_t lat[4], start[4], values[4];
  uint32_t faults[4];
  uint8_t flags[4];
  const AccessOut out = {lat, start, faults, flags, values};
  const size_t stride = ps == 4096 ? ps : 0;  // four pages of the scratch buffer, or one
  int err = 0;
  AccessMode m = {true, true, kViaStore, h->readFd, 0, 0, 0, false, 0};
  AccessLoop(scratch, stride, pages, 4, m, out, &err);
  m.via = kViaPread;  // the memfd is empty: the short read ends the loop after its first pread
  AccessLoop(scratch, stride, pages, 1, m, out, &err);
  m = {false, false, kViaStore, h->readFd, 0, 0, 0, false, 0};
  AccessLoop(scratch, stride, pages, 4, m, out, &err);
  uint64_t minflt, majflt;
  child::Faults(RUSAGE_THREAD, &minflt, &majflt);
  __asm__ volatile("" : : "r"(scratch), "r"(lat), "r"(start), "r"(values), "r"(faults), "r"(flags) : "memory");
}

// Closes every descriptor except 0-2 and the channels of the slots in `self`'s subtree (its
// own and those of the processes it will fork). close_range over the gaps between kept fds.
void CloseForeignFds(Header* h, int32_t self) {
  int keep[2 * kMaxSlots + 2];
  size_t n = 0;
  keep[n++] = 2;
  if (h->readFd > 2) keep[n++] = h->readFd;
  for (uint32_t s = 0; s < h->slots; s++) {
    if (!InSubtree(h, static_cast<int32_t>(s), self)) continue;
    keep[n++] = h->cmdRead[s];
    keep[n++] = h->replyWrite[s];
  }
  for (size_t i = 1; i < n; i++) {  // insertion sort: a few hundred entries at most
    int v = keep[i];
    size_t j = i;
    while (j > 0 && keep[j - 1] > v) {
      keep[j] = keep[j - 1];
      j--;
    }
    keep[j] = v;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned lo = static_cast<unsigned>(keep[i]) + 1;
    unsigned hi = i + 1 < n ? static_cast<unsigned>(keep[i + 1]) - 1 : ~0U;
    if (lo <= hi) syscall(SYS_close_range, lo, hi, 0);
  }
}

// glibc registers an rseq area in the thread's TCB, which the kernel writes (cpu_id) when the
// thread returns to user space after a preemption or migration. After a fork that TCB page is
// COW-shared, so such a kernel write costs the process a fault at a random moment, inside
// whatever is being measured. The trace processes never use rseq: p0 unregisters it, and its
// descendants inherit the unregistered state.
void UnregisterRseq() {
  if (__rseq_size == 0) return;
  void* area = static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
  const unsigned lengths[2] = {__rseq_size, 32};  // the length glibc registered
  for (unsigned len : lengths) {
    if (syscall(SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) == 0) return;
  }
}

// Keeps the whole tree on the CPU p0 starts on (children inherit the affinity). Whether a
// write fault reuses a page depends on its reference count, and a freshly allocated page holds
// an extra reference while it sits in a per-CPU LRU batch; the fault handler drains only the
// batch of the CPU it runs on (lru_add_drain in wp_can_reuse_anon_folio). A process that
// migrated after allocating a page could therefore see a copy where the algorithm says reuse.
// On one CPU every batch is the local one, so the outcome is the algorithm's, every time.
void PinToCurrentCpu() {
  unsigned cpu = 0;
  if (syscall(SYS_getcpu, &cpu, nullptr, nullptr) != 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// The first process of a tree, cloned from Node: p0, or with p0InNode every child of Node. A
// process group (`group`, or one of its own when 0 or when that group is gone: Node kills and
// reaps the whole tree through it), default signal handling (Node's handlers must not run
// here; SIGPIPE ignored so a write to a dead Node fails with EPIPE), no rseq, one CPU, and stdio
// on /dev/null (never hold Node's pipes or terminal).
void BecomeRoot(Header* h, pid_t group) {
  if (group == 0 || setpgid(0, group) != 0) setpgid(0, 0);
  struct sigaction sa;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    __builtin_memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig == SIGPIPE ? SIG_IGN : SIG_DFL;
    sigaction(sig, &sa, nullptr);  // glibc's reserved signals fail with EINVAL: fine
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  UnregisterRseq();
  PinToCurrentCpu();
  int fd = open(h->devNull, O_RDWR);
  if (fd >= 0) {
    for (int i = 0; i <= 2; i++) {
      if (fd != i) dup2(fd, i);
    }
    if (fd > 2) close(fd);
  }
}

// Parses a hex number at *p, advancing past it.
uint64_t ParseHex(const char** p, const char* end) {
  uint64_t v = 0;
  for (; *p < end; (*p)++) {
    char c = **p;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) break;
    v = v * 16 + static_cast<uint64_t>(d);
  }
  return v;
}

// One line of /proc/self/maps: "start-end perms offset dev inode   path".
struct MapsLine {
  uint64_t start, end;
  bool priv, named, bracketed, heapOrStack;
};

bool StartsWith(const char* p, const char* end, const char* word) {
  for (; *word != 0; p++, word++) {
    if (p >= end || *p != *word) return false;
  }
  return true;
}

bool ParseMapsLine(const char* p, const char* end, MapsLine* out) {
  out->start = ParseHex(&p, end);
  if (p >= end || *p != '-') return false;
  p++;
  out->end = ParseHex(&p, end);
  if (end - p < 5) return false;
  out->priv = p[4] == 'p';
  for (int field = 0; field < 4 && p < end; field++) {  // skip perms, offset, dev, inode
    while (p < end && *p == ' ') p++;
    while (p < end && *p != ' ') p++;
  }
  while (p < end && *p == ' ') p++;
  out->named = p < end;
  out->bracketed = p < end && *p == '[';
  out->heapOrStack = StartsWith(p, end, "[heap]") || StartsWith(p, end, "[stack]");
  return true;
}

// p0 only, before it maps anything: marks Node's own anonymous private memory (V8 heap, malloc
// heap and arenas, the main thread's and other threads' stacks, ...) MADV_DONTFORK, so forks in
// the trace copy the page tables of the regions, not Node's. Kept: file mappings and the
// anonymous mapping right after one (a library's .bss), the kernel's special mappings ([vdso],
// [vvar], ...), and the mapping holding this thread's TLS block (errno lives there). The trace
// processes run on their own stacks, never call malloc, and touch nothing else.
void ShedNodeMemory(const Header* h) {
  const uint64_t tls = reinterpret_cast<uint64_t>(__builtin_thread_pointer());
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  size_t have = 0;
  uint64_t prevEnd = 0;
  bool prevFile = false;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += static_cast<size_t>(r);
    size_t lineStart = 0;
    for (size_t i = 0; i < have; i++) {
      if (buf[i] != '\n') continue;
      MapsLine m;
      if (ParseMapsLine(buf + lineStart, buf + i, &m)) {
        bool bss = !m.named && prevFile && m.start == prevEnd;
        bool keep = !m.priv || (m.named && !m.heapOrStack) || bss || (tls >= m.start && tls < m.end);
        if (!keep) madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTFORK);
        prevFile = m.named && !m.bracketed;
        prevEnd = m.end;
      }
      lineStart = i + 1;
    }
    __builtin_memmove(buf, buf + lineStart, have - lineStart);
    have -= lineStart;
    if (have == sizeof buf) have = 0;  // a line longer than the buffer: drop it
  }
  close(fd);
  (void)h;
}

void Reply(Slot* s, char c) {
  if (!child::WriteByte(s->header()->replyWrite[s->index], c)) _exit(0);  // Node is gone
}

bool Fail(Slot* s, Stage stage, int err) {
  s->status = err;
  s->stage = stage;
  return false;
}

uint8_t* RegionBase(Header* h, uint32_t r) { return reinterpret_cast<uint8_t*>(h->region[r].address); }

// Maps region r with MapBacking (mapping.h), as memory.cc does, then applies its advice. Runs in
// p0 before any fork.
//
// Every region starts on a 2 MiB boundary, THP or not: fault-around windows (and PMDs) are
// aligned to virtual addresses, so where mmap puts a region decides which neighbours a read
// fault maps. Kernels place mappings differently (6.7 began aligning large anonymous mappings
// to THP boundaries; 6.1 does not), which made the same trace map a varying number of pages.
// A fixed alignment makes page i of a region page i of its page table on every kernel. A
// region placed `anywhere` gets no reservation: mmap chooses, as for any program.
bool MapRegion(Slot* s, uint32_t r) {
  Header* h = s->header();
  Region& reg = h->region[r];
  const size_t bytes = reg.pages * h->pageSize;
  MapResult m = MapBacking(bytes, reg.backing, reg.anywhere ? 0 : kHugePageBytes, "cowlab-trace");
  switch (m.failed) {
    case MapStep::kNone: break;
    case MapStep::kReserve: return Fail(s, kStageReserve, m.err);
    case MapStep::kMemfd: return Fail(s, kStageMemfd, m.err);
    case MapStep::kTruncate: return Fail(s, kStageFtruncate, m.err);
    case MapStep::kMmap: return Fail(s, kStageMmap, m.err);
  }
  void* p = m.address;
  reg.address = reinterpret_cast<uint64_t>(p);
  if (madvise(p, bytes, reg.thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) return Fail(s, kStageMadvise, errno);
  if (reg.dontfork && madvise(p, bytes, MADV_DONTFORK) != 0) return Fail(s, kStageMadvise, errno);
  if (reg.wipeonfork && madvise(p, bytes, MADV_WIPEONFORK) != 0) return Fail(s, kStageMadvise, errno);
  return true;
}

bool DoMap(Slot* s) {
  Header* h = s->header();
  uint64_t t0 = child::NowNs();
  for (uint32_t r = 0; r < h->regions; r++) {
    if (!MapRegion(s, r)) return false;
  }
  s->timeNs = child::NowNs() - t0;
  return true;
}

// Time and fault counts of a whole operation, written into the slot when it ends.
struct OpMeter {
  uint64_t minflt, majflt, t0;
  OpMeter() {
    child::Faults(RUSAGE_THREAD, &minflt, &majflt);
    t0 = child::NowNs();
  }
  void End(Slot* s) const {
    uint64_t t1 = child::NowNs();
    uint64_t minflt1, majflt1;
    child::Faults(RUSAGE_THREAD, &minflt1, &majflt1);
    s->timeNs = t1 - t0;
    s->endNs = t1;
    s->faults = minflt1 - minflt;
    s->majorFaults = majflt1 - majflt;
  }
};

bool PagesInRange(Slot* s, uint64_t regionPages) {
  const uint32_t* pages = s->pages();
  for (uint64_t i = 0; i < s->count; i++) {
    if (pages[i] >= regionPages) return Fail(s, kStageBadPage, EINVAL);
  }
  return true;
}

// via pread: the value access i delivers, `tag + page`, at offset 8 * i of the tree's memfd,
// written before the timed loop (staged in the slot's value array, which the loop overwrites).
bool FillReadSource(Slot* s) {
  Header* h = s->header();
  uint64_t* v = s->values();
  const uint32_t* pages = s->pages();
  for (uint64_t i = 0; i < s->count; i++) v[i] = s->tag + pages[i];
  const size_t bytes = s->count * 8;
  for (size_t done = 0; done < bytes;) {
    ssize_t r = pwrite(h->readFd, reinterpret_cast<uint8_t*>(v) + done, bytes - done, static_cast<off_t>(done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Fail(s, kStagePwrite, r < 0 ? errno : EIO);
    done += static_cast<size_t>(r);
  }
  return true;
}

bool DoAccess(Slot* s, bool write) {
  Header* h = s->header();
  if (s->region >= h->regions || s->count > s->capacity) return Fail(s, kStageBadCommand, EINVAL);
  if (s->via > kViaPread || (s->via == kViaPread && !write)) return Fail(s, kStageBadCommand, EINVAL);
  const Region& reg = h->region[s->region];
  if (!PagesInRange(s, reg.pages)) return false;
  if (s->via == kViaPread && !FillReadSource(s)) return false;
  const bool inNode = h->p0InNode != 0 && s->index == 0;
  AccessMode m = {write, IsShared(reg.backing), write ? s->via : kViaStore, h->readFd, s->tag, s->paceNs, 0,
                  inNode, inNode ? children::KillEpoch() : 0};
  const AccessOut out = {s->lat(), s->starts(), s->faultCounts(), s->flags(), s->values()};
  int err = 0;
  OpMeter meter;
  m.startAt = meter.t0;
  size_t done = AccessLoop(RegionBase(h, s->region), h->pageSize, s->pages(), s->count, m, out, &err);
  meter.End(s);
  s->done = done;
  if (done < s->count) return Fail(s, err == EINTR && m.paceNs > 0 ? kStageInterrupted : kStagePread, err);
  return true;
}

// `call` on the listed pages of the slot's region (consecutive pages in list order become one
// call), or on the whole region when the list is empty. The whole operation is metered.
template <typename Call>
bool OnPages(Slot* s, Stage stage, Call call) {
  Header* h = s->header();
  if (s->region >= h->regions || s->count > s->capacity) return Fail(s, kStageBadCommand, EINVAL);
  const Region& reg = h->region[s->region];
  if (!PagesInRange(s, reg.pages)) return false;
  const size_t ps = h->pageSize;
  uint8_t* base = RegionBase(h, s->region);
  const uint32_t* pages = s->pages();
  OpMeter meter;
  int err = 0;
  if (s->count == 0) {
    if (call(base, reg.pages * ps) != 0) err = errno;
  } else {
    for (uint64_t i = 0; i < s->count && err == 0;) {
      uint64_t j = i;
      while (j + 1 < s->count && pages[j + 1] == pages[j] + 1) j++;
      if (call(base + static_cast<size_t>(pages[i]) * ps, (j - i + 1) * ps) != 0) err = errno;
      i = j + 1;
    }
  }
  meter.End(s);
  return err == 0 || Fail(s, stage, err);
}

bool DoProtect(Slot* s) {
  const int prot = static_cast<int>(s->arg);
  return OnPages(s, kStageMprotect, [prot](uint8_t* p, size_t n) { return mprotect(p, n, prot); });
}

// Reclaim now: pages this process alone maps go to swap (when there is swap); the kernel
// leaves pages another process maps alone. The tree runs on one CPU (PinToCurrentCpu), so
// madvise's lru_add_drain reaches every page the tree faulted in: none waits in another
// CPU's LRU batch, where reclaim could not isolate it.
bool DoPageout(Slot* s) {
  return OnPages(s, kStageMadvise, [](uint8_t* p, size_t n) { return madvise(p, n, MADV_PAGEOUT); });
}

// clone() with the child's own shared stack: a fork (no CLONE_VM) in which the child starts in
// ProcessEntry on a stack no other process uses. Only the clone call is timed.
bool DoFork(Slot* s) {
  Header* h = s->header();
  const int64_t c = s->arg;
  if (c <= 0 || c >= static_cast<int64_t>(h->slots) || h->parent[c] != static_cast<int32_t>(s->index)) {
    return Fail(s, kStageBadCommand, EINVAL);
  }
  Slot* cs = SlotAt(h, static_cast<uint32_t>(c));
  uint8_t* top = StackTop(h, static_cast<uint32_t>(c));
  // The clone wrapper stores fn and arg at the top of the child's stack before the syscall.
  child::PretouchWrite(top - 2 * h->pageSize, 2 * h->pageSize, h->pageSize);
  OpMeter meter;
  int pid = clone(ProcessEntry, top, SIGCHLD, cs);
  int err = errno;
  meter.End(s);
  if (pid < 0) return Fail(s, kStageClone, err);
  cs->pid = pid;
  s->childPid = pid;
  if (h->p0InNode != 0 && s->index == 0) {
    // This is Node's worker thread: its stack is private memory, COW-shared with the child
    // from now on. Break that on the part the next commands use, so no stack write of its own
    // faults inside a timed access. Node closes its copies of the child's channel ends itself
    // (Tree::Fork).
    child::PretouchStack(kStackTouch);
    return true;
  }
  // The child's subtree talks through the child from now on.
  for (uint32_t i = 0; i < h->slots; i++) {
    if (!InSubtree(h, static_cast<int32_t>(i), static_cast<int32_t>(c))) continue;
    close(h->cmdRead[i]);
    close(h->replyWrite[i]);
  }
  return true;
}

// execve of a small program that stays alive with its stdin on this process's command pipe
// (the default, cat, exits at EOF: when Node closes the pipe, or dies). Every other fd is
// close-on-exec, so the reply pipe closes when the exec succeeds: Node reads EOF.
bool DoExec(Slot* s) {
  Header* h = s->header();
  if (dup2(h->cmdRead[s->index], 0) < 0) return Fail(s, kStageExecDup, errno);
  struct sigaction sa;
  __builtin_memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &sa, nullptr);
  char* argv[] = {h->execArg0, nullptr};
  char* envp[] = {nullptr};
  execve(h->execPath, argv, envp);
  int e = errno;
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, nullptr);
  return Fail(s, kStageExecve, e);
}

bool DoReap(Slot* s) {
  int status = 0;
  for (;;) {
    pid_t r = waitpid(static_cast<pid_t>(s->arg), &status, 0);
    if (r >= 0) break;
    if (errno != EINTR) return Fail(s, kStageWaitpid, errno);
  }
  s->waitStatus = status;
  return true;
}

bool Execute(Slot* s) {
  s->status = 0;
  s->stage = kStageNone;
  s->timeNs = s->faults = s->majorFaults = s->done = 0;
  switch (s->op) {
    case kOpMap: return s->header()->parent[s->index] < 0 ? DoMap(s) : Fail(s, kStageBadCommand, EINVAL);
    case kOpFork: return DoFork(s);
    case kOpWrite: return DoAccess(s, true);
    case kOpRead: return DoAccess(s, false);
    case kOpProtect: return DoProtect(s);
    case kOpPageout: return DoPageout(s);
    case kOpExec: return DoExec(s);
    case kOpExit: _exit(0);
    case kOpReap: return DoReap(s);
    default: return Fail(s, kStageBadCommand, EINVAL);
  }
}

}  // namespace

bool ExecuteInNode(Slot* s) {
  switch (s->op) {
    case kOpMap:
    case kOpFork:
    case kOpWrite:
    case kOpRead:
    case kOpProtect: return Execute(s);
    default: return Fail(s, kStageBadCommand, EINVAL);
  }
}

int ProcessEntry(void* arg) {
  Slot* s = static_cast<Slot*>(arg);
  Header* h = s->header();
  const int32_t self = static_cast<int32_t>(s->index);
  s->pid = getpid();
  if (h->parent[self] < 0) {
    BecomeRoot(h, 0);
    if (h->shedNodeMemory) ShedNodeMemory(h);
  } else if (h->p0InNode != 0 && h->parent[self] == 0) {
    BecomeRoot(h, h->nodeGroup);  // forked from Node itself: Node's handlers, rseq, stdio
  }
  CloseForeignFds(h, self);
  // Shared mappings are not copied at fork: this process maps its own pages now, outside any
  // measurement. Then the code it will run, and one pass over every timed path.
  child::PretouchStack(kStackTouch);
  PretouchRead(h, h->slotOffset[0], h->pageSize);
  child::PretouchWrite(s, s->blockBytes, h->pageSize);
  for (uint32_t i = 0; i < h->textRanges; i++) {
    madvise(reinterpret_cast<void*>(h->text[i].start), h->text[i].bytes, MADV_POPULATE_READ);
  }
  WarmUp(h);
  s->timerOverheadNs = child::TimerOverheadNs();
  Reply(s, kReplyReady);
  for (;;) {
    if (child::ReadByte(h->cmdRead[self]) < 0) _exit(0);  // EOF: Node closed the pipe or died
    Reply(s, Execute(s) ? kReplyOk : kReplyFailed);
  }
}

}  // namespace proctree
}  // namespace cowlab
