// ELF probing for the process tree: the read-only text segments a new trace process prefaults
// (fork does not copy the page tables of file mappings, so the first run through the code of
// the addon, libc and the vDSO would fault inside a measurement), and whether the addon was
// linked with -z now (a lazily bound call in a forked process runs the dynamic linker's
// resolver, which reads Node's malloc heap and writes the GOT: neither is allowed there).
#pragma once
#include <cstddef>
#include <cstdint>

namespace cowlab {
namespace elf {

struct TextRange {
  uint64_t start, bytes;  // page-aligned
};

struct LoadedText {
  size_t ranges = 0;          // entries written to the caller's array
  bool addonBindsNow = false;  // the object holding `addonSymbol` binds every symbol at load
};

// The read-only PT_LOAD segments of the vDSO and of the objects holding `addonSymbol` (an
// address in the addon) and `libcSymbol` (an address in libc), at most `max` of them.
LoadedText CollectText(uintptr_t addonSymbol, uintptr_t libcSymbol, TextRange* out, size_t max);

}  // namespace elf
}  // namespace cowlab
