/**
 * Measured against predicted: an experiment on traces runs the same trace on the simulator
 * (the suite's sim engine, with the profile of the kernel that runs: experiments/engines.ts)
 * and records, beside each count it measured, the count the simulator predicted. The report
 * shows them side by side and names every count where they differ. A prediction never decides
 * a verdict; it is reported.
 */
import { z } from 'zod';

import { profileFor } from '../engines/sim/profiles.js';
import type { TraceObservations } from '../engines/types.js';
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

/** Counts where both sides are known and differ. */
export function disagreements(p: Prediction | undefined): PredictedCount[] {
  return (p?.counts ?? []).filter((c) => c.measured !== null && c.predicted !== null && c.measured !== c.predicted);
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
  const agree = (c: PredictedCount) => (c.measured === null || c.predicted === null ? 'n/a' : c.measured === c.predicted ? 'yes' : 'DIFFERS');
  return {
    title: `${title} (simulator, profile ${p.profile})${d.length ? `: ${d.length} of ${p.counts.length} counts differ` : ''}`,
    head: ['count', 'measured (kernel engine)', `predicted (simulator, profile ${p.profile})`, 'agree'],
    rows: p.counts.map((c) => [c.what, formatCount(c.measured), formatCount(c.predicted), agree(c)]),
    note: d.length
      ? `Measured and predicted differ on ${d.map((c) => c.what).join('; ')}: the simulator's model of this kernel is wrong here, or the kernel did something the trace does not control.`
      : 'The simulator ran the same trace with the profile of the kernel that ran; every count it could compare agrees.',
  };
}
