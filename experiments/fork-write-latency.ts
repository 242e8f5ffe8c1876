/**
 * Experiment 1: per-page COW fault latency against pages written, pattern, page size and
 * writer, with cold (first run on fresh memory) and warm (median over repeats) apart.
 */
import { z } from 'zod';

import { forkWrite, type ForkWriteResult } from '../src/forkwrite/forkWrite.js';
import type { ForkWriteOptions } from '../src/forkwrite/options.js';
import { cdfFromHistogram, type CdfSeries, type ChartSpec } from '../src/report/chart.js';
import { formatCount, formatNs } from '../src/report/format.js';
import { BandSchema } from '../src/suite/schema.js';
import {
  HistogramSchema,
  SideSummarySchema,
  bandOf,
  histogramCounts,
  logEdges,
  pointBand,
  summarizeSide,
  toUs,
} from '../src/suite/measure.js';
import { formatBand } from '../src/suite/present.js';
import { sized, Steps } from '../src/suite/steps.js';
import { describeDisagreements, predictForkWrites, predictionTable, PredictionSchema } from '../src/suite/predict.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import { CowlabError } from '../src/errors.js';

// Quick ends at 65,536 pages too: fork() of 256 MiB is where a THP run stands clearly apart
// from a 4 KiB one (run --thp; at 16,384 pages 4.5 against 1.5 ms, within the noise of 3 runs).
const SWEEP = { full: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536], quick: [1, 16, 256, 4096, 65536] };
const VARIANT_WRITES = { full: 4096, quick: 1024 };
// Quick keeps 3 measured runs: the fewest `compare` tests a time over (COMPARE_TEST.minSamples).
const RUNS = { full: { warmup: 1, repeats: 5 }, quick: { warmup: 1, repeats: 3 } };
/** Sweep points below this many pages have too few stores for a per-page median to mean much. */
const FLAT_FROM_PAGES = 64;
const RULE =
  `Confirmed when the warm median per-page latency varies at most 2x across the sweep points of ${FLAT_FROM_PAGES} pages written or more, refuted when it varies more; ` +
  'points whose band over repeats is wider than 2x are left out as noise, and fewer than two usable points make it not measurable.';

interface VariantDef {
  label: string;
  pattern: 'seq' | 'rand' | 'stride:8';
  thp: 'never' | 'always';
  writer: 'child' | 'parent';
}

const VARIANTS: VariantDef[] = [
  { label: 'seq, 4 KiB, child', pattern: 'seq', thp: 'never', writer: 'child' },
  { label: 'rand, 4 KiB, child', pattern: 'rand', thp: 'never', writer: 'child' },
  { label: 'stride:8, 4 KiB, child', pattern: 'stride:8', thp: 'never', writer: 'child' },
  { label: 'seq, 4 KiB, parent', pattern: 'seq', thp: 'never', writer: 'parent' },
  { label: 'rand, 4 KiB, parent', pattern: 'rand', thp: 'never', writer: 'parent' },
  { label: 'seq, THP, child', pattern: 'seq', thp: 'always', writer: 'child' },
  { label: 'seq, THP, parent', pattern: 'seq', thp: 'always', writer: 'parent' },
];

const PointSchema = z.object({
  pages: z.number().int(),
  side: SideSummarySchema,
  forkNs: BandSchema,
});

const VariantSchema = z.object({
  label: z.string(),
  pattern: z.string(),
  thp: z.enum(['never', 'always']),
  writer: z.enum(['child', 'parent']),
  regionPages: z.number().int(),
  side: SideSummarySchema,
  /** AnonHugePages of the region before the first fork (THP variants). */
  hugeBytes: z.number(),
});

/** A run's latencies as its empirical CDF, at most CDF_POINTS (value ns, fraction at or
 *  below it), with its p50 and p99 as the run's own summary gave them. */
const CDF_POINTS = 200;
const CdfSchema = z.object({ points: z.array(z.tuple([z.number(), z.number()])), p50: z.number(), p99: z.number() });
/** The histogram's runs, also as CDFs (absent in results written before: the report then
 *  draws the CDF from the histogram). */
const DistributionSchema = HistogramSchema.extend({ cdf: z.object({ cold: CdfSchema, warm: CdfSchema }).optional() });

const RawSchema = z.object({
  warmup: z.number().int(),
  repeats: z.number().int(),
  /** The sweep's page size (`run --thp`; absent in results written before: 4 KiB). */
  sweepThp: z.enum(['never', 'always']).optional(),
  sweep: z.array(PointSchema),
  variants: z.array(VariantSchema),
  histogram: DistributionSchema.nullable(),
  /** The simulator's run of the sweep's largest point and of each variant (absent in results
   *  written before). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

/** MADV_HUGEPAGE gets huge pages unless THP is off (or absent). */
function thpUsable(ctx: RunContext): boolean {
  return ctx.env.thp.enabled !== 'never' && ctx.env.thp.enabled !== null;
}

async function measure(ctx: RunContext, o: ForkWriteOptions) {
  return forkWrite({ ...sized(ctx, RUNS), ...o });
}

async function run(ctx: RunContext): Promise<Raw> {
  const ps = ctx.env.pageSize;
  const raw: Raw = { ...sized(ctx, RUNS), sweepThp: ctx.thp, sweep: [], variants: [], histogram: null };
  if (ctx.thp === 'always' && !thpUsable(ctx)) throw new CowlabError('ERR_NOT_MEASURABLE', `--thp always: THP is ${ctx.env.thp.enabled ?? 'not available'} here`);
  const limitPages = Math.floor(ctx.memoryLimitBytes / ps / 2); // the copies double the region
  const wanted = sized(ctx, SWEEP);
  const sweep = wanted.filter((p) => p <= limitPages);
  if (sweep.length < wanted.length) ctx.note(`pages-written sweep clamped to ${formatCount(sweep.at(-1) ?? 0)} pages (memory)`);
  const vWrites = Math.min(sized(ctx, VARIANT_WRITES), Math.floor(limitPages / 8));
  const variants = VARIANTS.filter((v) => {
    if (v.thp === 'always' && !thpUsable(ctx)) {
      ctx.note(`variant '${v.label}' skipped: THP is ${ctx.env.thp.enabled ?? 'not available'}`);
      return false;
    }
    return true;
  });
  const steps = new Steps(ctx, sweep.length + variants.length);
  const predict: { result: ForkWriteResult; key: string; label: string }[] = [];
  await steps.sweep(sweep, raw, {
    detail: (pages) => `${formatCount(pages)} pages`,
    stopBefore: { what: 'sweep', item: (pages) => `${formatCount(pages)} pages` },
    measure: async (pages) => {
      const r = await measure(ctx, { pages, thp: ctx.thp });
      predict[0] = { result: r, key: 'sweep', label: `${formatCount(pages)} pages` };
      raw.sweep.push({
        pages,
        side: summarizeSide(r, (x) => x.child),
        forkNs: bandOf(r.runs.filter((x) => !x.warmup).map((x) => x.forkNs)),
      });
    },
  });
  await steps.sweep(variants, raw, {
    detail: (v) => v.label,
    measure: async (v) => {
      const regionPages = v.pattern === 'stride:8' ? vWrites * 8 : vWrites;
      const r = await measure(ctx, { pages: regionPages, pattern: v.pattern, thp: v.thp, writer: v.writer });
      const pick = v.writer === 'child' ? (x: (typeof r.runs)[number]) => x.child : (x: (typeof r.runs)[number]) => x.parent;
      raw.variants.push({ ...v, regionPages, side: summarizeSide(r, pick), hugeBytes: r.thp.hugeBytes });
      predict.push({ result: r, key: v.label, label: v.label });
      if (v === VARIANTS[0]) raw.histogram = histogram(r, `${v.label}, ${formatCount(vWrites)} pages: first run (cold) and last run (warm)`);
    },
  });
  steps.finish();
  raw.predicted = await predictForkWrites(ctx.env, predict);
  return raw;
}

/** Sorted latencies as (value, fraction at or below it), thinned to at most CDF_POINTS
 *  (evenly in rank, the maximum always kept: the tail is what the chart is for). */
function empiricalCdf(latencies: ArrayLike<number>): [number, number][] {
  const sorted = Float64Array.from(latencies).sort();
  const n = sorted.length;
  const step = Math.max(1, Math.ceil(n / CDF_POINTS));
  const out: [number, number][] = [];
  for (let i = step - 1; i < n; i += step) out.push([sorted[i]!, (i + 1) / n]);
  if (n > 0 && out.at(-1)![1] < 1) out.push([sorted[n - 1]!, 1]);
  return out;
}

function cdfOf(side: NonNullable<ForkWriteResult['runs'][number]['child']>): z.infer<typeof CdfSchema> {
  return { points: empiricalCdf(side.latencyNs), p50: side.perPageNs!.p50, p99: side.perPageNs!.p99 };
}

/** The child's latencies of the first run (cold) and the last (warm), on shared edges and as CDFs. */
function histogram(r: Awaited<ReturnType<typeof forkWrite>>, label: string): Raw['histogram'] {
  const coldRun = r.runs[0]!.child!;
  const warmRun = r.runs.at(-1)!.child!;
  const cold = coldRun.latencyNs;
  const warm = warmRun.latencyNs;
  const edgesNs = logEdges(100, Math.max(...warm, ...cold), 10);
  return { label, edgesNs, cold: histogramCounts(cold, edgesNs), warm: histogramCounts(warm, edgesNs), cdf: { cold: cdfOf(coldRun), warm: cdfOf(warmRun) } };
}

/** The CDF chart's series: from the recorded CDFs, or, in older results, from the histogram. */
function distributionSeries(h: NonNullable<Raw['histogram']>): CdfSeries[] {
  const names = { cold: 'cold (first run)', warm: 'warm (last run)' } as const;
  return (['cold', 'warm'] as const).map((k) => {
    const c = h.cdf?.[k];
    if (c) return { name: names[k], points: c.points.map(([x, f]) => ({ x: toUs(x), fraction: f })), p50: toUs(c.p50), p99: toUs(c.p99) };
    return { name: `${names[k]}, from the histogram`, points: cdfFromHistogram(h.edgesNs.map(toUs), h[k]), p50: null, p99: null };
  });
}

function reference(raw: Raw) {
  return raw.sweep.find((p) => p.pages === 4096) ?? raw.sweep.at(-1);
}

function verdict(raw: Raw) {
  // Points below FLAT_FROM_PAGES are a store or a few per run: shown, but not headline figures
  // (compare would judge the noise of a single store).
  const metrics: Metric[] = raw.sweep.filter((p) => p.pages >= FLAT_FROM_PAGES).map((p) => ({
    key: `warm-p50@${p.pages}`,
    label: `warm p50 per page, ${formatCount(p.pages)} pages written`,
    unit: 'ns',
    value: p.side.warm.p50,
  }));
  const ref = reference(raw);
  if (ref) metrics.push({ key: `cold-p50@${ref.pages}`, label: `cold p50 per page, ${formatCount(ref.pages)} pages`, unit: 'ns', value: pointBand(ref.side.cold.p50) });
  // fork() of Node holding the sweep's largest region: what the page size changes most (the
  // page tables fork copies: one PTE per 4 KiB page, one PMD per huge page).
  const largest = raw.sweep.at(-1);
  if (largest) metrics.push({ key: `fork@${largest.pages}`, label: `fork() holding ${formatCount(largest.pages)} pages`, unit: 'ns', value: largest.forkNs });
  for (const v of raw.variants) metrics.push({ key: `warm-p50:${v.label}`, label: `warm p50 per page, ${v.label}`, unit: 'ns', value: v.side.warm.p50 });

  const candidates = raw.sweep.filter((p) => p.pages >= FLAT_FROM_PAGES);
  const usable = candidates.filter((p) => !p.side.warm.p50.noisy);
  if (!ref || usable.length < 2) {
    return {
      verdict: 'not-measurable' as const,
      figure: ref ? `warm p50 ${formatNs(ref.side.warm.p50.median)} per page at ${formatCount(ref.pages)} pages` : 'no sweep point measured',
      reason: `Only ${usable.length} of ${candidates.length} such points had a band narrower than 2x.`,
      metrics,
    };
  }
  const lo = usable.reduce((a, b) => (b.side.warm.p50.median < a.side.warm.p50.median ? b : a));
  const hi = usable.reduce((a, b) => (b.side.warm.p50.median > a.side.warm.p50.median ? b : a));
  const ratio = hi.side.warm.p50.median / lo.side.warm.p50.median;
  const first = usable[0]!.pages;
  const last = usable.at(-1)!.pages;
  return {
    verdict: ratio <= 2 ? ('confirmed' as const) : ('refuted' as const),
    figure:
      `warm p50 ${formatNs(ref.side.warm.p50.median)} per page at ${formatCount(ref.pages)} pages (cold ${formatNs(ref.side.cold.p50)}); ` +
      `${formatNs(lo.side.warm.p50.median)}–${formatNs(hi.side.warm.p50.median)} across ${formatCount(first)}–${formatCount(last)} pages`,
    reason:
      `Measured: lowest ${formatNs(lo.side.warm.p50.median)} at ${formatCount(lo.pages)} pages, highest ${formatNs(hi.side.warm.p50.median)} at ${formatCount(hi.pages)} pages: ${ratio.toFixed(2)}x` +
      (ratio > 2 ? ', so the per-page cost is not flat on this machine (see the cold/warm note: fresh frames can be cold at the host).' : '.') +
      describeDisagreements(raw.predicted),
    metrics,
  };
}

/** The sweep's page size in words. */
function backingLabel(raw: Raw): string {
  return raw.sweepThp === 'always' ? 'THP' : '4 KiB pages';
}

function sideCells(s: Raw['sweep'][number]['side']): string[] {
  return [formatNs(s.cold.p50), formatBand(s.warm.p50), formatBand(s.warm.p99), formatCount(s.faults.median)];
}

function present(raw: Raw) {
  const line = {
    kind: 'line' as const,
    title: `COW fault latency per page against pages written (child writes, ${backingLabel(raw)}, seq)`,
    x: { label: 'pages written', unit: 'pages', scale: 'log' as const },
    y: { label: 'latency per page', unit: 'µs', scale: 'log' as const },
    series: [
      { name: 'warm p50 (median over repeats, min-max)', points: raw.sweep.map((p) => ({ x: p.pages, y: toUs(p.side.warm.p50.median), lo: toUs(p.side.warm.p50.min), hi: toUs(p.side.warm.p50.max) })) },
      { name: 'warm p99', points: raw.sweep.map((p) => ({ x: p.pages, y: toUs(p.side.warm.p99.median) })) },
      { name: 'cold p50 (first run)', dashed: true, points: raw.sweep.map((p) => ({ x: p.pages, y: toUs(p.side.cold.p50) })) },
    ],
  };
  const charts: ChartSpec[] = [line];
  if (raw.variants.length) {
    charts.push({
      kind: 'bar',
      title: `Per-page latency by pattern, page size and writer (${formatCount(raw.variants[0]!.side.written)} pages written)`,
      categories: raw.variants.map((v) => v.label),
      y: { label: 'latency per page', unit: 'µs' },
      series: [
        { name: 'cold p50', values: raw.variants.map((v) => toUs(v.side.cold.p50)) },
        { name: 'warm p50', values: raw.variants.map((v) => toUs(v.side.warm.p50.median)), lo: raw.variants.map((v) => toUs(v.side.warm.p50.min)), hi: raw.variants.map((v) => toUs(v.side.warm.p50.max)) },
        { name: 'warm p99', values: raw.variants.map((v) => toUs(v.side.warm.p99.median)) },
      ],
    });
  }
  if (raw.histogram) {
    const h = raw.histogram;
    charts.push({
      kind: 'cdf',
      title: `Distribution of per-page latency: ${h.label}`,
      x: { label: 'latency of one store', unit: 'µs', scale: 'log' },
      series: distributionSeries(h),
      caption: 'Cumulative share of the stores at or below each latency; the dots mark each run\'s p50 and p99.',
    });
  }
  return {
    charts,
    tables: [
      {
        title: `Pages-written sweep (child writes, seq, ${backingLabel(raw)})`,
        head: ['pages written', 'cold p50', 'warm p50 (min–max)', 'warm p99', 'faults', 'fork()'],
        rows: raw.sweep.map((p) => [formatCount(p.pages), ...sideCells(p.side), formatBand(p.forkNs)]),
        note: `Cold: the first run on freshly populated memory. Warm: medians over ${raw.repeats} measured runs after ${raw.warmup} warm-up run.${raw.sweepThp === 'always' ? ' THP (run --thp always): each region is 2 MiB aligned with MADV_HUGEPAGE; a child\'s first write into a huge page splits its PMD and copies 4 KiB.' : ''}`,
      },
      {
        title: 'Variants',
        head: ['variant', 'region', 'written', 'cold p50', 'warm p50 (min–max)', 'warm p99', 'faults', 'THP backing'],
        rows: raw.variants.map((v) => [v.label, `${formatCount(v.regionPages)} pages`, formatCount(v.side.written), ...sideCells(v.side), v.thp === 'always' ? `${(v.hugeBytes / 2 ** 20).toFixed(0)} MiB huge` : '-']),
      },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 1,
  name: 'fork-write-latency',
  title: 'Fork-write latency',
  claim:
    'A copy-on-write fault costs about the same per page however many pages are written: the warm median per-page latency varies less than 2x from 64 to 65,536 pages written.',
  short: 'per-page COW cost is flat in pages written',
  measures:
    'Per-page latency of the store that breaks COW after a real fork (clock_gettime around each store, in native code), against pages written (1 to 65,536, log sweep), pattern (seq, rand, stride), page size (4 KiB, THP) and writer (child, parent); the first run is reported as cold, the rest as a warm median with a min-max band, plus the distribution (CDF) of one cold and one warm run.',
  rule: RULE,
  requirements: { minMemoryBytes: 16 * 2 ** 20, measuresTime: true },
  budgetMs: { full: 45_000, quick: 10_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
