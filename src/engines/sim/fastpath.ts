/**
 * Fast paths: what fault.ts and fork.ts do, for runs of pages in one common state, without
 * going through the per-page dispatch (VMA protection, PMD state, PTE state, folio checks) and
 * handler calls again for each page: the VMA's state is read once, and the handlers' work on
 * the page tables and frames is spelled out in one loop. The per-page path stays the
 * reference: each function says what it assumes and why, under that assumption, the per-page
 * path would take the same branch and do the same for every page of the run.
 * test/sim/fastpaths.test.ts runs seeded random traces both ways (Simulator debug option
 * `fastPaths: false`) and compares every observation and the model's state after every step.
 *
 * The fault runs handle pages[k], pages[k + 1], ... while their condition holds, page by page
 * in selector order (a page listed twice meets the state the first access left), and return
 * the index of the first page they did not handle (k when none). Every page they handled took
 * one fault of the kind the function names.
 */
import type { Machine } from './machine.js';
import { FOLIO_ANON } from './physmem.js';
import {
  anonVmaPrepare,
  isCowMapping,
  PMD_SHIFT_PAGES,
  PMD_TABLE,
  PTE_DIRTY,
  PTE_HUGE,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_WRITE,
  type Mm,
  type Vma,
} from './vm.js';

/** anon_vma_prepare for every kernel VMA a run of faults allocated in (one call unless split). */
function prepareRun(vma: Vma, pages: Uint32Array, from: number, to: number): void {
  if (vma.anonVmaPages === null) return anonVmaPrepare(vma, pages[from]!);
  for (let k = from; k < to; k++) anonVmaPrepare(vma, pages[k]!);
}

/**
 * FAULT_ZERO_FILL: stores to unmapped pages of a private anonymous VMA without huge pages;
 * do_anonymous_page allocates a fresh page for each.
 *
 * Assumes: the VMA is anonymous (private, no file) and not VM_HUGEPAGE; each page of the run
 * is writable (VM_WRITE) and not present. Why it matches handleMmFault: the store is allowed
 * (no SIGSEGV); without VM_HUGEPAGE no PMD is huge and the THP branch is not taken, so the
 * fault goes to handlePteFault, which finds the entry not present, allocates the page table
 * and calls doAnonymousPage(write): anonVmaPrepare, then mapNewAnonPage, which maps the next
 * pfn writable; the run's new frames are accounted for at its end (allocMappedAnonPages: no
 * page of the run looks at them before).
 */
export function doAnonymousPageRun(m: Machine, vma: Vma, pages: Uint32Array, k: number): number {
  if (!vma.anonymous || vma.hugepage) return k;
  const start = k;
  const { flags, pfn, pmd } = vma.pt;
  const ro = vma.readonly;
  const n = pages.length;
  const first = m.mem.top + 1;
  let next = first;
  let table = -1; // the last page table allocated
  for (; k < n; k++) {
    const i = pages[k]!;
    if ((flags[i]! & PTE_PRESENT) !== 0 || (ro !== null && ro[i] !== 0)) break;
    if (i >> PMD_SHIFT_PAGES !== table) {
      table = i >> PMD_SHIFT_PAGES;
      pmd[table] = PMD_TABLE; // pte_alloc
    }
    pfn[i] = next++;
    flags[i] = PTE_PRESENT | PTE_DIRTY | PTE_WRITE;
  }
  if (next > first) {
    prepareRun(vma, pages, start, k);
    m.mem.allocMappedAnonPages(next - first);
  }
  return k;
}

/**
 * FAULT_COPY: stores to present, read-only 4 KiB pages of a private mapping that do_wp_page
 * copies (wp_page_copy): page-cache pages, and anonymous pages that are neither exclusive to
 * the writer nor referenced by it alone (or all of them, with reuse off).
 *
 * Assumes: the VMA is private (not VM_SHARED); each page of the run is writable (VM_WRITE);
 * its entry is present, read-only, not the zero page and not part of a PMD mapping (PTE_HUGE
 * clear); its frame is a small folio (a head with one page) and fails doWpPage's reuse test.
 * Why it matches handleMmFault: the store is allowed; a present entry without PTE_HUGE sits in
 * a page table (a PMD mapping marks all 512 entries PTE_HUGE, and an empty PMD has no present
 * entry), so neither THP branch is taken; handlePteFault finds a present read-only entry and
 * calls doWpPage, which (private, not the zero page, reuse test failed: for a small folio
 * wpCanReuseAnonFolio is refcount 1) calls wpPageCopy: anonVmaPrepare; mapNewAnonPage, which
 * maps the next pfn writable (the run's new frames are accounted for at its end, by
 * allocMappedAnonPages: a page stored to twice ends the run, so none of them is the old page
 * of a later one); then unmapAndPutPte on the old page, a small folio (no large mapcount).
 */
export function wpPageCopyRun(m: Machine, mm: Mm, vma: Vma, pages: Uint32Array, k: number): number {
  if (vma.shared) return k;
  const start = k;
  const { flags, pfn } = vma.pt;
  const ro = vma.readonly;
  const mem = m.mem;
  const { nrPages, folioFlags, anonExclusive, refcount, mapcount } = mem;
  const reuse = m.opts.reuse;
  // Without VM_HUGEPAGE every folio mapped is small (see copyPteRangeSmallFolios).
  const hugepage = vma.hugepage;
  const n = pages.length;
  const first = mem.top + 1;
  let next = first;
  for (; k < n; k++) {
    const i = pages[k]!;
    if ((flags[i]! & (PTE_PRESENT | PTE_WRITE | PTE_SPECIAL | PTE_HUGE)) !== PTE_PRESENT || (ro !== null && ro[i] !== 0)) break;
    const old = pfn[i]!;
    if (hugepage && nrPages[old] !== 1) break; // a tail page (0) or the head of a huge folio
    if (reuse && (anonExclusive[old] === 1 || refcount[old] === 1) && (folioFlags[old]! & FOLIO_ANON) !== 0) break; // reused
    pfn[i] = next++;
    flags[i] = PTE_PRESENT | PTE_DIRTY | PTE_WRITE;
    // unmapAndPutPte(old): one mapping and one reference less (folioPut frees the folio with
    // its last reference, and catches a count gone wrong).
    if ((mapcount[old] = mapcount[old]! - 1) < 0) throw new Error(`sim bug: frame ${old} mapcount went negative`);
    if (refcount[old]! > 1) refcount[old] = refcount[old]! - 1;
    else mem.folioPut(old);
  }
  if (next > first) {
    prepareRun(vma, pages, start, k);
    mem.allocMappedAnonPages(next - first);
  }
  return k;
}

/**
 * copy_pte_range for one page table (pages start..end) of a VMA without VM_HUGEPAGE: the
 * child maps every present entry's frame too. Returns the entries copied.
 *
 * Assumes: `src` is not VM_HUGEPAGE, so every frame it maps is a small folio (huge pages are
 * allocated only by do_huge_pmd_anonymous_page, in VM_HUGEPAGE VMAs, and fork copies them
 * only into the child's copy of the same VMA), its own head with no large mapcount; `dst` is
 * the child's new VMA, its entries all empty. Why it matches copyPresentPte, entry by entry:
 * getAndMapPte on a small folio is one more reference and one more mapcount on the page
 * itself; PageAnonExclusive is cleared; a private (COW) mapping write-protects the entry in
 * both processes and a shared one copies it clean; the zero page is copied as it is. The
 * entries are copied whole, the empty ones too: an entry without PTE_PRESENT is all zero
 * (only zapRange empties entries, and it zeroes them), as the child's are already.
 */
export function copyPteRangeSmallFolios(m: Machine, src: Vma, dst: Vma, start: number, end: number): number {
  const { refcount, mapcount, anonExclusive } = m.mem;
  const { flags, pfn } = src.pt;
  const cow = isCowMapping(src);
  dst.pt.pfn.set(pfn.subarray(start, end), start);
  let copied = 0;
  for (let i = start; i < end; i++) {
    const f = flags[i]!;
    if ((f & PTE_PRESENT) === 0) continue;
    if ((f & PTE_SPECIAL) === 0) {
      const page = pfn[i]!;
      refcount[page] = refcount[page]! + 1;
      mapcount[page] = mapcount[page]! + 1;
      anonExclusive[page] = 0;
    }
    if (cow) flags[i] = f & ~PTE_WRITE;
    else dst.pt.flags[i] = f & ~PTE_DIRTY;
    copied++;
  }
  if (cow) dst.pt.flags.set(flags.subarray(start, end), start);
  return copied;
}
