/**
 * Measured against predicted: an experiment on traces runs the same trace on the simulator
 * (the suite's sim engine, with the profile of the kernel that runs: experiments/engines.ts)
 * and records, beside each count it measured, the count the simulator predicted. The report
 * shows them side by side and names every count where they differ. A prediction never decides
 * a verdict; it is reported.
 */
import { z } from 'zod';

import { countRegion } from '../engines/observations.js';
import { profileFor } from '../engines/sim/profiles.js';
import type { StepObservation, TraceObservations } from '../engines/types.js';
import type { ForkWriteResult } from '../forkwrite/forkWrite.js';
import { PARENT, REGION } from '../forkwrite/trace.js';
import type { Environment } from '../env/environment.js';
import { runningKernelFacts } from '../kernels/facts.js';
import { formatCount } from '../report/format.js';
import type { Trace } from '../trace/types.js';
import { createEngine, engineAvailable } from './engines.js';
import type { TableSpec } from './types.js';

export const PredictedCountSchema = z.object({
  /** Stable key ("fork.copies"). */
  key: z.string(),
  /** What is counted, in words ("pages copied at the fork"). */
  what: z.string(),
  /** Null: not observable here (e.g. frames without root). */
  measured: z.number().nullable(),
  predicted: z.number().nullable(),
  /** A time (ns) rather than a count: the simulator's is its cost model's estimate, shown
   *  beside the measurement and never judged equal or not. */
  time: z.boolean().optional(),
});
export type PredictedCount = z.infer<typeof PredictedCountSchema>;

/** The simulator's counts beside the kernel engine's (absent in results written before). */
export const PredictionSchema = z.object({
  /** The kernel profile the simulator modelled ("6.18"). */
  profile: z.string(),
  counts: z.array(PredictedCountSchema),
});
export type Prediction = z.infer<typeof PredictionSchema>;

/** The simulator's run of `trace`, or null when the suite has no simulator registered. */
export async function simulate(trace: Trace): Promise<TraceObservations | null> {
  return engineAvailable('sim') ? createEngine('sim').run(trace) : null;
}

/** The name of the profile the suite's simulator models ("6.18"). */
export function profileName(env: Environment): string {
  return profileFor(runningKernelFacts(env)).name;
}

/** Counts where both sides are known and differ (times are estimates: never). */
export function disagreements(p: Prediction | undefined): PredictedCount[] {
  return (p?.counts ?? []).filter((c) => !c.time && c.measured !== null && c.predicted !== null && c.measured !== c.predicted);
}

/**
 * The counts of one step, measured against predicted, for `region`: the acting process's
 * copies, reuses, zero fills and faults, and after the step each live process's shared and
 * exclusive pages. `key` prefixes the keys ("4k.fork"), `what` the wording ("after the fork").
 */
export function stepCounts(key: string, what: string, region: string, measured: StepObservation, predicted: StepObservation): PredictedCount[] {
  const out: PredictedCount[] = [];
  const events = (o: StepObservation) => o.events[region];
  for (const k of ['copies', 'reuses', 'zeroFills', 'swapIns', 'faults'] as const) {
    // swapIns exist in traces that page out only.
    if (k === 'swapIns' && events(measured)?.swapIns === undefined) continue;
    out.push({ key: `${key}.${k}`, what: `${what}: ${EVENT_WORDS[k]} (${measured.proc})`, measured: events(measured)?.[k] ?? null, predicted: events(predicted)?.[k] ?? null });
  }
  for (const proc of Object.keys(measured.processes)) {
    const m = measured.processes[proc]?.[region];
    const p = predicted.processes[proc]?.[region];
    if (!m) continue;
    const mc = countRegion(m);
    const pc = p ? countRegion(p) : null;
    out.push({ key: `${key}.${proc}.shared`, what: `${what}: pages ${proc} shares`, measured: mc.shared, predicted: pc?.shared ?? null });
    out.push({ key: `${key}.${proc}.exclusive`, what: `${what}: pages ${proc} maps exclusively`, measured: mc.exclusive, predicted: pc?.exclusive ?? null });
    if (mc.swapped !== undefined) out.push({ key: `${key}.${proc}.swapped`, what: `${what}: pages of ${proc} swapped out`, measured: mc.swapped, predicted: pc?.swapped ?? null });
  }
  return out;
}

const EVENT_WORDS = { copies: 'copies', reuses: 'reuses', zeroFills: 'zero fills', swapIns: 'swap-ins', faults: 'faults' } as const;

/** The median of `a` (0 for none). */
function median(a: Float64Array): number {
  if (a.length === 0) return 0;
  const s = Float64Array.from(a).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * A fork-write result's last run measured against the simulator's run of the same trace: after
 * the fork, the pages each process shares; for each write step, the writer's copies, reuses,
 * zero fills and faults and the pages it then maps exclusively, and its median per-store time
 * against the cost model's (a time: shown, not judged). Null when the suite has no simulator.
 */
export async function predictForkWrite(result: ForkWriteResult, key: string, label: string): Promise<PredictedCount[] | null> {
  const sim = await simulate(result.trace);
  if (sim === null) return null;
  const out: PredictedCount[] = [];
  result.trace.steps.forEach((s, i) => {
    if (s.op !== 'fork' && s.op !== 'write') return;
    const measured = result.observations.steps[i + 1]!;
    const predicted = sim.steps[i + 1]!;
    const what = s.op === 'fork' ? `${label}, after the fork` : `${label}, ${s.proc === PARENT ? 'the parent' : 'the child'}'s writes`;
    const counts = stepCounts(`${key}.${i}`, what, REGION, measured, predicted);
    const keep = s.op === 'fork' ? (c: PredictedCount) => c.key.endsWith('.shared') : (c: PredictedCount) => !c.key.endsWith('.shared') && (!c.key.endsWith('.exclusive') || c.key.includes(`.${s.proc}.`));
    out.push(...counts.filter(keep));
    const mt = measured.accessNs;
    const pt = predicted.accessNs;
    if (mt && pt) out.push({ key: `${key}.${i}.p50Ns`, what: `${what}: median ns per store`, measured: Math.round(median(mt)), predicted: Math.round(median(pt)), time: true });
  });
  return out;
}
/** " The simulator (profile 6.18) predicted otherwise: copies 0 measured, 5 predicted." or ''. */
export function describeDisagreements(p: Prediction | undefined): string {
  const d = disagreements(p);
  if (!p || d.length === 0) return '';
  return ` The simulator (profile ${p.profile}) predicted otherwise: ${d.map((c) => `${c.what} ${formatCount(c.measured)} measured, ${formatCount(c.predicted)} predicted`).join('; ')}.`;
}

/** The table of a prediction: each count measured, predicted, and whether they agree. */
export function predictionTable(p: Prediction, title = 'Measured against predicted'): TableSpec {
  const d = disagreements(p);
  const agree = (c: PredictedCount) =>
    c.time ? 'n/a (time: cost model)' : c.measured === null || c.predicted === null ? 'n/a' : c.measured === c.predicted ? 'yes' : 'DIFFERS';
  return {
    title: `${title} (simulator, profile ${p.profile})${d.length ? `: ${d.length} of ${p.counts.length} counts differ` : ''}`,
    head: ['count', 'measured (kernel engine)', `predicted (simulator, profile ${p.profile})`, 'agree'],
    rows: p.counts.map((c) => [c.what, formatCount(c.measured), formatCount(c.predicted), agree(c)]),
    note: d.length
      ? `Measured and predicted differ on ${d.map((c) => c.what).join('; ')}: the simulator's model of this kernel is wrong here, or the kernel did something the trace does not control.`
      : 'The simulator ran the same trace with the profile of the kernel that ran; every count it could compare agrees.',
  };
}

/** Several fork-write cases measured against predicted, as one Prediction (undefined: no simulator). */
export async function predictForkWrites(
  env: Environment,
  cases: readonly { result: ForkWriteResult; key: string; label: string }[],
): Promise<Prediction | undefined> {
  const counts: PredictedCount[] = [];
  for (const c of cases) {
    const p = await predictForkWrite(c.result, c.key, c.label);
    if (p === null) return undefined;
    counts.push(...p);
  }
  return { profile: profileName(env), counts };
}
