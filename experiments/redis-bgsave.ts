/**
 * Experiment 24: a real Redis BGSAVE under a steady write load. cowlab's three figures of the
 * snapshot's COW memory (watch: the child's Private_Dirty from outside; the simulator's
 * prediction from the write set record saw; Redis's own rdb_last_cow_size) and two of its fork
 * time (watch from outside; Redis's latest_fork_usec) must agree.
 */
import { randomBytes } from 'node:crypto';

import { z } from 'zod';

import { CowlabError } from '../src/errors.js';
import { formatBytes } from '../src/util/units.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import { predictSnapshot } from '../src/watch/predict.js';
import { recordWrites, type RecordResult } from '../src/watch/record.js';
import { REDIS_INSTALL_HINT, redisServerPath, startPrivateRedis, type PrivateRedis, type RedisClient } from '../src/watch/redis.js';
import { watchFork } from '../src/watch/watch.js';

const MiB = 2 ** 20;
/** COW figures agree when within this fraction of Redis's, or this many bytes (the sampling interval's writes). */
const COW_TOLERANCE = 0.15;
const COW_SLACK_BYTES = 8 * MiB;
/** Fork time: Redis's figure within watch's window [blocked read, poll gap], widened so. */
const FORK_TOLERANCE = 0.5;
const FORK_SLACK_MS = 3;
const VALUE_BYTES = 1000;
const SIZES = { quick: { fillMiB: 200, rate: 15_000 }, full: { fillMiB: 400, rate: 20_000 } };
const RULE =
  `confirmed when watch's COW figure (the child's Private_Dirty at its last sample) and the simulator's prediction from the recorded write set are each within ${COW_TOLERANCE * 100} % (or ${COW_SLACK_BYTES / MiB} MiB) of Redis's rdb_last_cow_size, ` +
  `and Redis's latest_fork_usec lies within watch's fork window (from the blocked pagemap read to the poll gap) widened by ${FORK_TOLERANCE * 100} % and ${FORK_SLACK_MS} ms; ` +
  'refuted when a figure falls outside; not measurable when redis-server is not installed (Debian package redis-server) or the snapshot ended before cowlab saw it.';

const SampleSchema = z.object({ tMs: z.number(), cowBytes: z.number(), parentPrivateDirty: z.number(), parentRss: z.number() });
const RunSchema = z.object({
  keys: z.number().int(),
  valueBytes: z.number().int(),
  usedMemory: z.number(),
  /** Writes per second the load aimed at, and what it sent during the snapshot. */
  rate: z.number(),
  writesDuringSnapshot: z.number().int(),
  redis: z.object({ rdbLastCowSize: z.number(), latestForkUsec: z.number(), bgsaveStatus: z.string(), version: z.string() }),
  watch: z.object({
    forkMs: z.number(),
    blockedMs: z.number().nullable(),
    upperBoundMs: z.number(),
    finalCowBytes: z.number(),
    peakCowBytes: z.number(),
    durationMs: z.number(),
    samples: z.array(SampleSchema),
  }),
  record: z.object({
    method: z.string(),
    intervals: z.number().int(),
    intervalMs: z.number().int(),
    distinctPages: z.number().int(),
    residentPages: z.number().int(),
    readMsMedian: z.number(),
    note: z.string(),
  }),
  predicted: z.object({ cowBytes: z.number(), newBytes: z.number(), forkMs: z.number(), forkSource: z.string(), simMs: z.number(), points: z.array(z.object({ tS: z.number(), cowBytes: z.number() })) }),
});
const RawSchema = z.object({ runs: z.array(RunSchema) });
type Raw = z.infer<typeof RawSchema>;
type Run = z.infer<typeof RunSchema>;

/** Values of VALUE_BYTES random base64 characters: incompressible, so the RDB the child writes
 *  is as large as the data and the snapshot lasts long enough to watch. */
function value(): string {
  return randomBytes((VALUE_BYTES * 3) / 4).toString('base64').slice(0, VALUE_BYTES);
}

async function fill(c: RedisClient, keys: number, signal: AbortSignal): Promise<void> {
  const batch = 1000;
  for (let i = 0; i < keys; i += batch) {
    signal.throwIfAborted();
    const n = Math.min(batch, keys - i);
    await Promise.all(Array.from({ length: n }, (_x, j) => c.command('SET', `key:${i + j}`, value())));
  }
}

/** Overwrites uniformly random keys at `rate` per second, in batches every 10 ms, until stopped. */
function startLoad(c: RedisClient, keys: number, rate: number): { stop(): Promise<number> } {
  let sent = 0;
  let running = true;
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
  const t0 = performance.now();
  const loop = (async () => {
    while (running) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate) - sent;
      const n = Math.min(due, 2000);
      if (n > 0) {
        const ps: Promise<unknown>[] = [];
        for (let j = 0; j < n; j++) {
          const k = Math.floor(rnd() * keys);
          ps.push(c.command('SET', `key:${k}`, value()));
        }
        sent += n;
        await Promise.all(ps);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return sent;
    },
  };
}

async function oneRun(ctx: RunContext, steps: Steps, fillMiB: number, rate: number): Promise<Run> {
  const keys = Math.floor((fillMiB * MiB) / (VALUE_BYTES + 100));
  let redis: PrivateRedis | null = null;
  try {
    steps.next('starting a private redis-server');
    redis = await startPrivateRedis();
    steps.next(`filling ${keys} keys of ${VALUE_BYTES} bytes`);
    await fill(redis.client, keys, ctx.signal);
    const usedMemory = Number((await redis.client.info('memory')).used_memory);
    steps.next(`BGSAVE under ${rate} writes/s`);
    const load = startLoad(redis.client, keys, rate);
    await new Promise((r) => setTimeout(r, 300));
    let recording: Promise<RecordResult> | null = null;
    const pid = redis.pid;
    const watching = watchFork({
      pid,
      intervalMs: 50,
      timeoutS: 10,
      signal: ctx.signal,
      onFork: (child) => {
        recording = recordWrites({ pid, child, seconds: 60, intervalMs: 100, method: 'fork', signal: ctx.signal });
      },
    });
    let writes = 0;
    let w;
    try {
      await redis.client.command('BGSAVE');
      w = await watching;
    } finally {
      writes = await load.stop();
    }
    const rec = await (recording as Promise<RecordResult> | null);
    if (rec === null) throw new CowlabError('ERR_NOT_MEASURABLE', 'the recorder did not start');
    // Redis reports the save once its child is reaped; wait for it.
    let persistence = await redis.client.info('persistence');
    for (let i = 0; i < 100 && persistence.rdb_bgsave_in_progress !== '0'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      persistence = await redis.client.info('persistence');
    }
    const stats = await redis.client.info('stats');
    if (w.samples.length === 0) throw new CowlabError('ERR_NOT_MEASURABLE', `the BGSAVE child ${w.child} exited before watch's first sample`);
    steps.next('predicting the snapshot from the recorded write set');
    const p = predictSnapshot({ trace: rec.trace });
    return {
      keys,
      valueBytes: VALUE_BYTES,
      usedMemory,
      rate,
      writesDuringSnapshot: writes,
      redis: { rdbLastCowSize: Number(persistence.rdb_last_cow_size), latestForkUsec: Number(stats.latest_fork_usec), bgsaveStatus: persistence.rdb_last_bgsave_status ?? '?', version: redis.version },
      watch: {
        forkMs: w.fork.ms,
        blockedMs: w.fork.blockedMs,
        upperBoundMs: w.fork.upperBoundMs,
        finalCowBytes: w.finalCowBytes,
        peakCowBytes: w.peak.cowBytes,
        durationMs: w.durationMs,
        samples: w.samples.map((s) => ({ tMs: s.tMs, cowBytes: s.cowBytes, parentPrivateDirty: s.parent.privateDirty, parentRss: s.parent.rss })),
      },
      record: { method: rec.method, intervals: rec.intervals.length, intervalMs: rec.intervalMs, distinctPages: rec.distinctPages, residentPages: rec.residentPages, readMsMedian: rec.cost.readMsMedian, note: rec.cost.note },
      predicted: { cowBytes: p.cowBytes, newBytes: p.newBytes, forkMs: p.fork.ms, forkSource: p.fork.source, simMs: p.simMs, points: p.points.map((q) => ({ tS: q.tS, cowBytes: q.cowBytes })) },
    };
  } finally {
    await redis?.stop();
  }
}

function cowAgrees(figure: number, redis: number): boolean {
  return Math.abs(figure - redis) <= Math.max(COW_TOLERANCE * redis, COW_SLACK_BYTES);
}

function forkWindow(r: Run): [number, number] {
  const lo = (r.watch.blockedMs ?? 0) * (1 - FORK_TOLERANCE) - FORK_SLACK_MS;
  const hi = r.watch.upperBoundMs * (1 + FORK_TOLERANCE) + FORK_SLACK_MS;
  return [Math.max(0, lo), hi];
}

function pct(a: number, b: number): string {
  return b === 0 ? '-' : `${a >= b ? '+' : ''}${(((a - b) / b) * 100).toFixed(1)} %`;
}

export default defineExperiment<Raw>({
  number: 24,
  name: 'redis-bgsave',
  title: "A real Redis BGSAVE: cowlab's COW and fork figures against Redis's own",
  claim:
    "For a real fork-snapshot server (Redis BGSAVE under a steady write load), cowlab's COW memory seen from outside (the child's Private_Dirty), the simulator's prediction from the recorded write set, and Redis's own rdb_last_cow_size agree; so do the fork time seen from outside and Redis's latest_fork_usec.",
  short: 'watch, record+simulate agree with Redis INFO',
  rule: RULE,
  measures:
    'Starts a private redis-server (Unix socket in a temporary directory, no port, no save), fills it with keys of 1000 bytes, and overwrites uniformly random keys at a set rate from a client of cowlab over the socket. It then triggers BGSAVE with `watch` attached (fork time, the child\'s smaps_rollup every 50 ms) and `record` (method fork: the parent\'s pages that stop being shared, every 100 ms), predicts the snapshot from the recorded trace on the simulator, and reads INFO persistence/stats. The server is shut down and its directory removed on every path.',
  requirements: { minMemoryBytes: 512 * MiB },
  budgetMs: { full: 30_000, quick: 15_000 },
  raw: RawSchema,
  async run(ctx) {
    if (redisServerPath() === null) throw new CowlabError('ERR_NOT_MEASURABLE', REDIS_INSTALL_HINT);
    const { fillMiB, rate } = sized(ctx, SIZES);
    const mib = Math.floor(ctx.clamp(fillMiB * 3 * MiB, 'redis memory (3x the data: the server, its snapshot\'s copies)') / (3 * MiB));
    const raw: Raw = { runs: [] };
    const steps = new Steps(ctx, 4);
    raw.runs.push(await oneRun(ctx, steps, mib, rate));
    steps.keep(raw);
    steps.finish();
    return raw;
  },
  verdict(raw) {
    const r = raw.runs.at(-1);
    if (!r) return { verdict: 'not-measurable', figure: 'no BGSAVE measured', reason: 'the run stopped before a BGSAVE finished', metrics: [] };
    const redisCow = r.redis.rdbLastCowSize;
    const watchOk = cowAgrees(r.watch.finalCowBytes, redisCow);
    const simOk = cowAgrees(r.predicted.cowBytes, redisCow);
    const redisForkMs = r.redis.latestForkUsec / 1000;
    const [lo, hi] = forkWindow(r);
    const forkOk = redisForkMs >= lo && redisForkMs <= hi;
    const metrics: Metric[] = [
      { key: 'cow.redis', label: "Redis's rdb_last_cow_size", unit: 'bytes', value: pointBand(redisCow) },
      { key: 'cow.watch', label: "watch: the child's Private_Dirty at its last sample", unit: 'bytes', value: pointBand(r.watch.finalCowBytes) },
      { key: 'cow.sim', label: 'the simulator, from the recorded write set', unit: 'bytes', value: pointBand(r.predicted.cowBytes) },
      { key: 'fork.redis', label: "Redis's latest_fork_usec", unit: 'ns', value: pointBand(r.redis.latestForkUsec * 1000), timed: true },
      { key: 'fork.watch', label: 'watch: fork time seen from outside', unit: 'ns', value: pointBand(r.watch.forkMs * 1e6), timed: true },
    ];
    const figure = `COW ${formatBytes(redisCow)} (Redis), ${formatBytes(r.watch.finalCowBytes)} (watch, ${pct(r.watch.finalCowBytes, redisCow)}), ${formatBytes(r.predicted.cowBytes)} (simulator, ${pct(r.predicted.cowBytes, redisCow)}); fork ${redisForkMs.toFixed(1)} ms (Redis) vs ${r.watch.forkMs.toFixed(1)} ms (watch)`;
    const reason =
      `${formatBytes(r.usedMemory)} in ${r.keys} keys, ${r.writesDuringSnapshot} writes at ${r.rate}/s during a ${(r.watch.durationMs / 1000).toFixed(2)} s BGSAVE: ` +
      `watch's COW ${formatBytes(r.watch.finalCowBytes)} is ${watchOk ? 'within' : 'outside'} the tolerance of Redis's ${formatBytes(redisCow)}; ` +
      `the simulator's ${formatBytes(r.predicted.cowBytes)} (from ${r.record.distinctPages} recorded pages, ${formatBytes(r.predicted.newBytes)} of them new, not COW) is ${simOk ? 'within' : 'outside'} it; ` +
      `Redis's fork ${redisForkMs.toFixed(2)} ms is ${forkOk ? 'inside' : 'outside'} watch's widened window ${lo.toFixed(2)}-${hi.toFixed(2)} ms (blocked read ${r.watch.blockedMs?.toFixed(2) ?? 'none'} ms, poll gap ${r.watch.upperBoundMs.toFixed(2)} ms)` +
      (r.redis.bgsaveStatus !== 'ok' ? `; Redis reports the BGSAVE as ${r.redis.bgsaveStatus}` : '');
    return { verdict: watchOk && simOk && forkOk ? 'confirmed' : 'refuted', figure, reason, metrics };
  },
  present(raw) {
    const r = raw.runs.at(-1);
    if (!r) return { charts: [], tables: [{ title: 'Nothing measured', head: ['why'], rows: [['no BGSAVE finished: the run stopped before one did']] }] };
    const end = r.watch.durationMs / 1000;
    return {
      charts: [
        {
          kind: 'line' as const,
          title: 'COW memory during a Redis BGSAVE: watch, the simulator, Redis',
          x: { label: 'time since the fork', unit: 's' },
          y: { label: 'COW memory', unit: 'MiB' },
          series: [
            { name: "watch (the child's Private_Dirty)", points: r.watch.samples.map((s) => ({ x: s.tMs / 1000, y: s.cowBytes / MiB })) },
            { name: 'simulator (recorded write set)', dashed: true, points: r.predicted.points.map((p) => ({ x: p.tS, y: p.cowBytes / MiB })) },
            { name: "Redis's rdb_last_cow_size (at the end)", points: [{ x: end, y: r.redis.rdbLastCowSize / MiB }] },
          ],
        },
      ],
      tables: [
        {
          title: 'COW memory of the snapshot: three figures',
          head: ['source', 'COW', 'against Redis'],
          rows: [
            ["Redis INFO rdb_last_cow_size (the child's Private_Dirty, read by the child at the end)", formatBytes(r.redis.rdbLastCowSize), '-'],
            [`watch: the child's Private_Dirty at its last sample (peak ${formatBytes(r.watch.peakCowBytes)})`, formatBytes(r.watch.finalCowBytes), pct(r.watch.finalCowBytes, r.redis.rdbLastCowSize)],
            [`simulator: copies of the recorded write set (${r.record.distinctPages} pages, ${r.record.intervals} intervals of ${r.record.intervalMs} ms)`, formatBytes(r.predicted.cowBytes), pct(r.predicted.cowBytes, r.redis.rdbLastCowSize)],
          ],
          note: `Tolerance ${COW_TOLERANCE * 100} % or ${COW_SLACK_BYTES / MiB} MiB. The parent also allocated ${formatBytes(r.predicted.newBytes)} of new pages during the snapshot (zero fills: memory, but not COW).`,
        },
        {
          title: 'Fork time',
          head: ['source', 'ms'],
          rows: [
            ["Redis INFO latest_fork_usec (around fork() in the parent)", (r.redis.latestForkUsec / 1000).toFixed(2)],
            ['watch: pagemap read blocked by the page-table copy (lower bound)', r.watch.blockedMs?.toFixed(2) ?? 'no read overlapped'],
            ['watch: poll gap until the child appeared (upper bound of the copy)', r.watch.upperBoundMs.toFixed(2)],
            [`prediction: ${r.predicted.forkSource}`, r.predicted.forkMs.toFixed(2)],
          ],
          note: `Redis's figure also holds the return from fork and any wait for a CPU (2 cores here, shared with the load and cowlab). Window widened by ${FORK_TOLERANCE * 100} % and ${FORK_SLACK_MS} ms. The prediction is shown, not judged.`,
        },
        {
          title: 'The run',
          head: ['data', 'keys', 'writes/s', 'writes during BGSAVE', 'snapshot', 'record cost'],
          rows: [[formatBytes(r.usedMemory), String(r.keys), String(r.rate), String(r.writesDuringSnapshot), `${(r.watch.durationMs / 1000).toFixed(2)} s`, r.record.note]],
        },
      ],
    };
  },
});
