/**
 * Tearing mappings down (mm/memory.c zap_pte_range, mm/mmap.c exit_mmap): what exit and exec
 * do to every VMA. Each mapping drops its reference; a frame whose last reference goes is
 * freed, and a swap entry lets go of its slot. A shmem file goes with its last VMA, and its page cache with it.
 */
import type { Machine } from './machine.js';
import { HPAGE_PMD_NR } from './physmem.js';
import { freeSwapEntry } from './swap.js';
import {
  PMD_HUGE,
  PMD_NONE,
  PMD_SHIFT_PAGES,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  type Mm,
  type ShmemFile,
  type Vma,
} from './vm.js';

/** zap_page_range over the whole VMA: unmap every entry, dropping its references. */
export function zapRange(m: Machine, mm: Mm, vma: Vma): void {
  const pt = vma.pt;
  const mem = m.mem;
  for (let chunk = 0; chunk < pt.pmd.length; chunk++) {
    const pmd = pt.pmd[chunk]!;
    if (pmd === PMD_NONE) continue;
    const start = chunk << PMD_SHIFT_PAGES;
    const end = Math.min(start + HPAGE_PMD_NR, vma.pages);
    if (pmd === PMD_HUGE) {
      const head = pt.pfn[start]!;
      mem.removeRmapPmd(head, mm.id);
      mem.folioPut(head);
    } else {
      for (let i = start; i < end; i++) {
        const flags = pt.flags[i]!;
        if ((flags & PTE_SWAP) !== 0) freeSwapEntry(m, pt.pfn[i]!);
        if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) continue;
        mem.unmapAndPutPte(pt.pfn[i]!, mm.id);
      }
    }
    pt.pfn.fill(0, start, end);
    pt.flags.fill(0, start, end);
    pt.pmd[chunk] = PMD_NONE;
  }
}

/** The last VMA of a shmem file is gone: the file is released and its page cache truncated. */
function releaseFile(m: Machine, file: ShmemFile): void {
  if (--file.users > 0) return;
  for (let i = 0; i < file.cache.length; i++) {
    const pfn = file.cache[i]!;
    if (pfn === 0) continue;
    file.cache[i] = 0;
    m.mem.folioPut(pfn);
  }
}

/** exit_mmap (exit, and exec replacing the image): every VMA of `mm` unmapped and removed. */
export function exitMmap(m: Machine, mm: Mm): void {
  mm.vmas.forEach((vma, r) => {
    if (vma === null) return;
    zapRange(m, mm, vma);
    if (vma.file) releaseFile(m, vma.file);
    mm.vmas[r] = null;
  });
}
