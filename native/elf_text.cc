// Text segments and -z now of the loaded objects (see elf_text.h), from dl_iterate_phdr.
#include "elf_text.h"

#include <elf.h>
#include <link.h>

#include <cstring>

#include "page.h"

namespace cowlab {
namespace elf {
namespace {

struct Collect {
  uintptr_t want[2];
  TextRange* out;
  size_t max;
  LoadedText found;
};

// Whether an object's dynamic section asks for every symbol to be bound at load (-z now).
bool BindsNow(const struct dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; i++) {
    if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
    const auto* d = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    for (; d->d_tag != DT_NULL; d++) {
      if (d->d_tag == DT_BIND_NOW) return true;
      if (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_BIND_NOW) != 0) return true;
      if (d->d_tag == DT_FLAGS_1 && (d->d_un.d_val & DF_1_NOW) != 0) return true;
    }
  }
  return false;
}

int Visit(struct dl_phdr_info* info, size_t, void* data) {
  auto* c = static_cast<Collect*>(data);
  bool match = info->dlpi_name != nullptr && strstr(info->dlpi_name, "vdso") != nullptr;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
    for (uintptr_t w : c->want) match = match || (w >= lo && w < hi);
    if (c->want[0] >= lo && c->want[0] < hi) c->found.addonBindsNow = BindsNow(info);
  }
  if (!match) return 0;
  const size_t ps = PageSize();
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_R) == 0 || (ph.p_flags & PF_W) != 0) continue;
    if (c->found.ranges >= c->max) return 1;
    uintptr_t lo = (info->dlpi_addr + ph.p_vaddr) & ~(ps - 1);
    uintptr_t hi = RoundUp(info->dlpi_addr + ph.p_vaddr + ph.p_memsz, ps);
    c->out[c->found.ranges++] = {lo, hi - lo};
  }
  return 0;
}

}  // namespace

LoadedText CollectText(uintptr_t addonSymbol, uintptr_t libcSymbol, TextRange* out, size_t max) {
  Collect c = {{addonSymbol, libcSymbol}, out, max, LoadedText()};
  dl_iterate_phdr(Visit, &c);
  return c.found;
}

}  // namespace elf
}  // namespace cowlab
