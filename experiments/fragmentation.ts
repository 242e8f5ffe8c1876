/**
 * Experiment 23: COW copies fragment physical memory. A transparent huge page is one physically
 * contiguous, aligned 2 MiB frame. After a fork the child's writes copy it 4 KiB at a time, and
 * each copy lands wherever the page allocator has a free frame: the copy of a huge page is no
 * longer one contiguous block, so it can only be mapped by 512 PTEs (until khugepaged collapses
 * it again, which copies once more). Measured by PFN on a trace of the kernel engine (root):
 * the original's frames against the copies', as runs of consecutive PFNs and as huge-page
 * candidates (512 ascending PFNs from an aligned one); and /proc/buddyinfo before and after, for
 * the free blocks the copies took. The simulator predicts the copies (not where they land).
 */
import { readFileSync } from 'node:fs';

import { z } from 'zod';

import type { PagemapEntries } from '../src/pagemap/pagemap.js';
import { formatCount } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { predictionTable, PredictionSchema, profileName, simulate, stepCounts } from '../src/suite/predict.js';
import { sized, Steps } from '../src/suite/steps.js';
import { buildTrace, kernelEngine, regionSpec } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const HUGE_PAGES = { full: 16, quick: 4 };
const RULE =
  "Confirmed when every huge page of the parent's region was one contiguous aligned frame (512 ascending PFNs) before the fork, and after the child wrote every page its copies form none (no 2 MiB run of the child's pages is physically contiguous and aligned) and at least 8x as many PFN runs as the originals; " +
  'refuted otherwise; not measurable without root (PFNs), or when the region got no huge pages.';

const SideSchema = z.object({
  /** Maximal runs of consecutive ascending PFNs, in page order. */
  runs: z.number().int(),
  /** Longest such run, in pages. */
  longestRun: z.number().int(),
  /** Huge pages of the region whose 512 pages are one aligned contiguous frame. */
  hugeCandidates: z.number().int(),
});
const RawSchema = z.object({
  pages: z.number().int(),
  hugePages: z.number().int(),
  original: SideSchema,
  copies: SideSchema,
  /** Free blocks of order >= 9 (2 MiB and up), summed over zones, before and after the copies. */
  freeHugeBlocksBefore: z.number().int(),
  freeHugeBlocksAfter: z.number().int(),
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

const PER_HUGE = 512;

/** Free blocks of order 9 and above in /proc/buddyinfo (all nodes and zones). */
function freeHugeBlocks(): number {
  let n = 0;
  for (const line of readFileSync('/proc/buddyinfo', 'utf8').trim().split('\n')) {
    const counts = line.replace(/^.*zone\s+\S+\s+/, '').trim().split(/\s+/).map(Number);
    for (let order = 9; order < counts.length; order++) n += counts[order]! * 2 ** (order - 9);
  }
  return n;
}

/** Runs of consecutive ascending PFNs in page order, the longest, and the aligned huge frames. */
function side(e: PagemapEntries): Raw['original'] {
  let runs = 0;
  let longest = 0;
  let len = 0;
  for (let i = 0; i < e.length; i++) {
    const next = i > 0 && e.present[i] && e.present[i - 1] && e.pfn[i] === e.pfn[i - 1]! + 1;
    if (next) len++;
    else {
      if (len > 0) runs++;
      len = e.present[i] ? 1 : 0;
    }
    longest = Math.max(longest, len);
  }
  if (len > 0) runs++;
  let hugeCandidates = 0;
  for (let h = 0; h + PER_HUGE <= e.length; h += PER_HUGE) {
    let ok = e.present[h] === 1 && e.pfn[h]! % PER_HUGE === 0;
    for (let i = h + 1; ok && i < h + PER_HUGE; i++) ok = e.present[i] === 1 && e.pfn[i] === e.pfn[i - 1]! + 1;
    if (ok) hugeCandidates++;
  }
  return { runs, longestRun: longest, hugeCandidates };
}

async function run(ctx: RunContext): Promise<Raw> {
  const hugePages = sized(ctx, HUGE_PAGES);
  const pages = hugePages * PER_HUGE;
  const all = { start: 0, end: pages };
  const trace = buildTrace(
    'fragmentation',
    'p0 holds a THP region; it forks c1, which writes every page (a 4 KiB copy each), then exits.',
    [regionSpec({ id: 'm', pages, thp: true })],
    [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'm', pages: all },
      { op: 'exit', proc: 'c1' },
    ],
  );
  const steps = new Steps(ctx, 1);
  steps.next('the child copies a THP region');
  let before = 0;
  let after = 0;
  const r = await kernelEngine().runDetailed(trace, {
    onLive: (l) => {
      if (l.done === 1) before = freeHugeBlocks();
      if (l.done === 2) after = freeHugeBlocks();
    },
  });
  const original = r.details[0]!.pagemap.p0!.m!;
  const copies = r.details[2]!.pagemap.c1!.m!;
  const sim = await simulate(trace);
  const raw: Raw = {
    pages,
    hugePages,
    original: side(original),
    copies: side(copies),
    freeHugeBlocksBefore: before,
    freeHugeBlocksAfter: after,
  };
  if (sim) {
    raw.predicted = {
      profile: profileName(ctx.env),
      counts: stepCounts('write', "the child's writes", 'm', r.observations.steps[2]!, sim.steps[2]!).filter((c) => !c.key.endsWith('.shared')),
    };
  }
  return raw;
}

function verdict(raw: Raw) {
  const o = raw.original;
  const c = raw.copies;
  const metrics: Metric[] = [
    { key: 'original-runs', label: "PFN runs of the parent's THP region", unit: 'count', value: pointBand(o.runs) },
    // How many runs the copies form, and the longest, follow the free lists of the moment (1,410
    // to 2,022 runs, longest 4 to 20 pages, in four quick runs an hour apart): compare sees the
    // longest run only beyond a huge page, the one run the rule counts, and the count it counts.
    { key: 'copy-contiguous', label: "child's 2 MiB ranges copied into one contiguous aligned frame", unit: 'count', value: pointBand(c.hugeCandidates) },
    { key: 'copy-longest-run', label: "longest PFN run of the child's copies", unit: 'pages', value: pointBand(c.longestRun), resolution: raw.pages / raw.hugePages },
  ];
  if (o.hugeCandidates === 0) {
    return { verdict: 'not-measurable' as const, figure: 'the region got no huge pages', reason: `None of the ${raw.hugePages} huge pages of the region was one contiguous frame before the fork: the kernel gave it no huge pages here.`, metrics };
  }
  const problems: string[] = [];
  if (o.hugeCandidates !== raw.hugePages) problems.push(`only ${o.hugeCandidates} of ${raw.hugePages} original huge pages were contiguous`);
  if (c.hugeCandidates > 0) problems.push(`${c.hugeCandidates} of the child's 2 MiB ranges got a contiguous aligned frame`);
  if (c.runs < 8 * o.runs) problems.push(`the copies form ${formatCount(c.runs)} PFN runs against ${formatCount(o.runs)}: less than 8x`);
  const took = raw.freeHugeBlocksBefore - raw.freeHugeBlocksAfter;
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure:
      `${raw.hugePages} huge pages (${formatCount(o.runs)} PFN runs, ${o.hugeCandidates} contiguous) copied by the child into ${formatCount(c.runs)} PFN runs (longest ${formatCount(c.longestRun)} pages, ${c.hugeCandidates} contiguous); ` +
      `free 2 MiB blocks ${took >= 0 ? `-${formatCount(took)}` : `+${formatCount(-took)}`}`,
    reason: problems.length === 0 ? 'Held: the copies of the huge pages are scattered 4 KiB frames.' : `Not so here: ${problems.join('; ')}.`,
    metrics,
  };
}

function present(raw: Raw) {
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: `Physical contiguity of ${raw.hugePages} huge pages before the fork and of the child's copies`,
        categories: ['PFN runs', 'longest run (pages)', 'contiguous aligned 2 MiB frames'],
        y: { label: 'count', unit: 'count', scale: 'log' as const },
        series: [
          { name: "parent's original (THP)", values: [raw.original.runs, raw.original.longestRun, raw.original.hugeCandidates || null] },
          { name: "child's copies", values: [raw.copies.runs, raw.copies.longestRun, raw.copies.hugeCandidates || null] },
        ],
      },
    ],
    tables: [
      {
        title: 'Frames of the region',
        head: ['', 'PFN runs', 'longest run', 'contiguous aligned huge frames'],
        rows: [
          ["parent's original", formatCount(raw.original.runs), formatCount(raw.original.longestRun), formatCount(raw.original.hugeCandidates)],
          ["child's copies", formatCount(raw.copies.runs), formatCount(raw.copies.longestRun), formatCount(raw.copies.hugeCandidates)],
        ],
        note: `Free blocks of order 9 and above (2 MiB units, /proc/buddyinfo): ${formatCount(raw.freeHugeBlocksBefore)} after the fork, ${formatCount(raw.freeHugeBlocksAfter)} after the copies (system-wide). The simulator predicts the copies, not where they land.`,
      },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 23,
  name: 'fragmentation',
  title: 'COW copies fragment physical memory',
  claim:
    "A child's COW copies of a transparent huge page are 4 KiB frames wherever the allocator has them: the 2 MiB the parent holds as one contiguous frame becomes many short PFN runs in the child, none of which can be mapped huge.",
  short: 'the copies of a huge page are scattered',
  measures:
    "A THP region on the kernel engine: PFNs of the parent's pages before the fork and of the child's after it wrote every page (runs of consecutive PFNs, aligned contiguous 2 MiB frames), free 2 MiB blocks from /proc/buddyinfo around the copies, and the simulator's copies for the same trace.",
  rule: RULE,
  requirements: { root: true, thp: true, engines: ['kernel', 'sim'], minMemoryBytes: 16 * 2 ** 20 },
  budgetMs: { full: 3_000, quick: 2_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
