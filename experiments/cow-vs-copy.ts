/**
 * Experiment 4: copy-on-write against copying the whole region up front. COW pays for the
 * fork and then per page written; an eager copy pays for every page at once. Where do they
 * cross?
 */
import { z } from 'zod';

import { forkWrite, type ForkWriteResult } from '../src/forkwrite/forkWrite.js';
import { Mapping } from '../src/memory/mapping.js';
import { timeEagerCopy } from '../src/probes/copy.js';
import { formatBytes, formatCount, formatNs } from '../src/report/format.js';
import { BandSchema } from '../src/suite/schema.js';
import { bandOf, overlaps, pointBand, toMs } from '../src/suite/measure.js';
import { formatBand, formatPercent } from '../src/suite/present.js';
import { sized, Steps } from '../src/suite/steps.js';
import { describeDisagreements, predictForkWrites, predictionTable, PredictionSchema } from '../src/suite/predict.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const RULE =
  'Confirmed when fork + writing the smallest fraction costs less than the eager copy, with min-max bands that do not overlap (COW wins below the crossover); ' +
  'refuted when the eager copy is cheaper even then; not measurable when the bands overlap. The crossover is where the COW total reaches the eager copy, interpolated between measured fractions.';
const REGION_PAGES = { full: 16384, quick: 4096 };
const FRACTIONS = { full: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1], quick: [0.01, 0.1, 0.5, 1] };
const RUNS = { full: { warmup: 1, repeats: 5 }, quick: { warmup: 1, repeats: 2 } };

const CowPointSchema = z.object({
  fraction: z.number(),
  written: z.number().int(),
  /** First run (fresh memory): fork() + the sum of the timed stores, ns. */
  coldNs: z.number(),
  /** Measured runs: fork() + the sum of the timed stores, ns. */
  totalNs: BandSchema,
  forkNs: BandSchema,
});

const RawSchema = z.object({
  pages: z.number().int(),
  pageSize: z.number().int(),
  /** memcpy of the whole region into a freshly mapped destination (allocation included):
   *  first run apart, then the measured runs. */
  eagerFresh: z.object({ coldNs: z.number(), ns: BandSchema }),
  /** The same into a destination populated beforehand: the copy alone. */
  eagerWarmDest: z.object({ ns: BandSchema }),
  cow: z.array(CowPointSchema),
  /** The simulator's run of the smallest and largest fractions' traces (absent in results
   *  written before). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

function eagerCopy(ctx: RunContext, pages: number, runs: { warmup: number; repeats: number }) {
  const m = Mapping.create({ pages, thp: 'never' });
  try {
    m.touch('write');
    const fresh: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < runs.warmup + runs.repeats; i++) {
      ctx.signal.throwIfAborted();
      fresh.push(timeEagerCopy({ source: m, destination: 'fresh' }).ns);
      warm.push(timeEagerCopy({ source: m, destination: 'populated' }).ns);
    }
    return {
      eagerFresh: { coldNs: fresh[0]!, ns: bandOf(fresh.slice(runs.warmup)) },
      eagerWarmDest: { ns: bandOf(warm.slice(runs.warmup)) },
    };
  } finally {
    m.unmap();
  }
}

async function run(ctx: RunContext): Promise<Raw> {
  const ps = ctx.env.pageSize;
  const pages = Math.floor(ctx.clamp(sized(ctx, REGION_PAGES) * ps * 2, 'region (and its copy)') / ps / 2);
  const fractions = sized(ctx, FRACTIONS);
  const runs = sized(ctx, RUNS);
  const steps = new Steps(ctx, fractions.length + 1);
  steps.next('eager copy');
  const raw: Raw = { pages, pageSize: ps, ...eagerCopy(ctx, pages, runs), cow: [] };
  steps.keep(raw);
  const results: { result: ForkWriteResult; key: string; label: string }[] = [];
  await steps.sweep(fractions, raw, {
    detail: (fraction) => `COW, ${formatPercent(fraction, 1)} written`,
    measure: async (fraction) => {
      const { point, result } = await cowPoint(pages, fraction, runs);
      raw.cow.push(point);
      results.push({ result, key: `cow@${formatPercent(point.fraction, 1)}`, label: `${formatPercent(point.fraction, 1)} written` });
    },
  });
  raw.predicted = await predictForkWrites(ctx.env, results.length > 1 ? [results[0]!, results.at(-1)!] : results);
  return raw;
}

/** fork() + the timed writes of `fraction` of the pages (random), over the runs. */
async function cowPoint(
  pages: number,
  fraction: number,
  runs: { warmup: number; repeats: number },
): Promise<{ point: Raw['cow'][number]; result: ForkWriteResult }> {
  const written = Math.max(1, Math.round(fraction * pages));
  const r = await forkWrite({ pages, pattern: 'rand', count: written, ...runs });
  const total = (run: (typeof r.runs)[number]) => run.forkNs + run.child!.latencyNs.reduce((a, b) => a + b, 0);
  const measured = r.runs.filter((x) => !x.warmup);
  const point = {
    fraction: written / pages,
    written,
    coldNs: total(r.runs[0]!),
    totalNs: bandOf(measured.map(total)),
    forkNs: bandOf(measured.map((x) => x.forkNs)),
  };
  return { point, result: r };
}

/** The fraction where COW's total reaches the eager copy (linear between measured points);
 *  null when COW stays cheaper up to the last point, or is never cheaper. */
export function crossover(cow: { fraction: number; totalNs: { median: number } }[], eagerNs: number): number | null {
  for (let i = 1; i < cow.length; i++) {
    const a = cow[i - 1]!;
    const b = cow[i]!;
    if (a.totalNs.median < eagerNs && b.totalNs.median >= eagerNs) {
      const t = (eagerNs - a.totalNs.median) / (b.totalNs.median - a.totalNs.median);
      return a.fraction + t * (b.fraction - a.fraction);
    }
  }
  return null;
}

function verdict(raw: Raw) {
  const eager = raw.eagerFresh.ns;
  const first = raw.cow[0];
  const last = raw.cow.at(-1);
  const metrics: Metric[] = [
    { key: 'eager-copy', label: `eager copy of ${formatBytes(raw.pages * raw.pageSize)} (fresh destination)`, unit: 'ns', value: eager },
    ...raw.cow.map((p) => ({ key: `cow@${formatPercent(p.fraction, 1)}`, label: `fork + writes, ${formatPercent(p.fraction, 1)} of pages`, unit: 'ns', value: p.totalNs })),
  ];
  if (!first || !last) return { verdict: 'not-measurable' as const, figure: 'no COW point measured', reason: 'No COW point was measured.', metrics };
  const x = crossover(raw.cow, eager.median);
  if (x !== null) metrics.push({ key: 'crossover', label: 'crossover: fraction of pages written', unit: 'percent', value: pointBand(x * 100), timed: true }); // where two times cross
  const region = formatBytes(raw.pages * raw.pageSize);
  const where =
    x !== null
      ? `crossover at ${formatPercent(x)} of pages written`
      : last.totalNs.median < eager.median
        ? `no crossover: COW is cheaper up to ${formatPercent(last.fraction)} written`
        : 'COW never cheaper';
  const figure = `${where} (${region} region: eager copy ${formatNs(eager.median)}; COW ${formatNs(first.totalNs.median)} at ${formatPercent(first.fraction, 1)}, ${formatNs(last.totalNs.median)} at ${formatPercent(last.fraction)})`;
  if (overlaps(first.totalNs, eager)) {
    return { verdict: 'not-measurable' as const, figure, reason: `The smallest fraction's band (${formatBand(first.totalNs)}) and the eager copy's (${formatBand(eager)}) overlap: the order cannot be told from noise.`, metrics };
  }
  const wins = first.totalNs.max < eager.min;
  return {
    verdict: wins ? ('confirmed' as const) : ('refuted' as const),
    figure,
    reason: `Measured: COW ${formatBand(first.totalNs)} at ${formatPercent(first.fraction, 1)} against eager ${formatBand(eager)}; ${where}.` +
      (wins ? '' : ' The eager copy was cheaper even for the smallest fraction.') +
      describeDisagreements(raw.predicted),
    metrics,
  };
}

function present(raw: Raw) {
  const pct = (f: number) => f * 100;
  const flat = (name: string, ns: number, dashed = false) => ({
    name,
    dashed,
    points: raw.cow.map((p) => ({ x: pct(p.fraction), y: toMs(ns) })),
  });
  return {
    charts: [
      {
        kind: 'line' as const,
        title: `Copy-on-write against copying ${formatBytes(raw.pages * raw.pageSize)} up front`,
        x: { label: 'pages written after the fork', unit: '% of the region' },
        y: { label: 'total cost', unit: 'ms' },
        series: [
          { name: 'COW: fork() + timed writes (median, min-max)', points: raw.cow.map((p) => ({ x: pct(p.fraction), y: toMs(p.totalNs.median), lo: toMs(p.totalNs.min), hi: toMs(p.totalNs.max) })) },
          flat('eager copy, fresh destination (allocation + memcpy)', raw.eagerFresh.ns.median),
          flat('eager copy, populated destination (memcpy only)', raw.eagerWarmDest.ns.median, true),
        ],
      },
    ],
    tables: [
      {
        title: 'COW: fork + writes of a fraction of the region (random pages)',
        head: ['written', 'pages', 'cold total', 'warm total (min–max)', 'of which fork()'],
        rows: raw.cow.map((p) => [formatPercent(p.fraction, 1), formatCount(p.written), formatNs(p.coldNs), formatBand(p.totalNs), formatBand(p.forkNs)]),
      },
      {
        title: 'Eager copy of the whole region',
        head: ['destination', 'cold', 'warm (min–max)'],
        rows: [
          ['freshly mapped (allocation + copy)', formatNs(raw.eagerFresh.coldNs), formatBand(raw.eagerFresh.ns)],
          ['populated beforehand (copy only)', '-', formatBand(raw.eagerWarmDest.ns)],
        ],
        note: 'The eager copy is one memcpy in native code, timed with clock_gettime; a fork without COW would also allocate every page, so the fresh destination is the fair comparison.',
      },
      ...(raw.predicted ? [predictionTable(raw.predicted, 'COW side (smallest and largest fraction), measured against predicted')] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 4,
  name: 'cow-vs-copy',
  title: 'COW against eager copy',
  claim:
    'Copy-on-write is cheaper than copying the whole region up front as long as the process writes less than some fraction of its pages (the crossover); beyond it, the eager copy wins.',
  short: 'COW wins below a crossover fraction written',
  measures:
    'Total cost of fork() plus the timed COW writes of a fraction f of a 64 MiB region (random pages, f from 0.1 % to 100 %) against one memcpy of the whole region into freshly mapped memory (and into populated memory), timed in native code; the crossover fraction by interpolation.',
  rule: RULE,
  requirements: { minMemoryBytes: 16 * 2 ** 20, measuresTime: true },
  budgetMs: { full: 20_000, quick: 5_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
