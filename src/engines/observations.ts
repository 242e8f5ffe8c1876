/**
 * Observations as JSON, for every engine's `--json` and for validate: per-page arrays become
 * counts, and (with `pages`) compact page lists like "0-511,1024". An engine never formats;
 * this is the one place that turns its observations into a document.
 */
import type { Trace } from '../trace/types.js';
import { packedRegion, type PageBits } from './pageBits.js';
import type { EngineName, RegionObservation, StepEvents, StepObservation, TraceObservations } from './types.js';

/** Pages of one region in one process, counted (null where the engine could not observe). */
export interface RegionCounts {
  present: number;
  shared: number | null;
  exclusive: number | null;
  zeroPage: number | null;
  /** Traces that page out only (RegionObservation.swapped). */
  swapped?: number | null;
}

export interface RegionPageLists {
  present: string;
  shared: string | null;
  exclusive: string | null;
  zeroPage: string | null;
  swapped?: string | null;
}

export type RegionJson = RegionCounts & { pages?: RegionPageLists };

export interface StepJson {
  step: number;
  op: StepObservation['op'];
  proc: string;
  timeNs: number | null;
  /** Steps with timing 'each': every access's latency, ns (StepObservation.accessNs). */
  accessNs?: number[];
  events: Record<string, StepEvents>;
  frames: Record<string, number | null>;
  processes: Record<string, Record<string, RegionJson>>;
}

export interface TraceObservationsJson {
  engine: EngineName;
  trace: Trace;
  unavailable: Record<string, string>;
  /** Kernel engine: where the kernel put the regions the trace left to it (TraceObservations). */
  placement?: Record<string, number>;
  steps: StepJson[];
}

/** Pages set in a per-page array. */
export function countPages(a: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += a[i]!;
  return n;
}

/** shared = present and not exclusive (the zero page counts as shared); null without exclusive bits. */
export function sharedPages(r: RegionObservation): Uint8Array | null {
  const packed = packedRegion(r);
  if (packed) return packed.exclusive === null ? null : packed.present.without(packed.exclusive).unpack();
  if (r.exclusive === null) return null;
  const out = new Uint8Array(r.present.length);
  for (let i = 0; i < out.length; i++) out[i] = r.present[i]! & (r.exclusive[i]! ^ 1);
  return out;
}

/** Something per page field of a region, shared included; null where the engine could not observe. */
interface PageFields<T> {
  present: T;
  shared: T | null;
  exclusive: T | null;
  zeroPage: T | null;
}

/** What `packed` or `bytes` makes of each page field of `r`. */
function perField<T>(r: RegionObservation, packed: (b: PageBits) => T, bytes: (a: Uint8Array) => T): PageFields<T> {
  const p = packedRegion(r);
  if (p) {
    // A packed observation (the simulator's) is read packed: a 64 GiB region is never unpacked.
    const { present, exclusive, zeroPage } = p;
    return {
      present: packed(present),
      shared: exclusive === null ? null : packed(present.without(exclusive)),
      exclusive: exclusive === null ? null : packed(exclusive),
      zeroPage: zeroPage === null ? null : packed(zeroPage),
    };
  }
  const shared = sharedPages(r);
  return {
    present: bytes(r.present),
    shared: shared === null ? null : bytes(shared),
    exclusive: r.exclusive === null ? null : bytes(r.exclusive),
    zeroPage: r.zeroPage === null ? null : bytes(r.zeroPage),
  };
}

export function countRegion(r: RegionObservation): RegionCounts {
  const out: RegionCounts = perField(r, (b) => b.count(), countPages);
  if (r.swapped !== undefined) out.swapped = r.swapped === null ? null : countPages(r.swapped);
  return out;
}

/** The pages set in `a` as inclusive ranges: "0-511,1024,1030-1039" ("" when none). */
export function compactPages(a: Uint8Array): string {
  const parts: string[] = [];
  let i = 0;
  while (i < a.length) {
    if (a[i] === 0) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < a.length && a[j + 1] !== 0) j++;
    parts.push(i === j ? String(i) : `${i}-${j}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** Parses a compactPages list back into a per-page array of `length` pages. */
export function expandPages(list: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  if (list === '') return out;
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    for (let i = a!; i <= (b ?? a!); i++) out[i] = 1;
  }
  return out;
}

/** The page lists of one region in one process (compactPages of each array). */
export function regionPageLists(r: RegionObservation): RegionPageLists {
  const out: RegionPageLists = perField(r, (b) => b.ranges(), compactPages);
  if (r.swapped !== undefined) out.swapped = r.swapped === null ? null : compactPages(r.swapped);
  return out;
}

function regionJson(r: RegionObservation, pages: boolean): RegionJson {
  const out: RegionJson = countRegion(r);
  if (pages) out.pages = regionPageLists(r);
  return out;
}

export function stepToJson(s: StepObservation, opts: { pages?: boolean } = {}): StepJson {
  const processes: StepJson['processes'] = {};
  for (const [proc, regions] of Object.entries(s.processes)) {
    const out: Record<string, RegionJson> = {};
    for (const [id, r] of Object.entries(regions)) out[id] = regionJson(r, opts.pages === true);
    processes[proc] = out;
  }
  const out: StepJson = { step: s.step, op: s.op, proc: s.proc, timeNs: s.timeNs, events: s.events, frames: s.frames, processes };
  if (s.accessNs !== undefined) out.accessNs = Array.from(s.accessNs);
  return out;
}

/** The whole run as one JSON-able document (page lists only with `pages: true`). */
export function observationsToJson(obs: TraceObservations, opts: { pages?: boolean } = {}): TraceObservationsJson {
  return {
    engine: obs.engine,
    trace: obs.trace,
    unavailable: obs.unavailable,
    ...(obs.placement ? { placement: obs.placement } : {}),
    steps: obs.steps.map((s) => stepToJson(s, opts)),
  };
}

/**
 * The inverse of observationsToJson({ pages: true }): a document recorded elsewhere (a guest,
 * a results file) back as observations validate can compare. Throws when the page lists are
 * missing (a document written without them has only counts).
 */
export function observationsFromJson(doc: TraceObservationsJson): TraceObservations {
  const steps = doc.steps.map((s): StepObservation => {
    const processes: StepObservation['processes'] = {};
    for (const [proc, regions] of Object.entries(s.processes)) {
      const out: Record<string, RegionObservation> = {};
      for (const [id, r] of Object.entries(regions)) {
        const spec = doc.trace.regions.find((x) => x.id === id);
        if (!spec || !r.pages) throw new Error(`observations of ${doc.trace.name}: step ${s.step} has no page lists for ${proc}/${id}`);
        out[id] = {
          present: expandPages(r.pages.present, spec.pages),
          exclusive: r.pages.exclusive === null ? null : expandPages(r.pages.exclusive, spec.pages),
          zeroPage: r.pages.zeroPage === null ? null : expandPages(r.pages.zeroPage, spec.pages),
        };
        if (r.pages.swapped !== undefined) out[id]!.swapped = r.pages.swapped === null ? null : expandPages(r.pages.swapped, spec.pages);
      }
      processes[proc] = out;
    }
    const obs: StepObservation = { step: s.step, op: s.op, proc: s.proc, processes, events: s.events, frames: s.frames, timeNs: s.timeNs };
    if (s.accessNs !== undefined) obs.accessNs = Float64Array.from(s.accessNs);
    return obs;
  });
  return { engine: doc.engine, trace: doc.trace, steps, unavailable: doc.unavailable, ...(doc.placement ? { placement: doc.placement } : {}) };
}
