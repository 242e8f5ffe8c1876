// Page-size facts, in one place. Header-only and async-signal-safe once PageSize() has been
// called once: a forked child, a trace process and the SIGSEGV handler use them too, and every
// mechanism calls PageSize() on the JS thread (argument checks, mapping) before any of those
// can run, so the static below is initialized before the first fork or fault.
#pragma once
#include <unistd.h>

#include <cstddef>

namespace cowlab {

// The base page size (sysconf(_SC_PAGESIZE): 4 KiB on x86-64).
inline size_t PageSize() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// A PMD-mapped transparent huge page on x86-64 (and arm64 with 4 KiB pages): the alignment a
// region needs for THP, and the alignment every trace region gets (see proctree_loop.cc).
constexpr size_t kHugePageBytes = 2 * 1024 * 1024;

// n rounded up to a multiple of `to`.
constexpr size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

}  // namespace cowlab
