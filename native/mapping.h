// The four backings cowlab studies (anonymous or memfd, private or shared) and the one routine
// that maps them, optionally aligned. Used by mapMemory (memory.cc, on the JS thread) and by p0
// of the kernel engine's process tree (proctree_loop.cc, after clone), so MapBacking is
// async-signal-safe: raw syscalls only, no allocation, no exceptions; it reports what failed
// and leaves the wording to its caller.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cowlab {

// The numbers JS passes (constants.BACKING_*) and the process tree's shared layout stores.
enum Backing : uint32_t { kAnonPrivate = 0, kAnonShared = 1, kMemfdPrivate = 2, kMemfdShared = 3 };

inline bool IsShared(uint32_t backing) { return backing == kAnonShared || backing == kMemfdShared; }
inline bool IsMemfd(uint32_t backing) { return backing == kMemfdPrivate || backing == kMemfdShared; }

// The step of MapBacking that failed.
enum class MapStep { kNone, kReserve, kMemfd, kTruncate, kMmap };

struct MapResult {
  uint8_t* address = nullptr;  // null when a step failed
  MapStep failed = MapStep::kNone;
  int err = 0;  // errno of the failed step
};

// mmap(bytes) read-write of `backing`. `align` 0: where mmap chooses, as for any program.
// Otherwise a power of two >= the page size: address space of bytes + align (just bytes when
// align is the page size) is reserved PROT_NONE, the mapping is placed MAP_FIXED at the first
// aligned address inside it, and the rest of the reservation is unmapped. A memfd backing is
// created (named `memfdName`), sized, mapped and closed again: the mapping keeps it alive.
MapResult MapBacking(size_t bytes, uint32_t backing, size_t align, const char* memfdName);

}  // namespace cowlab
