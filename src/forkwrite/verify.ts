/**
 * What the page tables say happened in a fork-write run, computed from the pagemap
 * snapshots the probe took. With PFNs hidden (not root), the PFN-based counts are null and
 * only the present/exclusive bits are used.
 */
import type { PagemapEntries } from '../pagemap/pagemap.js';

/** Pagemap of one process at the three moments of a run. */
export interface RunSnapshots {
  afterFork: PagemapEntries;
  afterChildWrites: PagemapEntries;
  /** Parent: after its own writes. Child: just before it exited. */
  end: PagemapEntries;
}

export interface Verification {
  pfnVisible: boolean;
  /** Pages present in both processes right after the fork, mapped by neither exclusively
   *  (and with the same PFN, when PFNs are visible). */
  sharedAfterFork: number;
  /** Pages written by the first writer whose PFN changed there: copies. Null without PFNs. */
  pfnChangedInWriter: number | null;
  /** Of those pages, how many kept their after-fork PFN in the other process. Null without
   *  PFNs, or when the other process had exited before the writes. */
  pfnKeptInOther: number | null;
  /** Pages written by the first writer that it maps exclusively afterwards. */
  exclusiveAfterWrite: number;
  /** Pages the first writer did not write that it still shares after its writes (present,
   *  not exclusive, and the same PFN as after the fork when PFNs are visible): the neighbours
   *  a write left alone, e.g. the rest of a huge page whose mapping the write split. */
  unwrittenShared: number;
}

/** One side's own writes: what changed under the pages it wrote. */
export interface SideVerification {
  /** Written pages whose PFN changed (copies); null without PFNs. */
  pfnChanged: number | null;
  /** Written pages mapped exclusively after the writes. */
  exclusiveAfter: number;
}

export function sharedAfterFork(parent: PagemapEntries, child: PagemapEntries, pfnVisible: boolean): number {
  let n = 0;
  for (let i = 0; i < parent.length; i++) {
    if (!parent.present[i] || !child.present[i] || parent.exclusive[i] || child.exclusive[i]) continue;
    if (pfnVisible && parent.pfn[i] !== child.pfn[i]) continue;
    n++;
  }
  return n;
}

export function verifySide(
  before: PagemapEntries,
  after: PagemapEntries,
  written: Uint32Array,
  pfnVisible: boolean,
): SideVerification {
  let changed = 0;
  let exclusive = 0;
  for (const p of written) {
    if (before.pfn[p] !== after.pfn[p]) changed++;
    exclusive += after.exclusive[p]!;
  }
  return { pfnChanged: pfnVisible ? changed : null, exclusiveAfter: exclusive };
}

/** Pages not in `written` that are still shared (see Verification.unwrittenShared). */
export function unwrittenShared(
  before: PagemapEntries,
  after: PagemapEntries,
  written: Uint32Array,
  pfnVisible: boolean,
): number {
  const touched = new Uint8Array(after.length);
  for (const p of written) touched[p] = 1;
  let n = 0;
  for (let i = 0; i < after.length; i++) {
    if (touched[i] || !after.present[i] || after.exclusive[i]) continue;
    if (pfnVisible && before.pfn[i] !== after.pfn[i]) continue;
    n++;
  }
  return n;
}

/** Pages of `written` whose PFN in `other` is the same at both moments. */
export function pfnKept(otherBefore: PagemapEntries, otherAfter: PagemapEntries, written: Uint32Array): number {
  let kept = 0;
  for (const p of written) if (otherBefore.present[p] && otherBefore.pfn[p] === otherAfter.pfn[p]) kept++;
  return kept;
}
