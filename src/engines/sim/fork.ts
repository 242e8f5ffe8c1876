/**
 * fork (kernel/fork.c dup_mmap, mm/memory.c copy_page_range). The child gets a copy of each
 * VMA; page table entries are copied only where a page fault could not rebuild them
 * (vma_needs_copy): a private VMA with an anon_vma. Everything else (shared mappings, private
 * ones only ever read, untouched ones) starts empty in the child, which faults pages in itself.
 * Copied private entries become read-only in both processes: the next store in either one is
 * a write-protect fault (COW).
 */
import { copyPteRangeSmallFolios } from './fastpath.js';
import type { Machine } from './machine.js';
import { HPAGE_PMD_NR } from './physmem.js';
import { copySwapPte } from './swap.js';
import {
  anyAnonVma,
  hasAnonVmaAt,
  isCowMapping,
  PMD_HUGE,
  PMD_HUGE_ZERO,
  PMD_NONE,
  PMD_SHIFT_PAGES,
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_WRITE,
  type Mm,
  type Vma,
} from './vm.js';

/**
 * dup_mmap: give `child` the VMAs of `parent`. MADV_DONTFORK VMAs are skipped; a
 * MADV_WIPEONFORK VMA arrives empty, without anon_vma. Returns the number of page table
 * entries copied (PTEs, plus one per PMD), which is what fork's time grows with.
 */
export function dupMmap(m: Machine, parent: Mm, child: Mm): number {
  let copied = 0;
  parent.vmas.forEach((vma, r) => {
    if (vma === null || vma.dontfork) return;
    const tmp = vma.dup();
    child.vmas[r] = tmp;
    if (vma.wipeonfork) {
      tmp.hasAnonVma = false;
      tmp.anonVmaPages?.fill(0);
      return;
    }
    if (vmaNeedsCopy(vma)) copied += copyPageTables(m, vma, child, tmp);
  });
  return copied;
}

/** vma_needs_copy: only an anon_vma means page tables a fault could not rebuild (per piece). */
export function vmaNeedsCopy(src: Vma): boolean {
  return anyAnonVma(src);
}

/** copy_page_range: copy every present or swap entry of `src` into `dst` (the child's VMA). */
export function copyPageTables(m: Machine, src: Vma, child: Mm, dst: Vma): number {
  let copied = 0;
  const chunks = src.pt.pmd.length;
  for (let chunk = 0; chunk < chunks; chunk++) {
    const pmd = src.pt.pmd[chunk]!;
    if (pmd === PMD_NONE) continue;
    if (pmd === PMD_HUGE || pmd === PMD_HUGE_ZERO) {
      if (!hasAnonVmaAt(src, chunk << PMD_SHIFT_PAGES)) continue; // a huge PMD lies in one piece
      copyHugePmd(m, src, child, dst, chunk);
      copied++;
      continue;
    }
    const start = chunk << PMD_SHIFT_PAGES;
    const end = Math.min(start + HPAGE_PMD_NR, src.pages);
    // Only the pieces (kernel VMAs) with an anon_vma are copied; the others start empty.
    for (let from = start; from < end; ) {
      let to = from + 1;
      while (to < end && hasAnonVmaAt(src, to) === hasAnonVmaAt(src, from)) to++;
      if (hasAnonVmaAt(src, from)) {
        dst.pt.pmd[chunk] = pmd; // a page table, even if every entry in it is empty
        if (m.fastPaths && !src.hugepage) copied += copyPteRangeSmallFolios(m, src, dst, from, to);
        else {
          for (let i = from; i < to; i++) {
            const flags = src.pt.flags[i]!;
            if ((flags & PTE_SWAP) !== 0) copySwapPte(m, src, dst, i);
            else if ((flags & PTE_PRESENT) !== 0) copyPresentPte(m, src, child, dst, i);
            else continue;
            copied++;
          }
        }
      }
      from = to;
    }
  }
  return copied;
}

/**
 * copy_present_pte: the child maps the same frame. An anonymous page is no longer exclusive
 * to anyone (folio_try_dup_anon_rmap clears PageAnonExclusive); a page-cache page gets one
 * more mapping; the zero page is copied as it is. In a private mapping the entry is made
 * read-only in both parent and child.
 */
export function copyPresentPte(m: Machine, src: Vma, child: Mm, dst: Vma, i: number): void {
  let flags = src.pt.flags[i]!;
  const pfn = src.pt.pfn[i]!;
  if ((flags & PTE_SPECIAL) === 0) {
    m.mem.getAndMapPte(pfn, child.id);
    m.mem.anonExclusive[pfn] = 0;
  }
  if (isCowMapping(src) && (flags & PTE_WRITE) !== 0) {
    flags &= ~PTE_WRITE;
    src.pt.flags[i] = flags;
  }
  if (src.shared) flags &= ~PTE_DIRTY;
  dst.pt.pfn[i] = pfn;
  dst.pt.flags[i] = flags;
}

/**
 * copy_huge_pmd: the child's PMD maps the same huge page (one more reference and entire
 * mapping; no longer exclusive), or the huge zero page; both PMDs become read-only.
 */
export function copyHugePmd(m: Machine, src: Vma, child: Mm, dst: Vma, chunk: number): void {
  const start = chunk << PMD_SHIFT_PAGES;
  const pmd = src.pt.pmd[chunk]!;
  if (pmd === PMD_HUGE) {
    const head = src.pt.pfn[start]!;
    m.mem.folioGet(head);
    m.mem.addRmapPmd(head, child.id);
    m.mem.anonExclusive[head] = 0;
  }
  dst.pt.pmd[chunk] = pmd;
  for (let i = start; i < start + HPAGE_PMD_NR; i++) {
    const flags = src.pt.flags[i]! & ~PTE_WRITE;
    src.pt.flags[i] = flags;
    dst.pt.pfn[i] = src.pt.pfn[i]!;
    dst.pt.flags[i] = flags;
  }
}
