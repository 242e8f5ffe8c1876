/**
 * Experiment 8: a COW write into a shared transparent huge page. Since Linux 5.8 the kernel
 * splits the PMD and copies only the 4 KiB page written; the other 511 pages stay shared.
 * What does the first write cost, and what do later writes into the split page cost?
 */
import { z } from 'zod';

import { forkWrite, type ForkWriteResult } from '../src/forkwrite/forkWrite.js';
import { formatBytes, formatCount, formatNs } from '../src/report/format.js';
import { summarize } from '../src/stats/summary.js';
import { bandOf, toUs } from '../src/suite/measure.js';
import { formatBand } from '../src/suite/present.js';
import { sized, Steps } from '../src/suite/steps.js';
import { describeDisagreements, predictForkWrites, predictionTable, PredictionSchema } from '../src/suite/predict.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const HUGE_PAGES = { full: 8, quick: 4 };
const RULE =
  'Confirmed when every write into a shared huge page faults once, copies exactly that 4 KiB page (its PFN changes, or without root it becomes exclusive), ' +
  'thp_split_pmd grows by at least one per write, and every page not written stays shared (same PFN) in the writer; refuted otherwise. ' +
  'Not measurable when THP is disabled or the region got no huge pages.';
const RUNS = { full: { warmup: 1, repeats: 3 }, quick: { warmup: 1, repeats: 2 } };

const SplitRunSchema = z.object({
  warmup: z.boolean(),
  written: z.number().int(),
  faults: z.number(),
  /** System-wide /proc/vmstat thp_split_pmd delta around the child's writes (null: no counter). */
  thpSplitPmd: z.number().nullable(),
  /** Written pages whose PFN changed in the child (null without PFNs). */
  pfnChanged: z.number().nullable(),
  exclusiveAfter: z.number(),
  /** Pages not written that the child still shares after its writes. */
  unwrittenShared: z.number(),
  p50Ns: z.number(),
});

const SeqRunSchema = z.object({
  warmup: z.boolean(),
  /** p50 of the first write into each huge page (split + 4 KiB copy). */
  firstP50Ns: z.number(),
  /** p50 and p99 of the later writes into the split huge pages (4 KiB COW each). */
  laterP50Ns: z.number(),
  laterP99Ns: z.number(),
  faults: z.number(),
});

const RawSchema = z.object({
  pages: z.number().int(),
  pageSize: z.number().int(),
  pagesPerHuge: z.number().int(),
  pfnVisible: z.boolean(),
  /** AnonHugePages of the region before the first fork. */
  hugeBytes: z.number(),
  /** The child writes one 4 KiB page per huge page (stride). */
  split: z.array(SplitRunSchema),
  /** The child writes every page in order: the first write per huge page splits it. */
  seq: z.array(SeqRunSchema),
  /** The same sequential writes on 4 KiB pages (no THP), per run p50. */
  base4k: z.array(z.object({ warmup: z.boolean(), p50Ns: z.number() })),
  /** The simulator's run of the same traces (absent in results written before). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

function seqRuns(r: ForkWriteResult, perHuge: number) {
  return r.runs.map((run) => {
    const lat = run.child!.latencyNs;
    const first = lat.filter((_, i) => i % perHuge === 0);
    const later = lat.filter((_, i) => i % perHuge !== 0);
    const l = summarize(later)!;
    return { warmup: run.warmup, firstP50Ns: summarize(first)!.p50, laterP50Ns: l.p50, laterP99Ns: l.p99, faults: run.child!.faults };
  });
}

async function run(ctx: RunContext): Promise<Raw> {
  const perHuge = (ctx.env.hugePageSize ?? 2 * 2 ** 20) / ctx.env.pageSize;
  const pages = sized(ctx, HUGE_PAGES) * perHuge;
  const runs = sized(ctx, RUNS);
  const steps = new Steps(ctx, 3);
  steps.next('one write per huge page');
  const split = await forkWrite({ pages, thp: 'always', pattern: `stride:${perHuge}`, ...runs });
  const raw: Raw = {
    pages,
    pageSize: ctx.env.pageSize,
    pagesPerHuge: perHuge,
    pfnVisible: split.pfnVisible,
    hugeBytes: split.thp.hugeBytes,
    split: split.runs.map((x) => ({
      warmup: x.warmup,
      written: x.child!.written,
      faults: x.child!.faults,
      thpSplitPmd: x.child!.vmstat?.thp_split_pmd ?? null,
      pfnChanged: x.child!.pfnChanged,
      exclusiveAfter: x.child!.exclusiveAfter,
      unwrittenShared: x.verify.unwrittenShared,
      p50Ns: x.child!.perPageNs!.p50,
    })),
    seq: [],
    base4k: [],
  };
  steps.keep(raw);
  steps.next('every page, THP');
  const seq = await forkWrite({ pages, thp: 'always', pattern: 'seq', ...runs });
  raw.seq = seqRuns(seq, perHuge);
  steps.keep(raw);
  steps.next('every page, 4 KiB');
  const base = await forkWrite({ pages, thp: 'never', pattern: 'seq', ...runs });
  raw.base4k = base.runs.map((x) => ({ warmup: x.warmup, p50Ns: x.child!.perPageNs!.p50 }));
  raw.predicted = await predictForkWrites(ctx.env, [
    { result: split, key: 'split', label: 'one write per huge page' },
    { result: seq, key: 'seq', label: 'every page, THP' },
    { result: base, key: '4k', label: 'every page, 4 KiB' },
  ]);
  return raw;
}

function verdict(raw: Raw) {
  const measured = raw.split.filter((r) => !r.warmup);
  const seq = raw.seq.filter((r) => !r.warmup);
  const base = raw.base4k.filter((r) => !r.warmup);
  const first = bandOf(seq.map((r) => r.firstP50Ns));
  const later = bandOf(seq.map((r) => r.laterP50Ns));
  const b4k = bandOf(base.map((r) => r.p50Ns));
  const metrics: Metric[] = [];
  if (seq.length) {
    metrics.push({ key: 'first-write-p50', label: 'first write into a shared huge page (split + copy), p50', unit: 'ns', value: first });
    metrics.push({ key: 'later-write-p50', label: 'later writes into the split huge page, p50', unit: 'ns', value: later });
  }
  if (base.length) metrics.push({ key: '4k-write-p50', label: 'COW write on 4 KiB pages (no THP), p50', unit: 'ns', value: b4k });
  if (raw.hugeBytes === 0) {
    return {
      verdict: 'not-measurable' as const,
      figure: 'no huge pages backed the region',
      reason: `The region (MADV_HUGEPAGE, 2 MiB aligned) had no AnonHugePages before the fork: the kernel could not allocate huge pages (fragmented memory, or THP defrag settings).`,
      metrics,
    };
  }
  const last = measured.at(-1) ?? raw.split.at(-1)!;
  const written = last.written;
  const problems: string[] = [];
  for (const r of measured) {
    if (r.faults < r.written) problems.push(`${r.faults} faults for ${r.written} writes`);
    const copied = r.pfnChanged ?? r.exclusiveAfter;
    if (copied !== r.written) problems.push(`${copied} of ${r.written} written pages ${r.pfnChanged === null ? 'became exclusive' : 'changed PFN'}`);
    if (r.thpSplitPmd !== null && r.thpSplitPmd < r.written) problems.push(`thp_split_pmd grew by ${r.thpSplitPmd} for ${r.written} writes`);
    if (r.unwrittenShared !== raw.pages - r.written) problems.push(`${formatCount(raw.pages - r.written - r.unwrittenShared)} unwritten pages were no longer shared`);
  }
  const huge = raw.hugeBytes < raw.pages * raw.pageSize ? ` (only ${formatBytes(raw.hugeBytes)} of the region was huge)` : '';
  const figure =
    `${written} writes into ${written} shared huge pages: ${last.thpSplitPmd ?? 'n/a'} PMD splits, ${last.pfnChanged ?? last.exclusiveAfter} pages copied (4 KiB each), ` +
    `${formatCount(last.unwrittenShared)} neighbours still shared; first write ${formatNs(first.median)}, later writes ${formatNs(later.median)} (4 KiB pages: ${formatNs(b4k.median)})${huge}`;
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure,
    reason: `${problems.length === 0 ? `Held in all ${measured.length} measured runs${raw.pfnVisible ? ' (checked by PFN)' : ' (without root: by the exclusive bit)'}.` : `Not so here: ${[...new Set(problems)].join('; ')}.`}${describeDisagreements(raw.predicted)}`,
    metrics,
  };
}

function present(raw: Raw) {
  const seq = raw.seq.filter((r) => !r.warmup);
  const base = raw.base4k.filter((r) => !r.warmup);
  const coldSeq = raw.seq.find((r) => r.warmup) ?? raw.seq[0];
  const coldBase = raw.base4k.find((r) => r.warmup) ?? raw.base4k[0];
  const cats = ['first write into a shared huge page (PMD split + 4 KiB copy)', 'later writes into the split huge page', 'COW write on 4 KiB pages (no THP)'];
  const bands = [bandOf(seq.map((r) => r.firstP50Ns)), bandOf(seq.map((r) => r.laterP50Ns)), bandOf(base.map((r) => r.p50Ns))];
  const cold = [coldSeq?.firstP50Ns ?? null, coldSeq?.laterP50Ns ?? null, coldBase?.p50Ns ?? null];
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: `COW writes into transparent huge pages (${raw.pages / raw.pagesPerHuge} huge pages, child writes every page in order)`,
        categories: cats,
        y: { label: 'latency per write, p50', unit: 'µs', scale: 'log' as const },
        series: [
          { name: 'cold (first run)', values: cold.map((v) => (v === null ? null : toUs(v))) },
          { name: 'warm (median, min-max)', values: bands.map((b) => toUs(b.median)), lo: bands.map((b) => toUs(b.min)), hi: bands.map((b) => toUs(b.max)) },
        ],
      },
    ],
    tables: [
      {
        title: 'One write per huge page (stride): what the page tables say',
        head: ['run', 'writes', 'faults', 'thp_split_pmd', raw.pfnVisible ? 'PFN changed' : 'exclusive after', 'unwritten still shared', 'p50'],
        rows: raw.split.map((r, i) => [
          r.warmup ? `${i + 1} (cold)` : String(i + 1),
          formatCount(r.written),
          formatCount(r.faults),
          r.thpSplitPmd === null ? 'n/a' : formatCount(r.thpSplitPmd),
          formatCount(r.pfnChanged ?? r.exclusiveAfter),
          `${formatCount(r.unwrittenShared)} of ${formatCount(raw.pages - r.written)}`,
          formatNs(r.p50Ns),
        ]),
        note: `Region: ${formatCount(raw.pages)} pages, ${formatBytes(raw.hugeBytes)} backed by huge pages before the fork. thp_split_pmd is system-wide (/proc/vmstat), so it can count other processes' splits too.`,
      },
      {
        title: 'Every page in order, THP and 4 KiB',
        head: ['', 'cold p50', 'warm p50 (min–max)'],
        rows: cats.map((c, i) => [c, formatNs(cold[i] ?? Number.NaN), formatBand(bands[i]!)]),
      },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 8,
  name: 'thp-cow',
  title: 'THP and COW',
  claim:
    'A write into a transparent huge page shared after fork copies only the 4 KiB page written and splits the huge mapping (thp_split_pmd grows); the other 511 pages keep their frames, and later writes into the split page cost a 4 KiB COW fault each.',
  short: 'a THP COW write copies 4 KiB and splits the PMD',
  measures:
    'A 2 MiB-aligned MADV_HUGEPAGE region populated as huge pages is forked; the child writes one page per huge page (faults, thp_split_pmd, PFNs of written and unwritten pages), then every page in order (first write per huge page against later writes), against the same writes on 4 KiB pages.',
  rule: RULE,
  requirements: { thp: true, minMemoryBytes: 32 * 2 ** 20 },
  budgetMs: { full: 10_000, quick: 4_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
