/**
 * Per-event costs of the real kernel, for the simulator's time model (`cowlab calibrate`).
 *
 * One dedicated trace per repeat measures every event side by side on the same memory:
 *
 *   step  op                      measures
 *   0     fork p0 -> c0           fork with no present page (the base)
 *   1     exit c0
 *   2     read  p0 a (all)        a fault that maps the zero page ("other fault")
 *   3     write p0 b (all)        zeroFill: a fresh frame where nothing was mapped
 *   4     write p0 b (all)        a plain store to a present, writable page (no fault)
 *   5     fork p0 -> c1           fork with `pages` present private pages (b)
 *   6     write c1 b (all)        copy: the page is shared with p0
 *   7     exit c1
 *   8     write p0 b (all)        reuse: the page is no longer shared
 *
 * Each access is timed alone in the process (clock_gettime around one store or load) and
 * classified from its own fault count and the pagemap, so a figure is the median latency of
 * the accesses of that class. The fork cost per present page is (fork(5) - fork(0)) / pages.
 * The first `warmup` repeats are run and dropped (cold memory is slower on this kind of VM);
 * the result is the median over the others, with its min-max band.
 */
import { environment, type Environment } from '../../env/environment.js';
import { integerOption } from '../../options.js';
import { band, median, type Band } from '../../stats/summary.js';
import type { Trace } from '../../trace/types.js';
import { KernelEngine, type KernelRunDetailed } from './engine.js';
import { ACCESS_CLASS } from './observe.js';

export interface KernelCostOptions {
  /** Pages of the measured region. Default 4096 (16 MiB). */
  pages?: number;
  /** Measured repeats. Default 5. */
  repeats?: number;
  /** Repeats run first and dropped. Default 1. */
  warmup?: number;
  stepDeadlineMs?: number;
}

export type KernelCostName = 'forkBaseNs' | 'forkPerPageNs' | 'copyNs' | 'reuseNs' | 'zeroFillNs' | 'faultNs' | 'accessNs';

export interface KernelCosts {
  /** fork() of a process none of whose regions has a present page. */
  forkBaseNs: number;
  /** Extra fork() time per present private page. */
  forkPerPageNs: number;
  /** A write fault that copies a shared page (median per access). */
  copyNs: number;
  /** A write fault that reuses a page no longer shared. */
  reuseNs: number;
  /** A write fault that maps a fresh zeroed frame. */
  zeroFillNs: number;
  /** A fault that is none of those (a read mapping the zero page). */
  faultNs: number;
  /** A store to a present, writable page: no fault. */
  accessNs: number;
  /** Median and min-max of each figure over the measured repeats. */
  bands: Record<KernelCostName, Band>;
  pages: number;
  repeats: number;
  warmup: number;
  environment: Environment;
}

export function calibrationTrace(pages: number): Trace {
  const region = (id: string) => ({ id, pages, map: 'private' as const, backing: 'anon' as const, thp: false, advice: [], populate: 'none' as const });
  const all = { start: 0, end: pages };
  return {
    name: 'calibrate',
    description: 'per-event costs of the running kernel (src/engines/kernel/calibrate.ts)',
    regions: [region('a'), region('b')],
    steps: [
      { op: 'fork', proc: 'p0', child: 'c0' },
      { op: 'exit', proc: 'c0' },
      { op: 'read', proc: 'p0', region: 'a', pages: all },
      { op: 'write', proc: 'p0', region: 'b', pages: all },
      { op: 'write', proc: 'p0', region: 'b', pages: all },
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'b', pages: all },
      { op: 'exit', proc: 'c1' },
      { op: 'write', proc: 'p0', region: 'b', pages: all },
    ],
  };
}

/** Median latency of the accesses of one class at one step (details index = step + 1). */
function classMedian(run: KernelRunDetailed, step: number, cls: number): number {
  const a = run.details[step + 1]!.access[0]!;
  const picked: number[] = [];
  for (let i = 0; i < a.classes.length; i++) if (a.classes[i] === cls) picked.push(a.latencyNs[i]!);
  const m = median(picked);
  if (m === null) throw new Error(`calibration step ${step}: no access of class ${cls} (the kernel did something else)`);
  return m;
}

function forkNs(run: KernelRunDetailed, step: number): number {
  return run.details[step + 1]!.forkNs!;
}

/** Runs the calibration trace `warmup + repeats` times and returns per-event costs in ns. */
export async function measureKernelCosts(options: KernelCostOptions = {}): Promise<KernelCosts> {
  const pages = integerOption('pages', options.pages ?? 4096, { min: 16, max: 1 << 22 });
  const repeats = integerOption('repeats', options.repeats ?? 5, { min: 1, max: 1000 });
  const warmup = integerOption('warmup', options.warmup ?? 1, { min: 0, max: 100 });
  const engine = new KernelEngine();
  const trace = calibrationTrace(pages);
  const runOpts = options.stepDeadlineMs === undefined ? {} : { stepDeadlineMs: options.stepDeadlineMs };
  const samples: Record<KernelCostName, number[]> = {
    forkBaseNs: [], forkPerPageNs: [], copyNs: [], reuseNs: [], zeroFillNs: [], faultNs: [], accessNs: [],
  };
  for (let r = 0; r < warmup + repeats; r++) {
    const run = await engine.runDetailed(trace, runOpts);
    if (r < warmup) continue;
    const base = forkNs(run, 0);
    samples.forkBaseNs.push(base);
    samples.forkPerPageNs.push((forkNs(run, 5) - base) / pages);
    samples.faultNs.push(classMedian(run, 2, ACCESS_CLASS.fault));
    samples.zeroFillNs.push(classMedian(run, 3, ACCESS_CLASS.zeroFill));
    samples.accessNs.push(classMedian(run, 4, ACCESS_CLASS.none));
    samples.copyNs.push(classMedian(run, 6, ACCESS_CLASS.copy));
    samples.reuseNs.push(classMedian(run, 8, ACCESS_CLASS.reuse));
  }
  const bands = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, band(v)!])) as Record<KernelCostName, Band>;
  return {
    forkBaseNs: bands.forkBaseNs.median,
    forkPerPageNs: bands.forkPerPageNs.median,
    copyNs: bands.copyNs.median,
    reuseNs: bands.reuseNs.median,
    zeroFillNs: bands.zeroFillNs.median,
    faultNs: bands.faultNs.median,
    accessNs: bands.accessNs.median,
    bands,
    pages,
    repeats,
    warmup,
    environment: environment(),
  };
}
