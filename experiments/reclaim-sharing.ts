/**
 * Experiment 25: page replacement respects sharing. MADV_PAGEOUT asks the kernel to reclaim
 * pages now; it skips every folio mapped by more than one process, so pages a child still
 * shares after fork stay resident. Once the child has exited the same call swaps them out
 * (pagemap bit 62), and a write to one of them swaps it back in and decides COW on the spot:
 * the page is the writer's alone now, so it is reused in place (no copy). A trace on the kernel
 * engine, checked by content (every page read back holds what was written before it went to
 * swap) and against the simulator's swap model. Needs swap: every guest cowlab boots has a zram
 * swap of its own; a host without swap is not measurable (cowlab never adds swap there).
 */
import { z } from 'zod';

import { countRegion } from '../src/engines/observations.js';
import { kernelWriteValue, type KernelAccessDetail } from '../src/engines/kernel/engine.js';
import { formatCount } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { disagreements, predictionTable, PredictionSchema, profileName, simulate, stepCounts } from '../src/suite/predict.js';
import { sized, Steps } from '../src/suite/steps.js';
import { buildTrace, kernelEngine, regionSpec } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const PAGES = { full: 4096, quick: 1024 };
const RULE =
  "Confirmed when MADV_PAGEOUT swaps out none of the pages the parent still shares with its child but every page the parent alone maps (the ones the child had copied), then every page once the child has exited; when the parent's writes to half of them are swap-ins with no copy, and every page read back holds what it held before (content); " +
  "refuted otherwise; not measurable without swap (a host is measured only where it already has swap: run with --kernel, whose guests have a zram swap).";

const StageSchema = z.object({ present: z.number().int(), swapped: z.number().int(), shared: z.number().int().nullable() });
const RawSchema = z.object({
  pages: z.number().int(),
  /** Pages the child wrote (copied) before the first pageout: p0's own, so reclaimable. */
  childWrote: z.number().int(),
  swap: z.string(),
  afterForkPageout: StageSchema,
  afterExitPageout: StageSchema,
  write: z.object({ pages: z.number().int(), swapIns: z.number().nullable(), copies: z.number().nullable(), reuses: z.number().nullable() }),
  /** Pages whose first word read back differs from what was stored there (0 expected). */
  contentMismatches: z.number().int(),
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

function stage(obs: { processes: Record<string, Record<string, Parameters<typeof countRegion>[0]>> }): Raw['afterForkPageout'] {
  const c = countRegion(obs.processes.p0!.m!);
  return { present: c.present, swapped: c.swapped ?? 0, shared: c.shared };
}

/** Pages whose first word read back (`read`) is not what the last store there put (`lastWrite(page)`: its step, -1 for the setup). */
function mismatches(read: KernelAccessDetail, lastWrite: (page: number) => number): number {
  let n = 0;
  read.pages.forEach((p, k) => {
    if (read.values?.[k] !== kernelWriteValue(lastWrite(p), p)) n++;
  });
  return n;
}

async function run(ctx: RunContext): Promise<Raw> {
  const pages = sized(ctx, PAGES);
  const half = pages >> 1;
  const childWrote = pages >> 3;
  const trace = buildTrace(
    'reclaim-sharing',
    'p0 forks c1, which copies the last eighth; p0 pages the region out (shared pages stay), c1 exits, p0 pages it out again (all go), writes the first half back and reads everything.',
    [regionSpec({ id: 'm', pages })],
    [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'm', pages: { start: pages - childWrote, end: pages } },
      { op: 'pageout', proc: 'p0', region: 'm' },
      { op: 'exit', proc: 'c1' },
      { op: 'pageout', proc: 'p0', region: 'm' },
      { op: 'write', proc: 'p0', region: 'm', pages: { start: 0, end: half } },
      { op: 'read', proc: 'p0', region: 'm', pages: { start: 0, end: pages } },
    ],
  );
  const steps = new Steps(ctx, 1);
  steps.next('page out while shared, then alone');
  const r = await kernelEngine().runDetailed(trace);
  const obs = r.observations.steps;
  // details[i + 1] is trace step i (details[0]: the setup, which populated every page).
  const read = r.details[7]!.access[0]!;
  const w = obs[6]!.events.m!;
  const raw: Raw = {
    pages,
    childWrote,
    swap: ctx.env.swap?.kind ?? 'none',
    afterForkPageout: stage(obs[3]!),
    afterExitPageout: stage(obs[5]!),
    write: { pages: half, swapIns: w.swapIns ?? null, copies: w.copies, reuses: w.reuses },
    contentMismatches: mismatches(read, (p) => (p < half ? 5 : -1)),
  };
  const sim = await simulate(trace);
  if (sim) {
    raw.predicted = {
      profile: profileName(ctx.env),
      counts: [
        ...stepCounts('pageout-shared', 'pageout while c1 shares', 'm', obs[3]!, sim.steps[3]!),
        ...stepCounts('pageout-alone', 'pageout after c1 exited', 'm', obs[5]!, sim.steps[5]!),
        ...stepCounts('write', "p0's writes to swapped-out pages", 'm', obs[6]!, sim.steps[6]!),
      ],
    };
  }
  return raw;
}

function verdict(raw: Raw) {
  const a = raw.afterForkPageout;
  const b = raw.afterExitPageout;
  const metrics: Metric[] = [
    { key: 'swapped-while-shared', label: 'pages swapped out while the child shares them', unit: 'pages', value: pointBand(a.swapped) },
    { key: 'swapped-after-exit', label: 'pages swapped out after the child exited', unit: 'pages', value: pointBand(b.swapped) },
    { key: 'write-swap-ins', label: "swap-ins of the parent's writes", unit: 'count', value: pointBand(raw.write.swapIns ?? 0) },
  ];
  if (raw.swap === 'none') {
    return {
      verdict: 'not-measurable' as const,
      figure: 'no swap here',
      reason: 'This machine has no swap, so reclaim keeps every anonymous page whoever maps it, and cowlab adds swap only inside a guest it boots: run it with --kernel (e.g. --kernel debian:6.12), whose guests have a zram swap.',
      // Zeros without swap are no measurement of the claim: compare must not weigh them
      // against a kernel with swap (the raw keeps them).
      metrics: [],
    };
  }
  const problems: string[] = [];
  if (a.swapped !== raw.childWrote) problems.push(`while the child lived ${formatCount(a.swapped)} pages went to swap, not the ${formatCount(raw.childWrote)} the parent alone mapped`);
  if (b.swapped !== raw.pages) problems.push(`after the child's exit ${formatCount(b.swapped)} of ${formatCount(raw.pages)} pages went to swap`);
  if (raw.write.swapIns !== raw.write.pages || raw.write.copies !== 0) {
    problems.push(`the ${formatCount(raw.write.pages)} writes were ${formatCount(raw.write.swapIns)} swap-ins and ${formatCount(raw.write.copies)} copies`);
  }
  if (raw.contentMismatches > 0) problems.push(`${formatCount(raw.contentMismatches)} pages read back wrong`);
  const off = disagreements(raw.predicted);
  if (off.length > 0) problems.push(`the simulator predicted otherwise: ${off.map((c) => `${c.what} ${c.predicted} (measured ${c.measured})`).join('; ')}`);
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure:
      `pageout while shared: ${formatCount(a.swapped)} of ${formatCount(raw.pages)} pages swapped (the ${formatCount(raw.childWrote)} not shared); after the sharer exited: ${formatCount(b.swapped)}; ` +
      `${formatCount(raw.write.pages)} writes: ${formatCount(raw.write.swapIns)} swap-ins, ${formatCount(raw.write.copies)} copies; content ${raw.contentMismatches === 0 ? 'intact' : `${raw.contentMismatches} wrong`}`,
    reason: problems.length === 0 ? `Held (${raw.swap} swap): reclaim left every shared page alone and took every page once it was one process's.` : `Not so here: ${problems.join('; ')}.`,
    metrics,
  };
}

function present(raw: Raw) {
  const row = (what: string, s: Raw['afterForkPageout']) => [what, formatCount(s.present), formatCount(s.swapped), formatCount(s.shared)];
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: `MADV_PAGEOUT of ${formatCount(raw.pages)} pages: while a child shares most of them, and after it exited`,
        categories: ['while the child shares them', 'after the child exited'],
        y: { label: 'pages', unit: 'pages' },
        series: [
          { name: 'resident', values: [raw.afterForkPageout.present, raw.afterExitPageout.present] },
          { name: 'swapped out', values: [raw.afterForkPageout.swapped, raw.afterExitPageout.swapped] },
        ],
      },
    ],
    tables: [
      {
        title: "The parent's pages after each pageout",
        head: ['', 'resident', 'swapped out', 'shared'],
        rows: [row('while the child shares them', raw.afterForkPageout), row('after the child exited', raw.afterExitPageout)],
        note: `Swap: ${raw.swap}. The child had copied ${formatCount(raw.childWrote)} pages, which the parent then mapped alone. The parent's writes to ${formatCount(raw.write.pages)} swapped-out pages: ${formatCount(raw.write.swapIns)} swap-ins, ${formatCount(raw.write.copies)} copies, ${formatCount(raw.write.reuses)} reuses (a swap-in is neither).`,
      },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 25,
  name: 'reclaim-sharing',
  title: 'Page replacement respects sharing',
  claim:
    'Reclaim does not swap out a page two processes share after fork: MADV_PAGEOUT leaves it resident. Once the sharer has exited the same call swaps it out, and a write swaps it back in as the writer\'s own page, without a copy.',
  short: 'shared pages stay resident under pageout',
  measures:
    "A trace on the kernel engine: fork, the child copies an eighth of the region, the parent pages the region out, the child exits, the parent pages it out again, writes half back and reads all; pagemap's present and swapped bits after each pageout, the swap-ins and copies of the writes, every page's content read back, and the simulator's swap model for the same trace.",
  rule: RULE,
  requirements: { engines: ['kernel', 'sim'], minMemoryBytes: 32 * 2 ** 20 },
  budgetMs: { full: 3_000, quick: 2_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
