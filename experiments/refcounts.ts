/**
 * Experiment 7: reference counts. After fork every private page is shared; the kernel counts
 * the mappings of each frame (page_mapcount, read from /proc/kpagecount). With a chain and a
 * tree of forks (up to five sharers), the count of every frame must equal the number of live
 * processes that map it after every fork, copy and exit, and a frame whose last sharer leaves
 * is freed: the frames in use drop by exactly those. Root only (kpagecount and PFNs).
 */
import { z } from 'zod';

import type { KernelRunDetailed } from '../src/engines/kernel/engine.js';
import { CowlabError } from '../src/errors.js';
import { formatCount } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, STOP, Steps } from '../src/suite/steps.js';
import { describeDisagreements, predictionTable, PredictionSchema, profileName, simulate } from '../src/suite/predict.js';
import { buildTrace, kernelEngine, regionSpec } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import type { Step, Trace } from '../src/trace/types.js';

const PAGES = { full: 4096, quick: 1024 };
const RULE =
  'Confirmed when, after every step of both traces, the kpagecount of every present page equals the number of mappings of its frame among the live trace processes, ' +
  'at least three processes shared a frame at some step, and at every exit the frames in use dropped by exactly the frames only the exiting process mapped; refuted at the first step where either differs. ' +
  'Not measurable without root (kpagecount and PFNs are root-only).';

const StepSchema = z.object({
  /** -1: setup. */
  index: z.number().int(),
  what: z.string(),
  live: z.number().int(),
  frames: z.number().int(),
  /** Page mappings (process, page) whose kpagecount was checked. */
  checked: z.number().int(),
  mismatches: z.number().int(),
  firstMismatch: z.string().nullable(),
  /** kpagecount value -> frames with that count. */
  framesByCount: z.record(z.string(), z.number().int()),
  /** Exit steps: frames only the exiting process mapped before it exited, and how much the
   *  frames in use dropped. */
  lastSharerFrames: z.number().int().nullable(),
  framesDrop: z.number().int().nullable(),
});

const TraceSchema = z.object({
  name: z.string(),
  description: z.string(),
  pages: z.number().int(),
  steps: z.array(StepSchema),
});

const RawSchema = z.object({
  /** Why kpagecount could not be read here (null: it could). */
  unavailable: z.string().nullable(),
  traces: z.array(TraceSchema),
  /** The simulator's frames after every step of the same traces beside the measured ones (absent in older results). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;
type StepResult = z.infer<typeof StepSchema>;

function traces(n: number): Trace[] {
  const w = (proc: string, start: number, end: number): Step => ({ op: 'write', proc, region: 'm', pages: { start, end } });
  return [
    buildTrace(
      'chain',
      'A chain p0 -> c1 -> c2 -> c3: four sharers; c3 writes half, c1 a quarter; c3, c2, c1 exit; p0 writes everything (reuses).',
      [regionSpec({ id: 'm', pages: n })],
      [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'fork', proc: 'c1', child: 'c2' },
        { op: 'fork', proc: 'c2', child: 'c3' },
        w('c3', 0, n / 2),
        w('c1', 0, n / 4),
        { op: 'exit', proc: 'c3' },
        { op: 'exit', proc: 'c2' },
        { op: 'exit', proc: 'c1' },
        w('p0', 0, n),
      ],
    ),
    buildTrace(
      'tree',
      'A tree: p0 forks c1, c2 and c4, c1 forks c3 (five sharers); c2 writes half; c4 and c1 exit (c3 is orphaned); c3 writes a quarter; c3 and c2 exit.',
      [regionSpec({ id: 'm', pages: n })],
      [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'fork', proc: 'p0', child: 'c2' },
        { op: 'fork', proc: 'c1', child: 'c3' },
        { op: 'fork', proc: 'p0', child: 'c4' },
        w('c2', n / 2, n),
        { op: 'exit', proc: 'c4' },
        { op: 'exit', proc: 'c1' },
        w('c3', 0, n / 4),
        { op: 'exit', proc: 'c3' },
        { op: 'exit', proc: 'c2' },
      ],
    ),
  ];
}

function describeStep(t: Trace, i: number): string {
  if (i < 0) return 'setup: p0 writes every page';
  const s = t.steps[i]!;
  switch (s.op) {
    case 'fork': return `${s.proc} forks ${s.child}`;
    case 'write': return `${s.proc} writes ${'start' in s.pages ? `${s.pages.start}..${s.pages.end}` : 'pages'}`;
    default: return `${s.proc} ${s.op}s`;
  }
}

/** PFN -> mappings among the live processes after step `i`. */
function sharersAt(r: KernelRunDetailed, i: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const regions of Object.values(r.details[i + 1]!.pagemap)) {
    const e = regions.m!;
    for (let p = 0; p < e.length; p++) if (e.present[p]) m.set(e.pfn[p]!, (m.get(e.pfn[p]!) ?? 0) + 1);
  }
  return m;
}

function checkStep(t: Trace, r: KernelRunDetailed, i: number): StepResult {
  const d = r.details[i + 1]!;
  const sharers = sharersAt(r, i);
  let checked = 0;
  let mismatches = 0;
  let firstMismatch: string | null = null;
  const countOf = new Map<number, number>();
  for (const [proc, regions] of Object.entries(d.pagemap)) {
    const e = regions.m!;
    const k = d.kpagecount![proc]!.m!;
    for (let p = 0; p < e.length; p++) {
      if (!e.present[p]) continue;
      checked++;
      const want = sharers.get(e.pfn[p]!)!;
      countOf.set(e.pfn[p]!, k[p]!);
      if (k[p] !== want) {
        mismatches++;
        firstMismatch ??= `${proc} page ${p}: kpagecount ${k[p]}, mapped by ${want} live processes`;
      }
    }
  }
  const framesByCount: Record<string, number> = {};
  for (const c of countOf.values()) framesByCount[String(c)] = (framesByCount[String(c)] ?? 0) + 1;
  let lastSharerFrames: number | null = null;
  let framesDrop: number | null = null;
  const step = t.steps[i];
  if (step?.op === 'exit') {
    // Frames the exiting process alone mapped just before it exited.
    const before = sharersAt(r, i - 1);
    const mine = r.details[i]!.pagemap[step.proc]!.m!;
    lastSharerFrames = 0;
    for (let p = 0; p < mine.length; p++) if (mine.present[p] && before.get(mine.pfn[p]!) === 1) lastSharerFrames++;
    framesDrop = before.size - sharers.size;
  }
  return {
    index: i,
    what: describeStep(t, i),
    live: Object.keys(d.pagemap).length,
    frames: sharers.size,
    checked,
    mismatches,
    firstMismatch,
    framesByCount,
    lastSharerFrames,
    framesDrop,
  };
}

async function run(ctx: RunContext): Promise<Raw> {
  const n = sized(ctx, PAGES);
  const raw: Raw = { unavailable: null, traces: [] };
  const all = traces(n);
  await new Steps(ctx, all.length).sweep(all, raw, {
    detail: (t) => t.name,
    measure: async (t) => {
      let r: KernelRunDetailed;
      try {
        r = await kernelEngine().runDetailed(t, { kpagecount: true });
      } catch (err) {
        // kpagecount is root-only: the engine refuses before running anything.
        if (!(err instanceof CowlabError) || err.code !== 'ERR_NOT_MEASURABLE') throw err;
        raw.unavailable = err.message;
        return STOP;
      }
      const steps = [-1, ...t.steps.keys()].map((i) => checkStep(t, r, i));
      raw.traces.push({ name: t.name, description: t.description ?? '', pages: n, steps });
      const sim = await simulate(t);
      if (sim) {
        const counts = steps.map((s) => ({ key: `${t.name}.${s.index}.frames`, what: `${t.name}: frames after "${s.what}"`, measured: s.frames, predicted: sim.steps[s.index + 1]!.frames.m ?? null }));
        (raw.predicted ??= { profile: profileName(ctx.env), counts: [] }).counts.push(...counts);
      }
    },
  });
  return raw;
}

const maxCount = (s: StepResult) => Math.max(0, ...Object.keys(s.framesByCount).map(Number));

function verdict(raw: Raw) {
  const steps = raw.traces.flatMap((t) => t.steps.map((s) => ({ t, s })));
  const checked = steps.reduce((a, x) => a + x.s.checked, 0);
  const most = Math.max(0, ...steps.map((x) => maxCount(x.s)));
  const exits = steps.filter((x) => x.s.lastSharerFrames !== null);
  const freed = exits.reduce((a, x) => a + (x.s.lastSharerFrames ?? 0), 0);
  const metrics: Metric[] = [
    { key: 'mappings-checked', label: 'page mappings whose kpagecount was checked', unit: 'count', value: pointBand(checked) },
    { key: 'max-sharers', label: 'most sharers of one frame', unit: 'count', value: pointBand(most) },
    { key: 'frames-freed-at-exits', label: 'frames freed when their last sharer exited', unit: 'count', value: pointBand(freed) },
  ];
  if (steps.length === 0) {
    return { verdict: 'not-measurable' as const, figure: 'kpagecount not readable', reason: `${raw.unavailable ?? 'No trace was measured'}: /proc/kpagecount and PFNs need root (CAP_SYS_ADMIN).`, metrics };
  }
  const problems: string[] = [];
  const bad = steps.find((x) => x.s.mismatches > 0);
  if (bad) problems.push(`${bad.t.name}, after "${bad.s.what}": ${bad.s.mismatches} mappings disagree (first: ${bad.s.firstMismatch})`);
  const leak = exits.find((x) => x.s.framesDrop !== x.s.lastSharerFrames);
  if (leak) problems.push(`${leak.t.name}, "${leak.s.what}": frames dropped by ${leak.s.framesDrop}, but the process alone mapped ${leak.s.lastSharerFrames}`);
  if (most < 3) problems.push(`no frame had more than ${most} sharers`);
  const chain = raw.traces[0]!;
  const seq = chain.steps.map((s) => maxCount(s)).join(' → ');
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure: `kpagecount = live sharers for all ${formatCount(checked)} page mappings checked over ${steps.length} steps (up to ${most} sharers; chain's highest count per step ${seq}); ${formatCount(freed)} frames freed at exits, exactly those whose last sharer left`,
    reason: `${problems.length === 0 ? 'Held at every step of both traces.' : `Not so here: ${problems.join('; ')}.`} Frames per step (chain): ${chain.steps.map((s) => formatCount(s.frames)).join(', ')}.${describeDisagreements(raw.predicted)}`,
    metrics,
  };
}

function present(raw: Raw) {
  const counts = [...new Set(raw.traces.flatMap((t) => t.steps.flatMap((s) => Object.keys(s.framesByCount).map(Number))))].sort((a, b) => a - b);
  const charts = raw.traces.map((t) => ({
    kind: 'bar' as const,
    title: `${t.name}: frames by kpagecount after each step (${formatCount(t.pages)} pages)`,
    categories: t.steps.map((s) => s.what),
    y: { label: 'frames', unit: 'frames' },
    series: counts.map((c) => ({ name: `kpagecount ${c}`, values: t.steps.map((s) => s.framesByCount[String(c)] ?? null) })),
  }));
  if (raw.traces.length === 0) {
    return { charts, tables: [{ title: 'Not measured', head: ['why'], rows: [[raw.unavailable ?? 'no trace was measured']] }] };
  }
  return {
    charts,
    tables: [...raw.traces.map((t) => ({
      title: `${t.name}: ${t.description}`,
      head: ['step', 'live processes', 'frames', 'frames by kpagecount', 'mappings checked', 'mismatches', 'freed at exit (last sharer) / frames dropped'],
      rows: t.steps.map((s) => [
        s.what,
        String(s.live),
        formatCount(s.frames),
        Object.entries(s.framesByCount).sort((a, b) => Number(a[0]) - Number(b[0])).map(([k, v]) => `${k}: ${formatCount(v)}`).join(', '),
        formatCount(s.checked),
        s.mismatches === 0 ? '0' : `${formatCount(s.mismatches)} (${s.firstMismatch})`,
        s.lastSharerFrames === null ? '' : `${formatCount(s.lastSharerFrames)} / ${formatCount(s.framesDrop)}`,
      ]),
      note: 'kpagecount is /proc/kpagecount of each present page\'s PFN (the frame\'s mapcount); "live sharers" counts the pagemap entries of the live trace processes that map that PFN.',
    })), ...(raw.predicted ? [predictionTable(raw.predicted, 'Frames in use after each step, measured against predicted')] : [])],
  };
}

export default defineExperiment<Raw>({
  number: 7,
  name: 'refcounts',
  title: 'Reference counts',
  claim:
    "A frame's mapcount (/proc/kpagecount) follows its sharers: 2 after a fork, N with N sharers, one less after each copy or exit, and the frame is freed when the last sharer leaves.",
  short: 'kpagecount follows the sharers',
  rule: RULE,
  measures:
    'Two traces on the kernel engine (4,096 pages, 1,024 with --quick): a chain p0 -> c1 -> c2 -> c3 and a tree of five processes, with partial writes and exits in between. After every step: kpagecount and PFN of every present page of every live process, the frames in use, and at each exit the frames only the exiting process mapped.',
  requirements: { engines: ['kernel'], root: true, minMemoryBytes: 16 * 2 ** 20 },
  budgetMs: { full: 5_000, quick: 3_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
