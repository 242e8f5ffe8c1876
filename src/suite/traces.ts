/**
 * Helpers for experiments that run traces (docs/trace.md) on the engines: building a checked
 * trace in code, the kernel engine behind the suite's registry, and small readers of what the
 * kernel engine's runDetailed() returns. Pure except kernelEngine().
 */
import { KernelEngine, type KernelAccessDetail } from '../engines/kernel/engine.js';
import type { TraceObservations } from '../engines/types.js';
import { CowlabError } from '../errors.js';
import type { PagemapEntries } from '../pagemap/pagemap.js';
import { summarize } from '../stats/summary.js';
import { parseTrace } from '../trace/parse.js';
import type { RegionSpec, Step, Trace } from '../trace/types.js';
import { createEngine } from './engines.js';

/** A region with the trace defaults (private anonymous, no THP, no advice, populate write). */
export function regionSpec(o: Partial<RegionSpec> & { id: string; pages: number }): RegionSpec {
  return { map: 'private', backing: 'anon', thp: false, advice: [], populate: 'write', ...o };
}

/** A trace checked by parseTrace (the same errors as a trace file would get). */
export function buildTrace(name: string, description: string, regions: RegionSpec[], steps: Step[]): Trace {
  return parseTrace({ name, description, regions, steps });
}

/** The suite's kernel engine (registered in experiments/engines.ts), with runDetailed(). */
export function kernelEngine(): KernelEngine {
  const e = createEngine('kernel');
  if (!(e instanceof KernelEngine)) throw new Error('the registered kernel engine is not a KernelEngine');
  return e;
}

/** Number of ones in a page bitmap; null stays null (not observable). */
export function countOnes(a: Uint8Array | null | undefined): number | null {
  if (!a) return null;
  let c = 0;
  for (let i = 0; i < a.length; i++) c += a[i]!;
  return c;
}

/** Pages present in both snapshots whose PFN differs. */
export function pfnsChanged(before: PagemapEntries, after: PagemapEntries): number {
  let n = 0;
  for (let i = 0; i < before.length; i++) {
    if (before.present[i] && after.present[i] && before.pfn[i] !== after.pfn[i]) n++;
  }
  return n;
}

/** Distinct PFNs among the present pages. */
export function distinctPfns(e: PagemapEntries): Set<number> {
  const s = new Set<number>();
  for (let i = 0; i < e.length; i++) if (e.present[i]) s.add(e.pfn[i]!);
  return s;
}

/** p50 of the per-access latencies of a write or read step (0 for an empty one). */
export function accessP50(a: KernelAccessDetail | undefined): number {
  return a ? (summarize(a.latencyNs)?.p50 ?? 0) : 0;
}

/**
 * The events of `region` after step `step` (-1: setup). An engine that could not classify them
 * here (no zero-page information: an old kernel without root) makes the experiment not
 * measurable, with the engine's reason.
 */
export function stepEvents(obs: TraceObservations, step: number, region: string): { copies: number; reuses: number; zeroFills: number; faults: number } {
  const e = obs.steps[step + 1]!.events[region]!;
  const out = { copies: e.copies, reuses: e.reuses, zeroFills: e.zeroFills, faults: e.faults };
  for (const [k, v] of Object.entries(out)) {
    if (v === null) {
      const why = obs.unavailable[`events.${k}`] ?? 'not observable here';
      throw new CowlabError('ERR_NOT_MEASURABLE', `the ${obs.engine} engine cannot count ${k} on this machine: ${why}`);
    }
  }
  return out as { copies: number; reuses: number; zeroFills: number; faults: number };
}
