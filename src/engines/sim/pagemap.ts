/**
 * What /proc/<pid>/pagemap (present, exclusive) and /proc/kpageflags (zero page) would show
 * for one VMA (fs/proc/task_mmu.c pagemap_pte_range, pagemap_pmd_range_thp), and the distinct
 * frames a region's VMAs map. These loops run for every page of every live process after every
 * step, so each is one pass over typed arrays.
 */
import type { RegionObservation } from '../types.js';
import type { Machine } from './machine.js';
import type { PhysMem } from './physmem.js';
import { PTE_HUGE, PTE_PRESENT, PTE_SPECIAL, PTE_SWAP, type Vma } from './vm.js';

type PagemapOut = { [K in keyof RegionObservation]-?: Uint8Array };

/**
 * Fills `out` for `vma`: present when an entry maps something; zero page for special entries
 * (never exclusive: it has no rmap); exclusive when the page is mapped once (`precise`:
 * folio_precise_page_mapcount 1), or else when its folio is not maybe-mapped-shared.
 *
 * Also counts, in `mappings[n]`, the entries whose frame is mapped n times in all (its precise
 * mapcount: the PTEs of the page plus the PMDs of its folio). Every mapping of a frame is an
 * entry of one live process's VMA of the frame's region, so the region's distinct frames are
 * the sum of mappings[n] / n over its processes (distinctFrames).
 */
export function pagemapRead(m: Machine, vma: Vma, out: PagemapOut, mappings: Int32Array): void {
  const precise = m.opts.pagemapExclusive === 'precise';
  // The fast path knows no swap entries: it runs where the machine has none to hold.
  if (m.fastPaths && !vma.hugepage) pagemapReadSmallFolios(m.mem, vma, precise, out, mappings);
  else pagemapReadAny(m.mem, vma, precise, m.opts.pmdExclusive === 'head-page', out, mappings);
}

/** pagemapRead for any VMA: huge or small folios, PTE or PMD mapped. The reference. */
function pagemapReadAny(mem: PhysMem, vma: Vma, precise: boolean, pmdByHead: boolean, out: PagemapOut, mappings: Int32Array): void {
  const { mapcount, entireMapcount, head, largeFolios } = mem;
  const { flags, pfn } = vma.pt;
  const { present, exclusive, zeroPage, swapped } = out;
  const pages = vma.pages;
  for (let i = 0; i < pages; i++) {
    const f = flags[i]!;
    if ((f & PTE_PRESENT) === 0) {
      if ((f & PTE_SWAP) !== 0) swapped[i] = 1; // PM_SWAP; a swap entry is never exclusive
      continue;
    }
    present[i] = 1;
    if ((f & PTE_SPECIAL) !== 0) {
      zeroPage[i] = 1;
      continue;
    }
    const p = pfn[i]!;
    const h = largeFolios ? head[p]! : p; // mem.headOf(p), inline
    const entire = largeFolios ? entireMapcount[h]! : 0; // entireMapcountOf(h)
    const mapped = mapcount[p]! + entire;
    mappings[mapped] = mappings[mapped]! + 1;
    if (precise) {
      // For a PMD mapping, pmdExclusive 'head-page' computes the bit once, from the head page
      // (pmd_page), and gives it to all 512 entries: once the other process has copied the
      // head subpage, every entry of our huge mapping reads exclusive (6.1, 6.18). 'per-page'
      // judges each entry by its own page's mapcount (6.12). profiles.ts has the history.
      if (((f & PTE_HUGE) !== 0 && pmdByHead ? mapcount[h]! + entire : mapped) === 1) exclusive[i] = 1;
    } else if (!mem.maybeMappedShared(h)) exclusive[i] = 1;
  }
}

/** A 32-bit word with 1 in each of its bytes: four entries' flags, or present bits, at once. */
const EACH_BYTE = 0x01010101;

/**
 * Fast path: pagemapReadAny for a VMA without VM_HUGEPAGE, which maps small folios only
 * (huge pages are allocated by do_huge_pmd_anonymous_page, in VM_HUGEPAGE VMAs only, and fork
 * copies them into the child's copy of the same VMA). For a small folio the head is the page
 * itself, no PMD maps it (entire mapcount 0) and no entry is PTE_HUGE, so the precise mapcount
 * is the page's mapcount, and folio_maybe_mapped_shared is mapcount > 1.
 *
 * Entries go four at a time: when all four map a page (present, not the zero page), the usual
 * case, their flags are checked and their present bits set with one 32-bit load and store.
 */
function pagemapReadSmallFolios(mem: PhysMem, vma: Vma, precise: boolean, out: PagemapOut, mappings: Int32Array): void {
  const mapcount = mem.mapcount;
  const { flags, pfn } = vma.pt;
  const { present, exclusive, zeroPage } = out;
  const pages = vma.pages;
  const words = pages >> 2;
  const flagWords = new Uint32Array(flags.buffer, flags.byteOffset, words);
  const presentWords = new Uint32Array(present.buffer, present.byteOffset, words);
  // mappings[1] and [2] (the usual counts) are kept in locals until the end.
  let once = 0;
  let twice = 0;
  let i = 0;
  for (let w = 0; w <= words; w++) {
    const end = w < words ? i + 4 : pages; // the last round takes the pages past the last word
    if (w < words && (flagWords[w]! & (EACH_BYTE * (PTE_PRESENT | PTE_SPECIAL))) === EACH_BYTE * PTE_PRESENT) {
      presentWords[w] = EACH_BYTE;
      for (; i < end; i++) {
        const mapped = mapcount[pfn[i]!]!;
        if (precise ? mapped === 1 : mapped <= 1) exclusive[i] = 1;
        if (mapped === 1) once++;
        else if (mapped === 2) twice++;
        else mappings[mapped] = mappings[mapped]! + 1;
      }
      continue;
    }
    for (; i < end; i++) {
      const f = flags[i]!;
      if ((f & PTE_PRESENT) === 0) continue;
      present[i] = 1;
      if ((f & PTE_SPECIAL) !== 0) {
        zeroPage[i] = 1;
        continue;
      }
      const mapped = mapcount[pfn[i]!]!;
      if (precise ? mapped === 1 : mapped <= 1) exclusive[i] = 1;
      if (mapped === 1) once++;
      else if (mapped === 2) twice++;
      else mappings[mapped] = mappings[mapped]! + 1;
    }
  }
  mappings[1] = mappings[1]! + once;
  mappings[2] = mappings[2]! + twice;
}

/** A region's distinct frames from pagemapRead's counts: a frame mapped n times was seen n times. */
export function distinctFrames(mappings: Int32Array): number {
  let frames = 0;
  for (let n = 1; n < mappings.length; n++) frames += mappings[n]! / n;
  return frames;
}
