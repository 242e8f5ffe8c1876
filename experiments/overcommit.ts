/**
 * Experiment 20: fork promises memory it does not have. A fork of a parent holding N bytes of
 * private writable memory adds N to the commit charge (Committed_AS) and almost nothing to the
 * memory in use: the pages are shared until someone writes. Under vm.overcommit_memory=2 the
 * kernel refuses a fork whose promise would pass CommitLimit (ENOMEM) while vfork+exec and
 * posix_spawn, which promise nothing, still work: the condition behind Redis's "overcommit_memory
 * is set to 0" warning. And the promise is a risk: a child that writes everything in a memory
 * cgroup capped below what parent and child then hold is OOM-killed (the cgroup's own count).
 *
 * Three cases: the commit charge (any machine), the strict policy (a global setting: only in a
 * guest cowlab booted, --kernel), the cgroup cap (a cgroup of the run's own). The simulator
 * predicts the frames of the same traces: none added by the fork, N by the child's writes.
 */
import { existsSync, writeFileSync } from 'node:fs';

import { z } from 'zod';

import { CowlabError } from '../src/errors.js';
import { meminfoField } from '../src/env/environment.js';
import { withKnob } from '../src/env/knobs.js';
import { createMemoryCgroup } from '../src/memory/cgroup.js';
import { Mapping } from '../src/memory/mapping.js';
import { forkChargeBytes } from '../src/memory/smaps.js';
import { formatBytes } from '../src/report/format.js';
import { timeSpawn } from '../src/probes/spawn.js';
import { bandOf, pointBand } from '../src/suite/measure.js';
import { median } from '../src/stats/summary.js';
import { predictionTable, PredictionSchema, profileName, simulate, type PredictedCount } from '../src/suite/predict.js';
import { sized, Steps } from '../src/suite/steps.js';
import { buildTrace, kernelEngine, regionSpec } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const MiB = 2 ** 20;
const HELD = { full: 256 * MiB, quick: 64 * MiB };
/** Forks measured for the commit charge. Committed_AS and MemAvailable are system-wide: any
 *  other process that maps or frees memory during a fork moves them, so the figure is the
 *  median over several forks, not one. */
const COMMIT_FORKS = { full: 5, quick: 3 };
const OVERCOMMIT = '/proc/sys/vm/overcommit_memory';
const TRUE = ['/bin/true', '/usr/bin/true'];
const RULE =
  "Confirmed when the fork adds (median over several forks: the counters are system-wide) at least 90 % of the parent's N private writable bytes to Committed_AS while MemAvailable drops by less than 10 % of N (and the simulator predicts no new frame); " +
  'under vm.overcommit_memory=2 (in a guest) fork() fails with ENOMEM while vfork()+exec and posix_spawn succeed; ' +
  'and a child that writes all N pages in a memory cgroup capped at 1.5 N (the parent holding N there too) is OOM-killed, counted by the cgroup itself. ' +
  'Refuted when a measured case does not hold; a case this machine cannot run (the strict policy outside a guest, no memory cgroup) is not measured, with the reason.';

const CommitSchema = z.object({
  heldBytes: z.number(),
  committedDeltaBytes: z.number(),
  availableDropBytes: z.number(),
  /** Frames of the region after the fork (null without root) and the simulator's. */
  framesAfterFork: z.number().nullable(),
  /** What the fork should add: the forking process's accountable mappings just before it
   *  (median over the forks; absent in results written before). */
  chargeBytes: z.number().optional(),
  /** Each fork's figures; the two deltas above are their medians (absent in results written
   *  before: one fork). */
  samples: z.object({ committedDeltaBytes: z.array(z.number()), availableDropBytes: z.array(z.number()), chargeBytes: z.array(z.number()).optional() }).optional(),
});
const StrictSchema = z.object({
  commitLimitBytes: z.number(),
  committedBytes: z.number(),
  heldBytes: z.number(),
  /** Per kind: null when it succeeded, else the error code and errno. */
  fork: z.string().nullable(),
  vfork: z.string().nullable(),
  posixSpawn: z.string().nullable(),
});
const OomSchema = z.object({
  heldBytes: z.number(),
  limitBytes: z.number(),
  cgroupVersion: z.number().int(),
  /** How the child's writes ended: null when they completed, else the error. */
  childEnd: z.string().nullable(),
  oomKills: z.number().int(),
});
const RawSchema = z.object({
  commit: CommitSchema.nullable(),
  strict: StrictSchema.nullable(),
  oom: OomSchema.nullable(),
  /** Cases not measured here, with the reason. */
  skipped: z.array(z.object({ case: z.string(), reason: z.string() })),
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

/** A /proc/meminfo field in bytes; not measurable on a kernel without it. */
function meminfo(field: string): number {
  const v = meminfoField(field);
  if (Number.isNaN(v)) throw new CowlabError('ERR_NOT_MEASURABLE', `/proc/meminfo has no ${field}`);
  return v;
}

/** The commit charge of a fork, the median over COMMIT_FORKS runs of commitOnce. */
async function commitCase(ctx: RunContext, bytes: number): Promise<{ commit: NonNullable<Raw['commit']>; predicted: PredictedCount[] }> {
  const runs: Awaited<ReturnType<typeof commitOnce>>[] = [];
  for (let i = 0; i < sized(ctx, COMMIT_FORKS); i++) {
    ctx.signal.throwIfAborted();
    runs.push(await commitOnce(ctx, bytes));
  }
  const committed = runs.map((r) => r.commit.committedDeltaBytes);
  const available = runs.map((r) => r.commit.availableDropBytes);
  const charge = runs.map((r) => r.commit.chargeBytes!);
  const last = runs.at(-1)!;
  return {
    // runs is never empty (COMMIT_FORKS >= 3), so the medians are numbers.
    commit: {
      ...last.commit,
      committedDeltaBytes: median(committed)!,
      availableDropBytes: median(available)!,
      chargeBytes: median(charge)!,
      samples: { committedDeltaBytes: committed, availableDropBytes: available, chargeBytes: charge },
    },
    predicted: last.predicted,
  };
}

/** One fork's commit charge: a trace whose p0 holds N bytes forks c1, which holds still. */
async function commitOnce(ctx: RunContext, bytes: number): Promise<{ commit: NonNullable<Raw['commit']>; predicted: PredictedCount[] }> {
  const pages = bytes / ctx.env.pageSize;
  const trace = buildTrace('overcommit-commit', 'p0 holds N written pages and forks c1, which holds its snapshot a moment, then exits.', [regionSpec({ id: 'm', pages })], [
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'exit', proc: 'c1', afterMs: 50 },
  ]);
  let before: { committed: number; available: number } | null = null;
  let chargeBytes = 0;
  let after: { committed: number; available: number } | null = null;
  const sample = () => ({ committed: meminfo('Committed_AS'), available: meminfo('MemAvailable') });
  const r = await kernelEngine().runDetailed(trace, {
    onLive: (l) => {
      if (l.done === 0) {
        chargeBytes = forkChargeBytes(l.pids.p0!);
        before = sample();
      }
      if (l.done === 1) after = sample();
    },
  });
  const b = before!;
  const a = after!;
  const framesAfterFork = r.observations.steps[1]!.frames.m ?? null;
  const sim = await simulate(trace);
  const predicted: PredictedCount[] = [
    { key: 'commit.frames', what: 'frames of the region after the fork', measured: framesAfterFork, predicted: sim?.steps[1]!.frames.m ?? null },
    { key: 'commit.copies', what: 'pages copied by the fork', measured: r.observations.steps[1]!.events.m!.copies, predicted: sim?.steps[1]!.events.m!.copies ?? null },
  ];
  return { commit: { heldBytes: bytes, committedDeltaBytes: a.committed - b.committed, availableDropBytes: b.available - a.available, framesAfterFork, chargeBytes }, predicted };
}

/** How one spawn kind ended under the strict policy: null (succeeded) or "ERR_SYSCALL ENOMEM". */
async function spawnOutcome(kind: 'fork' | 'vfork' | 'posix_spawn', program: string): Promise<string | null> {
  try {
    await timeSpawn({ kind, program, deadlineMs: 10_000 });
    return null;
  } catch (err) {
    if (!(err instanceof CowlabError)) throw err;
    return `${err.code}${err.errno ? ` ${err.errno}` : ''}`;
  }
}

/** Under vm.overcommit_memory=2: a parent whose fork would pass CommitLimit. */
async function strictCase(ctx: RunContext): Promise<NonNullable<Raw['strict']>> {
  const program = TRUE.find((p) => existsSync(p));
  if (!program) throw new CowlabError('ERR_NOT_MEASURABLE', `no trivial program to spawn: none of ${TRUE.join(', ')}`);
  return withKnob(ctx.env, OVERCOMMIT, '2', async () => {
    const limit = meminfo('CommitLimit');
    const committed = meminfo('Committed_AS');
    // Enough that the fork's second copy of the promise passes the limit, not so much that the
    // mapping itself does.
    const room = limit - committed;
    if (room < 32 * MiB) throw new CowlabError('ERR_NOT_MEASURABLE', `Committed_AS is within 32 MiB of CommitLimit already (${formatBytes(committed)} of ${formatBytes(limit)})`);
    const held = Math.floor((room * 0.7) / (2 * MiB)) * 2 * MiB;
    const m = Mapping.create({ pages: held / ctx.env.pageSize });
    try {
      m.touch('write');
      return {
        commitLimitBytes: limit,
        committedBytes: meminfo('Committed_AS'),
        heldBytes: held,
        fork: await spawnOutcome('fork', program),
        vfork: await spawnOutcome('vfork', program),
        posixSpawn: await spawnOutcome('posix_spawn', program),
      };
    } finally {
      m.unmap();
    }
  });
}

/** A child that writes all N pages in a memory cgroup capped at 1.5 N, p0 holding N there. */
async function oomCase(ctx: RunContext, bytes: number): Promise<{ oom: NonNullable<Raw['oom']>; predicted: PredictedCount[] }> {
  const pages = bytes / ctx.env.pageSize;
  const limit = Math.floor(bytes * 1.5);
  const all = { start: 0, end: pages };
  const trace = buildTrace('overcommit-oom', 'p0 (in a memory cgroup capped at 1.5 N) writes N pages and forks c1; c1 writes all of them.', [regionSpec({ id: 'm', pages, populate: 'none' })], [
    { op: 'write', proc: 'p0', region: 'm', pages: all },
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'write', proc: 'c1', region: 'm', pages: all },
    { op: 'exit', proc: 'c1' },
  ]);
  const cg = createMemoryCgroup('cowlab-overcommit', limit);
  let childEnd: string | null = null;
  try {
    try {
      await kernelEngine().runDetailed(trace, {
        onLive: (l) => {
          // p0 before its writes, so they are charged to the cgroup; the child as the OOM
          // killer's choice (both map N pages, and the test is what happens to the child).
          if (l.done === 0) cg.add(l.pids.p0!);
          if (l.done === 2) writeOomScore(l.pids.c1!);
        },
      });
    } catch (err) {
      if (!(err instanceof CowlabError) || err.code !== 'ERR_CHILD_FAILED') throw err;
      childEnd = err.message;
    }
    const oomKills = cg.oomKills();
    const sim = await simulate(trace);
    const predicted: PredictedCount[] = [
      { key: 'oom.frames', what: "frames parent and child need once the child wrote everything (the simulator's; the kernel's run was cut short)", measured: null, predicted: sim?.steps[3]!.frames.m ?? null },
    ];
    return { oom: { heldBytes: bytes, limitBytes: limit, cgroupVersion: cg.version, childEnd, oomKills }, predicted };
  } finally {
    await cg.remove();
  }
}

/** The OOM killer's first choice: a per-process setting (the child's own), not a global one. */
function writeOomScore(pid: number): void {
  writeFileSync(`/proc/${pid}/oom_score_adj`, '1000');
}

async function run(ctx: RunContext): Promise<Raw> {
  const held = Math.floor(ctx.clamp(sized(ctx, HELD) * 2, 'memory held (and its copy)') / 2 / (2 * MiB)) * 2 * MiB;
  const raw: Raw = { commit: null, strict: null, oom: null, skipped: [] };
  const counts: PredictedCount[] = [];
  const steps = new Steps(ctx, 3);
  const attempt = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof CowlabError) || err.code !== 'ERR_NOT_MEASURABLE') throw err;
      raw.skipped.push({ case: name, reason: err.message });
      ctx.note(`${name}: not measured here: ${err.message}`);
    }
    steps.keep(raw);
  };
  steps.next('the commit charge of a fork');
  await attempt('commit', async () => {
    const c = await commitCase(ctx, held);
    raw.commit = c.commit;
    counts.push(...c.predicted);
  });
  steps.next('vm.overcommit_memory=2');
  await attempt('strict', async () => {
    raw.strict = await strictCase(ctx);
  });
  steps.next('a child that writes everything in a capped cgroup');
  await attempt('oom', async () => {
    const o = await oomCase(ctx, held);
    raw.oom = o.oom;
    counts.push(...o.predicted);
  });
  if (counts.length) raw.predicted = { profile: profileName(ctx.env), counts };
  if (!raw.commit && !raw.strict && !raw.oom) throw new CowlabError('ERR_NOT_MEASURABLE', raw.skipped.map((x) => `${x.case}: ${x.reason}`).join('; '));
  return raw;
}

/**
 * The commit metric compare judges. Committed_AS added is N plus the forking process's other
 * private writable memory, Node's heap among it, which differs between runs by 10 MiB or more;
 * held against that process's own accountable mappings (read before each fork) it is 1.00 on
 * every run. Results without the charge keep the raw delta.
 */
function commitMetric(c: NonNullable<Raw['commit']>): Metric {
  const charges = c.samples?.chargeBytes;
  if (charges && c.samples) {
    const ratios = c.samples.committedDeltaBytes.map((d, i) => d / charges[i]!);
    return { key: 'commit-per-charge', label: "Committed_AS added by the fork per byte of its process's accountable mappings", unit: 'ratio', value: bandOf(ratios) };
  }
  return { key: 'committed-delta', label: 'Committed_AS added by the fork', unit: 'bytes', value: c.samples ? bandOf(c.samples.committedDeltaBytes) : pointBand(c.committedDeltaBytes) };
}

function verdict(raw: Raw) {
  const metrics: Metric[] = [];
  const problems: string[] = [];
  const held: string[] = [];
  const c = raw.commit;
  if (c) {
    metrics.push(commitMetric(c));
    // "Almost none" is absolute: 5 MiB against 8 MiB is 0.6x, yet both are under the rule's tenth of N.
    metrics.push({ key: 'available-drop', label: 'MemAvailable lost by the fork', unit: 'bytes', value: c.samples ? bandOf(c.samples.availableDropBytes) : pointBand(c.availableDropBytes), resolution: 0.1 * c.heldBytes });
    if (c.committedDeltaBytes < 0.9 * c.heldBytes) problems.push(`the fork added only ${formatBytes(c.committedDeltaBytes)} of ${formatBytes(c.heldBytes)} to Committed_AS`);
    else if (c.availableDropBytes > 0.1 * c.heldBytes) problems.push(`the fork took ${formatBytes(c.availableDropBytes)} of MemAvailable for ${formatBytes(c.heldBytes)} held`);
    else held.push(`a fork of ${formatBytes(c.heldBytes)} added ${formatBytes(c.committedDeltaBytes)} to Committed_AS${c.chargeBytes ? ` (its process's accountable mappings: ${formatBytes(c.chargeBytes)})` : ''} and took ${formatBytes(Math.max(0, c.availableDropBytes))} of MemAvailable`);
  }
  const s = raw.strict;
  if (s) {
    if (s.fork === null || !s.fork.includes('ENOMEM')) problems.push(`under overcommit_memory=2 fork() ${s.fork === null ? 'succeeded' : `failed with ${s.fork}`}`);
    else if (s.vfork !== null || s.posixSpawn !== null) problems.push(`under overcommit_memory=2 vfork()+exec ${s.vfork ?? 'succeeded'}, posix_spawn ${s.posixSpawn ?? 'succeeded'}`);
    else held.push(`under overcommit_memory=2, holding ${formatBytes(s.heldBytes)} (CommitLimit ${formatBytes(s.commitLimitBytes)}), fork() failed with ENOMEM while vfork()+exec and posix_spawn succeeded`);
  }
  const o = raw.oom;
  if (o) {
    metrics.push({ key: 'oom-kills', label: 'OOM kills in the capped cgroup', unit: 'count', value: pointBand(o.oomKills) });
    if (o.childEnd === null || o.oomKills < 1) problems.push(`the child ${o.childEnd === null ? 'wrote everything' : 'died'} in a cgroup capped at ${formatBytes(o.limitBytes)}, with ${o.oomKills} OOM kills counted`);
    else held.push(`the child writing ${formatBytes(o.heldBytes)} in a cgroup capped at ${formatBytes(o.limitBytes)} was OOM-killed (memory cgroup v${o.cgroupVersion}: oom_kill ${o.oomKills})`);
  }
  const skipped = raw.skipped.map((x) => `${x.case}: ${x.reason}`).join('; ');
  if (held.length === 0 && problems.length === 0) {
    return { verdict: 'not-measurable' as const, figure: 'no case measured', reason: `Nothing could be measured here: ${skipped}.`, metrics };
  }
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure: problems.length === 0 ? held.join('; ') : problems.join('; '),
    reason: `${problems.length === 0 ? `Held in ${held.length} of 3 cases.` : `Not so here: ${problems.join('; ')}.`}${skipped ? ` Not measured here: ${skipped}.` : ''}`,
    metrics,
  };
}

function present(raw: Raw) {
  const c = raw.commit;
  const rows: string[][] = [];
  if (c) rows.push(['fork of a parent holding N', formatBytes(c.heldBytes), `Committed_AS +${formatBytes(c.committedDeltaBytes)}, MemAvailable -${formatBytes(Math.max(0, c.availableDropBytes))}`]);
  const s = raw.strict;
  if (s) rows.push(['vm.overcommit_memory=2', formatBytes(s.heldBytes), `fork: ${s.fork ?? 'ok'}; vfork+exec: ${s.vfork ?? 'ok'}; posix_spawn: ${s.posixSpawn ?? 'ok'} (CommitLimit ${formatBytes(s.commitLimitBytes)})`]);
  const o = raw.oom;
  if (o) rows.push([`child writes all in a cgroup capped at 1.5 N (v${o.cgroupVersion})`, formatBytes(o.heldBytes), `${o.childEnd ?? 'wrote everything'}; oom_kill ${o.oomKills}`]);
  for (const x of raw.skipped) rows.push([x.case, '-', `not measured here: ${x.reason}`]);
  return {
    charts: c
      ? [
          {
            kind: 'bar' as const,
            title: `What a fork of a parent holding ${formatBytes(c.heldBytes)} costs: promised against used`,
            categories: ['memory held by the parent', 'Committed_AS added', 'MemAvailable lost'],
            y: { label: 'bytes', unit: 'MiB' },
            series: [{ name: 'fork', values: [c.heldBytes / MiB, c.committedDeltaBytes / MiB, Math.max(0, c.availableDropBytes) / MiB] }],
          },
        ]
      : [],
    tables: [
      { title: 'Cases', head: ['case', 'N', 'outcome'], rows },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 20,
  name: 'overcommit',
  title: 'Fork and overcommit',
  claim:
    "A fork of a parent holding N bytes of private writable memory promises N more (Committed_AS) and uses almost none; under vm.overcommit_memory=2 that promise makes fork() fail with ENOMEM while vfork()+exec and posix_spawn succeed; and a child that keeps the promise in a capped memory cgroup is OOM-killed.",
  short: 'fork promises memory it does not use',
  measures:
    "A trace on the kernel engine: p0 holds N written pages and forks (Committed_AS and MemAvailable from /proc/meminfo before and after); in a guest, under vm.overcommit_memory=2, fork, vfork+exec and posix_spawn of a parent close to CommitLimit; a child that writes all N pages in a memory cgroup of the run's own capped at 1.5 N, and the cgroup's oom_kill count.",
  rule: RULE,
  requirements: { engines: ['kernel', 'sim'], minMemoryBytes: 16 * MiB },
  budgetMs: { full: 6_000, quick: 3_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
