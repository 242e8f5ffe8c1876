/**
 * validate on several kernels: the host's, and kernels booted in QEMU guests. For a guest, the
 * engines that touch memory (kernel, region) run inside it, one boot for every trace; their
 * observations come back and are played to validateTrace by RecordedEngine, next to the
 * simulator, which runs here with the profile of the kernel that actually ran. So every kernel
 * is judged by the same comparison code.
 */
import { KernelEngine } from '../engines/kernel/engine.js';
import { RecordedEngine } from '../engines/recorded.js';
import { RegionEngine } from '../engines/region/engine.js';
import type { ResolvedSimOptions } from '../engines/sim/options.js';
import { SimEngine } from '../engines/sim/engine.js';
import type { Engine, EngineName } from '../engines/types.js';
import { environment, type Environment } from '../env/environment.js';
import { observeInGuest, type GuestRunInfo } from '../guest/commands.js';
import type { GuestHooks, GuestOptions } from '../guest/runner.js';
import { factsFromEnvironment, runningKernelFacts, type KernelFacts } from '../kernels/facts.js';
import type { KernelTarget } from '../kernels/targets.js';
import type { Trace } from '../trace/types.js';
import { validateTrace, type TraceValidation } from './validate.js';

export interface KernelValidation {
  target: KernelTarget;
  /** The kernel that ran, as it described itself. */
  facts: KernelFacts;
  env: Environment;
  /** How the guest ran; null on the host. */
  guest: GuestRunInfo | null;
  /** The simulator's options for this kernel (its profile, plus any overrides). */
  sim: ResolvedSimOptions;
  results: TraceValidation[];
}

export interface KernelValidateOptions {
  engines: readonly EngineName[];
  /** The simulator's options for the kernel that ran, from its facts (the caller's profile policy). */
  simFor: (facts: KernelFacts) => ResolvedSimOptions;
  stepDeadlineMs: number;
  guest: GuestOptions | null;
  hooks: (target: KernelTarget) => GuestHooks;
  /** Host runs: progress per trace. */
  onTrace?: (target: KernelTarget, index: number, total: number, name: string) => void;
}

function hostEngine(name: EngineName, sim: ResolvedSimOptions): Engine {
  switch (name) {
    case 'sim': return new SimEngine(sim);
    case 'kernel': return new KernelEngine();
    case 'region': return new RegionEngine();
  }
}

async function onHost(target: KernelTarget, traces: readonly Trace[], o: KernelValidateOptions): Promise<KernelValidation> {
  const env = environment();
  const facts = runningKernelFacts(env);
  const sim = o.simFor(facts);
  const engines = o.engines.map((n) => hostEngine(n, sim));
  const results: TraceValidation[] = [];
  for (const [i, t] of traces.entries()) {
    o.onTrace?.(target, i, traces.length, t.name);
    results.push(await validateTrace(t, engines, { stepDeadlineMs: o.stepDeadlineMs }));
  }
  return { target, facts, env, guest: null, sim, results };
}

async function inGuest(target: KernelTarget, traces: readonly Trace[], o: KernelValidateOptions): Promise<KernelValidation> {
  const kernel = target.kernel!;
  const measured = o.engines.filter((n) => n !== 'sim');
  const run = await observeInGuest({ kernel, options: o.guest!, hooks: o.hooks(target) }, traces, measured, o.stepDeadlineMs);
  // The config the kernel came with is the one that ran; the guest's own /proc/config.gz only
  // fills in for a bare image that came without one.
  const facts = factsFromEnvironment(run.env, kernel.config.known ? kernel.config : run.config);
  const sim = o.simFor(facts);
  const engines = o.engines.map((n) => (n === 'sim' ? new SimEngine(sim) : new RecordedEngine(n, run.outcomes.get(n)!)));
  const results: TraceValidation[] = [];
  for (const t of traces) results.push(await validateTrace(t, engines, { stepDeadlineMs: o.stepDeadlineMs }));
  const { env, config: _, outcomes: __, ...guest } = run;
  return { target, facts, env, guest, sim, results };
}

/** Validates `traces` on every target, one after another (they measure). */
export async function validateOnKernels(traces: readonly Trace[], targets: readonly KernelTarget[], o: KernelValidateOptions): Promise<KernelValidation[]> {
  const out: KernelValidation[] = [];
  for (const t of targets) out.push(t.kernel === null ? await onHost(t, traces, o) : await inGuest(t, traces, o));
  return out;
}
