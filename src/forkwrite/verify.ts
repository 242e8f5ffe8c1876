/**
 * What the page tables say happened in a fork-write run, computed from the kernel engine's
 * observations of its trace: the present and exclusive bits of every page of both processes
 * after each step, and (as root) each page's frame from the same pagemap reads. With PFNs
 * hidden (not root), the PFN-based counts are null and only the present/exclusive bits are used.
 */
import type { KernelStepDetail } from '../engines/kernel/engine.js';
import type { RegionObservation, StepObservation } from '../engines/types.js';
import type { PagemapEntries } from '../pagemap/pagemap.js';
import { REGION } from './trace.js';

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

/** One process's view of the region at one step of the run: its observation and its pagemap. */
export interface ProcessView {
  obs: RegionObservation;
  /** The pagemap read the observation came from (frames: `pfn`, valid as root). */
  pagemap: PagemapEntries;
}

/** The region as process `proc` saw it after observation `k` (0: the setup). */
export function viewAt(steps: StepObservation[], details: KernelStepDetail[], k: number, proc: string): ProcessView | null {
  const obs = steps[k]?.processes[proc]?.[REGION];
  const pagemap = details[k]?.pagemap[proc]?.[REGION];
  return obs && pagemap ? { obs, pagemap } : null;
}

/** Pages shared by both processes right after the fork (Verification.sharedAfterFork). */
export function sharedAfterFork(parent: ProcessView, child: ProcessView, pfnVisible: boolean): number {
  const a = parent.obs;
  const b = child.obs;
  let n = 0;
  for (let i = 0; i < a.present.length; i++) {
    if (!a.present[i] || !b.present[i] || a.exclusive?.[i] || b.exclusive?.[i]) continue;
    if (pfnVisible && parent.pagemap.pfn[i] !== child.pagemap.pfn[i]) continue;
    n++;
  }
  return n;
}

/** A side's own writes: written pages whose frame changed (null without PFNs), and written
 *  pages it maps exclusively afterwards (each counted once per store, as written). */
export function verifySide(
  before: ProcessView,
  after: ProcessView,
  written: Uint32Array,
  pfnVisible: boolean,
): { pfnChanged: number | null; exclusiveAfter: number } {
  let changed = 0;
  let exclusive = 0;
  for (const p of written) {
    if (before.pagemap.pfn[p] !== after.pagemap.pfn[p]) changed++;
    exclusive += after.obs.exclusive?.[p] ?? 0;
  }
  return { pfnChanged: pfnVisible ? changed : null, exclusiveAfter: exclusive };
}

/** Pages not in `written` that are still shared after the writes (Verification.unwrittenShared). */
export function unwrittenShared(before: ProcessView, after: ProcessView, written: Uint32Array, pfnVisible: boolean): number {
  const touched = new Uint8Array(after.obs.present.length);
  for (const p of written) touched[p] = 1;
  let n = 0;
  for (let i = 0; i < touched.length; i++) {
    if (touched[i] || !after.obs.present[i] || after.obs.exclusive?.[i]) continue;
    if (pfnVisible && before.pagemap.pfn[i] !== after.pagemap.pfn[i]) continue;
    n++;
  }
  return n;
}

/** Pages of `written` whose frame in the other process is the same at both moments. */
export function pfnKept(otherBefore: ProcessView, otherAfter: ProcessView, written: Uint32Array): number {
  let kept = 0;
  for (const p of written) {
    if (otherBefore.obs.present[p] && otherBefore.pagemap.pfn[p] === otherAfter.pagemap.pfn[p]) kept++;
  }
  return kept;
}
