/**
 * Experiment 3: fork+exec copies nothing. A parent holding 1 GiB forks a child that execs at
 * once (what a shell does): the child's exec drops its share of every page without writing
 * one, so no page is ever copied; the parent's pages are exclusive again but still
 * write-protected, and its later writes are reuses (one fault per page, same frame).
 * Run on the kernel engine: real processes, pagemap and smaps after every step.
 */
import { z } from 'zod';

import type { KernelRunDetailed } from '../src/engines/kernel/engine.js';
import { formatBytes, formatCount, formatNs } from '../src/report/format.js';
import { pointBand, toMs } from '../src/suite/measure.js';
import { sized } from '../src/suite/steps.js';
import { describeDisagreements, predictionTable, PredictionSchema, profileName, simulate, type PredictedCount } from '../src/suite/predict.js';
import { accessP50, buildTrace, countOnes, kernelEngine, pfnsChanged, regionSpec, stepEvents } from '../src/suite/traces.js';
import type { TraceObservations } from '../src/engines/types.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import { cowDelta, readVmstat } from '../src/vmstat/vmstat.js';

const BYTES = { full: 2 ** 30, quick: 256 * 2 ** 20 };
/** The exec'd child's whole Private_Dirty (the new program's own memory) must stay below
 *  this share of the region for "the child holds none of it". */
const CHILD_SHARE = 0.01;
const RULE =
  "Confirmed when no page of the region is copied at the fork or the exec (0 copies; as root, none of the parent's PFNs changes), the child's Private_Dirty of the region is 0 after the fork " +
  `and, after the exec, the child maps none of it (its whole Private_Dirty below ${CHILD_SHARE * 100} % of the region), and every later parent write is a reuse: ` +
  'one fault per page, 0 copies, the same frames (pgreuse grows by at least the pages written, where /proc/vmstat has it); refuted otherwise. ' +
  'Not measurable when the kernel engine cannot run here, or when the parent region was not wholly resident at the fork (memory pressure).';

const SmapsSchema = z.object({ privateDirty: z.number(), sharedDirty: z.number() });

const RawSchema = z.object({
  pages: z.number().int(),
  pageSize: z.number().int(),
  pfnVisible: z.boolean(),
  /** present: the parent's pages resident at the fork (all of them, unless memory pressure
   *  reclaimed some: a swapped-out page is not shared by fork the same way). */
  setup: z.object({ zeroFills: z.number().int(), present: z.number().int(), timeNs: z.number(), parent: SmapsSchema }),
  fork: z.object({
    forkNs: z.number(),
    copies: z.number().int(),
    /** Pages the child maps right after the fork, and how many of them are shared. */
    childPresent: z.number().int(),
    childShared: z.number().int(),
    parent: SmapsSchema,
    child: SmapsSchema,
  }),
  exec: z.object({
    execNs: z.number(),
    copies: z.number().int(),
    childPresent: z.number().int(),
    /** The exec'd child's whole process (smaps_rollup): the new program's own memory. */
    childProcessPrivateDirty: z.number(),
    parentExclusive: z.number().int(),
    /** Parent pages whose PFN differs from the setup's (null without root). */
    parentPfnChanged: z.number().int().nullable(),
    frames: z.number().int().nullable(),
    parent: SmapsSchema,
  }),
  write: z.object({
    written: z.number().int(),
    copies: z.number().int(),
    reuses: z.number().int(),
    zeroFills: z.number().int(),
    faults: z.number().int(),
    timeNs: z.number(),
    p50Ns: z.number(),
    pfnChanged: z.number().int().nullable(),
    frames: z.number().int().nullable(),
    /** System-wide /proc/vmstat pgreuse delta around the parent's writes (null: no counter). */
    pgreuse: z.number().nullable(),
  }),
  /** The simulator's counts for the same trace beside the measured ones (absent in older results). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

function smapsOf(r: KernelRunDetailed, step: number, proc: string): { privateDirty: number; sharedDirty: number } {
  const s = r.details[step + 1]!.smaps![proc]!.regions!.heap!;
  return { privateDirty: s.privateDirtyBytes, sharedDirty: s.sharedDirtyBytes };
}

async function run(ctx: RunContext): Promise<Raw> {
  const ps = ctx.env.pageSize;
  const pages = Math.floor(ctx.clamp(sized(ctx, BYTES), 'the parent region') / ps);
  const trace = buildTrace(
    'fork-exec-large',
    'p0 holds the region, forks c1, c1 execs at once; then p0 writes every page.',
    [regionSpec({ id: 'heap', pages })],
    [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'exec', proc: 'c1' },
      { op: 'write', proc: 'p0', region: 'heap', pages: { start: 0, end: pages } },
      { op: 'exit', proc: 'c1' },
    ],
  );
  ctx.progress(0, 4, `${formatBytes(pages * ps)} parent`);
  let before: ReturnType<typeof readVmstat> | null = null;
  let pgreuse: number | null = null;
  const r = await kernelEngine().runDetailed(trace, {
    smaps: true,
    onStep: (done) => {
      ctx.progress(done, 4, `${formatBytes(pages * ps)} parent`);
      // Brackets the parent's write step (step 2): read after the exec and after the write.
      if (done === 2) before = readVmstat();
      if (done === 3 && before) pgreuse = cowDelta(before, readVmstat()).pgreuse;
    },
  });
  const obs = r.observations;
  const o = (i: number) => obs.steps[i + 1]!;
  const pm = (i: number, proc: string) => r.details[i + 1]!.pagemap[proc]!.heap!;
  const pfnVisible = obs.unavailable.frames === undefined;
  const setup = stepEvents(obs, -1, 'heap');
  const w = stepEvents(obs, 2, 'heap');
  const raw: Raw = {
    pages,
    pageSize: ps,
    pfnVisible,
    setup: { zeroFills: setup.zeroFills, present: countOnes(o(-1).processes.p0!.heap!.present)!, timeNs: o(-1).timeNs ?? 0, parent: smapsOf(r, -1, 'p0') },
    fork: {
      forkNs: r.details[1]!.forkNs ?? 0,
      copies: stepEvents(obs, 0, 'heap').copies,
      childPresent: countOnes(o(0).processes.c1!.heap!.present)!,
      childShared: pm(0, 'c1').count('present') - pm(0, 'c1').count('exclusive'),
      parent: smapsOf(r, 0, 'p0'),
      child: smapsOf(r, 0, 'c1'),
    },
    exec: {
      execNs: o(1).timeNs ?? 0,
      copies: stepEvents(obs, 1, 'heap').copies,
      childPresent: countOnes(o(1).processes.c1!.heap!.present)!,
      childProcessPrivateDirty: r.details[2]!.smaps!.c1!.process.privateDirtyBytes,
      parentExclusive: countOnes(o(1).processes.p0!.heap!.exclusive) ?? 0,
      parentPfnChanged: pfnVisible ? pfnsChanged(pm(-1, 'p0'), pm(1, 'p0')) : null,
      frames: o(1).frames.heap ?? null,
      parent: smapsOf(r, 1, 'p0'),
    },
    write: {
      written: pages,
      copies: w.copies,
      reuses: w.reuses,
      zeroFills: w.zeroFills,
      faults: w.faults,
      timeNs: o(2).timeNs ?? 0,
      p50Ns: accessP50(r.details[3]!.access[0]),
      pfnChanged: pfnVisible ? pfnsChanged(pm(-1, 'p0'), pm(2, 'p0')) : null,
      frames: o(2).frames.heap ?? null,
      pgreuse,
    },
  };
  const sim = await simulate(trace);
  if (sim) raw.predicted = { profile: profileName(ctx.env), counts: predictedCounts(raw, sim) };
  return raw;
}

/** The counts of the claim, measured (raw) beside the simulator's for the same trace. */
function predictedCounts(raw: Raw, sim: TraceObservations): PredictedCount[] {
  const o = (i: number) => sim.steps[i + 1]!;
  const ev = (i: number) => o(i).events.heap!;
  const bits = (i: number, proc: string) => o(i).processes[proc]?.heap;
  const shared = (i: number, proc: string) => (countOnes(bits(i, proc)?.present) ?? 0) - (countOnes(bits(i, proc)?.exclusive) ?? 0);
  const c = (key: string, what: string, measured: number | null, predicted: number | null): PredictedCount => ({ key, what, measured, predicted });
  return [
    c('fork.copies', 'pages copied at the fork', raw.fork.copies, ev(0).copies),
    c('fork.childPresent', 'pages the child maps after the fork', raw.fork.childPresent, countOnes(bits(0, 'c1')?.present) ?? 0),
    c('fork.childShared', 'of them shared', raw.fork.childShared, shared(0, 'c1')),
    c('exec.copies', 'pages copied at the exec', raw.exec.copies, ev(1).copies),
    c('exec.childPresent', "pages the exec'd child maps", raw.exec.childPresent, countOnes(bits(1, 'c1')?.present) ?? 0),
    c('exec.parentExclusive', 'parent pages exclusive after the exec', raw.exec.parentExclusive, countOnes(bits(1, 'p0')?.exclusive)),
    c('exec.frames', 'frames after the exec', raw.exec.frames, o(1).frames.heap ?? null),
    c('write.copies', "copies among the parent's writes", raw.write.copies, ev(2).copies),
    c('write.reuses', "reuses among the parent's writes", raw.write.reuses, ev(2).reuses),
    c('write.zeroFills', "zero fills among the parent's writes", raw.write.zeroFills, ev(2).zeroFills),
    c('write.frames', 'frames after the writes', raw.write.frames, o(2).frames.heap ?? null),
  ];
}

function verdict(raw: Raw) {
  const { fork, exec, write } = raw;
  const region = raw.pages * raw.pageSize;
  const metrics: Metric[] = [
    { key: 'pages-copied', label: 'pages copied by fork+exec', unit: 'count', value: pointBand(fork.copies + exec.copies + (exec.parentPfnChanged ?? 0)) },
    { key: 'parent-reuses', label: "reuses among the parent's later writes", unit: 'count', value: pointBand(write.reuses) },
    { key: 'fork-ns', label: `fork() of a ${formatBytes(region)} parent`, unit: 'ns', value: pointBand(fork.forkNs) },
    { key: 'reuse-write-p50', label: "the parent's write after the exec (a reuse fault), p50", unit: 'ns', value: pointBand(write.p50Ns) },
  ];
  if (raw.setup.present < raw.pages) {
    return {
      verdict: 'not-measurable' as const,
      figure: `only ${formatCount(raw.setup.present)} of ${formatCount(raw.pages)} parent pages were resident at the fork`,
      reason: 'Memory pressure reclaimed part of the parent region before the fork (swapped-out pages are not shared the same way), so copies could not be told from swap-ins. Run it with more free memory.',
      metrics,
    };
  }
  const problems: string[] = [];
  if (fork.copies + exec.copies > 0) problems.push(`${fork.copies + exec.copies} pages copied at the fork or exec`);
  if (exec.parentPfnChanged !== null && exec.parentPfnChanged > 0) problems.push(`${exec.parentPfnChanged} parent PFNs changed`);
  if (fork.child.privateDirty > 0) problems.push(`the child's Private_Dirty of the region was ${formatBytes(fork.child.privateDirty)} after the fork`);
  if (exec.childPresent > 0) problems.push(`the exec'd child still mapped ${exec.childPresent} pages`);
  if (exec.childProcessPrivateDirty >= CHILD_SHARE * region) problems.push(`the exec'd child's Private_Dirty was ${formatBytes(exec.childProcessPrivateDirty)}`);
  if (write.copies > 0) problems.push(`${write.copies} of the parent's writes copied`);
  if (write.reuses !== write.written) problems.push(`${write.reuses} reuses for ${write.written} writes`);
  if (write.faults < write.written || write.faults > write.written + 2 + Math.ceil(write.written * 0.01)) problems.push(`${write.faults} faults for ${write.written} writes`);
  if (write.pfnChanged !== null && write.pfnChanged > 0) problems.push(`${write.pfnChanged} frames changed under the parent's writes`);
  if (write.pgreuse !== null && write.pgreuse < write.written) problems.push(`pgreuse grew by only ${write.pgreuse}`);
  const copied = fork.copies + exec.copies;
  const figure =
    `fork+exec of a ${formatBytes(region)} parent: ${formatCount(copied)} pages copied` +
    `${exec.parentPfnChanged === null ? '' : ` (${formatCount(exec.parentPfnChanged)} parent PFNs changed)`}, child's Private_Dirty of it ${formatBytes(fork.child.privateDirty)}; ` +
    `the parent's ${formatCount(write.written)} later writes: ${formatCount(write.reuses)} reuses, ${formatCount(write.copies)} copies, ${formatCount(write.faults)} faults (${formatNs(write.p50Ns)} p50)`;
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure,
    reason:
      (problems.length === 0 ? 'Held: ' : `Not so here: ${problems.join('; ')}. Measured: `) +
      `fork ${formatNs(fork.forkNs)}, exec ${formatNs(exec.execNs)}; after the exec the child maps ${exec.childPresent} pages and its whole Private_Dirty is ${formatBytes(exec.childProcessPrivateDirty)} (the new program's own); ` +
      `pgreuse ${write.pgreuse === null ? 'not in /proc/vmstat' : `+${formatCount(write.pgreuse)} (system-wide)`}${raw.pfnVisible ? '; checked by PFN' : '; without root: by the exclusive bit (PFNs hidden)'}.` +
      describeDisagreements(raw.predicted),
    metrics,
  };
}

function present(raw: Raw) {
  const { fork, exec, write } = raw;
  const mib = (b: number) => b / 2 ** 20;
  const steps = ['after setup', 'after fork', 'after exec'];
  const parent = [raw.setup.parent, fork.parent, exec.parent];
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: `fork+exec of a ${formatBytes(raw.pages * raw.pageSize)} parent: pages copied and the parent's later writes`,
        categories: ['fork', 'exec', "parent writes every page"],
        y: { label: 'pages', unit: 'pages' },
        series: [
          { name: 'copies', values: [fork.copies, exec.copies, write.copies] },
          { name: 'reuses', values: [0, 0, write.reuses] },
          { name: 'faults', values: [0, 0, write.faults] },
        ],
      },
      {
        kind: 'bar' as const,
        // Shared_Dirty of both sides: after the fork the parent's memory moves from private to
        // shared (it is not lost), and after the exec it is the parent's alone again.
        title: "smaps of the region: after the fork parent and child share it (Shared_Dirty, the child's Private_Dirty 0); after the exec it is the parent's own again",
        categories: steps,
        y: { label: 'smaps of the region', unit: 'MiB' },
        series: [
          { name: 'parent Private_Dirty', values: parent.map((p) => mib(p.privateDirty)) },
          { name: 'parent Shared_Dirty', values: parent.map((p) => mib(p.sharedDirty)) },
          { name: 'child Private_Dirty', values: [null, mib(fork.child.privateDirty), 0] },
          { name: 'child Shared_Dirty', values: [null, mib(fork.child.sharedDirty), 0] },
        ],
      },
    ],
    tables: [
      {
        title: 'Step by step (kernel engine)',
        head: ['step', 'copies', 'reuses', 'faults', 'time', 'parent Private_Dirty', 'child', raw.pfnVisible ? 'parent PFNs changed' : 'parent exclusive'],
        rows: [
          ['setup: p0 writes every page', '0', '0', `${formatCount(raw.setup.zeroFills)} (zero fills)`, formatNs(raw.setup.timeNs), formatBytes(raw.setup.parent.privateDirty), '-', '-'],
          ['fork', formatCount(fork.copies), '0', '0', formatNs(fork.forkNs), formatBytes(fork.parent.privateDirty), `${formatCount(fork.childPresent)} pages mapped, ${formatCount(fork.childShared)} shared; Private_Dirty ${formatBytes(fork.child.privateDirty)}, Shared_Dirty ${formatBytes(fork.child.sharedDirty)}`, '-'],
          ['exec (child)', formatCount(exec.copies), '0', '-', formatNs(exec.execNs), formatBytes(exec.parent.privateDirty), `${formatCount(exec.childPresent)} pages mapped; whole process Private_Dirty ${formatBytes(exec.childProcessPrivateDirty)}`, exec.parentPfnChanged === null ? formatCount(exec.parentExclusive) : formatCount(exec.parentPfnChanged)],
          ['parent writes every page', formatCount(write.copies), formatCount(write.reuses), formatCount(write.faults), formatNs(write.timeNs), '-', '-', write.pfnChanged === null ? '-' : formatCount(write.pfnChanged)],
        ],
        note: `Region: ${formatCount(raw.pages)} pages (${formatBytes(raw.pages * raw.pageSize)}), private anonymous, written by p0 before the fork. The exec'd child runs /bin/cat (it maps none of the region). Parent write p50 ${formatNs(write.p50Ns)}, total ${(toMs(write.timeNs)).toFixed(1)} ms; pgreuse ${write.pgreuse === null ? 'n/a' : `+${formatCount(write.pgreuse)}`} (system-wide /proc/vmstat around the writes). Frames after the exec: ${formatCount(exec.frames)}, after the writes: ${formatCount(write.frames)}.`,
      },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 3,
  name: 'fork-exec',
  title: 'fork+exec copies nothing',
  claim:
    "A child that execs at once copies none of its parent's pages: of a 1 GiB parent, zero pages are copied (pagemap, Private_Dirty), and the parent's later writes are reuses, not copies.",
  short: 'fork+exec copies zero pages',
  rule: RULE,
  measures:
    'A trace on the kernel engine: p0 maps and writes 1 GiB (256 MiB with --quick; clamped to half of MemAvailable), forks c1, c1 execs /bin/cat; then p0 writes every page. After every step: pagemap (PFNs as root, present/exclusive bits) and smaps (Private_Dirty) of both processes, copies and reuses per access, pgreuse around the writes.',
  requirements: { engines: ['kernel'], minMemoryBytes: 64 * 2 ** 20 },
  budgetMs: { full: 15_000, quick: 5_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
