/**
 * Experiment 11: eager top-of-stack copy. A fork+exec child writes a few pages at the top of
 * its stack between fork() and exec(); under lazy COW each of them costs the child a copy
 * fault and, once the child has exec'd, the parent a reuse fault on the same page. A policy
 * that copies the top K stack pages at fork time (the child gets its copies, the parent keeps
 * its pages writable) saves those faults at the price of K copies made inside fork. Measured
 * in the userspace region (real faults, real copies) and predicted by the simulator, for K
 * from 1 to the whole stack: where does it pay, and where does it stop paying?
 */
import { z } from 'zod';

import { describeCostModel, isCalibrated, SimEngine, simulateTrace } from '../src/engines/sim/index.js';
import type { TraceObservations } from '../src/engines/types.js';
import { CowRegion, type CowView } from '../src/region/region.js';
import type { ChartSpec } from '../src/report/chart.js';
import { formatCount, formatNs } from '../src/report/format.js';
import { createEngine } from '../src/suite/engines.js';
import { bandOf, pointBand, toUs } from '../src/suite/measure.js';
import { formatBand } from '../src/suite/present.js';
import { sized, Steps } from '../src/suite/steps.js';
import { buildTrace, regionSpec } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import type { Step } from '../src/trace/types.js';

/** The stack: pages the parent has touched; the child writes the top CHILD_WRITES of them. */
const STACK_PAGES = 512;
const CHILD_WRITES = 8;
const SWEEP = { full: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], quick: [2, 8, 64, 256, 512] };
const RUNS = { full: { warmup: 1, repeats: 9 }, quick: { warmup: 1, repeats: 5 } };
/** Each recorded run is the one with the median total of this many back-to-back repetitions:
 *  a run lasts ~0.1-0.5 ms, so one preemption would otherwise decide a whole band. */
const INNER = 3;
const RULE =
  `Confirmed when, in the simulator and in the region, copying the top K stack pages at fork leaves the exec child ${CHILD_WRITES} − K write faults instead of ${CHILD_WRITES} (and the parent as many fewer reuse faults) ` +
  `for every K up to the ${CHILD_WRITES} pages it writes, and for those K the eager total (fork, eager copies, writes) is not above the lazy total ` +
  "(region: its band not wholly above lazy's; simulator: its prediction not above); refuted when it saves no fault or costs more for such a K. " +
  'Where it stops paying is the smallest K whose total is above lazy (beyond the noise band for the region). ' +
  "Not measurable when the region's lazy or K = W totals are noise (min-max band wider than 2x).";

const SimPointSchema = z.object({
  k: z.number().int(),
  /** Faults of the child and of the parent on the stack, and copies made at fork (eager). */
  childFaults: z.number().int(),
  parentFaults: z.number().int(),
  forkCopies: z.number().int(),
  timeNs: z.number(),
});

const RegionRunSchema = z.object({
  warmup: z.boolean(),
  forkNs: z.number(),
  /** prepareWrite of the top K pages in the child (copies) and in the parent (reuses, no fault). */
  eagerNs: z.number(),
  childNs: z.number(),
  parentNs: z.number(),
  totalNs: z.number(),
  childFaults: z.number().int(),
  parentFaults: z.number().int(),
  copies: z.number().int(),
});

const RegionPointSchema = z.object({
  k: z.number().int(),
  /** lazy (K = 0), prepareWrite (the top K right after fork), eager (the region's eager
   *  policy: every page copied inside fork, K = the whole stack). */
  how: z.enum(['lazy', 'prepareWrite', 'eager']),
  runs: z.array(RegionRunSchema),
});

const RawSchema = z.object({
  stackPages: z.number().int(),
  childWrites: z.number().int(),
  costModel: z.object({
    description: z.string(),
    calibrated: z.boolean(),
    copyNs: z.number(),
    reuseNs: z.number(),
    faultNs: z.number(),
    accessNs: z.number(),
    /** The price of one copy made inside fork, with no fault: copyNs − faultNs. */
    copyAtForkNs: z.number(),
  }),
  /** K = 0 is lazy COW; the rest the eager model. */
  sim: z.array(SimPointSchema),
  region: z.array(RegionPointSchema),
});
type Raw = z.infer<typeof RawSchema>;
type RegionRun = z.infer<typeof RegionRunSchema>;

const topPages = (n: number, count: number) => Uint32Array.from({ length: count }, (_, i) => n - 1 - i);

// ---- the simulator ----

/**
 * The lazy fork+exec trace, with the child's and the parent's writes split at the first K
 * pages, so the faults on the pages an eager policy would have copied are their own steps.
 */
function stackTrace(k: number) {
  const covered = Math.min(k, CHILD_WRITES);
  const top = { start: STACK_PAGES - covered, end: STACK_PAGES };
  const rest = { start: STACK_PAGES - CHILD_WRITES, end: STACK_PAGES - covered };
  const writes = (proc: string): Step[] => [
    ...(covered > 0 ? [{ op: 'write' as const, proc, region: 'stack', pages: top }] : []),
    ...(covered < CHILD_WRITES ? [{ op: 'write' as const, proc, region: 'stack', pages: rest }] : []),
  ];
  const steps: Step[] = [{ op: 'fork', proc: 'p0', child: 'c1' }, ...writes('c1'), { op: 'exec', proc: 'c1' }, ...writes('p0'), { op: 'exit', proc: 'c1' }];
  return {
    trace: buildTrace(`eager-stack-${k}`, 'fork; the child writes the top of its stack and execs; the parent writes the same pages.', [regionSpec({ id: 'stack', pages: STACK_PAGES })], steps),
    /** Indices of the steps that write the pages an eager policy copies at fork. */
    coveredSteps: new Set(steps.flatMap((s, i) => (s.op === 'write' && 'start' in s.pages && s.pages.end === STACK_PAGES && covered > 0 ? [i] : []))),
  };
}

/** Lazy (k = 0) from the simulator as it is; eager: the same run with the covered steps'
 *  faults removed (their stores cost a plain access) and k copies priced into the fork. */
function simPoint(sim: SimEngine, k: number, copyAtForkNs: number): z.infer<typeof SimPointSchema> {
  const { trace, coveredSteps } = stackTrace(k);
  const obs: TraceObservations = simulateTrace(trace, sim.options);
  const c = sim.options.costModel.constants;
  let childFaults = 0;
  let parentFaults = 0;
  let timeNs = 0;
  obs.steps.forEach((o, idx) => {
    const i = idx - 1;
    if (i < 0 || o.op === 'exit' || o.op === 'exec') return;
    const covered = k > 0 && coveredSteps.has(i);
    const faults = covered ? 0 : (o.events.stack!.faults ?? 0);
    const step = trace.steps[i]!;
    const pages = step.op === 'write' && 'start' in step.pages ? step.pages.end - step.pages.start : 0;
    timeNs += covered ? pages * c.accessNs : (o.timeNs ?? 0);
    if (o.op === 'write' && o.proc === 'c1') childFaults += faults;
    if (o.op === 'write' && o.proc === 'p0') parentFaults += faults;
  });
  timeNs += k * copyAtForkNs;
  return { k, childFaults, parentFaults, forkCopies: k, timeNs };
}

// ---- the region ----

function regionRun(k: number, how: 'lazy' | 'prepareWrite' | 'eager', warmup: boolean): RegionRun {
  const region = CowRegion.create({ pages: STACK_PAGES, policy: how === 'eager' ? 'eager' : 'lazy', populate: 'write' });
  try {
    const parent = region.root;
    // Warm the frame pool first (a throwaway snapshot that copies every page, released), so
    // no measured copy pays for growing the pool; then the parent's pages are made writable
    // again (reuses, no fault), as before any fork.
    const warm = parent.fork();
    warm.prepareWrite(0, STACK_PAGES);
    warm.release();
    parent.prepareWrite(0, STACK_PAGES);
    const stats = () => region.stats();
    const s0 = stats();
    const child: CowView = parent.fork();
    let eagerNs = 0;
    if (how === 'prepareWrite') {
      const t0 = process.hrtime.bigint();
      child.prepareWrite(STACK_PAGES - k, STACK_PAGES);
      parent.prepareWrite(STACK_PAGES - k, STACK_PAGES);
      eagerNs = Number(process.hrtime.bigint() - t0);
    }
    const s1 = stats();
    const order = topPages(STACK_PAGES, CHILD_WRITES);
    const sum = (a: Float64Array) => a.reduce((x, y) => x + y, 0);
    const childNs = sum(child.timedStores(order, 1n << 32n));
    const s2 = stats();
    child.release(); // the exec
    const parentNs = sum(parent.timedStores(order, 2n << 32n));
    const s3 = stats();
    const forkNs = child.forkNs ?? 0;
    return {
      warmup,
      forkNs,
      eagerNs,
      childNs,
      parentNs,
      totalNs: forkNs + eagerNs + childNs + parentNs,
      childFaults: s2.faults - s1.faults,
      parentFaults: s3.faults - s2.faults,
      copies: s3.copies - s0.copies,
    };
  } finally {
    region.close();
  }
}

async function run(ctx: RunContext): Promise<Raw> {
  const sim = createEngine('sim') as SimEngine;
  const c = sim.options.costModel.constants;
  const copyAtForkNs = Math.max(0, c.copyNs - c.faultNs);
  const ks = sized(ctx, SWEEP);
  const points: { k: number; how: 'lazy' | 'prepareWrite' | 'eager' }[] = [
    { k: 0, how: 'lazy' },
    ...ks.map((k) => ({ k, how: k === STACK_PAGES ? ('eager' as const) : ('prepareWrite' as const) })),
  ];
  const raw: Raw = {
    stackPages: STACK_PAGES,
    childWrites: CHILD_WRITES,
    costModel: {
      description: describeCostModel(sim.options.costModel),
      calibrated: isCalibrated(sim.options.costModel),
      copyNs: c.copyNs,
      reuseNs: c.reuseNs,
      faultNs: c.faultNs,
      accessNs: c.accessNs,
      copyAtForkNs,
    },
    sim: [0, ...ks].map((k) => simPoint(sim, k, copyAtForkNs)),
    region: points.map((p) => ({ ...p, runs: [] })),
  };
  const { warmup, repeats } = sized(ctx, RUNS);
  const rounds = Array.from({ length: warmup + repeats }, (_, round) => round);
  const steps = new Steps(ctx, rounds.length);
  steps.keep(raw);
  // Interleaved: every point once per round, so drift on the host hits all of them alike.
  await steps.sweep(rounds, raw, {
    detail: (round) => `round ${round + 1}: K = ${points.map((p) => p.k).join(', ')}`,
    measure: (round) => {
      for (const [i, p] of points.entries()) {
        const reps = Array.from({ length: INNER }, () => regionRun(p.k, p.how, round < warmup)).sort((a, b) => a.totalNs - b.totalNs);
        raw.region[i]!.runs.push(reps[Math.floor(INNER / 2)]!);
      }
    },
    stopAfter: { minItems: warmup + 3, note: (done) => `stopped after ${done - warmup} measured rounds (time budget)` },
  });
  return raw;
}

// ---- verdict ----

const measured = (p: Raw['region'][number]) => p.runs.filter((r) => !r.warmup);
const totalBand = (p: Raw['region'][number]) => bandOf(measured(p).map((r) => r.totalNs));
const medianOf = (p: Raw['region'][number], f: (r: RegionRun) => number) => bandOf(measured(p).map(f)).median;

/** Smallest K whose total is above lazy: beyond the band for the region, at all for the sim. */
function stopsPaying(raw: Raw) {
  const lazyR = raw.region.find((p) => p.k === 0);
  const lazyS = raw.sim.find((p) => p.k === 0);
  const region = lazyR
    ? (raw.region.filter((p) => p.k > 0).find((p) => totalBand(p).min > totalBand(lazyR).max)?.k ?? null)
    : null;
  const sim = lazyS ? (raw.sim.filter((p) => p.k > 0).find((p) => p.timeNs > lazyS.timeNs)?.k ?? null) : null;
  return { region, sim };
}

function verdict(raw: Raw) {
  const W = raw.childWrites;
  const lazyR = raw.region.find((p) => p.k === 0);
  const lazyS = raw.sim.find((p) => p.k === 0);
  const metrics: Metric[] = [];
  if (!lazyR || !lazyS || measured(lazyR).length === 0) {
    return { verdict: 'not-measurable' as const, figure: 'nothing measured', reason: 'The lazy baseline was not measured.', metrics };
  }
  const atW = raw.region.find((p) => p.k === W);
  const simAtW = raw.sim.find((p) => p.k === W);
  metrics.push({ key: 'region-lazy-total', label: `region, lazy COW: fork + ${W} child + ${W} parent writes`, unit: 'ns', value: totalBand(lazyR) });
  if (atW) metrics.push({ key: 'region-eager-total', label: `region, top ${W} pages copied at fork: the same total`, unit: 'ns', value: totalBand(atW) });
  metrics.push({ key: 'sim-lazy-total', label: 'simulator, lazy COW: predicted total', unit: 'ns', value: pointBand(lazyS.timeNs) });
  if (simAtW) metrics.push({ key: 'sim-eager-total', label: `simulator, top ${W} pages eager: predicted total`, unit: 'ns', value: pointBand(simAtW.timeNs) });
  if (totalBand(lazyR).noisy || (atW && measured(atW).length > 0 && totalBand(atW).noisy)) {
    return {
      verdict: 'not-measurable' as const,
      figure: `region totals are noise: lazy ${formatBand(totalBand(lazyR))}${atW ? `, K = ${W} ${formatBand(totalBand(atW))}` : ''}`,
      reason: 'The min-max band of the region totals over the measured rounds is wider than 2x, so lazy and eager cannot be compared on this host now (try again on a quieter machine).',
      metrics,
    };
  }

  const problems: string[] = [];
  for (const p of raw.sim.filter((x) => x.k > 0 && x.k <= W)) {
    if (p.childFaults !== lazyS.childFaults - p.k) problems.push(`simulator K=${p.k}: child faults ${p.childFaults}, lazy ${lazyS.childFaults}`);
    if (p.timeNs > lazyS.timeNs) problems.push(`simulator K=${p.k}: predicted ${formatNs(p.timeNs)} > lazy ${formatNs(lazyS.timeNs)}`);
  }
  const lazyChild = medianOf(lazyR, (r) => r.childFaults);
  for (const p of raw.region.filter((x) => x.k > 0 && x.k <= W && measured(x).length > 0)) {
    const faults = medianOf(p, (r) => r.childFaults);
    if (faults !== lazyChild - p.k) problems.push(`region K=${p.k}: child faults ${faults}, lazy ${lazyChild}`);
    const e = totalBand(p);
    const l = totalBand(lazyR);
    if (e.min > l.max) problems.push(`region K=${p.k}: total ${formatBand(e)} above lazy ${formatBand(l)}`);
  }
  const stop = stopsPaying(raw);
  const where = (k: number | null, kind: string) =>
    k === null ? `pays up to the whole stack, K = ${raw.stackPages} (${kind})` : `stops paying at K = ${k} (${kind})`;
  const regionW = atW ? `${formatNs(totalBand(atW).median)} vs ${formatNs(totalBand(lazyR).median)} lazy` : 'K = W not measured';
  const simW = simAtW ? `${formatNs(simAtW.timeNs)} vs ${formatNs(lazyS.timeNs)} lazy` : 'n/a';
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure:
      `copying the top ${W} stack pages at fork saves the exec child ${lazyChild - (atW ? medianOf(atW, (r) => r.childFaults) : lazyChild)} of ${lazyChild} write faults and the parent as many reuse faults; ` +
      `total region ${regionW}, simulator ${simW}; ${where(stop.region, 'region')}, ${where(stop.sim, 'simulator')}`,
    reason:
      `${problems.length === 0 ? `Held for every K up to ${W}.` : `Not so here: ${problems.join('; ')}.`} ` +
      `The child writes the top ${W} of ${raw.stackPages} stack pages and execs; the parent then writes the same pages. ` +
      `Simulator times: ${raw.costModel.description}; a copy at fork is priced copyNs − faultNs = ${formatNs(raw.costModel.copyAtForkNs)}.`,
    metrics,
  };
}

// ---- presentation ----

function present(raw: Raw): { charts: ChartSpec[]; tables: { title: string; head: string[]; rows: string[][]; note?: string }[] } {
  const lazyR = raw.region.find((p) => p.k === 0);
  const lazyS = raw.sim.find((p) => p.k === 0);
  const eagerR = raw.region.filter((p) => p.k > 0 && measured(p).length > 0);
  const eagerS = raw.sim.filter((p) => p.k > 0);
  const ks = eagerS.map((p) => p.k);
  const flat = (v: number | undefined) => (v === undefined ? [] : [Math.min(...ks, 1), Math.max(...ks, raw.stackPages)].map((x) => ({ x, y: toUs(v) })));
  const charts: ChartSpec[] = [
    {
      kind: 'line',
      title: `Fork+exec with a ${raw.stackPages}-page stack, the child writing its top ${raw.childWrites}: total cost when the top K pages are copied at fork`,
      x: { label: 'pages copied at fork (K)', unit: 'pages', scale: 'log' },
      y: { label: 'fork + eager copies + child and parent writes', unit: 'µs', scale: 'log' },
      series: [
        { name: 'region: eager top K (median, min-max)', points: eagerR.map((p) => { const b = totalBand(p); return { x: p.k, y: toUs(b.median), lo: toUs(b.min), hi: toUs(b.max) }; }) },
        { name: 'region: lazy COW', dashed: true, points: flat(lazyR ? totalBand(lazyR).median : undefined) },
        { name: 'simulator: eager top K (model)', points: eagerS.map((p) => ({ x: p.k, y: toUs(p.timeNs) })) },
        { name: 'simulator: lazy COW', dashed: true, points: flat(lazyS?.timeNs) },
      ],
    },
    {
      kind: 'bar',
      title: 'Write faults on the stack: the child before its exec, the parent after',
      categories: ['lazy', ...ks.map((k) => `K = ${k}`)],
      y: { label: 'faults', unit: 'faults' },
      series: [
        { name: 'region: child', values: [lazyR, ...ks.map((k) => raw.region.find((p) => p.k === k))].map((p) => (p && measured(p).length ? medianOf(p, (r) => r.childFaults) : null)) },
        { name: 'region: parent', values: [lazyR, ...ks.map((k) => raw.region.find((p) => p.k === k))].map((p) => (p && measured(p).length ? medianOf(p, (r) => r.parentFaults) : null)) },
        { name: 'simulator: child', values: [lazyS, ...eagerS].map((p) => p?.childFaults ?? null) },
        { name: 'simulator: parent', values: [lazyS, ...eagerS].map((p) => p?.parentFaults ?? null) },
      ],
    },
  ];
  const row = (p: Raw['region'][number]) => {
    const m = measured(p);
    const b = (f: (r: RegionRun) => number) => bandOf(m.map(f));
    return [
      p.k === 0 ? 'lazy' : `K = ${p.k}${p.how === 'eager' ? ' (eager policy)' : ''}`,
      formatBand(b((r) => r.forkNs)),
      formatBand(b((r) => r.eagerNs)),
      formatBand(b((r) => r.childNs)),
      formatBand(b((r) => r.parentNs)),
      formatBand(b((r) => r.totalNs)),
      `${formatCount(b((r) => r.childFaults).median)} / ${formatCount(b((r) => r.parentFaults).median)}`,
      formatCount(b((r) => r.copies).median),
    ];
  };
  return {
    charts,
    tables: [
      {
        title: 'Region (measured; medians over the measured rounds, min–max)',
        head: ['policy', 'fork', 'eager copies', 'child writes', 'parent writes', 'total', 'faults child / parent', 'copies'],
        rows: raw.region.filter((p) => measured(p).length > 0).map(row),
        note: `A CowRegion of ${raw.stackPages} written pages is the parent's stack; fork() is view.fork(); K > 0 copies the top K pages with child.prepareWrite and makes the parent's writable with parent.prepareWrite right after the fork (K = ${raw.stackPages}: the region's eager policy, which copies inside fork). The child stores one word into each of its top ${raw.childWrites} pages, is released (exec), then the parent stores into the same pages; stores timed one by one in native code.`,
      },
      {
        title: 'Simulator (predicted)',
        head: ['policy', 'faults child / parent', 'copies at fork', 'predicted total'],
        rows: raw.sim.map((p) => [p.k === 0 ? 'lazy' : `K = ${p.k}`, `${p.childFaults} / ${p.parentFaults}`, formatCount(p.forkCopies), formatNs(p.timeNs)]),
        note: `The simulator has no eager policy: eager top-K is modelled on its lazy run of the same trace, with the write steps on the top K pages taking no fault (a plain access, ${formatNs(raw.costModel.accessNs)}) and K copies added to the fork at copyNs − faultNs = ${formatNs(raw.costModel.copyAtForkNs)} each (a copy fault without the fault). Cost model: ${raw.costModel.description}.`,
      },
    ],
  };
}

export default defineExperiment<Raw>({
  number: 11,
  name: 'eager-stack',
  title: 'Eager top-of-stack copy',
  claim:
    'Copying at fork time the pages a fork+exec child will write (the top of its stack) saves that child its COW faults at the cost of a few eager copies, against pure lazy COW.',
  short: 'eager stack copy saves the exec child faults',
  rule: RULE,
  measures:
    `A ${STACK_PAGES}-page stack is forked; the child writes its top ${CHILD_WRITES} pages and execs; the parent then writes them. Region: lazy COW against copying the top K pages right after view.fork() (prepareWrite in both views; K = ${STACK_PAGES} is the eager policy), K from 1 to ${STACK_PAGES}, interleaved rounds (each run the median of ${INNER}), faults and native-timed costs. Simulator: the lazy trace predicted, eager modelled as no fault on the copied pages plus K copies at fork (copyNs − faultNs each).`,
  requirements: { engines: ['sim', 'region'], measuresTime: true },
  budgetMs: { full: 6_000, quick: 3_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
