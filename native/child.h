// What a forked child of the Node process may do: only async-signal-safe calls (raw
// syscalls through their thin glibc wrappers, vDSO clock reads), only memory prepared
// before the fork, no malloc, no stdio, no V8, no libuv, no exceptions, `_exit` at the end.
// The parent's measuring thread uses the same primitives after the fork, because its own
// private memory is COW-shared with the child from that moment on.
#pragma once
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace cowlab {
namespace child {

// The first call of every forked child: it dies with its parent. Without this, a child whose
// parent is killed (SIGKILL, or SIGTERM/SIGINT/SIGHUP to Node alone) is reparented to init and
// lives out whatever it was doing (a fork-write hold is up to an hour; an exec'd program, as
// long as it runs). PR_SET_PDEATHSIG survives execve (except set-user-ID programs) and sends
// SIGKILL when the thread that forked exits; cowlab forks on libuv pool threads, which live as
// long as the process. The parent may already have died between fork and prctl, in which case
// no signal ever comes: `parent` is getpid() taken before the fork, and a different getppid()
// means the child was already reparented, so it exits at once.
inline void DieWithParent(pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent) _exit(125);
}

inline uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

// Breaks COW on the stack pages the measuring code is about to use. After fork every stack
// page is shared with the other process; without this, the first call below the current
// frame would take a COW fault inside a timed window.
__attribute__((noinline)) inline void PretouchStack(size_t bytes) {
  volatile char* buf = static_cast<volatile char*>(__builtin_alloca(bytes));
  for (size_t i = 0; i < bytes; i += 1024) buf[i] = 0;
  __asm__ volatile("" ::: "memory");
}

// Writes one byte per page of [p, p+bytes): a child's first touch of a MAP_SHARED mapping
// faults (fork does not copy PTEs of mappings without anonymous pages), so result buffers
// are touched before any timing starts.
inline void PretouchWrite(void* p, size_t bytes, size_t pageSize) {
  volatile char* c = static_cast<volatile char*>(p);
  for (size_t i = 0; i < bytes; i += pageSize) c[i] = c[i];
}

// Timed stores (the region engine's access loop, native/region.cc): one 8-byte store per
// listed page at offset 0, each timed with CLOCK_MONOTONIC. The value written is `tag + page`,
// so content can be checked afterwards. The barriers keep the compiler from moving the store
// out of its timed window. Never inlined: one copy of the loop, so a warm-up pass faults in
// exactly the code that is timed.
__attribute__((noinline)) inline void TimedStores(uint8_t* base, size_t pageSize, const uint32_t* order, size_t n,
                                                  uint64_t tag, uint64_t* latNs) {
  for (size_t i = 0; i < n; i++) {
    volatile uint64_t* p = reinterpret_cast<volatile uint64_t*>(base + order[i] * pageSize);
    uint64_t t0 = NowNs();
    __asm__ volatile("" ::: "memory");
    *p = tag + order[i];
    __asm__ volatile("" ::: "memory");
    latNs[i] = NowNs() - t0;
  }
}

// The smallest back-to-back clock read, so reports can say how much of a figure is timer.
inline uint64_t TimerOverheadNs() {
  uint64_t best = ~0ULL;
  for (int i = 0; i < 256; i++) {
    uint64_t a = NowNs();
    __asm__ volatile("" ::: "memory");
    uint64_t b = NowNs();
    if (b - a < best) best = b - a;
  }
  return best;
}

// Reads a whole (small, /proc) file into buf; returns its length or -errno.
inline ssize_t ReadFileInto(const char* path, char* buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t len = 0;
  while (len < cap) {
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    if (r == 0) break;
    len += static_cast<size_t>(r);
  }
  close(fd);
  return static_cast<ssize_t>(len);
}

// pread until `bytes` are read (or EOF); returns bytes read or -errno.
inline ssize_t PreadFull(int fd, void* buf, size_t bytes, off_t offset) {
  size_t done = 0;
  while (done < bytes) {
    ssize_t r = pread(fd, static_cast<char*>(buf) + done, bytes - done,
                      offset + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

// One pread of the 8-byte pagemap entries of `pages` pages from `addr`, in `pmPath`
// ("/proc/self/pagemap" or "/proc/<pid>/pagemap"). Returns 0 or -errno.
inline int ReadPagemap(const char* pmPath, uint64_t addr, size_t pages, size_t pageSize,
                       uint64_t* out) {
  int fd = open(pmPath, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  ssize_t r = PreadFull(fd, out, pages * 8, static_cast<off_t>((addr / pageSize) * 8));
  close(fd);
  if (r < 0) return static_cast<int>(r);
  if (static_cast<size_t>(r) != pages * 8) return -EIO;
  return 0;
}

// Minor and major fault counts of the calling thread (RUSAGE_THREAD: other threads of the
// Node process fault too, and must not count) or of the process (a child has one thread).
inline void Faults(int who, uint64_t* minflt, uint64_t* majflt) {
  struct rusage ru;
  getrusage(who, &ru);
  *minflt = static_cast<uint64_t>(ru.ru_minflt);
  *majflt = static_cast<uint64_t>(ru.ru_majflt);
}

inline bool WriteByte(int fd, char c) {
  for (;;) {
    ssize_t r = write(fd, &c, 1);
    if (r == 1) return true;
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

// Blocks until one byte arrives; returns it, or -1 on EOF/error (the other side is gone).
inline int ReadByte(int fd) {
  for (;;) {
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r == 1) return static_cast<unsigned char>(c);
    if (r < 0 && errno == EINTR) continue;
    return -1;
  }
}

inline void SleepMs(uint64_t ms) {
  struct timespec ts = {static_cast<time_t>(ms / 1000), static_cast<long>((ms % 1000) * 1000000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace child
}  // namespace cowlab
