/**
 * mprotect (mm/mprotect.c). PROT_READ takes the write bit off every present entry.
 * PROT_READ|PROT_WRITE gives it back only where a write fault would have made the entry
 * writable without further checks (change_pte_range with MM_CP_TRY_CHANGE_WRITABLE,
 * can_change_pte_writable, Linux >= 6.0): in a private mapping, pages that are anonymous and
 * exclusive to this process (PageAnonExclusive); pages still shared after fork stay read-only,
 * so the next store takes a COW fault. A shared shmem mapping needs no write notification,
 * so its protection applies to every present entry directly.
 */
import type { Machine } from './machine.js';
import { HPAGE_PMD_NR } from './physmem.js';
import { setPmdWritable, splitHugePmd } from './huge.js';
import {
  PMD_HUGE,
  PMD_HUGE_ZERO,
  PMD_SHIFT_PAGES,
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_WRITE,
  vmaPieceOf,
  type Mm,
  type Vma,
} from './vm.js';

/**
 * can_change_pte_writable for a private mapping: an anonymous page exclusive to us (6.0 and
 * 6.1 also want the entry dirty; before 6.0 nothing is upgraded: mprotectUpgrade).
 */
export function canChangePteWritable(m: Machine, vma: Vma, i: number): boolean {
  if (vma.shared) return true;
  const mode = m.opts.mprotectUpgrade;
  const flags = vma.pt.flags[i]!;
  if (mode === 'none' || (flags & PTE_SPECIAL) !== 0) return false;
  if (mode === 'dirty-pte' && (flags & PTE_DIRTY) === 0) return false;
  const pfn = vma.pt.pfn[i]!;
  return m.mem.isAnon(m.mem.headOf(pfn)) && m.mem.anonExclusive[pfn] === 1;
}

function changePte(m: Machine, vma: Vma, i: number, readonly: boolean): void {
  const flags = vma.pt.flags[i]!;
  if ((flags & PTE_PRESENT) === 0) return;
  if (readonly) vma.pt.flags[i] = flags & ~PTE_WRITE;
  else if (canChangePteWritable(m, vma, i)) vma.pt.flags[i] = flags | PTE_WRITE;
}

/** change_huge_pmd: the same rule for a whole PMD (can_change_pmd_writable checks the head page). */
function changeHugePmd(m: Machine, vma: Vma, chunk: number, readonly: boolean): void {
  if (readonly) return setPmdWritable(vma, chunk, false);
  // Before 6.2 change_huge_pmd never made a PMD writable: the next store reuses it by fault.
  if (vma.pt.pmd[chunk] === PMD_HUGE_ZERO || m.opts.mprotectUpgrade !== 'pte-and-pmd') return;
  const head = vma.pt.pfn[chunk << PMD_SHIFT_PAGES]!;
  if (m.mem.anonExclusive[head] === 1) setPmdWritable(vma, chunk, true);
}

function uniform(a: Uint8Array, start: number, end: number): boolean {
  for (let i = start + 1; i < end; i++) if (a[i] !== a[start]) return false;
  return true;
}

/**
 * mprotect on `pages` of `vma` (null: the whole region). Pages whose protection does not
 * change are left alone (mprotect_fixup does nothing for them). A huge PMD whose 2 MiB gets
 * a VMA boundary inside (part of it changes) is split first.
 */
export function changeProtection(m: Machine, mm: Mm, vma: Vma, pages: Uint32Array | null, prot: 'r' | 'rw'): void {
  const ro = prot === 'r' ? 1 : 0;
  if (vma.readonly === null) {
    if (ro === 0) return;
    vma.readonly = new Uint8Array(vma.pages);
    // The split pieces share the region's anon_vma, if it had one; from now on each piece
    // gets its own when it first needs one.
    vma.anonVmaPages = new Uint8Array(vma.pages).fill(vma.hasAnonVma ? 1 : 0);
  }
  const readonly = vma.readonly;
  const changed = new Uint8Array(vma.pages);
  const touched = new Uint8Array(vma.pt.pmd.length);
  const mark = (i: number) => {
    if (readonly[i] === ro) return;
    readonly[i] = ro;
    changed[i] = 1;
    touched[i >> PMD_SHIFT_PAGES] = 1;
  };
  if (pages === null) for (let i = 0; i < vma.pages; i++) mark(i);
  else for (let k = 0; k < pages.length; k++) mark(pages[k]!);

  for (let chunk = 0; chunk < touched.length; chunk++) {
    if (touched[chunk] === 0) continue;
    const start = chunk << PMD_SHIFT_PAGES;
    const end = Math.min(start + HPAGE_PMD_NR, vma.pages);
    const pmd = vma.pt.pmd[chunk];
    if (pmd === PMD_HUGE || pmd === PMD_HUGE_ZERO) {
      if (uniform(readonly, start, end)) {
        changeHugePmd(m, vma, chunk, ro === 1);
        continue;
      }
      splitHugePmd(m, mm, vma, chunk);
    }
    for (let i = start; i < end; i++) if (changed[i] === 1) changePte(m, vma, i, ro === 1);
  }
  mergePieces(vma);
}

/**
 * Neighbouring pieces of equal protection are one VMA again (vma_merge); the merged VMA has an
 * anon_vma when either had one. (The kernel refuses to merge two pieces that got different
 * anon_vmas after the split; the model merges them anyway, which differs only for fork of
 * such a region after mprotect put it back together.) All writable again: one VMA.
 */
function mergePieces(vma: Vma): void {
  const ro = vma.readonly!;
  const anon = vma.anonVmaPages!;
  for (let i = 0; i < vma.pages; ) {
    const [from, to] = vmaPieceOf(vma, i);
    if (anon.subarray(from, to).includes(1)) anon.fill(1, from, to);
    i = to;
  }
  if (ro[0] === 0 && uniform(ro, 0, vma.pages)) {
    vma.hasAnonVma = anon[0] === 1;
    vma.readonly = null;
    vma.anonVmaPages = null;
  }
}
