/**
 * forkWrite: fork this process over a populated region, have the child and/or the parent
 * store to pages, and report per-page fault latency, fault counts and what the page tables
 * say happened (copies, reuses), with a content check of both sides.
 *
 * A thin layer over the one pipeline: each run is a trace (./trace.ts: p0 is the Node process
 * itself) run on the kernel engine, and every figure comes from its observations (per-store
 * latencies from the steps' timing 'each', copies and sharing from their pagemap reads), so
 * the simulator predicts the same run (forkWritePrediction).
 */
import { KernelEngine, kernelWriteValue, type KernelRunDetailed, type KernelStepDetail } from '../engines/kernel/engine.js';
import type { TraceObservations } from '../engines/types.js';
import { CowlabError } from '../errors.js';
import { pageSize } from '../memory/mapping.js';
import { smapsFor } from '../memory/smaps.js';
import { pfnAccess } from '../pagemap/access.js';
import { KPF, readKpageFlags, readPagemap } from '../pagemap/pagemap.js';
import { parseTrace } from '../trace/parse.js';
import type { Trace } from '../trace/types.js';
import { band, summarize, type Band, type LatencySummary } from '../stats/summary.js';
import { cowDelta, parseVmstat, type CowCounters } from '../vmstat/vmstat.js';
import {
  describeOptions,
  resolveForkWriteOptions,
  type ForkWriteOptions,
  type ResolvedForkWriteOptions,
} from './options.js';
import { pageOrder } from './pattern.js';
import { CHILD, forkWriteTrace, PARENT, REGION, type ForkWriteSteps } from './trace.js';
import { pfnKept, sharedAfterFork, unwrittenShared, verifySide, viewAt, type Verification } from './verify.js';

export interface SideRun {
  /** Pages this process stored to. */
  written: number;
  /** Minor faults during the timed stores (getrusage; the parent counts its measuring thread only). */
  faults: number;
  majorFaults: number;
  /** Store latency per page, in write order (ns, clock_gettime around one store). */
  latencyNs: Float64Array;
  /** Paced parent only: CLOCK_MONOTONIC ns at which each store started; else null. */
  startNs: Float64Array | null;
  perPageNs: LatencySummary | null;
  /** System-wide /proc/vmstat deltas around the stores. */
  vmstat: CowCounters | null;
  /** Written pages whose PFN changed (copies); null without PFNs. */
  pfnChanged: number | null;
  exclusiveAfter: number;
  /** Stores that did not read back (child), or pages of the region that do not hold what was
   *  last written to them (parent: every page is read at the end). */
  contentMismatches: number;
}

export interface ForkWriteRun {
  index: number;
  /** Warm-up runs are measured like the others but reported apart as cold. */
  warmup: boolean;
  forkNs: number;
  /** CLOCK_MONOTONIC ns (the clock of process.hrtime) when fork() returned in the parent. */
  forkedAtNs: number;
  childPid: number;
  child: SideRun | null;
  parent: SideRun | null;
  /** Pages of the parent's region that did not hold what was last written to them at the end
   *  of the run (0: checked; the run is refused otherwise). */
  parentContentMismatches: number;
  verify: Verification;
  /** Pages whose frame had mapcount 2 right after the fork (root only, else null). */
  kpagecountTwoAfterFork: number | null;
  /** Smallest back-to-back clock read in the child: the timer's share of each latency. */
  timerOverheadNs: number;
}

export interface ThpBacking {
  requested: boolean;
  /** Bytes of the region backed by huge pages before the first fork (smaps AnonHugePages). */
  hugeBytes: number;
  /** Region pages whose frame is a THP (kpageflags, root only; else null). */
  thpPages: number | null;
}

/** One side's (child's or parent's) per-page latency over the measured runs: each figure is a
 *  Band across runs (the median of the runs' p50s, their min and max, and the samples), not
 *  a single run's number. */
export interface SideSummary {
  p50: Band | null;
  p90: Band | null;
  p99: Band | null;
  max: Band | null;
  faults: Band | null;
}

export interface ForkWriteSummary {
  /** The first run (on memory not yet warmed up). */
  cold: { forkNs: number; child: LatencySummary | null; parent: LatencySummary | null };
  /** Medians and min-max bands over the measured (non-warm-up) runs. */
  warm: { forkNs: Band | null; child: SideSummary | null; parent: SideSummary | null };
}

export interface ForkWriteResult {
  options: ResolvedForkWriteOptions;
  pfnVisible: boolean;
  thp: ThpBacking;
  runs: ForkWriteRun[];
  summary: ForkWriteSummary;
  /** The trace every run ran (the simulator predicts it: src/suite/predict.ts). */
  trace: Trace;
  /** The kernel engine's observations of the last run. */
  observations: TraceObservations;
}

/** The first value that differs in each written page's read-back, counted. */
function readbackMismatches(values: BigUint64Array | null, pages: Uint32Array, expected: (page: number) => bigint): number {
  if (values === null) return pages.length;
  let bad = 0;
  for (let i = 0; i < pages.length; i++) if (values[i] !== expected(pages[i]!)) bad++;
  return bad;
}

function vmstatOf(d: KernelStepDetail): CowCounters | null {
  return d.vmstat === null ? null : cowDelta(parseVmstat(d.vmstat.before), parseVmstat(d.vmstat.after));
}

/** The region's huge pages after the setup, read while it is mapped (in this process: p0). */
function thpBacking(address: bigint, pages: number, requested: boolean, access: ReturnType<typeof pfnAccess>): ThpBacking {
  const hugeBytes = smapsFor('self', address, address + BigInt(pages * pageSize())).anonHugePagesBytes;
  let thpPages: number | null = null;
  if (access.pfnVisible && access.kpageflags) thpPages = readKpageFlags(readPagemap(0, address, pages).pfn).count(KPF.THP);
  return { requested, hugeBytes, thpPages };
}

/** One run's figures from its trace's observations (steps[k] and details[k]: k = step + 1). */
function analyzeRun(
  kr: KernelRunDetailed,
  at: ForkWriteSteps,
  index: number,
  warmup: boolean,
  order: Uint32Array,
  o: ResolvedForkWriteOptions,
  pfnVisible: boolean,
): ForkWriteRun {
  const steps = kr.observations.steps;
  const details = kr.details;
  const k = (step: number) => step + 1;
  const view = (step: number, proc: string) => viewAt(steps, details, k(step), proc)!;
  const childWrites = at.childWrite >= 0;
  const parentWrites = at.parentWrite >= 0;
  const fork = details[k(at.fork)]!;

  const sideOf = (step: number, proc: string) => ({ before: view(step - 1, proc), after: view(step, proc) });
  const childSide = childWrites ? sideOf(at.childWrite, CHILD) : null;
  const parentSide = parentWrites ? sideOf(at.parentWrite, PARENT) : null;
  const childV = childSide && verifySide(childSide.before, childSide.after, order, pfnVisible);
  const parentV = parentSide && verifySide(parentSide.before, parentSide.after, order, pfnVisible);

  let pfnKeptInOther: number | null = null;
  if (pfnVisible && childWrites) pfnKeptInOther = pfnKept(view(at.fork, PARENT), view(at.childWrite, PARENT), order);
  else if (pfnVisible && parentWrites && o.parentWhen === 'child-alive') {
    pfnKeptInOther = pfnKept(view(at.fork, CHILD), view(at.parentWrite, CHILD), order);
  }
  const first = (childSide ?? parentSide)!;
  const firstV = (childV ?? parentV)!;
  const verify: Verification = {
    pfnVisible,
    sharedAfterFork: sharedAfterFork(view(at.fork, PARENT), view(at.fork, CHILD), pfnVisible),
    pfnChangedInWriter: firstV.pfnChanged,
    pfnKeptInOther,
    exclusiveAfterWrite: firstV.exclusiveAfter,
    unwrittenShared: unwrittenShared(first.before, first.after, order, pfnVisible),
  };

  // Content: the child reads back its stores; the parent reads every page at the end, each
  // holding what its last writer stored there (the populate pass, or the parent's writes).
  const childMismatches = childWrites
    ? readbackMismatches(details[k(at.childReadback)]!.access[0]!.values, order, (p) => kernelWriteValue(at.childWrite, p))
    : 0;
  const parentWritten = new Uint8Array(o.pages);
  if (parentWrites) for (const p of order) parentWritten[p] = 1;
  const all = details[k(at.parentReadback)]!.access[0]!;
  const parentMismatches = readbackMismatches(all.values, all.pages, (p) => kernelWriteValue(parentWritten[p] ? at.parentWrite : -1, p));

  const side = (step: number, v: { pfnChanged: number | null; exclusiveAfter: number }, mismatches: number, paced: boolean): SideRun => {
    const d = details[k(step)]!;
    const latencyNs = steps[k(step)]!.accessNs!;
    return {
      written: latencyNs.length,
      faults: d.opFaults ?? 0,
      majorFaults: d.opMajorFaults ?? 0,
      latencyNs,
      startNs: paced ? d.access[0]!.startNs : null,
      perPageNs: summarize(latencyNs),
      vmstat: vmstatOf(d),
      pfnChanged: v.pfnChanged,
      exclusiveAfter: v.exclusiveAfter,
      contentMismatches: mismatches,
    };
  };
  const kpc = fork.kpagecount?.[PARENT]?.[REGION] ?? null;
  return {
    index,
    warmup,
    forkNs: fork.forkNs!,
    forkedAtNs: fork.forkedAtNs!,
    childPid: fork.pids[CHILD]!,
    child: childV ? side(at.childWrite, childV, childMismatches, false) : null,
    parent: parentV ? side(at.parentWrite, parentV, parentMismatches, o.parentPaceNs > 0) : null,
    parentContentMismatches: parentMismatches,
    verify,
    kpagecountTwoAfterFork: kpc ? kpc.filter((c) => c === 2).length : null,
    timerOverheadNs: fork.timerOverheadNs!,
  };
}

/** A content mismatch means the kernel or cowlab is broken: never report such a run as data. */
function checkContent(run: ForkWriteRun): void {
  if (run.parentContentMismatches > 0) {
    throw new CowlabError(
      'ERR_VERIFY',
      `run ${run.index}: ${run.parentContentMismatches} pages of the parent's region differ from what was written to them`,
    );
  }
  if (run.child && run.child.contentMismatches > 0) {
    throw new CowlabError(
      'ERR_VERIFY',
      `run ${run.index}: ${run.child.contentMismatches} of the child's stores did not read back in the child`,
    );
  }
}

function sideSummary(runs: ForkWriteRun[], pick: (r: ForkWriteRun) => SideRun | null): SideSummary | null {
  const sides = runs.map(pick).filter((s): s is SideRun => s !== null && s.perPageNs !== null);
  if (sides.length === 0) return null;
  const of = (k: 'p50' | 'p90' | 'p99' | 'max') => band(sides.map((s) => s.perPageNs![k]));
  return { p50: of('p50'), p90: of('p90'), p99: of('p99'), max: of('max'), faults: band(sides.map((s) => s.faults)) };
}

function summarizeRuns(runs: ForkWriteRun[]): ForkWriteSummary {
  const first = runs[0]!;
  const measured = runs.filter((r) => !r.warmup);
  return {
    cold: {
      forkNs: first.forkNs,
      child: first.child?.perPageNs ?? null,
      parent: first.parent?.perPageNs ?? null,
    },
    warm: {
      forkNs: band(measured.map((r) => r.forkNs)),
      child: sideSummary(measured, (r) => r.child),
      parent: sideSummary(measured, (r) => r.parent),
    },
  };
}

/**
 * Runs warmup + repeats fork-write runs, each its own trace on the kernel engine: p0 (this
 * process) maps and populates a private anonymous region of `pages` pages, forks, and the
 * child and/or the parent store to it. Options are checked before anything is mapped.
 */
export async function forkWrite(options: ForkWriteOptions): Promise<ForkWriteResult> {
  const o = resolveForkWriteOptions(options);
  const access = pfnAccess();
  const order = o.order ?? pageOrder(o.pattern, o.pages, o.count);
  const { trace, at } = forkWriteTrace(o, order);
  const engine = new KernelEngine();
  const reason = engine.supports(trace);
  if (reason !== null) throw new CowlabError('ERR_NOT_MEASURABLE', `fork-write: ${reason}`);
  const checked = parseTrace(trace);
  const runs: ForkWriteRun[] = [];
  let thp: ThpBacking | null = null;
  let last: KernelRunDetailed | null = null;
  const total = o.warmup + o.repeats;
  for (let i = 0; i < total; i++) {
    let address = 0n;
    let child: number | null = null;
    let running = true;
    const kr = await engine.runDetailed(checked, {
      stepDeadlineMs: o.deadlineMs,
      vmstat: true,
      kpagecount: access.pfnVisible && access.kpagecount,
      onLive: (live) => {
        if (live.done === 0) {
          address = live.addresses[REGION]!;
          thp ??= thpBacking(address, o.pages, o.thp === 'always', access);
          options.onRunStart?.({ index: i, address, bytes: o.pages * pageSize(), childPid: () => (running ? child : null) });
        }
        child = live.pids[CHILD] ?? null;
      },
    }).finally(() => {
      running = false;
    });
    last = kr;
    const run = analyzeRun(kr, at, i, i < o.warmup, order, o, access.pfnVisible);
    checkContent(run);
    runs.push(run);
    options.onProgress?.({ done: i + 1, total, warmup: i < o.warmup });
  }
  return { options: o, pfnVisible: access.pfnVisible, thp: thp!, runs, summary: summarizeRuns(runs), trace: checked, observations: last!.observations };
}

/** Plain JSON of a result (latency arrays only with `raw`). */
export function forkWriteToJson(r: ForkWriteResult, raw = false): Record<string, unknown> {
  const side = (s: SideRun | null) => {
    if (s === null) return null;
    const { latencyNs, startNs, ...rest } = s;
    return raw ? { ...rest, latencyNs: Array.from(latencyNs), startNs: startNs && Array.from(startNs) } : rest;
  };
  return {
    options: describeOptions(r.options),
    pfnVisible: r.pfnVisible,
    thp: r.thp,
    runs: r.runs.map((run) => ({
      index: run.index,
      warmup: run.warmup,
      pages: r.options.pages,
      pattern: describeOptions(r.options).pattern,
      thp: r.options.thp,
      writer: r.options.writer,
      parentWhen: r.options.parentWhen,
      forkNs: run.forkNs,
      child: side(run.child),
      parent: side(run.parent),
      verify: run.verify,
      kpagecountTwoAfterFork: run.kpagecountTwoAfterFork,
      timerOverheadNs: run.timerOverheadNs,
    })),
    summary: r.summary,
  };
}
