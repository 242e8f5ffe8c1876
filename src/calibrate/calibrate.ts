/**
 * calibrate: measures the running kernel's cost per event (fork, copy, reuse, zero-fill, other
 * fault, plain access; a 2 MiB zero-fill when THP is available) and turns them into the
 * simulator's cost model. Measurements: src/engines/kernel/calibrate.ts.
 */
import { environment } from '../env/environment.js';
import { KernelEngine } from '../engines/kernel/engine.js';
import { measureKernelCosts, type KernelCostOptions, type KernelCosts } from '../engines/kernel/calibrate.js';
import { ACCESS_CLASS } from '../engines/kernel/observe.js';
import { DEFAULT_COST_MODEL, type CostModel } from '../engines/sim/cost.js';
import { median } from '../stats/summary.js';
import type { Trace } from '../trace/types.js';

export interface Calibration {
  model: CostModel;
  costs: KernelCosts;
  /** The 2 MiB zero-fill figure, or why it kept its default. */
  hugeZeroFill: { ns: number | null; reason: string | null };
}

/** Four 2 MiB huge pages, each allocated and cleared by one write fault. */
function hugeZeroFillTrace(): Trace {
  return {
    name: 'calibrate-thp',
    regions: [{ id: 'h', pages: 2048, map: 'private', backing: 'anon', thp: true, advice: [], populate: 'none' }],
    steps: [{ op: 'write', proc: 'p0', region: 'h', pages: { start: 0, end: 2048, stride: 512 } }],
  };
}

async function measureHugeZeroFill(repeats: number): Promise<{ ns: number | null; reason: string | null }> {
  const engine = new KernelEngine();
  const trace = hugeZeroFillTrace();
  const why = engine.supports(trace);
  if (why !== null) return { ns: null, reason: why };
  const samples: number[] = [];
  for (let r = 0; r < repeats + 1; r++) {
    const run = await engine.runDetailed(trace);
    if (r === 0) continue; // cold
    const a = run.details[1]!.access[0]!;
    for (let i = 0; i < a.classes.length; i++) if (a.classes[i] === ACCESS_CLASS.zeroFill) samples.push(a.latencyNs[i]!);
  }
  const m = median(samples);
  return m === null ? { ns: null, reason: 'the write faults did not allocate huge pages (no THP available?)' } : { ns: m, reason: null };
}

function fmtBand(b: { median: number; min: number; max: number; noisy: boolean }): string {
  return `${Math.round(b.median)} ns (${Math.round(b.min)}-${Math.round(b.max)}${b.noisy ? ', noisy' : ''})`;
}

export async function calibrate(options: KernelCostOptions = {}): Promise<Calibration> {
  const costs = await measureKernelCosts(options);
  const hugeZeroFill = await measureHugeZeroFill(costs.repeats);
  const env = environment();
  // A cost is never negative; a difference of two noisy medians can be (fork per page on a
  // small region). Such a figure is recorded as 0 and said to be below the noise.
  const notes: Record<string, string> = {};
  const cost = (k: keyof KernelCosts & string, v: number): number => {
    if (v >= 0) return v;
    notes[`note.${k}`] = `measured ${Math.round(v)} ns: below the noise of this run, recorded as 0`;
    return 0;
  };
  const model: CostModel = {
    version: 1,
    env: {
      kernel: env.kernel,
      cpu: env.cpu.model,
      cpus: env.cpu.count,
      hypervisor: env.hypervisor.present,
      thp: env.thp.enabled,
      pageSize: env.pageSize,
      pages: costs.pages,
      repeats: costs.repeats,
      warmup: costs.warmup,
      ...Object.fromEntries(Object.entries(costs.bands).map(([k, b]) => [`band.${k}`, fmtBand(b)])),
      hugeZeroFillNs: hugeZeroFill.ns === null ? `default (${hugeZeroFill.reason})` : 'measured',
    },
    constants: {
      forkBaseNs: cost('forkBaseNs', costs.forkBaseNs),
      forkPerPageNs: cost('forkPerPageNs', costs.forkPerPageNs),
      copyNs: cost('copyNs', costs.copyNs),
      reuseNs: cost('reuseNs', costs.reuseNs),
      zeroFillNs: cost('zeroFillNs', costs.zeroFillNs),
      hugeZeroFillNs: hugeZeroFill.ns ?? DEFAULT_COST_MODEL.constants.hugeZeroFillNs,
      faultNs: cost('faultNs', costs.faultNs),
      accessNs: cost('accessNs', costs.accessNs),
    },
    measuredAt: new Date().toISOString(),
  };
  Object.assign(model.env, notes);
  return { model, costs, hugeZeroFill };
}
