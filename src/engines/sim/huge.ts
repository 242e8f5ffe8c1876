/**
 * Transparent huge pages (mm/huge_memory.c), for private anonymous regions advised
 * MADV_HUGEPAGE under THP mode "madvise". A 2 MiB chunk is mapped by one PMD: the first
 * touch maps a whole huge page (or the huge zero page for a read), fork shares it by PMD,
 * and a COW write splits the writer's PMD into 512 PTEs and copies only the 4 KiB page
 * written (Linux >= 5.8); the other 511 PTEs keep pointing into the huge folio.
 */
import {
  FAULT_FALLBACK,
  FAULT_HUGE_MAP_NEW,
  FAULT_HUGE_ZERO_FILL,
  FAULT_MAP,
  FAULT_REUSE,
  type Machine,
} from './machine.js';
import { HPAGE_PMD_NR } from './physmem.js';
import {
  anonVmaPrepare,
  PMD_HUGE,
  PMD_HUGE_ZERO,
  PMD_SHIFT_PAGES,
  PMD_TABLE,
  PTE_DIRTY,
  PTE_HUGE,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_WRITE,
  vmaWritable,
  ZERO_PFN,
  type Mm,
  type Vma,
} from './vm.js';

/**
 * thp_vma_suitable_order: may this chunk be mapped by a PMD? The VMA wants huge pages, the
 * whole 2 MiB lies inside the region (a smaller region or its tail gets 4 KiB pages), and no
 * mprotect boundary (a VMA split) falls inside it.
 */
export function thpSuitable(vma: Vma, chunk: number): boolean {
  if (!vma.hugepage) return false;
  const start = chunk << PMD_SHIFT_PAGES;
  if (start + HPAGE_PMD_NR > vma.pages) return false;
  const ro = vma.readonly;
  if (ro === null) return true;
  for (let i = start + 1; i < start + HPAGE_PMD_NR; i++) if (ro[i] !== ro[start]) return false;
  return true;
}

/** Fills the 512 per-page mirrors of a PMD mapping. */
function setPmd(vma: Vma, chunk: number, state: number, headPfn: number, flags: number): void {
  const start = chunk << PMD_SHIFT_PAGES;
  vma.pt.pmd[chunk] = state;
  for (let k = 0; k < HPAGE_PMD_NR; k++) {
    vma.pt.pfn[start + k] = headPfn === ZERO_PFN ? ZERO_PFN : headPfn + k;
    vma.pt.flags[start + k] = flags;
  }
}

/** Sets or clears the write bit of a PMD mapping (all its mirrors). */
export function setPmdWritable(vma: Vma, chunk: number, writable: boolean): void {
  const start = chunk << PMD_SHIFT_PAGES;
  for (let k = start; k < start + HPAGE_PMD_NR; k++) {
    const f = vma.pt.flags[k]!;
    vma.pt.flags[k] = writable ? f | PTE_WRITE | PTE_DIRTY : f & ~PTE_WRITE;
  }
}

/** map_anon_folio_pmd: a new huge page, exclusive to this process. */
function mapNewHugePage(m: Machine, mm: Mm, vma: Vma, chunk: number): void {
  const head = m.mem.allocFolio(HPAGE_PMD_NR, true);
  m.mem.addRmapPmd(head, mm.id);
  m.mem.anonExclusive[head] = 1;
  const writable = vmaWritable(vma, chunk << PMD_SHIFT_PAGES);
  setPmd(vma, chunk, PMD_HUGE, head, PTE_PRESENT | PTE_HUGE | PTE_DIRTY | (writable ? PTE_WRITE : 0));
}

/**
 * do_huge_pmd_anonymous_page: first touch of a huge-page-able chunk. The VMA gets an
 * anon_vma even for a read (so fork will copy it). A read maps the huge zero page when
 * use_zero_page is on; otherwise, or for a write, a whole new huge page.
 */
export function doHugePmdAnonymousPage(m: Machine, mm: Mm, vma: Vma, chunk: number, write: boolean): number {
  anonVmaPrepare(vma, chunk << PMD_SHIFT_PAGES);
  if (!write && m.opts.hugeZeroPage) {
    setPmd(vma, chunk, PMD_HUGE_ZERO, ZERO_PFN, PTE_PRESENT | PTE_HUGE | PTE_SPECIAL);
    return FAULT_MAP;
  }
  mapNewHugePage(m, mm, vma, chunk);
  return write ? FAULT_HUGE_ZERO_FILL : FAULT_HUGE_MAP_NEW;
}

/**
 * do_huge_pmd_wp_page: a store to a read-only huge PMD.
 *   huge zero page          -> hugeZeroWrite 'huge-page': do_huge_zero_wp_pmd, a new huge
 *                              page in its place (6.13+); 'split': split the PMD into
 *                              zero-page PTEs, and the PTE fault zero-fills 4 KiB
 *   exclusive, or our
 *   reference is the last   -> reuse the whole PMD: all 512 pages writable, one fault
 *   shared                  -> split the PMD and let the PTE fault copy 4 KiB
 */
export function doHugePmdWpPage(m: Machine, mm: Mm, vma: Vma, chunk: number): number {
  if (vma.pt.pmd[chunk] === PMD_HUGE_ZERO) {
    if (m.opts.hugeZeroWrite === 'huge-page') {
      mapNewHugePage(m, mm, vma, chunk);
      return FAULT_HUGE_ZERO_FILL;
    }
    // hugeZeroWrite 'split' (before 6.13): 512 zero-page PTEs, and the store zero-fills 4 KiB.
    splitHugePmd(m, mm, vma, chunk);
    return FAULT_FALLBACK;
  }
  const head = vma.pt.pfn[chunk << PMD_SHIFT_PAGES]!;
  if (m.opts.reuse && (m.mem.anonExclusive[head] === 1 || m.mem.refcount[head] === 1)) {
    m.mem.anonExclusive[head] = 1;
    setPmdWritable(vma, chunk, true);
    return FAULT_REUSE;
  }
  splitHugePmd(m, mm, vma, chunk);
  return FAULT_FALLBACK;
}

/**
 * __split_huge_pmd: replace the PMD with a table of 512 PTEs mapping the same pages, with
 * the same write bit. A huge page keeps its frames: each PTE now holds one reference and one
 * page mapcount instead of the PMD's single ones; PageAnonExclusive spreads from the head to
 * every page. The huge zero page becomes 512 entries of the 4 KiB zero page.
 */
export function splitHugePmd(m: Machine, mm: Mm, vma: Vma, chunk: number): void {
  const start = chunk << PMD_SHIFT_PAGES;
  const pt = vma.pt;
  if (pt.pmd[chunk] === PMD_HUGE_ZERO) {
    for (let k = start; k < start + HPAGE_PMD_NR; k++) pt.flags[k] = PTE_PRESENT | PTE_SPECIAL;
    pt.pmd[chunk] = PMD_TABLE;
    return;
  }
  const mem = m.mem;
  const head = pt.pfn[start]!;
  const exclusive = mem.anonExclusive[head]!;
  mem.folioGet(head, HPAGE_PMD_NR - 1);
  for (let k = 0; k < HPAGE_PMD_NR; k++) {
    mem.mapcount[head + k] = mem.mapcount[head + k]! + 1;
    mem.anonExclusive[head + k] = exclusive;
    pt.flags[start + k] = pt.flags[start + k]! & ~PTE_HUGE;
  }
  mem.addLargeMapcount(head, HPAGE_PMD_NR, mm.id);
  mem.removeRmapPmd(head, mm.id);
  pt.pmd[chunk] = PMD_TABLE;
}
