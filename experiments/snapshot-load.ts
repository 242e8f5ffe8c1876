/**
 * Experiment 10: a fork snapshot under write load (the Redis BGSAVE pattern). The parent keeps
 * writing at a set rate while its child holds the snapshot; the memory COW costs is watched
 * in both processes (Private_Dirty of the region in /proc/<pid>/smaps) and compared with a
 * prediction. The prediction source is a parameter (snapshotLoadExperiment(predictor)): the
 * distinct pages of the write schedule, or the simulator's copies after the same writes (the
 * suite's, see experiments/index.ts).
 */
import { z } from 'zod';

import { simulateTrace } from '../src/engines/sim/index.js';
import { forkWrite } from '../src/forkwrite/forkWrite.js';
import type { ForkWriteRunStart } from '../src/forkwrite/options.js';
import { smapsFor } from '../src/memory/smaps.js';
import { formatBytes, formatCount, formatNs } from '../src/report/format.js';
import { summarize } from '../src/stats/summary.js';
import { mulberry32 } from '../src/util/prng.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { buildTrace, regionSpec } from '../src/suite/traces.js';
import type { Step } from '../src/trace/types.js';
import { defineExperiment, type Experiment, type Metric, type RunContext } from '../src/suite/types.js';

const CONFIG = {
  full: { pages: 16384, ratePerSec: 4000, seconds: 4, intervalMs: 100 },
  quick: { pages: 8192, ratePerSec: 4000, seconds: 1.5, intervalMs: 50 },
};
const SEED = 10;
/** Tolerances of the verdict (fractions of the final predicted COW memory). */
const FINAL_TOLERANCE = 0.02;
const DURING_TOLERANCE = 0.05;
const SLACK_PAGES = 8;
const RULE =
  `Confirmed when, after the last write, both processes' Private_Dirty of the region is within ${FINAL_TOLERANCE * 100} % (+${SLACK_PAGES} pages) of the prediction ` +
  `and during the writes the median deviation is within ${DURING_TOLERANCE * 100} % of the final prediction; refuted otherwise. ` +
  'Not measurable when the writer cannot keep half its rate or fewer than 3 samples were taken.';

/** What the parent wrote and when: page order[i] at startNs[i] (ns after the fork). */
export interface WriteSchedule {
  pages: number;
  order: Uint32Array;
  startNs: Float64Array;
}

/** Predicts the pages COW has copied by each time (ns after the fork). */
export interface SnapshotPredictor {
  /** Named in the results ("write schedule", "simulator"). */
  source: string;
  predict(schedule: WriteSchedule, atNs: readonly number[]): Promise<number[]> | number[];
}

/** Every first write to a page copies it once, later writes to it are free: the pages copied
 *  by time t are the distinct pages written by t. */
export const distinctPagesWritten: SnapshotPredictor = {
  source: 'write schedule (distinct pages written by time t)',
  predict(schedule, atNs) {
    const seen = new Uint8Array(schedule.pages);
    const order = [...atNs.keys()].sort((a, b) => atNs[a]! - atNs[b]!);
    const out = new Array<number>(atNs.length).fill(0);
    let i = 0;
    let distinct = 0;
    for (const k of order) {
      while (i < schedule.order.length && schedule.startNs[i]! <= atNs[k]!) {
        const p = schedule.order[i++]!;
        if (!seen[p]) {
          seen[p] = 1;
          distinct++;
        }
      }
      out[k] = distinct;
    }
    return out;
  },
};

/**
 * The simulator's prediction: the trace of the same run (p0 writes the region, forks c1, then
 * writes the schedule's pages in order), with the writes cut into one step at each time asked
 * about; the pages copied by time t are the simulator's copies in the steps up to t. Both
 * processes' Private_Dirty is that many pages: the parent's copies, and the child's pages whose
 * frame the parent left to it alone.
 */
export const simulatorPredictor: SnapshotPredictor = {
  source: "the simulator's copies after the same writes",
  predict(schedule, atNs) {
    const order = [...atNs.keys()].sort((a, b) => atNs[a]! - atNs[b]!);
    const steps: Step[] = [{ op: 'fork', proc: 'p0', child: 'c1' }];
    /** For each query (in time order), how many steps had run by then. */
    const stepsBy = new Array<number>(atNs.length).fill(1);
    let i = 0;
    for (const k of order) {
      const from = i;
      while (i < schedule.order.length && schedule.startNs[i]! <= atNs[k]!) i++;
      if (i > from) steps.push({ op: 'write', proc: 'p0', region: 'r', pages: { pages: Array.from(schedule.order.subarray(from, i)) } });
      stepsBy[k] = steps.length;
    }
    const trace = buildTrace('snapshot-load', 'p0 forks a snapshot child, then writes the schedule', [regionSpec({ id: 'r', pages: schedule.pages })], steps);
    const obs = simulateTrace(trace);
    // obs.steps[0] is the setup; step j is obs.steps[j + 1].
    const copiesAfter = [0];
    for (let j = 0; j < steps.length; j++) copiesAfter.push(copiesAfter[j]! + (obs.steps[j + 1]!.events.r!.copies ?? 0));
    return stepsBy.map((n) => copiesAfter[n]!);
  },
};

const SampleSchema = z.object({
  /** When each process's smaps was read (midpoint), ms after the fork. */
  childMs: z.number(),
  parentMs: z.number(),
  childBytes: z.number(),
  parentBytes: z.number(),
  predictedChildBytes: z.number(),
  predictedParentBytes: z.number(),
  /** Stores the parent had started by childMs (each would copy 4 KiB if none repeated). */
  writesSoFar: z.number().int(),
});

const RawSchema = z.object({
  pages: z.number().int(),
  pageSize: z.number().int(),
  ratePerSec: z.number(),
  seconds: z.number(),
  writes: z.number().int(),
  intervalMs: z.number(),
  predictionSource: z.string(),
  schedule: z.object({
    distinctPages: z.number().int(),
    firstWriteMs: z.number(),
    lastWriteMs: z.number(),
    achievedRatePerSec: z.number(),
    /** The latest any store started behind its slot, ns. */
    maxLateNs: z.number(),
    faults: z.number(),
    writeP50Ns: z.number(),
    writeP99Ns: z.number(),
  }),
  samples: z.array(SampleSchema),
  /** The prediction on a regular grid, for the chart. */
  predictedCurve: z.array(z.object({ ms: z.number(), bytes: z.number() })),
});
type Raw = z.infer<typeof RawSchema>;

interface RawSample {
  childNs: number;
  parentNs: number;
  childBytes: number;
  parentBytes: number;
}

const now = () => Number(process.hrtime.bigint()); // CLOCK_MONOTONIC, the probe's clock

/** Reads Private_Dirty of the region in the child and in this process every intervalMs while
 *  the run's child lives. */
function startSampler(intervalMs: number) {
  const samples: RawSample[] = [];
  let region: { start: bigint; end: bigint; childPid: () => number | null } | null = null;
  const timer = setInterval(() => {
    const kid = region?.childPid() ?? null;
    if (region === null || kid === null) return;
    try {
      const c0 = now();
      const child = smapsFor(kid, region.start, region.end).privateDirtyBytes;
      const c1 = now();
      const parent = smapsFor('self', region.start, region.end).privateDirtyBytes;
      const p1 = now();
      samples.push({ childNs: (c0 + c1) / 2, parentNs: (c1 + p1) / 2, childBytes: child, parentBytes: parent });
    } catch {
      // the child exited between the two reads: no sample
    }
  }, intervalMs);
  return {
    samples,
    watch(run: ForkWriteRunStart) {
      region = { start: run.address, end: run.address + BigInt(run.bytes), childPid: run.childPid };
    },
    stop() {
      clearInterval(timer);
    },
  };
}

function writeOrder(pages: number, writes: number): Uint32Array {
  const rnd = mulberry32(SEED);
  return Uint32Array.from({ length: writes }, () => Math.floor(rnd() * pages));
}

async function run(ctx: RunContext, predictor: SnapshotPredictor): Promise<Raw> {
  const c = sized(ctx, CONFIG);
  const ps = ctx.env.pageSize;
  const pages = Math.floor(ctx.clamp(c.pages * ps * 2, 'region (and its copies)') / ps / 2);
  const writes = Math.round(c.ratePerSec * c.seconds);
  const order = writeOrder(pages, writes);
  const paceNs = Math.round(1e9 / c.ratePerSec);
  // The child holds the snapshot this long after the parent's last write, then exits.
  const holdMs = 3 * c.intervalMs + 50;
  new Steps(ctx, 1).next(`${formatCount(writes)} writes at ${formatCount(c.ratePerSec)}/s`);
  const sampler = startSampler(c.intervalMs);
  let result;
  try {
    result = await forkWrite({
      pages,
      thp: 'never',
      writer: 'parent',
      parentWhen: 'child-alive',
      order,
      parentPaceNs: paceNs,
      holdMs,
      warmup: 0,
      repeats: 1,
      onRunStart: (r) => sampler.watch(r),
    });
  } finally {
    sampler.stop();
  }
  const r = result.runs[0]!;
  const parent = r.parent!;
  const fork = r.forkedAtNs;
  const startNs = parent.startNs!.map((t) => t - fork);
  const schedule: WriteSchedule = { pages, order, startNs };
  const lastMs = startNs[writes - 1]! / 1e6;
  // Samples after the fork and before the hold can have ended: a child that is exiting shows
  // a half-torn-down smaps (and the parent then owns every page), which is not the snapshot.
  const holdEnd = fork + (lastMs + holdMs) * 1e6;
  const samples = sampler.samples.filter((s) => s.childNs > fork && s.parentNs <= holdEnd);
  const grid = Array.from({ length: 41 }, (_, i) => (i / 40) * Math.max(lastMs * 1.1, samples.at(-1) ? (samples.at(-1)!.childNs - fork) / 1e6 : 0) * 1e6);
  const at = [...samples.map((s) => s.childNs - fork), ...samples.map((s) => s.parentNs - fork), ...grid];
  const predicted = await predictor.predict(schedule, at);
  const n = samples.length;
  const lat = summarize(parent.latencyNs)!;
  let maxLate = 0;
  for (let i = 0; i < writes; i++) maxLate = Math.max(maxLate, startNs[i]! - startNs[0]! - i * paceNs);
  return {
    pages,
    pageSize: ps,
    ratePerSec: c.ratePerSec,
    seconds: c.seconds,
    writes,
    intervalMs: c.intervalMs,
    predictionSource: predictor.source,
    schedule: {
      distinctPages: new Set(order).size,
      firstWriteMs: startNs[0]! / 1e6,
      lastWriteMs: lastMs,
      achievedRatePerSec: writes > 1 ? ((writes - 1) * 1e9) / (startNs[writes - 1]! - startNs[0]!) : 0,
      maxLateNs: maxLate,
      faults: parent.faults,
      writeP50Ns: lat.p50,
      writeP99Ns: lat.p99,
    },
    samples: samples.map((s, i) => ({
      childMs: (s.childNs - fork) / 1e6,
      parentMs: (s.parentNs - fork) / 1e6,
      childBytes: s.childBytes,
      parentBytes: s.parentBytes,
      predictedChildBytes: predicted[i]! * ps,
      predictedParentBytes: predicted[n + i]! * ps,
      writesSoFar: startNs.filter((t) => t <= s.childNs - fork).length,
    })),
    predictedCurve: grid.map((t, i) => ({ ms: t / 1e6, bytes: predicted[2 * n + i]! * ps })),
  };
}

function verdict(raw: Raw) {
  const ps = raw.pageSize;
  const s = raw.schedule;
  // The prediction after the last write (the curve runs past it); the schedule's count if absent.
  const finalPred = raw.predictedCurve.at(-1)?.bytes ?? s.distinctPages * ps;
  const after = raw.samples.filter((x) => x.childMs >= s.lastWriteMs && x.parentMs >= s.lastWriteMs);
  const last = after.at(-1);
  const metrics: Metric[] = [
    { key: 'predicted-bytes', label: 'predicted COW memory at the end', unit: 'bytes', value: pointBand(finalPred) },
  ];
  if (last) {
    metrics.push({ key: 'child-private-dirty', label: "child's Private_Dirty of the region at the end", unit: 'bytes', value: pointBand(last.childBytes) });
    metrics.push({ key: 'parent-private-dirty', label: "parent's Private_Dirty of the region at the end", unit: 'bytes', value: pointBand(last.parentBytes) });
  }
  metrics.push({ key: 'parent-write-p50', label: "parent's paced write, p50", unit: 'ns', value: pointBand(s.writeP50Ns) });
  const region = formatBytes(raw.pages * ps);
  if (s.achievedRatePerSec < raw.ratePerSec / 2) {
    return { verdict: 'not-measurable' as const, figure: `the writer reached only ${formatCount(Math.round(s.achievedRatePerSec))} writes/s`, reason: `The paced writer could not keep half the target rate of ${formatCount(raw.ratePerSec)}/s on this machine.`, metrics };
  }
  if (raw.samples.length < 3 || !last) {
    return { verdict: 'not-measurable' as const, figure: `${raw.samples.length} smaps samples`, reason: `Too few samples (${raw.samples.length}, ${after.length} after the last write) to compare.`, metrics };
  }
  const tolerance = FINAL_TOLERANCE * finalPred + SLACK_PAGES * ps;
  const errChild = Math.abs(last.childBytes - last.predictedChildBytes);
  const errParent = Math.abs(last.parentBytes - last.predictedParentBytes);
  const during = raw.samples.flatMap((x) => [Math.abs(x.childBytes - x.predictedChildBytes), Math.abs(x.parentBytes - x.predictedParentBytes)]).sort((a, b) => a - b);
  const medianDuring = during[Math.floor(during.length / 2)]!;
  metrics.push({ key: 'final-error-percent', label: 'largest final deviation from the prediction', unit: 'percent', value: pointBand((Math.max(errChild, errParent) / finalPred) * 100) });
  const ok = errChild <= tolerance && errParent <= tolerance && medianDuring <= DURING_TOLERANCE * finalPred + SLACK_PAGES * ps;
  const figure =
    `COW memory after ${formatCount(raw.writes)} writes (${raw.seconds} s at ${formatCount(raw.ratePerSec)}/s) to ${formatCount(s.distinctPages)} distinct pages of a ${region} region: ` +
    `child ${formatBytes(last.childBytes)}, parent ${formatBytes(last.parentBytes)}, predicted ${formatBytes(finalPred)} (every write copying would be ${formatBytes(raw.writes * ps)})`;
  return {
    verdict: ok ? ('confirmed' as const) : ('refuted' as const),
    figure,
    reason: `Prediction: ${raw.predictionSource}. Measured: final deviation child ${formatBytes(errChild)}, parent ${formatBytes(errParent)} (tolerance ${formatBytes(tolerance)}); median deviation during the writes ${formatBytes(medianDuring)} over ${raw.samples.length} samples.`,
    metrics,
  };
}

const TABLE_ROWS = 16;

function present(raw: Raw) {
  const step = Math.max(1, Math.ceil(raw.samples.length / TABLE_ROWS));
  const rows = raw.samples.filter((_, i) => i % step === 0 || i === raw.samples.length - 1);
  const mib = (b: number) => b / 2 ** 20;
  const s = (ms: number) => ms / 1000;
  return {
    charts: [
      {
        kind: 'line' as const,
        title: `COW memory while the parent writes at ${formatCount(raw.ratePerSec)} pages/s and the child holds the snapshot`,
        x: { label: 'time since fork', unit: 's' },
        y: { label: 'Private_Dirty of the region', unit: 'MiB' },
        series: [
          { name: "child's Private_Dirty (smaps)", points: raw.samples.map((x) => ({ x: s(x.childMs), y: mib(x.childBytes) })) },
          { name: "parent's Private_Dirty (smaps)", points: raw.samples.map((x) => ({ x: s(x.parentMs), y: mib(x.parentBytes) })) },
          { name: `predicted: ${raw.predictionSource}`, dashed: true, points: raw.predictedCurve.map((p) => ({ x: s(p.ms), y: mib(p.bytes) })) },
          { name: 'if every write copied a page', dashed: true, points: raw.samples.map((x) => ({ x: s(x.childMs), y: mib(x.writesSoFar * raw.pageSize) })) },
        ],
      },
    ],
    tables: [
      {
        title: `Samples (${rows.length < raw.samples.length ? `${rows.length} of ${raw.samples.length}, evenly spaced; all are in the chart` : 'all'})`,
        head: ['t (child read)', 'child Private_Dirty', 'parent Private_Dirty', 'predicted', 'writes so far'],
        rows: rows.map((x) => [`${(x.childMs / 1000).toFixed(2)} s`, formatBytes(x.childBytes), formatBytes(x.parentBytes), formatBytes(x.predictedChildBytes), formatCount(x.writesSoFar)]),
      },
      {
        title: 'The write schedule',
        head: ['writes', 'distinct pages', 'target rate', 'achieved rate', 'latest start behind schedule', 'faults', 'write p50', 'write p99'],
        rows: [[
          formatCount(raw.writes),
          formatCount(raw.schedule.distinctPages),
          `${formatCount(raw.ratePerSec)}/s`,
          `${formatCount(Math.round(raw.schedule.achievedRatePerSec))}/s`,
          formatNs(raw.schedule.maxLateNs),
          formatCount(raw.schedule.faults),
          formatNs(raw.schedule.writeP50Ns),
          formatNs(raw.schedule.writeP99Ns),
        ]],
        note: `Uniformly random pages (seed ${SEED}) of a ${formatBytes(raw.pages * raw.pageSize)} region, 4 KiB pages; smaps of both processes read every ${raw.intervalMs} ms; the parent's stores are paced in native code with absolute-time sleeps and timestamped.`,
      },
    ],
  };
}

/** The experiment with a given prediction source (the default: the write schedule; the suite
 *  uses the simulator). */
export function snapshotLoadExperiment(predictor: SnapshotPredictor = distinctPagesWritten): Experiment<Raw> {
  return defineExperiment<Raw>({
    number: 10,
    name: 'snapshot-load',
    title: 'Snapshot under write load (Redis BGSAVE)',
    claim:
      `While a forked child holds a snapshot, the memory copy-on-write costs grows with the distinct pages the parent writes, not with the number of writes: both processes' Private_Dirty of the region follows a prediction: ${predictor.source}.`,
    short: 'snapshot memory = distinct pages written',
    measures:
      `A parent writes uniformly random pages of a 64 MiB region at 4,000 pages/s (paced and timestamped in native code) for 4 s (1.5 s quick) while its forked child holds the snapshot; Private_Dirty of the region in both processes' smaps every 100 ms, against the predicted copies by time t (${predictor.source}).`,
    rule: RULE,
    requirements: { minMemoryBytes: 16 * 2 ** 20 },
    budgetMs: { full: 12_000, quick: 5_000 },
    raw: RawSchema,
    run: (ctx) => run(ctx, predictor),
    verdict,
    present,
  });
}

export default snapshotLoadExperiment();
