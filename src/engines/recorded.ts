/**
 * An engine that plays back observations made elsewhere: the kernel engine's run inside a QEMU
 * guest, brought back as JSON. validate compares it exactly as it would a live run, so a
 * guest's kernel is judged by the same code as the host's.
 */
import type { Trace } from '../trace/types.js';
import type { Engine, EngineName, TraceObservations } from './types.js';

export interface RecordedOutcome {
  /** Why the engine did not run the trace there (as its supports() said), or null. */
  notApplicable: string | null;
  observations: TraceObservations | null;
}

export class RecordedEngine implements Engine {
  constructor(
    readonly name: EngineName,
    /** By the trace object the command sent (two files may share a trace name). */
    private readonly outcomes: ReadonlyMap<Trace, RecordedOutcome>,
  ) {}

  supports(trace: Trace): string | null {
    const o = this.outcomes.get(trace);
    if (!o) return `no ${this.name} observations were recorded for ${trace.name}`;
    return o.notApplicable;
  }

  async run(trace: Trace): Promise<TraceObservations> {
    const o = this.outcomes.get(trace);
    if (!o?.observations) throw new Error(`no recorded ${this.name} observations for ${trace.name}`);
    return o.observations;
  }
}
