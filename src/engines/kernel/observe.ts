/**
 * What the kernel engine reads after each step, and what it derives from it.
 *
 * A snapshot is the pagemap of every region in every live trace process, read from Node
 * (/proc/<pid>/pagemap), plus which pages map the zero page: from the PAGEMAP_SCAN ioctl
 * (Linux >= 6.7, no privilege needed) or, without it, from /proc/kpageflags (root).
 *
 * Events are classified per access of the acting process, from its per-access fault counts
 * (getrusage around each access, in the process itself) and the pagemap before and after the
 * step (definitions in src/engines/types.ts):
 *   copy      write fault; present before (not the zero page); after: another frame
 *   reuse     write fault; present before (not the zero page); after: the same frame
 *             (private mappings only)
 *   zeroFill  write fault; absent or the zero page before; after: a frame that is not the
 *             zero page and that no live process mapped before the step. For a shared
 *             mapping the process's own mincore() before the access says whether the page
 *             was already in the page cache (then the fault mapped an existing frame: no
 *             zeroFill), which is exact even for a page no live process maps.
 *   fault     any other faulting access (reads, shared-mapping faults on cached pages)
 *   swapIn    any fault on a page swapped out before the step (pagemap bit 62): do_swap_page
 *             brings it back, and a store may copy or reuse it in the same fault
 *   spurious  a write fault on a page of a huge page whose PMD an earlier write fault of the
 *             process already made writable (and that is still PMD-mapped after the step):
 *             it changed nothing. A CPU may cache a PMD mapping as 512 separate 4 KiB TLB
 *             entries (a VM whose host backs guest memory with small pages does), and Linux
 *             does not flush the TLB when it makes an entry writable (x86 allows the stale
 *             read-only entries, and raises a fault on them that the kernel then finds has
 *             nothing to do). So after a read of every page of a write-protected huge page,
 *             stores to its other pages can each take a fault after the one that reused the
 *             PMD. Not counted in copies, reuses, zeroFills or faults: they are the CPU's, not
 *             COW's. Needs PAGEMAP_SCAN (the huge flag): without it they count as reuses.
 * Without PFNs (not root) the frame comparison is replaced by what the bits allow: a write
 * fault on a present page of a private mapping copies when the page was shared (exclusive
 * bit clear) or a page-cache page (file bit set), and is reused when it was exclusive. A page
 * of a PMD-mapped huge page is the exception: pagemap's exclusive bit of its 512 entries does
 * not say whether that page is shared (it follows the head page on 6.1 and 6.18, each page's
 * mapcount on 6.11 to 6.14: profiles.ts pmdExclusive), and the huge zero page reads as a
 * file page, so there the huge mapping itself decides (PAGEMAP_SCAN's PAGE_IS_HUGE):
 * do_huge_pmd_wp_page either reuses the whole PMD (still huge afterwards) or splits it and
 * copies the 4 KiB page (no longer huge). Without PAGEMAP_SCAN (Linux < 6.7) nor PFNs, a
 * write fault on a present page of a region that may hold anonymous huge pages is not
 * classified at all: its copies and reuses (and zeroFills) are null, with the reason.
 */
import { PagemapEntries, readKpageFlags, readPageCategories, readPagemap, KPF } from '../../pagemap/pagemap.js';

/** How the engine tells zero-page mappings apart. */
export type ZeroSource = 'pagemap-scan' | 'kpageflags' | null;

export interface RegionSnapshot {
  /** Raw pagemap entries; all-clear for a process whose image was replaced by exec. */
  entries: PagemapEntries;
  /** 1 where the page maps the (huge) zero page; null when not observable. */
  zero: Uint8Array | null;
  /** 1 where the page belongs to a PMD (huge) mapping; null without PAGEMAP_SCAN. */
  huge: Uint8Array | null;
}

export interface SnapshotTarget {
  slot: number;
  pid: number;
  /** exec'd: its address space is another program's, none of the regions exists there. */
  execd: boolean;
}

export interface RegionGeometry {
  address: bigint;
  pages: number;
}

/** Reads every region of every target process. Map: slot -> one snapshot per region. */
export function readSnapshot(targets: SnapshotTarget[], regions: RegionGeometry[], zero: ZeroSource): Map<number, RegionSnapshot[]> {
  const out = new Map<number, RegionSnapshot[]>();
  for (const t of targets) {
    out.set(
      t.slot,
      regions.map((g) => {
        if (t.execd) {
          const none = zero === 'pagemap-scan' ? new Uint8Array(g.pages) : null;
          return { entries: new PagemapEntries(new ArrayBuffer(g.pages * 8)), zero: zero === null ? null : new Uint8Array(g.pages), huge: none };
        }
        const entries = readPagemap(t.pid, g.address, g.pages);
        const categories = zero === 'pagemap-scan' ? readPageCategories(t.pid, g.address, g.pages) : null;
        return { entries, zero: categories?.zeroPage() ?? null, huge: categories?.huge() ?? null };
      }),
    );
  }
  if (zero === 'kpageflags') fillZeroFromKpageflags(out);
  return out;
}

/** Root without PAGEMAP_SCAN: one kpageflags read for the distinct present PFNs. */
function fillZeroFromKpageflags(snap: Map<number, RegionSnapshot[]>): void {
  const pfns = new Set<number>();
  for (const regions of snap.values()) {
    for (const r of regions) for (let i = 0; i < r.entries.length; i++) if (r.entries.present[i]) pfns.add(r.entries.pfn[i]!);
  }
  const list = Float64Array.from(pfns);
  const flags = list.length > 0 ? readKpageFlags(list) : null;
  const isZero = new Set<number>();
  for (let i = 0; i < list.length; i++) if (flags!.has(i, KPF.ZERO_PAGE)) isZero.add(list[i]!);
  for (const regions of snap.values()) {
    for (const r of regions) {
      const z = new Uint8Array(r.entries.length);
      for (let i = 0; i < z.length; i++) z[i] = r.entries.present[i] && isZero.has(r.entries.pfn[i]!) ? 1 : 0;
      r.zero = z;
    }
  }
}

/** Distinct frames (zero page excluded) of region `r` over the snapshot's processes. */
export function countFrames(snap: Map<number, RegionSnapshot[]>, r: number): number {
  const seen = new Set<number>();
  for (const regions of snap.values()) {
    const { entries, zero } = regions[r]!;
    for (let i = 0; i < entries.length; i++) {
      if (entries.present[i] && !zero?.[i]) seen.add(entries.pfn[i]!);
    }
  }
  return seen.size;
}

/** Every frame any process of the snapshot maps, in any region. */
export function allFrames(snap: Map<number, RegionSnapshot[]>): Set<number> {
  const seen = new Set<number>();
  for (const regions of snap.values()) {
    for (const { entries } of regions) for (let i = 0; i < entries.length; i++) if (entries.present[i]) seen.add(entries.pfn[i]!);
  }
  return seen;
}

/** Per-access classes (KernelStepDetail.access.classes). */
export const ACCESS_CLASS = { none: 0, fault: 1, copy: 2, reuse: 3, zeroFill: 4, spurious: 5, swapIn: 6 } as const;
export type AccessClass = keyof typeof ACCESS_CLASS;

export interface AccessInput {
  write: boolean;
  /** MAP_SHARED region. */
  shared: boolean;
  pages: Uint32Array;
  faults: Uint32Array;
  /** Bit 0: the page was in the page cache before the access (shared mappings). */
  flags: Uint8Array;
  before: RegionSnapshot;
  after: RegionSnapshot;
  /** Frames mapped by any live process before the step; null without PFNs. */
  framesBefore: Set<number> | null;
  /** The region is private anonymous memory that may be backed by transparent huge pages
   *  (RegionSpec.thp): its pages may be PMD-mapped, or the huge zero page. */
  anonThp: boolean;
  /**
   * The huge pages (page index / 512) of this region whose PMD the process made writable by
   * a write fault, as far as the caller knows (it forgets them at fork and mprotect). Updated
   * in place: a write fault that leaves its huge page PMD-mapped adds it. A later write fault
   * there is spurious. Ignored without the huge flag (after.huge null).
   */
  writableHuge?: Set<number>;
}

/** The counts an AccessClassification may leave null. */
export type AmbiguousCount = 'copies' | 'reuses' | 'zeroFills';

export interface AccessClassification {
  classes: Uint8Array;
  copies: number | null;
  reuses: number | null;
  zeroFills: number | null;
  /** Why copies/reuses/zeroFills are null, when one is (the first reason, if several). */
  ambiguous: string | null;
  /** Each count left null, with why. */
  unknown: Partial<Record<AmbiguousCount, string>>;
  /** Faults taken by the accesses classified spurious (left out of the step's faults). */
  spuriousFaults: number;
  /** Faulting accesses to pages that were swapped out before the step (pagemap bit 62). */
  swapIns: number;
}

/** Pages per PMD-mapped huge page (4 KiB pages; the engine maps regions 2 MiB aligned). */
const HUGE_PAGE_SHIFT = 9;

export const ZERO_PAGE_AMBIGUOUS = 'the zero page cannot be told from a shared anonymous page here (no PAGEMAP_SCAN, no /proc/kpageflags)';

export const HUGE_PAGE_AMBIGUOUS =
  "a write to a present page of a huge-page region cannot be classified here (a copy, a reuse, or a zero-fill of the huge zero page): without PAGEMAP_SCAN (Linux < 6.7) the huge mappings are not seen, and pagemap's exclusive bit of a PMD-mapped page follows the head page (each page's mapcount on 6.11 to 6.14), not whether that page is shared; without PFNs (not root) the frames cannot be compared";

export function classifyAccesses(a: AccessInput): AccessClassification {
  const n = a.pages.length;
  const classes = new Uint8Array(n);
  let copies = 0;
  let reuses = 0;
  let zeroFills = 0;
  const unknown: Partial<Record<AmbiguousCount, string>> = {};
  const pfnVisible = a.framesBefore !== null;
  // Neither frames to compare nor PAGEMAP_SCAN's huge flag: the bits of a present page of a
  // huge-page region do not say what a write did to it (see the file's comment).
  const hugeBlind = a.anonThp && !a.shared && !pfnVisible && a.before.huge === null;
  const b = a.before.entries;
  const f = a.after.entries;
  let spuriousFaults = 0;
  let swapIns = 0;
  const writableHuge = a.write && a.anonThp && !a.shared && a.after.huge !== null ? (a.writableHuge ?? null) : null;
  for (let i = 0; i < n; i++) {
    if (a.faults[i] === 0) continue;
    const p = a.pages[i]!;
    let cls: AccessClass = 'fault';
    const pmdMapped = writableHuge !== null && a.after.huge![p] === 1;
    if (pmdMapped && writableHuge.has(p >>> HUGE_PAGE_SHIFT)) {
      classes[i] = ACCESS_CLASS.spurious;
      spuriousFaults += a.faults[i]!;
      continue;
    }
    if (pmdMapped) writableHuge.add(p >>> HUGE_PAGE_SHIFT);
    if (b.swapped[p] === 1) {
      // do_swap_page: the page comes back (a store may copy or reuse it in the same fault,
      // which the frames and page states after the step show). A swap-in, nothing else.
      classes[i] = ACCESS_CLASS.swapIn;
      swapIns++;
      continue;
    }
    if (a.write) {
      const zeroBefore = a.before.zero?.[p] === 1;
      const zeroAfter = a.after.zero?.[p] === 1;
      const presentAfter = f.present[p] === 1 && !zeroAfter;
      if (hugeBlind && b.present[p] === 1 && !zeroBefore) {
        // A PMD-mapped page, a page of a split one, or (without zero-page information) the
        // huge zero page, which reads as a file page: any of copy, reuse and zero-fill.
        unknown.copies ??= HUGE_PAGE_AMBIGUOUS;
        unknown.reuses ??= HUGE_PAGE_AMBIGUOUS;
        if (a.before.zero === null) unknown.zeroFills ??= HUGE_PAGE_AMBIGUOUS;
      } else if (b.present[p] === 1 && a.before.zero === null && b.exclusive[p] === 0 && b.file[p] === 0 && !a.shared) {
        // Not exclusive, not a file page: a COW-shared anonymous page or the zero page, and
        // without zero-page information the two cannot be told apart.
        unknown.copies ??= ZERO_PAGE_AMBIGUOUS;
        unknown.zeroFills ??= ZERO_PAGE_AMBIGUOUS;
      } else if (b.present[p] === 0 || zeroBefore) {
        const fresh = a.shared ? (a.flags[i]! & 1) === 0 : true;
        const unseen = !pfnVisible || !a.framesBefore!.has(f.pfn[p]!);
        if (presentAfter && fresh && unseen) cls = 'zeroFill';
      } else if (!a.shared && presentAfter) {
        if (pfnVisible) cls = f.pfn[p] !== b.pfn[p] ? 'copy' : 'reuse';
        else if (a.before.huge?.[p] === 1) cls = a.after.huge?.[p] === 1 ? 'reuse' : 'copy';
        else cls = b.exclusive[p] === 1 && b.file[p] === 0 ? 'reuse' : 'copy';
      }
    }
    classes[i] = ACCESS_CLASS[cls];
    if (cls === 'copy') copies++;
    else if (cls === 'reuse') reuses++;
    else if (cls === 'zeroFill') zeroFills++;
  }
  return {
    classes,
    copies: unknown.copies ? null : copies,
    reuses: unknown.reuses ? null : reuses,
    zeroFills: unknown.zeroFills ? null : zeroFills,
    ambiguous: unknown.copies ?? unknown.reuses ?? unknown.zeroFills ?? null,
    unknown,
    spuriousFaults,
    swapIns,
  };
}
