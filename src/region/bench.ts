/**
 * regionBench: the write-fault cost of the userspace region against the kernel's, in one run,
 * on the same page count and write order, interleaved over repeats after a warm-up.
 *
 *   region  a region of `pages` populated pages; each repeat forks the root and stores one
 *           8-byte word per page into the fork (like the kernel's child), timed in native code
 *   kernel  forkWrite(): a populated private anonymous mapping, fork(), the child stores the
 *           same pages in the same order
 *
 * The region is created once: its frame pool is warm after the warm-up (frames freed by a
 * released fork are reused), which is what the pool is for. Per-page cost:
 *   lazy                each store timed alone; p50/p90/p99/max over every store of the
 *                       measured repeats (one store = one fault on both sides)
 *   faultAround, eager  amortized: (sum of the store times [+ the eager snapshot, which is
 *                       where eager copies]) / pages written, one figure per repeat;
 *                       percentiles over repeats. The kernel side uses the same definition
 *                       without its fork(), which forks all of Node, not just these pages.
 */
import { checkFitsHalfAvailable } from '../memory/budget.js';
import { pageSize } from '../memory/mapping.js';
import { forkWrite } from '../forkwrite/forkWrite.js';
import { formatPattern, pageOrder, parsePattern, type PatternSpec, type WritePattern } from '../forkwrite/pattern.js';
import { integerOption } from '../options.js';
import { band, summarize, type Band } from '../stats/summary.js';
import { formatPolicy, parsePolicy, type CowPolicy, type CowPolicyInput } from './policy.js';
import { maxRegionPages } from './region.js';
import { createBenchRegion, regionWriteRun, type RegionWriteRun } from './writeRun.js';
import { MECHANISM_INFO, mechanismAvailability, type Mechanism } from '../tracking/mechanisms.js';
import { WriteTracker, type TrackingRun } from '../tracking/tracker.js';

/** What region-bench measures beside the region and the kernel (which it measures itself). */
const OTHER_MECHANISMS: readonly Mechanism[] = ['sigsegv-remap', 'sigsegv-mprotect', 'uffd-wp-sync', 'uffd-wp-async', 'soft-dirty'];

export interface RegionBenchOptions {
  pages: number;
  /** seq | rand | stride:N (as fork-write). Default seq. */
  pattern?: PatternSpec;
  seed?: number;
  /** lazy | eager | faultAround:K. Default lazy. */
  policy?: CowPolicyInput;
  /** Measured repeats per side. Default 5. */
  repeats?: number;
  /** Unrecorded repeats per side first. Default 1. */
  warmup?: number;
  onProgress?: (p: { done: number; total: number; warmup: boolean }) => void;
}

export interface ResolvedRegionBenchOptions {
  pages: number;
  pattern: WritePattern;
  policy: CowPolicy;
  repeats: number;
  warmup: number;
}

export interface PerPage {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface BenchSide {
  /** Per-page cost (see `definition`). */
  perPageNs: PerPage;
  /** Mean store time over every measured store, ns. */
  meanStoreNs: number;
  /** The snapshot: region view.fork(), kernel fork() of the whole Node process. */
  snapshotNs: Band;
  /** Faults per repeat (region: handled SIGSEGVs; kernel: minor faults of the child). */
  faults: Band;
}

export interface RegionBenchResult {
  options: ResolvedRegionBenchOptions;
  /** 'store': each store timed alone; 'amortized': total cost / pages written, per repeat. */
  perPage: 'store' | 'amortized';
  definition: string;
  region: BenchSide & { copies: Band };
  kernel: BenchSide;
  /** region p50 / kernel p50 of the per-page cost. */
  ratio: number;
  /** The other write-tracking mechanisms over the same pages and order, interleaved with the
   *  two sides above, per-page cost by the same definition; unavailable ones with the reason.
   *  `floor` is the bare C of the region's own mechanism (SIGSEGV + copy + mmap, with the same
   *  fault-around); null for eager (no faults). */
  mechanisms: MechanismCost[];
  floor: Mechanism | null;
  /** region / bare C of the same mechanism, same run (goal <= 1.1); null for eager. */
  ratioToFloor: number | null;
  /** region / the cheapest per-page cost measured (kernel and every mechanism). */
  ratioToCheapest: number;
  cheapest: Mechanism;
  /** region / kernel COW (the same as `ratio`). */
  ratioToKernel: number;
}

export interface MechanismCost {
  mechanism: Mechanism;
  label: string;
  available: boolean;
  reason: string | null;
  perPageNs: PerPage | null;
  /** Arming (protecting the pages) and collecting (finding what was written), median over repeats. */
  armNs: number | null;
  collectNs: number | null;
}

export function resolveRegionBenchOptions(
  o: RegionBenchOptions,
  f: (key: keyof RegionBenchOptions) => string = (k) => k,
): ResolvedRegionBenchOptions {
  // The region's own limit, checked here so the message names the caller's field (--pages).
  const pages = integerOption(f('pages'), o.pages, { min: 1, max: maxRegionPages() });
  checkFitsHalfAvailable(f('pages'), 2 * pages * pageSize(), `${pages} pages on each side`);
  const seed = integerOption(f('seed'), o.seed ?? 1, { min: 0, max: 0xffff_ffff });
  return {
    pages,
    pattern: parsePattern(o.pattern ?? 'seq', seed, f('pattern')),
    policy: parsePolicy(o.policy, f('policy')),
    repeats: integerOption(f('repeats'), o.repeats ?? 5, { min: 1, max: 10_000 }),
    warmup: integerOption(f('warmup'), o.warmup ?? 1, { min: 0, max: 10_000 }),
  };
}

function perPage(values: ArrayLike<number>): PerPage {
  const s = summarize(values)!;
  return { p50: s.p50, p90: s.p90, p99: s.p99, max: s.max };
}

function sum(xs: ArrayLike<number>): number {
  let t = 0;
  for (let i = 0; i < xs.length; i++) t += xs[i]!;
  return t;
}

function concat(arrays: Float64Array[]): Float64Array {
  const out = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

export const PER_PAGE_DEFINITIONS = {
  store: 'each store timed alone with clock_gettime in native code; percentiles over every store of the measured repeats',
  amortized:
    'amortized: (sum of the store times, plus the snapshot for eager, which is where eager copies) / pages written, ' +
    'one figure per repeat, percentiles over repeats; the kernel side without its fork(), which forks all of Node',
} as const;

/** Measures both sides, interleaved (region then kernel per repeat), warm-up first. */
export async function regionBench(options: RegionBenchOptions): Promise<RegionBenchResult> {
  const o = resolveRegionBenchOptions(options);
  const order = pageOrder(o.pattern, o.pages);
  const mode: 'store' | 'amortized' = o.policy.kind === 'lazy' ? 'store' : 'amortized';
  const region = createBenchRegion(o.pages, o.policy);
  const tracker = WriteTracker.create({ pages: o.pages, pattern: formatPattern(o.pattern), seed: seedOf(o.pattern) });
  const around = o.policy.kind === 'faultAround' ? o.policy.pages : 0;
  const floor: Mechanism | null = o.policy.kind === 'eager' ? null : 'sigsegv-remap';
  const others = OTHER_MECHANISMS.filter((m) => mechanismAvailability(m).available);
  const otherRuns = new Map<Mechanism, TrackingRun[]>(others.map((m) => [m, []]));
  const regionRuns: RegionWriteRun[] = [];
  const kernelRuns: { latencyNs: Float64Array; forkNs: number; faults: number }[] = [];
  try {
    const total = o.warmup + o.repeats;
    for (let i = 0; i < total; i++) {
      const r = regionWriteRun(region, order, i);
      const k = await forkWrite({ pages: o.pages, pattern: formatPattern(o.pattern), seed: seedOf(o.pattern), repeats: 1, warmup: 0 });
      const child = k.runs[0]!.child!;
      const mine: TrackingRun[] = [];
      for (const m of others) mine.push(await tracker.run(m, m === 'sigsegv-remap' ? { around, dontfork: false } : {}));
      if (i >= o.warmup) {
        regionRuns.push(r);
        kernelRuns.push({ latencyNs: child.latencyNs, forkNs: k.runs[0]!.forkNs, faults: child.faults });
        others.forEach((m, j) => otherRuns.get(m)!.push(mine[j]!));
      }
      options.onProgress?.({ done: i + 1, total, warmup: i < o.warmup });
    }
  } finally {
    region.close();
    tracker.close();
  }
  const n = order.length;
  const regionCost =
    mode === 'store'
      ? perPage(concat(regionRuns.map((r) => r.latencyNs)))
      : perPage(regionRuns.map((r) => (sum(r.latencyNs) + (o.policy.kind === 'eager' ? r.snapshotNs : 0)) / n));
  const kernelCost =
    mode === 'store'
      ? perPage(concat(kernelRuns.map((r) => r.latencyNs)))
      : perPage(kernelRuns.map((r) => sum(r.latencyNs) / n));
  const mean = (runs: { latencyNs: Float64Array }[]) => sum(concat(runs.map((r) => r.latencyNs))) / (n * runs.length);
  const mechanisms: MechanismCost[] = OTHER_MECHANISMS.map((m) => {
    const a = mechanismAvailability(m);
    const runs = otherRuns.get(m);
    if (!a.available || !runs) return { mechanism: m, label: MECHANISM_INFO[m].label, available: false, reason: a.available ? 'not measured' : a.reason, perPageNs: null, armNs: null, collectNs: null };
    const collect = runs.map((r) => r.collectNs).filter((x): x is number => x !== null);
    return {
      mechanism: m,
      label: MECHANISM_INFO[m].label,
      available: true,
      reason: null,
      // The region's definition: each store (lazy) or amortized per repeat (faultAround, eager).
      perPageNs: mode === 'store' ? perPage(concat(runs.map((r) => r.latencyNs))) : perPage(runs.map((r) => sum(r.latencyNs) / n)),
      armNs: band(runs.map((r) => r.armNs))!.median,
      collectNs: collect.length > 0 ? band(collect)!.median : null,
    };
  });
  const floorCost = floor === null ? null : mechanisms.find((m) => m.mechanism === floor)?.perPageNs ?? null;
  let cheapestName: Mechanism = 'kernel-cow';
  let cheapestNs = kernelCost.p50;
  for (const m of mechanisms) {
    if (m.perPageNs && m.perPageNs.p50 < cheapestNs) {
      cheapestName = m.mechanism;
      cheapestNs = m.perPageNs.p50;
    }
  }
  return {
    options: o,
    perPage: mode,
    definition: PER_PAGE_DEFINITIONS[mode],
    region: {
      perPageNs: regionCost,
      meanStoreNs: mean(regionRuns),
      snapshotNs: band(regionRuns.map((r) => r.snapshotNs))!,
      faults: band(regionRuns.map((r) => r.faults))!,
      copies: band(regionRuns.map((r) => r.copies))!,
    },
    kernel: {
      perPageNs: kernelCost,
      meanStoreNs: mean(kernelRuns),
      snapshotNs: band(kernelRuns.map((r) => r.forkNs))!,
      faults: band(kernelRuns.map((r) => r.faults))!,
    },
    ratio: regionCost.p50 / kernelCost.p50,
    mechanisms,
    floor,
    ratioToFloor: floorCost ? regionCost.p50 / floorCost.p50 : null,
    ratioToCheapest: regionCost.p50 / cheapestNs,
    cheapest: cheapestName,
    ratioToKernel: regionCost.p50 / kernelCost.p50,
  };
}

function seedOf(p: WritePattern): number {
  return p.kind === 'rand' ? p.seed : 1;
}

/** Options as plain JSON. */
export function describeRegionBenchOptions(o: ResolvedRegionBenchOptions): Record<string, unknown> {
  return { ...o, pattern: formatPattern(o.pattern), policy: formatPolicy(o.policy) };
}
