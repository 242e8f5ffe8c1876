/**
 * SimEngine: the simulator behind the Engine interface, so validate can run it next to the
 * kernel engine. It models every trace (supports() is always null) and needs no privileges.
 */
import type { Trace } from '../../trace/types.js';
import type { Engine, EngineRunOptions, StepObservation, TraceObservations } from '../types.js';
import { resolveSimOptions, type ResolvedSimOptions, type SimOptions } from './options.js';
import { PhysMemPool } from './physmem.js';
import { Simulator } from './simulator.js';

/** Frame tables shared by every run of this module (see PhysMemPool). */
const framePool = new PhysMemPool();

/** Runs `trace` through the simulator and returns every step's observation (synchronously). */
export function simulateTrace(
  trace: Trace,
  options: SimOptions = {},
  onStep?: EngineRunOptions['onStep'],
  pool: PhysMemPool = framePool,
): TraceObservations {
  const sim = new Simulator(trace, options, { pool });
  const total = sim.trace.steps.length;
  const steps: StepObservation[] = [sim.setup()];
  while (!sim.done) {
    steps.push(sim.step());
    onStep?.(steps.length - 1, total);
  }
  pool.give(sim.releaseFrameTables());
  return { engine: 'sim', trace, steps, unavailable: {} };
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

  /** Simulation never waits on processes, so `stepDeadlineMs` does not apply. */
  async run(trace: Trace, options: EngineRunOptions = {}): Promise<TraceObservations> {
    return simulateTrace(trace, this.options, options.onStep);
  }
}
