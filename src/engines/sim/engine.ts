/**
 * SimEngine: the simulator behind the Engine interface, so validate can run it next to the
 * kernel engine. It models every trace (supports() is always null) and needs no privileges.
 */
import type { Trace } from '../../trace/types.js';
import { CowlabError } from '../../errors.js';
import { MAX_KERNEL_PLACED_REGIONS } from '../../trace/schema.js';
import { regionPageLists } from '../observations.js';
import type { Engine, EngineRunOptions, PredictedOutcome, StepObservation, TraceObservations } from '../types.js';
import { resolveSimOptions, type ResolvedSimOptions, type SimOptions } from './options.js';
import { HPAGE_PMD_NR, PhysMemPool } from './physmem.js';
import { Simulator } from './simulator.js';

/** Frame tables shared by every run of this module (see PhysMemPool). */
const framePool = new PhysMemPool();

/** Runs `trace` through the simulator and returns every step's observation (synchronously). */
export function simulateTrace(
  trace: Trace,
  options: SimOptions = {},
  onStep?: EngineRunOptions['onStep'],
  pool: PhysMemPool = framePool,
  offsets: readonly number[] = [],
): TraceObservations {
  const sim = new Simulator(trace, options, { pool }, offsets);
  const total = sim.trace.steps.length;
  const steps: StepObservation[] = [sim.setup()];
  while (!sim.done) {
    steps.push(sim.step());
    onStep?.(steps.length - 1, total);
  }
  pool.give(sim.releaseFrameTables());
  return { engine: 'sim', trace, steps, unavailable: {} };
}


/**
 * Where in its page table a region placed by the kernel may start, one offset per distinct
 * behaviour: the window of a read fault depends on the offset modulo the fault-around size,
 * and on whether the first window runs into the end of the page table.
 */
export function candidateOffsets(faultAroundPages: number): number[] {
  const n = faultAroundPages;
  const out = new Set<number>();
  for (let r = 0; r < n; r++) {
    out.add(r);
    out.add(HPAGE_PMD_NR - n + r);
  }
  return [...out].sort((a, b) => a - b);
}

/** The candidate offset that behaves as `offset` does (see candidateOffsets). */
export function representativeOffset(offset: number, faultAroundPages: number): number {
  const o = offset % HPAGE_PMD_NR;
  return o > HPAGE_PMD_NR - faultAroundPages ? o : o % faultAroundPages;
}

/** Every offset in a page table that behaves as the candidate `offset` does. */
function offsetsLike(offset: number, faultAroundPages: number): number[] {
  const out: number[] = [];
  for (let o = 0; o < HPAGE_PMD_NR; o++) if (representativeOffset(o, faultAroundPages) === offset) out.push(o);
  return out;
}

/** A key of what an outcome shows (events, faults, frames, page lists), to merge equal ones. */
function outcomeKey(steps: StepObservation[]): string {
  return JSON.stringify(steps.map((s) => [s.events, s.frames, Object.entries(s.processes).map(([p, rs]) => [p, Object.entries(rs).map(([id, r]) => [id, regionPageLists(r)])])]));
}

/**
 * Every outcome the kernel allows for `trace`: one, unless some region is placed by the kernel
 * (placement 'kernel'), when each place that behaves differently is simulated and equal
 * outcomes are merged (their labels joined).
 */
export function simulateOutcomes(trace: Trace, options: SimOptions = {}): PredictedOutcome[] {
  const placed = trace.regions.flatMap((r, i) => (r.placement === 'kernel' ? [i] : []));
  if (placed.length === 0) return [{ label: 'the only outcome', places: [{}], steps: simulateTrace(trace, options).steps }];
  const n = resolveSimOptions(options).faultAroundPages;
  if (placed.length > MAX_KERNEL_PLACED_REGIONS) {
    throw new CowlabError('ERR_TRACE_INVALID', `regions: at most ${MAX_KERNEL_PLACED_REGIONS} regions may have placement 'kernel' (their outcomes multiply)`, { field: 'regions' });
  }
  // mprotect of part of a placed region starts a VMA inside it, whose place in its page table
  // is the region's plus its first page: then every place can behave differently.
  const split = trace.steps.some((st) => st.op === 'mprotect' && st.pages !== undefined && placed.some((r) => trace.regions[r]!.id === st.region));
  const candidates = split ? Array.from({ length: HPAGE_PMD_NR }, (_, o) => o) : candidateOffsets(n);
  const combos: number[][] = placed.reduce<number[][]>((acc) => acc.flatMap((c) => candidates.map((o) => [...c, o])), [[]]);
  const byKey = new Map<string, { labels: string[]; places: Record<string, number[]>[]; steps: StepObservation[] }>();
  for (const combo of combos) {
    const offsets = new Array<number>(trace.regions.length).fill(0);
    placed.forEach((r, k) => (offsets[r] = combo[k]!));
    const steps = simulateTrace(trace, options, undefined, framePool, offsets).steps;
    const key = outcomeKey(steps);
    const label = placed.map((r, k) => `${trace.regions[r]!.id} at page ${combo[k]} of its page table`).join(', ');
    const place = Object.fromEntries(placed.map((r, k) => [trace.regions[r]!.id, split ? [combo[k]!] : offsetsLike(combo[k]!, n)]));
    const seen = byKey.get(key);
    if (seen) {
      seen.labels.push(label);
      seen.places.push(place);
    } else byKey.set(key, { labels: [label], places: [place], steps });
  }
  return [...byKey.values()].map((o) => ({
    label: o.labels.length > 3 ? `${o.labels.slice(0, 3).join('; ')}; or ${o.labels.length - 3} more places` : o.labels.join('; or '),
    places: o.places,
    steps: o.steps,
  }));
}

export class SimEngine implements Engine {
  readonly name = 'sim' as const;
  readonly options: ResolvedSimOptions;

  constructor(options: SimOptions = {}) {
    this.options = resolveSimOptions(options);
  }

  supports(_trace: Trace): string | null {
    return null;
  }

  /**
   * Simulation never waits on processes, so `stepDeadlineMs` does not apply. A trace that
   * leaves a region's place to the kernel gets every outcome (TraceObservations.outcomes).
   */
  async run(trace: Trace, options: EngineRunOptions = {}): Promise<TraceObservations> {
    if (!trace.regions.some((r) => r.placement === 'kernel')) return simulateTrace(trace, this.options, options.onStep);
    const outcomes = simulateOutcomes(trace, this.options);
    return { engine: 'sim', trace, steps: outcomes[0]!.steps, unavailable: {}, outcomes };
  }
}
