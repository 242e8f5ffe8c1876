/**
 * Step-by-step comparison of two engines' observations of one trace: a prediction (sim or
 * region) against a reference (normally the kernel). Page states (present, exclusive, shared,
 * zeroPage, and swapped in traces that page out), events (copies, reuses, zeroFills, swapIns)
 * and frames must match exactly; faults may exceed
 * the prediction by a small allowance for the measuring loop's own incidental faults.
 * Fields either engine could not observe are listed, never counted as matches.
 */
import { countPages, sharedPages } from '../engines/observations.js';
import type { PredictedOutcome, RegionObservation, StepEvents, StepObservation, TraceObservations } from '../engines/types.js';

/** swapped and swapIns exist in observations of traces that page out only (null elsewhere). */
export const PAGE_FIELDS = ['present', 'exclusive', 'shared', 'zeroPage', 'swapped'] as const;
export const EVENT_FIELDS = ['copies', 'reuses', 'zeroFills', 'swapIns', 'faults'] as const;
export type PageField = (typeof PAGE_FIELDS)[number];
export type EventField = (typeof EVENT_FIELDS)[number];
export type CompareField = PageField | EventField | 'frames' | 'processes';

/**
 * Faults the reference may take beyond the prediction in one step: the measuring loop's own
 * incidental faults (a stack or result page touched for the first time after a fork, a code
 * page faulted back in). 2 per step plus 1 % of the predicted faults.
 */
export function faultAllowance(predictedFaults: number): number {
  return 2 + Math.ceil(predictedFaults * 0.01);
}

export interface FieldDiff {
  field: CompareField;
  /** Process and region the difference is in (events and frames: region only). */
  proc?: string;
  region?: string;
  predicted: number | null;
  observed: number | null;
  /** For page fields: the first pages whose state differs. */
  pages?: number[];
  note?: string;
}

/** Counts of one region in one process, from both engines (for reports). */
export interface RegionCounts {
  proc: string;
  region: string;
  predicted: Record<PageField, number | null>;
  observed: Record<PageField, number | null>;
}

export interface StepComparison {
  step: number;
  op: string;
  proc: string;
  counts: RegionCounts[];
  events: { region: string; predicted: StepEvents; observed: StepEvents }[];
  frames: { region: string; predicted: number | null; observed: number | null }[];
  diffs: FieldDiff[];
  matched: boolean;
  time: { predictedNs: number | null; observedNs: number | null; relError: number | null };
}

export interface TraceComparison {
  trace: string;
  predicted: string;
  observed: string;
  steps: StepComparison[];
  matched: boolean;
  /** Index into steps of the first mismatch (steps[0] is setup), or null. */
  firstMismatch: number | null;
  /** Fields not compared, with the reason (from either engine). */
  unavailable: Record<string, string>;
  /** Total time of write steps, predicted vs observed. */
  writeTime: { predictedNs: number | null; observedNs: number | null; relError: number | null };
  /** Set when the prediction was a set of outcomes (compareOutcomes). */
  outcomes?: OutcomeJudgement;
}

/**
 * How a kernel run was judged against a set of predicted outcomes: matched when it equals one
 * of them at every step. The observations the outcomes disagree on are listed with their
 * range: those are the ones the kernel's choice decides; every other observation is exact.
 */
export interface OutcomeJudgement {
  count: number;
  /** The outcome the run matched, or the one it followed longest. */
  label: string;
  ranges: { step: number; field: string; where: string; min: number; max: number }[];
  /** Why the prediction is a set (what the trace leaves to the kernel). */
  why: string;
}

const MAX_LISTED_PAGES = 8;

function pageArray(r: RegionObservation, f: PageField): Uint8Array | null {
  switch (f) {
    case 'present': return r.present;
    case 'exclusive': return r.exclusive;
    case 'zeroPage': return r.zeroPage;
    case 'shared': return sharedPages(r);
    case 'swapped': return r.swapped ?? null;
  }
}

function count(a: Uint8Array | null): number | null {
  return a === null ? null : countPages(a);
}

function differingPages(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length && out.length < MAX_LISTED_PAGES; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

function relError(predicted: number | null, observed: number | null): number | null {
  if (predicted === null || observed === null || observed === 0) return null;
  return (predicted - observed) / observed;
}

function compareRegions(p: StepObservation, o: StepObservation, diffs: FieldDiff[]): RegionCounts[] {
  const counts: RegionCounts[] = [];
  const procs = [...new Set([...Object.keys(p.processes), ...Object.keys(o.processes)])].sort();
  for (const proc of procs) {
    const pp = p.processes[proc];
    const op = o.processes[proc];
    if (!pp || !op) {
      diffs.push({
        field: 'processes', proc, predicted: pp ? 1 : 0, observed: op ? 1 : 0,
        note: `process ${proc} is alive in ${pp ? 'the prediction' : 'the observation'} only`,
      });
      continue;
    }
    for (const region of Object.keys(op).sort()) {
      const pr = pp[region];
      const or = op[region]!;
      if (!pr) continue;
      const row: RegionCounts = { proc, region, predicted: {} as RegionCounts['predicted'], observed: {} as RegionCounts['observed'] };
      for (const f of PAGE_FIELDS) {
        const a = pageArray(pr, f);
        const b = pageArray(or, f);
        row.predicted[f] = count(a);
        row.observed[f] = count(b);
        if (a === null || b === null) continue;
        const pages = differingPages(a, b);
        if (pages.length > 0) diffs.push({ field: f, proc, region, predicted: count(a), observed: count(b), pages });
      }
      counts.push(row);
    }
  }
  return counts;
}

function compareEvents(p: StepObservation, o: StepObservation, diffs: FieldDiff[]): StepComparison['events'] {
  const out: StepComparison['events'] = [];
  for (const region of Object.keys(o.events).sort()) {
    const pe = p.events[region];
    const oe = o.events[region]!;
    if (!pe) continue;
    out.push({ region, predicted: pe, observed: oe });
    for (const f of EVENT_FIELDS) {
      const a = pe[f] ?? null;
      const b = oe[f] ?? null;
      if (a === null || b === null) continue;
      if (f === 'faults') {
        const allowance = faultAllowance(a);
        if (b < a || b > a + allowance) {
          diffs.push({ field: f, region, predicted: a, observed: b, note: `allowed ${a}..${a + allowance}` });
        }
      } else if (a !== b) {
        diffs.push({ field: f, region, predicted: a, observed: b });
      }
    }
  }
  return out;
}

function compareFrames(p: StepObservation, o: StepObservation, diffs: FieldDiff[]): StepComparison['frames'] {
  return Object.keys(o.frames).sort().map((region) => {
    const a = p.frames[region] ?? null;
    const b = o.frames[region] ?? null;
    if (a !== null && b !== null && a !== b) diffs.push({ field: 'frames', region, predicted: a, observed: b });
    return { region, predicted: a, observed: b };
  });
}

export function compareStep(p: StepObservation, o: StepObservation): StepComparison {
  const diffs: FieldDiff[] = [];
  const counts = compareRegions(p, o, diffs);
  const events = compareEvents(p, o, diffs);
  const frames = compareFrames(p, o, diffs);
  return {
    step: o.step,
    op: o.op,
    proc: o.proc,
    counts,
    events,
    frames,
    diffs,
    matched: diffs.length === 0,
    time: { predictedNs: p.timeNs, observedNs: o.timeNs, relError: relError(p.timeNs, o.timeNs) },
  };
}

/** Compares `predicted` against `observed` (the reference) step by step. */
export function compareObservations(predicted: TraceObservations, observed: TraceObservations): TraceComparison {
  if (predicted.steps.length !== observed.steps.length) {
    throw new Error(
      `cannot compare: ${predicted.engine} has ${predicted.steps.length} steps and ${observed.engine} ${observed.steps.length}`,
    );
  }
  const steps = observed.steps.map((o, i) => compareStep(predicted.steps[i]!, o));
  const first = steps.findIndex((s) => !s.matched);
  let pw = 0;
  let ow = 0;
  let timed = false;
  for (const s of steps) {
    if (s.op !== 'write' || s.time.predictedNs === null || s.time.observedNs === null) continue;
    pw += s.time.predictedNs;
    ow += s.time.observedNs;
    timed = true;
  }
  return {
    trace: observed.trace.name,
    predicted: predicted.engine,
    observed: observed.engine,
    steps,
    matched: first === -1,
    firstMismatch: first === -1 ? null : first,
    unavailable: { ...predicted.unavailable, ...observed.unavailable },
    writeTime: timed ? { predictedNs: pw, observedNs: ow, relError: relError(pw, ow) } : { predictedNs: null, observedNs: null, relError: null },
  };
}

/** Numbers per observation key of one step (events with faults, frames, page counts). */
function stepNumbers(s: StepObservation): Map<string, number> {
  const out = new Map<string, number>();
  for (const [region, e] of Object.entries(s.events)) for (const f of EVENT_FIELDS) if (e[f] != null) out.set(`${f}\t${region}`, e[f]!);
  for (const [region, n] of Object.entries(s.frames)) if (n !== null) out.set(`frames\t${region}`, n);
  for (const [proc, regions] of Object.entries(s.processes)) {
    for (const [region, r] of Object.entries(regions)) {
      for (const f of PAGE_FIELDS) {
        const n = count(pageArray(r, f));
        if (n !== null) out.set(`${f}\t${proc}/${region}`, n);
      }
    }
  }
  return out;
}

/** The observations the outcomes do not agree on, with their ranges. */
function outcomeRanges(outcomes: readonly PredictedOutcome[]): OutcomeJudgement['ranges'] {
  const ranges: OutcomeJudgement['ranges'] = [];
  outcomes[0]!.steps.forEach((s, i) => {
    const all = outcomes.map((o) => stepNumbers(o.steps[i]!));
    const keys = [...new Set(all.flatMap((m) => [...m.keys()]))];
    for (const key of keys) {
      const values = all.map((m) => m.get(key)).filter((v): v is number => v !== undefined);
      const min = Math.min(...values);
      const max = Math.max(...values);
      const [field, where] = key.split('\t') as [string, string];
      if (min !== max) ranges.push({ step: s.step, field, where, min, max });
    }
  });
  return ranges;
}

/** The outcome of the place the kernel reported for its regions, if it reported one. */
function outcomeOfPlacement(outcomes: readonly PredictedOutcome[], placement: Record<string, number> | undefined): PredictedOutcome | null {
  if (!placement) return null;
  return outcomes.find((o) => o.places.some((p) => Object.entries(placement).every(([id, off]) => p[id]?.includes(off) ?? false))) ?? null;
}

/**
 * Compares a kernel run against every outcome a prediction allows (TraceObservations.outcomes).
 * When the kernel engine reported where the kernel put its regions, the run is judged against
 * exactly that place's outcome; otherwise against the first outcome it matches, or the one it
 * follows to the latest step. Returns that comparison, marked with how it was judged, and the
 * outcome's observations (for tables).
 */
export function compareOutcomes(predicted: TraceObservations, observed: TraceObservations): { comparison: TraceComparison; chosen: TraceObservations } {
  const outcomes: PredictedOutcome[] = predicted.outcomes ?? [{ label: 'the only outcome', places: [{}], steps: predicted.steps }];
  const placed = outcomeOfPlacement(outcomes, observed.placement);
  let best: { c: TraceComparison; o: PredictedOutcome } | null = null;
  for (const o of placed ? [placed] : outcomes) {
    const c = compareObservations({ ...predicted, steps: o.steps }, observed);
    const reach = c.firstMismatch ?? Infinity;
    if (!best || reach > (best.c.firstMismatch ?? Infinity)) best = { c, o };
    if (c.matched) break;
  }
  const ids = observed.trace.regions.filter((r) => r.placement === 'kernel').map((r) => r.id);
  const where = observed.placement ? `; the kernel put ${Object.entries(observed.placement).map(([id, off]) => `${id} at page ${off} of its page table`).join(', ')}, and the run is judged against that place's outcome` : '';
  const why = ids.length
    ? `region${ids.length > 1 ? 's' : ''} ${ids.join(', ')} placed by the kernel (placement 'kernel'): a read fault also maps the cached pages of its fault-around window, ` +
      `and the window follows virtual addresses, so where mmap put the region decides which pages a read maps${where}`
    : 'the prediction allowed several outcomes';
  const comparison: TraceComparison = { ...best!.c, outcomes: { count: outcomes.length, label: best!.o.label, ranges: outcomeRanges(outcomes), why } };
  return { comparison, chosen: { ...predicted, steps: best!.o.steps } };
}
