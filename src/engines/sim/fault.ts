/**
 * Page faults (mm/memory.c). One call handles one fault at one page and says what it did.
 *
 *   handleMmFault       dispatch: huge PMD first (huge.ts), else the PTE
 *   doAnonymousPage     first touch of private anonymous memory: zero page or a fresh page
 *   doFault             first touch of a shmem/memfd mapping: read, COW or shared fault
 *   doFaultAround       a read fault also maps neighbours already in the page cache
 *   doWpPage            a write to a present read-only page: reuse, copy, or (shared) upgrade
 *   wpPageCopy          give the writer its own new page (copy, or zero-fill over the zero page)
 *   wpPageReuse         make the page writable in place
 */
import {
  FAULT_COPY,
  FAULT_COW_FILL,
  FAULT_FALLBACK,
  FAULT_MAP,
  FAULT_MAP_NEW,
  FAULT_REUSE,
  FAULT_WP_SHARED,
  FAULT_ZERO_FILL,
  type Machine,
} from './machine.js';
import { doHugePmdAnonymousPage, doHugePmdWpPage, thpSuitable } from './huge.js';
import { HPAGE_PMD_NR } from './physmem.js';
import { doSwapPage, reuseFromSwapCache } from './swap.js';
import {
  anonVmaPrepare,
  PMD_HUGE,
  PMD_HUGE_ZERO,
  PMD_NONE,
  PMD_SHIFT_PAGES,
  PMD_TABLE,
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_WRITE,
  vmaWritable,
  ZERO_PFN,
  type Mm,
  type ShmemFile,
  type Vma,
} from './vm.js';

function bug(what: string): never {
  throw new Error(`sim bug: ${what}`);
}

/**
 * handle_mm_fault: a load (write=false) or store at page `i` that the page table did not
 * allow. Returns the FAULT_* kind. A huge-page-able chunk with no page table yet gets a
 * PMD-level fault; a write to a read-only huge PMD may split it and continue on the PTE.
 */
export function handleMmFault(m: Machine, mm: Mm, vma: Vma, i: number, write: boolean): number {
  if (write && !vmaWritable(vma, i)) bug(`store to read-only page ${i} of '${vma.spec.id}' in ${mm.name} (SIGSEGV)`);
  const chunk = i >> PMD_SHIFT_PAGES;
  const pmd = vma.pt.pmd[chunk]!;
  if (pmd === PMD_NONE && vma.hugepage && thpSuitable(vma, chunk)) {
    const r = doHugePmdAnonymousPage(m, mm, vma, chunk, write);
    if (r !== FAULT_FALLBACK) return r;
  } else if (pmd === PMD_HUGE || pmd === PMD_HUGE_ZERO) {
    if (!write || (vma.pt.flags[i]! & PTE_WRITE) !== 0) bug(`spurious fault on huge PMD at page ${i}`);
    const r = doHugePmdWpPage(m, mm, vma, chunk);
    if (r !== FAULT_FALLBACK) return r;
    // The PMD is now a table of PTEs: the same fault goes on at PTE level.
  }
  return handlePteFault(m, mm, vma, i, write);
}

/**
 * handle_pte_fault: a swap entry -> swap-in; not present -> first touch; present but read-only
 * store -> write-protect fault.
 */
function handlePteFault(m: Machine, mm: Mm, vma: Vma, i: number, write: boolean): number {
  const flags = vma.pt.flags[i]!;
  if ((flags & PTE_SWAP) !== 0) return doSwapPage(m, mm, vma, i, write);
  if ((flags & PTE_PRESENT) === 0) {
    vma.pt.pmd[i >> PMD_SHIFT_PAGES] = PMD_TABLE; // pte_alloc
    return vma.anonymous ? doAnonymousPage(m, vma, i, write) : doFault(m, mm, vma, i, write);
  }
  if (write && (flags & PTE_WRITE) === 0) return doWpPage(m, mm, vma, i);
  return bug(`spurious fault at page ${i}`);
}

/**
 * Allocates a 4 KiB anonymous page and maps it at `i` as this process's own: one mapping,
 * PageAnonExclusive (folio_add_new_anon_rmap), writable if the VMA is.
 */
function mapNewAnonPage(m: Machine, vma: Vma, i: number): void {
  const pfn = m.mem.allocPage(true);
  m.mem.mapcount[pfn] = 1;
  m.mem.anonExclusive[pfn] = 1;
  vma.pt.pfn[i] = pfn;
  vma.pt.flags[i] = PTE_PRESENT | PTE_DIRTY | (vmaWritable(vma, i) ? PTE_WRITE : 0);
}

/**
 * do_anonymous_page: first touch of private anonymous memory. A load maps the shared zero
 * page read-only (no anon_vma needed); a store allocates a fresh zeroed page.
 */
export function doAnonymousPage(m: Machine, vma: Vma, i: number, write: boolean): number {
  if (!write) {
    vma.pt.pfn[i] = ZERO_PFN;
    vma.pt.flags[i] = PTE_PRESENT | PTE_SPECIAL;
    return FAULT_MAP;
  }
  anonVmaPrepare(vma, i);
  mapNewAnonPage(m, vma, i);
  return FAULT_ZERO_FILL;
}

/**
 * shmem_fault: the page-cache page at index `i`, allocated (zeroed) into the cache if the
 * file has a hole there. Returns its pfn, negated when it was just allocated.
 */
function shmemFault(m: Machine, file: ShmemFile, i: number): number {
  const pfn = file.cache[i]!;
  if (pfn !== 0) return pfn;
  const fresh = m.mem.allocPage(false); // the page cache's own reference
  file.cache[i] = fresh;
  return -fresh;
}

/**
 * finish_fault / set_pte_range: map page-cache page `pfn` at `i`. A shared writable mapping
 * gets a writable entry even on a read (shmem wants no write notification); a private one
 * gets it read-only, so the first store copies.
 */
function mapPageCachePage(m: Machine, mm: Mm, vma: Vma, i: number, pfn: number, write: boolean): void {
  m.mem.getAndMapPte(pfn, mm.id);
  vma.pt.pfn[i] = pfn;
  const writable = vma.shared && vmaWritable(vma, i);
  vma.pt.flags[i] = PTE_PRESENT | (writable ? PTE_WRITE : 0) | (write ? PTE_DIRTY : 0);
}

/** do_fault: first touch of a file-backed (shmem/memfd) mapping. */
export function doFault(m: Machine, mm: Mm, vma: Vma, i: number, write: boolean): number {
  if (!write) return doReadFault(m, mm, vma, i);
  return vma.shared ? doSharedFault(m, mm, vma, i) : doCowFault(m, vma, i);
}

/** do_read_fault: try fault-around first; if it did not map page `i`, fault that page in. */
function doReadFault(m: Machine, mm: Mm, vma: Vma, i: number): number {
  if (m.opts.faultAroundPages > 1) {
    doFaultAround(m, mm, vma, i);
    if ((vma.pt.flags[i]! & PTE_PRESENT) !== 0) return FAULT_MAP;
  }
  const r = shmemFault(m, vma.file!, i);
  mapPageCachePage(m, mm, vma, i, Math.abs(r), false);
  return r < 0 ? FAULT_MAP_NEW : FAULT_MAP;
}

/**
 * do_fault_around: map the pages of the window around `i` that the page cache already holds
 * and this page table does not map yet. As the kernel computes it, in entries of the page
 * table that holds `i`: faultAroundPages entries from the aligned entry at or below i's (or
 * from the VMA's first page, when that is later), cut at the end of the page table and of the
 * VMA. So the window follows virtual addresses: with the region on a 2 MiB boundary (offset 0)
 * it is aligned to the region's pages; placed elsewhere, it is not. Within the region it is
 * also cut to the run of pages around `i` with the same protection (an mprotect boundary
 * splits the kernel's VMA).
 */
export function doFaultAround(m: Machine, mm: Mm, vma: Vma, i: number): void {
  const n = m.opts.faultAroundPages;
  // The kernel VMA holding `i` (mprotect splits the region): how far it reaches before and
  // after `i`, looked at no further than a window can reach.
  const ro = vma.readonly;
  let before = 0; // pages of the VMA before i, up to n
  while (before < n && i - before > 0 && (ro === null || ro[i - before - 1] === ro[i])) before++;
  let after = 1; // pages of the VMA from i on, up to n
  while (after < n && i + after < vma.pages && (ro === null || ro[i + after] === ro[i])) after++;
  const pte = (vma.offset + i) % HPAGE_PMD_NR;
  // do_fault_around: from the aligned entry, or the VMA's first page when that is later; then
  // n entries, cut at the end of the page table and of the VMA.
  const fromPte = Math.max(pte - (pte % n), pte - Math.min(pte, before === n ? Infinity : before));
  const toPte = Math.min(fromPte + n, HPAGE_PMD_NR, pte + after);
  const from = i - (pte - fromPte);
  const to = i + (toPte - pte);
  const cache = vma.file!.cache;
  for (let j = from; j < to; j++) {
    if ((vma.pt.flags[j]! & PTE_PRESENT) !== 0) continue;
    const pfn = cache[j]!;
    if (pfn !== 0) mapPageCachePage(m, mm, vma, j, pfn, false);
  }
}

/**
 * do_cow_fault: a store to an unmapped page of a private file mapping. The process gets a
 * new anonymous page filled from the page cache (which allocates its own page on a hole).
 */
function doCowFault(m: Machine, vma: Vma, i: number): number {
  anonVmaPrepare(vma, i);
  shmemFault(m, vma.file!, i);
  mapNewAnonPage(m, vma, i);
  return FAULT_COW_FILL;
}

/** do_shared_fault: a store to an unmapped page of a shared mapping maps the page-cache page writable. */
function doSharedFault(m: Machine, mm: Mm, vma: Vma, i: number): number {
  const r = shmemFault(m, vma.file!, i);
  mapPageCachePage(m, mm, vma, i, Math.abs(r), true);
  return r < 0 ? FAULT_ZERO_FILL : FAULT_MAP;
}

/**
 * do_wp_page: a store to a present, read-only page.
 *   shared mapping      -> make it writable (wp_page_shared); never a copy
 *   the zero page       -> wp_page_copy allocates a fresh zeroed page
 *   anonymous page that is exclusive to us (PageAnonExclusive), or that nobody else
 *   references any more -> wp_page_reuse: writable in place, same frame
 *   anything else (shared anonymous page, page-cache page in a private mapping)
 *                       -> wp_page_copy
 */
export function doWpPage(m: Machine, mm: Mm, vma: Vma, i: number): number {
  if (vma.shared) {
    vma.pt.flags[i] = vma.pt.flags[i]! | PTE_WRITE | PTE_DIRTY;
    return FAULT_WP_SHARED;
  }
  if ((vma.pt.flags[i]! & PTE_SPECIAL) !== 0) return wpPageCopy(m, mm, vma, i);
  const pfn = vma.pt.pfn[i]!;
  const head = m.mem.headOf(pfn);
  if (m.opts.reuse && m.mem.isAnon(head) && (m.mem.anonExclusive[pfn] === 1 || wpCanReuseAnonFolio(m, head))) {
    m.mem.anonExclusive[pfn] = 1;
    return wpPageReuse(vma, i);
  }
  return wpPageCopy(m, mm, vma, i);
}

/**
 * wp_can_reuse_anon_folio: may the writer keep this page? A small page: when its only
 * reference is our mapping (refcount 1), once the swap cache has dropped its own. A page of a huge folio mapped by PTEs (Linux 6.15+,
 * thpPteReuse 'per-page'): when more than one of its pages is mapped, every mapping is ours
 * (not "maybe mapped shared") and every reference is a mapping; 6.9 to 6.14 ('never'): never;
 * before 6.9 ('sole-reference'): when this mapping is the folio's only reference.
 */
function wpCanReuseAnonFolio(m: Machine, head: number): boolean {
  const mem = m.mem;
  if (mem.isLarge(head)) {
    if (m.opts.thpPteReuse === 'never') return false;
    if (m.opts.thpPteReuse === 'sole-reference') return mem.refcount[head] === 1;
    if (mem.largeMapcount[head]! <= 1) return false; // free up a huge page with one page left
    if (mem.mappedShared[head] === 1) return false;
    return mem.largeMapcount[head] === mem.refcount[head];
  }
  // A folio in the swap cache (swapped in while another entry still held its slot) is reused
  // only once the swap cache lets go of it (folio_free_swap).
  return mem.refcount[head] === 1 || reuseFromSwapCache(m, head);
}

/** wp_page_reuse: the same frame, now writable (still a fault, no copy). */
export function wpPageReuse(vma: Vma, i: number): number {
  vma.pt.flags[i] = vma.pt.flags[i]! | PTE_WRITE | PTE_DIRTY;
  return FAULT_REUSE;
}

/**
 * wp_page_copy: the writer gets a new anonymous page (a copy of the old one, or zeroed when
 * the zero page was mapped); its reference on the old page is dropped, which frees the old
 * page if it was the last.
 */
export function wpPageCopy(m: Machine, mm: Mm, vma: Vma, i: number): number {
  anonVmaPrepare(vma, i);
  const wasZero = (vma.pt.flags[i]! & PTE_SPECIAL) !== 0;
  const old = vma.pt.pfn[i]!;
  mapNewAnonPage(m, vma, i);
  if (wasZero) return FAULT_ZERO_FILL;
  m.mem.unmapAndPutPte(old, mm.id);
  return FAULT_COPY;
}
