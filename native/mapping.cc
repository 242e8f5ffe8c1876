// MapBacking (see mapping.h). Async-signal-safe: p0 of a process tree runs it after clone().
#include "mapping.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "page.h"

namespace cowlab {

namespace {

MapResult Failed(MapStep step, int err) {
  MapResult r;
  r.failed = step;
  r.err = err;
  return r;
}

}  // namespace

MapResult MapBacking(size_t bytes, uint32_t backing, size_t align, const char* memfdName) {
  int fd = -1;
  if (IsMemfd(backing)) {
    fd = memfd_create(memfdName, MFD_CLOEXEC);
    if (fd < 0) return Failed(MapStep::kMemfd, errno);
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      int e = errno;
      close(fd);
      return Failed(MapStep::kTruncate, e);
    }
  }
  const int flags = (IsShared(backing) ? MAP_SHARED : MAP_PRIVATE) | (fd < 0 ? MAP_ANONYMOUS : 0);
  void* p;
  if (align == 0) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, flags, fd, 0);
  } else {
    const size_t reserve = bytes + (align > PageSize() ? align : 0);
    void* res = mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) {
      int e = errno;
      if (fd >= 0) close(fd);
      return Failed(MapStep::kReserve, e);
    }
    const uintptr_t start = reinterpret_cast<uintptr_t>(res);
    const uintptr_t aligned = (start + align - 1) & ~(static_cast<uintptr_t>(align) - 1);
    p = mmap(reinterpret_cast<void*>(aligned), bytes, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      munmap(res, reserve);
      errno = e;
    } else {
      if (aligned > start) munmap(res, aligned - start);
      const uintptr_t end = aligned + bytes, resEnd = start + reserve;
      if (resEnd > end) munmap(reinterpret_cast<void*>(end), resEnd - end);
    }
  }
  int e = errno;
  if (fd >= 0) close(fd);  // the mapping keeps the memfd alive
  if (p == MAP_FAILED) return Failed(MapStep::kMmap, e);
  MapResult r;
  r.address = static_cast<uint8_t*>(p);
  return r;
}

}  // namespace cowlab
