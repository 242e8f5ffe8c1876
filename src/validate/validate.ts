/**
 * validate: run one trace on several engines and compare each against the reference (the
 * kernel when it is one of them, else the first engine). A prediction is trusted only once
 * it matched a real kernel.
 */
import type { Engine, EngineName, EngineRunOptions, TraceObservations } from '../engines/types.js';
import type { Trace } from '../trace/types.js';
import { compareObservations, compareOutcomes, type TraceComparison } from './compare.js';

export interface EngineOutcome {
  engine: EngineName;
  /** Why the engine did not run this trace (it does not model a feature it uses). */
  notApplicable: string | null;
  observations: TraceObservations | null;
  /** Wall time of the engine's run, ns. */
  wallNs: number | null;
}

export interface TraceValidation {
  trace: string;
  description: string | null;
  reference: EngineName;
  engines: EngineOutcome[];
  /** One comparison per engine that ran, other than the reference. */
  comparisons: TraceComparison[];
  /**
   * matched: every engine that ran agreed with the reference. mismatch: one did not.
   * not-measurable: the reference could not run the trace here (e.g. THP disabled), so
   * nothing was validated; `reason` says why. Engines that do not model a trace's features
   * are listed as not applicable and do not count either way.
   */
  status: 'matched' | 'mismatch' | 'not-measurable';
  reason: string | null;
}

export function referenceEngine(engines: readonly Engine[]): Engine {
  return engines.find((e) => e.name === 'kernel') ?? engines[0]!;
}

async function runOne(engine: Engine, trace: Trace, options: EngineRunOptions): Promise<EngineOutcome> {
  const why = engine.supports(trace);
  if (why !== null) return { engine: engine.name, notApplicable: why, observations: null, wallNs: null };
  const t0 = process.hrtime.bigint();
  const observations = await engine.run(trace, options);
  return { engine: engine.name, notApplicable: null, observations, wallNs: Number(process.hrtime.bigint() - t0) };
}

/** Runs `trace` on every engine (one after another: they measure) and compares. */
export async function validateTrace(
  trace: Trace,
  engines: readonly Engine[],
  options: EngineRunOptions = {},
): Promise<TraceValidation> {
  const reference = referenceEngine(engines);
  // A trace that does not fit is refused before any engine runs (the simulator would predict
  // a 64 GiB trace first, for seconds, only for the kernel engine to refuse it).
  for (const e of engines) if (e.supports(trace) === null) e.checkMemory?.(trace);
  const outcomes: EngineOutcome[] = [];
  for (const e of engines) outcomes.push(await runOne(e, trace, options));
  const ref = outcomes.find((o) => o.engine === reference.name)!;
  const comparisons: TraceComparison[] = [];
  if (ref.observations) {
    for (const o of outcomes) {
      if (o.engine === reference.name || o.observations === null) continue;
      if (o.observations.outcomes && o.observations.outcomes.length > 1) {
        // A set of outcomes: judged against each; the tables show the one it matched.
        const { comparison, chosen } = compareOutcomes(o.observations, ref.observations);
        comparisons.push(comparison);
        o.observations = chosen;
      } else {
        comparisons.push(compareObservations(o.observations, ref.observations));
      }
    }
  }
  return {
    trace: trace.name,
    description: trace.description ?? null,
    reference: reference.name,
    engines: outcomes,
    comparisons,
    status: ref.observations === null ? 'not-measurable' : comparisons.every((c) => c.matched) ? 'matched' : 'mismatch',
    reason: ref.notApplicable,
  };
}
