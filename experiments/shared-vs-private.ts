/**
 * Experiment 6: MAP_SHARED against MAP_PRIVATE. fork() never write-protects a shared mapping:
 * parent and child keep one frame per page and each sees the other's stores. A private mapping
 * is copy-on-write: the child's stores copy every page written, and neither side sees the
 * other's bytes. A small matrix of backings (anonymous and memfd, shared and private), each
 * checked by content (the kernel engine's reads return the values stored) and by frames.
 */
import { z } from 'zod';

import { kernelWriteValue, type KernelRunDetailed } from '../src/engines/kernel/engine.js';
import { CowlabError } from '../src/errors.js';
import { formatCount, formatNs } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { describeDisagreements, predictionTable, PredictionSchema, profileName, simulate, type PredictedCount } from '../src/suite/predict.js';
import { accessP50, buildTrace, kernelEngine, regionSpec, stepEvents } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import type { BackingKind, MapKind } from '../src/trace/types.js';

const PAGES = { full: 4096, quick: 1024 };
const BACKINGS: { map: MapKind; backing: BackingKind }[] = [
  { map: 'private', backing: 'anon' },
  { map: 'shared', backing: 'anon' },
  { map: 'private', backing: 'memfd' },
  { map: 'shared', backing: 'memfd' },
];
const RULE =
  "Confirmed when, for every shared backing, the child's stores copy nothing (the region keeps one frame per page, parent and child map the same PFNs as root) and each process reads back every value the other stored, " +
  "while, for every private backing, the child's stores copy every page written (frames double; no PFN shared as root) and each process reads only its own values; refuted otherwise. " +
  'Not measurable when the kernel engine cannot run here, or this machine cannot map a shared or a private backing.';

const EventsSchema = z.object({ copies: z.number().int(), reuses: z.number().int(), zeroFills: z.number().int(), faults: z.number().int() });
const ReadSchema = z.object({
  /** Pages whose value is the other process's last store. */
  seesOther: z.number().int(),
  /** Pages whose value is this process's own last store. */
  seesOwn: z.number().int(),
});

const BackingSchema = z.object({
  map: z.enum(['private', 'shared']),
  backing: z.enum(['anon', 'memfd']),
  pages: z.number().int(),
  childWrite: EventsSchema,
  childWriteP50Ns: z.number(),
  /** Frames of the region after the child's stores (null without root). */
  framesAfterChildWrite: z.number().int().nullable(),
  /** Pages where parent and child map the same PFN after the child's stores (null without root). */
  samePfn: z.number().int().nullable(),
  parentRead: ReadSchema,
  parentWrite: EventsSchema,
  childRead: ReadSchema,
});

const RawSchema = z.object({
  pfnVisible: z.boolean(),
  backings: z.array(BackingSchema),
  /** Backings this machine cannot map (no memfd_create), with the reason. */
  skipped: z.array(z.object({ map: z.enum(['private', 'shared']), backing: z.enum(['anon', 'memfd']), reason: z.string() })),
  /** The simulator's counts for the same traces beside the measured ones, per backing (absent in older results). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;
type Backing = Raw['backings'][number];

const label = (b: { map: string; backing: string }) => `${b.map} ${b.backing === 'anon' ? 'anonymous' : 'memfd'}`;

/** Of the values read at step `readStep`, how many equal what `ownStep` and `otherStep` stored. */
function reads(r: KernelRunDetailed, readStep: number, ownStep: number, otherStep: number) {
  const a = r.details[readStep + 1]!.access[0]!;
  let seesOwn = 0;
  let seesOther = 0;
  a.pages.forEach((page, i) => {
    const v = a.values![i]!;
    if (v === kernelWriteValue(ownStep, page)) seesOwn++;
    else if (v === kernelWriteValue(otherStep, page)) seesOther++;
  });
  return { seesOwn, seesOther };
}

async function measure(map: MapKind, backing: BackingKind, pages: number): Promise<{ measured: Backing; predicted: PredictedCount[] }> {
  const all = { start: 0, end: pages };
  const trace = buildTrace(
    `fork-${map}-${backing}`,
    'p0 writes the region, forks c1; c1 writes every page, p0 reads them, p0 writes every page, c1 reads them.',
    [regionSpec({ id: 'm', pages, map, backing })],
    [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'm', pages: all },
      { op: 'read', proc: 'p0', region: 'm', pages: all },
      { op: 'write', proc: 'p0', region: 'm', pages: all },
      { op: 'read', proc: 'c1', region: 'm', pages: all },
      { op: 'exit', proc: 'c1' },
    ],
  );
  const r = await kernelEngine().runDetailed(trace);
  const obs = r.observations;
  const pfnVisible = obs.unavailable.frames === undefined;
  let samePfn: number | null = null;
  if (pfnVisible) {
    const p = r.details[2]!.pagemap.p0!.m!;
    const c = r.details[2]!.pagemap.c1!.m!;
    samePfn = 0;
    for (let i = 0; i < pages; i++) if (p.present[i] && c.present[i] && p.pfn[i] === c.pfn[i]) samePfn++;
  }
  const measured: Backing = {
    map,
    backing,
    pages,
    childWrite: stepEvents(obs, 1, 'm'),
    childWriteP50Ns: accessP50(r.details[2]!.access[0]),
    framesAfterChildWrite: obs.steps[2]!.frames.m ?? null,
    samePfn,
    // p0's own last store was the setup's (step -1); c1 stored at step 1.
    parentRead: reads(r, 2, -1, 1),
    parentWrite: stepEvents(obs, 3, 'm'),
    // c1's own last store was at step 1; p0 stored at step 3.
    childRead: reads(r, 4, 1, 3),
  };
  const sim = await simulate(trace);
  return { measured, predicted: sim ? predictedCounts(measured, sim.steps) : [] };
}

/** The claim's counts of one backing, measured beside the simulator's for the same trace. */
function predictedCounts(b: Backing, sim: { events: Record<string, { copies: number | null; reuses: number | null }>; frames: Record<string, number | null> }[]): PredictedCount[] {
  const what = label(b);
  const c = (key: string, text: string, measured: number | null, predicted: number | null | undefined): PredictedCount => ({ key: `${b.map}-${b.backing}.${key}`, what: `${what}: ${text}`, measured, predicted: predicted ?? null });
  return [
    c('childWrite.copies', "copies by the child's stores", b.childWrite.copies, sim[2]!.events.m!.copies),
    c('framesAfterChildWrite', "frames after the child's stores", b.framesAfterChildWrite, sim[2]!.frames.m),
    c('parentWrite.copies', "copies by the parent's stores", b.parentWrite.copies, sim[4]!.events.m!.copies),
    c('parentWrite.reuses', "reuses by the parent's stores", b.parentWrite.reuses, sim[4]!.events.m!.reuses),
  ];
}

async function run(ctx: RunContext): Promise<Raw> {
  const pages = sized(ctx, PAGES);
  const raw: Raw = { pfnVisible: true, backings: [], skipped: [] };
  await new Steps(ctx, BACKINGS.length).sweep(BACKINGS, raw, {
    detail: label,
    measure: async (b) => {
      try {
        const { measured: m, predicted } = await measure(b.map, b.backing, pages);
        raw.pfnVisible = m.samePfn !== null;
        raw.backings.push(m);
        if (predicted.length) (raw.predicted ??= { profile: profileName(ctx.env), counts: [] }).counts.push(...predicted);
      } catch (err) {
        // A kernel without memfd_create (or a sandbox that forbids it) cannot map memfd
        // backings; the anonymous ones still answer the question.
        if (b.backing !== 'memfd' || !(err instanceof CowlabError) || err.syscall !== 'memfd_create') throw err;
        raw.skipped.push({ ...b, reason: err.message });
        ctx.note(`${label(b)}: not measurable here: ${err.message}`);
      }
    },
  });
  return raw;
}

function problemsOf(b: Backing): string[] {
  const p: string[] = [];
  const n = b.pages;
  const what = label(b);
  if (b.map === 'shared') {
    if (b.childWrite.copies + b.parentWrite.copies > 0) p.push(`${what}: ${b.childWrite.copies + b.parentWrite.copies} copies`);
    if (b.framesAfterChildWrite !== null && b.framesAfterChildWrite !== n) p.push(`${what}: ${b.framesAfterChildWrite} frames for ${n} pages`);
    if (b.samePfn !== null && b.samePfn !== n) p.push(`${what}: parent and child share only ${b.samePfn} PFNs`);
    if (b.parentRead.seesOther !== n) p.push(`${what}: the parent read ${b.parentRead.seesOther} of the child's ${n} values`);
    if (b.childRead.seesOther !== n) p.push(`${what}: the child read ${b.childRead.seesOther} of the parent's ${n} values`);
  } else {
    if (b.childWrite.copies !== n) p.push(`${what}: the child's ${n} stores made ${b.childWrite.copies} copies`);
    if (b.framesAfterChildWrite !== null && b.framesAfterChildWrite !== 2 * n) p.push(`${what}: ${b.framesAfterChildWrite} frames, not ${2 * n}`);
    if (b.samePfn !== null && b.samePfn !== 0) p.push(`${what}: parent and child still share ${b.samePfn} PFNs`);
    if (b.parentRead.seesOwn !== n) p.push(`${what}: the parent read back ${b.parentRead.seesOwn} of its own ${n} values (${b.parentRead.seesOther} were the child's)`);
    if (b.childRead.seesOwn !== n) p.push(`${what}: the child read back ${b.childRead.seesOwn} of its own ${n} values (${b.childRead.seesOther} were the parent's)`);
  }
  return p;
}

function verdict(raw: Raw) {
  const metrics: Metric[] = raw.backings.map((b) => ({
    key: `child-write-p50-${b.map}-${b.backing}`,
    label: `child's store after fork, ${label(b)}, p50`,
    unit: 'ns',
    value: pointBand(b.childWriteP50Ns),
  }));
  const maps = new Set(raw.backings.map((b) => b.map));
  if (!maps.has('shared') || !maps.has('private')) {
    const why = raw.skipped.map((x) => `${label(x)}: ${x.reason}`).join('; ') || 'no backing was measured';
    return { verdict: 'not-measurable' as const, figure: `measured: ${raw.backings.map(label).join(', ') || 'nothing'}`, reason: `A shared and a private mapping are both needed to compare. ${why}.`, metrics };
  }
  const problems = raw.backings.flatMap(problemsOf);
  const n = raw.backings[0]!.pages;
  const part = (map: MapKind) =>
    raw.backings
      .filter((b) => b.map === map)
      .map((b) => `${b.backing} ${formatCount(b.childWrite.copies)} copies, ${formatCount(map === 'shared' ? b.parentRead.seesOther : b.parentRead.seesOwn)} ${map === 'shared' ? "of the child's values seen" : 'own values kept'}`)
      .join(', ');
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure: `child writes ${formatCount(n)} pages after fork: shared (${part('shared')}); private (${part('private')})`,
    reason:
      (problems.length === 0 ? `Held for all ${raw.backings.length} backings` : `Not so here: ${problems.join('; ')}`) +
      `${raw.skipped.length ? `. Not measurable here: ${raw.skipped.map(label).join(', ')}` : ''}. Frames after the child's stores: ${raw.backings.map((b) => `${label(b)} ${formatCount(b.framesAfterChildWrite)}`).join(', ')}${raw.pfnVisible ? '' : ' (n/a: PFNs hidden without root)'}.${describeDisagreements(raw.predicted)}`,
    metrics,
  };
}

function present(raw: Raw) {
  const cats = raw.backings.map(label);
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: `After fork the child writes ${formatCount(raw.backings[0]?.pages ?? 0)} pages: copies, and what the other process reads`,
        categories: cats,
        y: { label: 'pages', unit: 'pages' },
        series: [
          { name: "copies made by the child's stores", values: raw.backings.map((b) => b.childWrite.copies) },
          { name: "pages where the parent reads the child's value", values: raw.backings.map((b) => b.parentRead.seesOther) },
          { name: "pages where the child reads the parent's later value", values: raw.backings.map((b) => b.childRead.seesOther) },
        ],
      },
    ],
    tables: [
      {
        title: 'Per backing (kernel engine)',
        head: ['mapping', "child's stores: copies / faults", 'p50', 'frames after', 'same PFN in both', 'parent reads: own / child\'s', "parent's stores: copies / reuses / faults", "child reads: own / parent's"],
        rows: raw.backings.map((b) => [
          label(b),
          `${formatCount(b.childWrite.copies)} / ${formatCount(b.childWrite.faults)}`,
          formatNs(b.childWriteP50Ns),
          formatCount(b.framesAfterChildWrite),
          formatCount(b.samePfn),
          `${formatCount(b.parentRead.seesOwn)} / ${formatCount(b.parentRead.seesOther)}`,
          `${formatCount(b.parentWrite.copies)} / ${formatCount(b.parentWrite.reuses)} / ${formatCount(b.parentWrite.faults)}`,
          `${formatCount(b.childRead.seesOwn)} / ${formatCount(b.childRead.seesOther)}`,
        ]),
        note: 'Trace: p0 writes every page (populate), forks c1; c1 writes every page; p0 reads every page; p0 writes every page; c1 reads every page. Each store writes a value naming its step and page, so a read says whose store it sees. A shared mapping is not copied into the child at fork (no PTEs): its first stores fault the page-cache pages in without copying.',
      },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 6,
  name: 'shared-vs-private',
  title: 'Shared against private mappings',
  claim:
    "MAP_SHARED pages are never copied on fork: both processes keep one frame and see each other's writes; the same writes to a MAP_PRIVATE mapping copy every page written.",
  short: 'MAP_SHARED never copies; private does',
  rule: RULE,
  measures:
    'One trace per backing (anonymous and memfd, shared and private; 4,096 pages, 1,024 with --quick) on the kernel engine: p0 writes, forks c1; c1 writes every page, p0 reads them, p0 writes every page, c1 reads them. Copies and faults per step, frames and PFNs (root), and the values each read returns.',
  requirements: { engines: ['kernel'], minMemoryBytes: 16 * 2 ** 20 },
  budgetMs: { full: 5_000, quick: 3_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
