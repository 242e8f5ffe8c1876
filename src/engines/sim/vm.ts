/**
 * Address spaces: a process (Mm) has one VMA per trace region; a VMA has a page table.
 *
 * A page table keeps, per 4 KiB page, the pfn it maps and flag bits (present, writable,
 * special = the zero page, huge = the entry belongs to a PMD mapping), and per 2 MiB chunk
 * the state of its PMD: none, a table of PTEs, or a huge mapping (a THP or the huge zero
 * page). A PMD mapping is mirrored into the 512 per-page entries, so every reader sees one
 * uniform array; the PMD state says whether those entries are one huge mapping or 512 PTEs.
 *
 * mprotect on part of a region splits the kernel's VMA; here the VMA stays one object and
 * keeps its protection per page (`readonly`), which is the same thing at page granularity.
 */
import type { RegionSpec } from '../../trace/types.js';
import { HPAGE_PMD_NR } from './physmem.js';

export const PTE_PRESENT = 1;
export const PTE_WRITE = 2;
/** The entry maps the (huge) zero page: pte_special, no struct page behind it in rmap terms. */
export const PTE_SPECIAL = 4;
/** The entry is one of the 512 mirrors of a PMD mapping. */
export const PTE_HUGE = 8;
export const PTE_DIRTY = 16;
/** Not present: the entry holds a swap slot (in pfn), see swap.ts. */
export const PTE_SWAP = 32;
/** A swap entry whose page was PageAnonExclusive when it was unmapped (pte_swp_exclusive). */
export const PTE_SWP_EXCLUSIVE = 64;

export const PMD_NONE = 0;
export const PMD_TABLE = 1;
export const PMD_HUGE = 2;
export const PMD_HUGE_ZERO = 3;

/** pfn of the zero page in an entry (pfns of real frames start at 1). */
export const ZERO_PFN = 0;

export const PMD_SHIFT_PAGES = 9;

export class PageTable {
  readonly pfn: Int32Array;
  readonly flags: Uint8Array;
  /** Per 2 MiB chunk: PMD_NONE, PMD_TABLE, PMD_HUGE or PMD_HUGE_ZERO. */
  readonly pmd: Uint8Array;

  constructor(readonly pages: number) {
    this.pfn = new Int32Array(pages);
    this.flags = new Uint8Array(pages);
    this.pmd = new Uint8Array(Math.ceil(pages / HPAGE_PMD_NR));
  }
}

/** A shmem inode (memfd, or MAP_SHARED|MAP_ANONYMOUS): its page cache holds a reference per page. */
export class ShmemFile {
  /** Page index -> pfn in the page cache, 0 for a hole. */
  readonly cache: Int32Array;
  /** VMAs that map the file; when the last goes, the file and its page cache go too. */
  users = 0;

  constructor(readonly region: number, pages: number) {
    this.cache = new Int32Array(pages);
  }
}

/** A VMA: one region as mapped by one process (vm_area_struct). */
export class Vma {
  readonly pages: number;
  /** VM_SHARED: writes go to the page cache, never copied. */
  readonly shared: boolean;
  /** vma_is_anonymous: private anonymous memory (no file, no vm_ops). */
  readonly anonymous: boolean;
  /** VM_HUGEPAGE (MADV_HUGEPAGE on private anonymous memory, THP mode madvise). */
  readonly hugepage: boolean;
  /** VM_DONTCOPY (MADV_DONTFORK): the child does not get this VMA. */
  readonly dontfork: boolean;
  /** VM_WIPEONFORK: the child gets this VMA empty. */
  readonly wipeonfork: boolean;
  /** vma->anon_vma != NULL: some page was ever allocated anonymously here (while not split). */
  hasAnonVma = false;
  /**
   * While mprotect has split the region into several kernel VMAs (`readonly` not null): per
   * page, whether the VMA holding it has an anon_vma. Each piece keeps its own: a read-only
   * piece that only ever mapped the zero page has none, so fork copies none of its entries.
   */
  anonVmaPages: Uint8Array | null = null;
  /** Per page: 1 where mprotect(PROT_READ) removed VM_WRITE; null while all pages are writable. */
  readonly: Uint8Array | null = null;
  /**
   * The index of the region's first page in its page table (its virtual address's offset in a
   * 2 MiB block, in pages): 0 for a region placed on a 2 MiB boundary (trace placement
   * 'aligned'); any value for one placed by the kernel. Fault-around windows follow it.
   */
  offset = 0;
  readonly pt: PageTable;

  /** A new VMA for region `spec` (index `region`), as mmap + madvise in p0 create it. */
  constructor(
    readonly region: number,
    readonly spec: RegionSpec,
    /** The shmem file behind a memfd or shared anonymous region. */
    readonly file: ShmemFile | null,
  ) {
    this.pages = spec.pages;
    this.shared = spec.map === 'shared';
    this.anonymous = spec.map === 'private' && spec.backing === 'anon';
    this.hugepage = spec.thp && this.anonymous;
    this.dontfork = spec.advice.includes('dontfork');
    this.wipeonfork = spec.advice.includes('wipeonfork');
    this.pt = new PageTable(spec.pages);
    if (file) file.users++;
  }

  /** vm_area_dup: the child's copy, with the same flags and protection and no entries yet. */
  dup(): Vma {
    const copy = new Vma(this.region, this.spec, this.file);
    copy.hasAnonVma = this.hasAnonVma;
    copy.anonVmaPages = this.anonVmaPages ? this.anonVmaPages.slice() : null;
    copy.readonly = this.readonly ? this.readonly.slice() : null;
    copy.offset = this.offset;
    return copy;
  }
}

/** A process's address space (mm_struct). */
export class Mm {
  /** Per region index: its VMA, or null (not inherited, exec'd, exited). */
  readonly vmas: (Vma | null)[];
  alive = true;
  execd = false;

  constructor(
    readonly name: string,
    /** The kernel's mm_id (1-based), used by large-folio bookkeeping. */
    readonly id: number,
    regions: number,
  ) {
    this.vmas = new Array<Vma | null>(regions).fill(null);
  }
}

/** VM_WRITE at page `i` (mprotect may have removed it). */
export function vmaWritable(vma: Vma, i: number): boolean {
  return vma.readonly === null || vma.readonly[i] === 0;
}

/** The pages [from, to) of the kernel VMA holding page `i`: its run of equal protection. */
export function vmaPieceOf(vma: Vma, i: number): [number, number] {
  const ro = vma.readonly;
  if (ro === null) return [0, vma.pages];
  let from = i;
  while (from > 0 && ro[from - 1] === ro[i]) from--;
  let to = i + 1;
  while (to < vma.pages && ro[to] === ro[i]) to++;
  return [from, to];
}

/**
 * anon_vma_prepare for the kernel VMA holding page `i`: it now has an anon_vma, so fork will
 * copy its page tables. Once a piece has one, this costs nothing (its pages are all set).
 */
export function anonVmaPrepare(vma: Vma, i: number): void {
  if (vma.anonVmaPages === null) {
    vma.hasAnonVma = true;
    return;
  }
  if (vma.anonVmaPages[i] === 1) return;
  const [from, to] = vmaPieceOf(vma, i);
  vma.anonVmaPages.fill(1, from, to);
}

/** Whether the kernel VMA holding page `i` has an anon_vma. */
export function hasAnonVmaAt(vma: Vma, i: number): boolean {
  return vma.anonVmaPages === null ? vma.hasAnonVma : vma.anonVmaPages[i] === 1;
}

/** Whether any piece of the region has an anon_vma (what fork's vma_needs_copy asks, per piece). */
export function anyAnonVma(vma: Vma): boolean {
  return vma.anonVmaPages === null ? vma.hasAnonVma : vma.anonVmaPages.includes(1);
}

/** is_cow_mapping: private and (may be) writable. */
export function isCowMapping(vma: Vma): boolean {
  return !vma.shared;
}
