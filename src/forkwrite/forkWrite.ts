/**
 * forkWrite: fork this process over a populated region, have the child and/or the parent
 * store to pages, and report per-page fault latency, fault counts and what the page tables
 * say happened (copies, reuses), with a content check of both sides.
 */
import { CowlabError } from '../errors.js';
import { Mapping, pageSize } from '../memory/mapping.js';
import { smapsFor } from '../memory/smaps.js';
import type { ForkProbeRaw, ForkProbeSideRaw } from '../native.js';
import { pfnAccess } from '../pagemap/access.js';
import { KPF, PagemapEntries, readKpageFlags, readPagemap } from '../pagemap/pagemap.js';
import { band, summarize, type Band, type LatencySummary } from '../stats/summary.js';
import { cowDelta, parseVmstat, type CowCounters } from '../vmstat/vmstat.js';
import {
  describeOptions,
  resolveForkWriteOptions,
  type ForkWriteOptions,
  type ResolvedForkWriteOptions,
} from './options.js';
import { pageOrder } from './pattern.js';
import { forkProbe, watchChild } from './probe.js';
import { pfnKept, sharedAfterFork, unwrittenShared, verifySide, type RunSnapshots, type Verification } from './verify.js';

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
  /** Stored values that did not read back (child) or bytes that differ from the model (parent). */
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
}

/** Page content: every 32-bit word of page p holds fillWord(p) until a store overwrites the
 *  first 8 bytes with `tag + p` (tags have zero low 32 bits: word 0 = p, word 1 = tag >> 32). */
function fillWord(p: number): number {
  return (Math.imul(p, 0x9e3779b1) ^ 0x5a5a5a5a) >>> 0;
}

/** Tags for run r: distinct per run and per side, never equal to a fill word pattern. */
function tagHigh(run: number, side: 'child' | 'parent'): number {
  return (((side === 'child' ? 0xc0 : 0xa0) << 24) | (run & 0xffffff)) >>> 0;
}

class ContentModel {
  readonly words: Uint32Array;
  /** Expected words 0 and 1 of each page. */
  readonly word0: Uint32Array;
  readonly word1: Uint32Array;
  private readonly wordsPerPage: number;

  constructor(private readonly mapping: Mapping) {
    this.words = new Uint32Array(mapping.buffer);
    this.wordsPerPage = pageSize() / 4;
    this.word0 = new Uint32Array(mapping.pages);
    this.word1 = new Uint32Array(mapping.pages);
  }

  /** Writes every page (populating the region) with its fill pattern. */
  fill(): void {
    for (let p = 0; p < this.mapping.pages; p++) {
      const w = fillWord(p);
      this.words.fill(w, p * this.wordsPerPage, (p + 1) * this.wordsPerPage);
      this.word0[p] = w;
      this.word1[p] = w;
    }
  }

  recordStores(order: Uint32Array, high: number): void {
    for (const p of order) {
      this.word0[p] = p;
      this.word1[p] = high;
    }
  }

  /** Pages whose bytes differ from the model. */
  mismatches(): number {
    let bad = 0;
    const wpp = this.wordsPerPage;
    for (let p = 0; p < this.mapping.pages; p++) {
      const base = p * wpp;
      const w = fillWord(p);
      let ok = this.words[base] === this.word0[p] && this.words[base + 1] === this.word1[p];
      for (let i = base + 2; ok && i < base + wpp; i++) ok = this.words[i] === w;
      if (!ok) bad++;
    }
    return bad;
  }
}

function readbackMismatches(raw: ArrayBuffer | undefined, order: Uint32Array, high: number): number {
  if (!raw) return 0;
  const w = new Uint32Array(raw);
  let bad = 0;
  for (let i = 0; i < order.length; i++) if (w[2 * i] !== order[i] || w[2 * i + 1] !== high) bad++;
  return bad;
}

function snapshots(side: ForkProbeSideRaw): RunSnapshots {
  return {
    afterFork: new PagemapEntries(side.pagemap.afterFork),
    afterChildWrites: new PagemapEntries(side.pagemap.afterChildWrites),
    end: new PagemapEntries(side.pagemap.end),
  };
}

function vmstatOf(side: ForkProbeSideRaw): CowCounters | null {
  if (side.written === 0 || side.vmstatBefore === null || side.vmstatAfter === null) return null;
  return cowDelta(parseVmstat(side.vmstatBefore), parseVmstat(side.vmstatAfter));
}

function thpBacking(mapping: Mapping, requested: boolean, pfnVisible: boolean, kpageflags: boolean): ThpBacking {
  const hugeBytes = smapsFor('self', mapping.address, mapping.address + BigInt(mapping.bytes)).anonHugePagesBytes;
  let thpPages: number | null = null;
  if (pfnVisible && kpageflags) {
    const pm = readPagemap(0, mapping.address, mapping.pages);
    thpPages = readKpageFlags(pm.pfn).count(KPF.THP);
  }
  return { requested, hugeBytes, thpPages };
}

function analyzeRun(
  raw: ForkProbeRaw,
  index: number,
  warmup: boolean,
  orders: { child: Uint32Array; parent: Uint32Array },
  o: ResolvedForkWriteOptions,
  model: ContentModel,
  pfnVisible: boolean,
): ForkWriteRun {
  const C = snapshots(raw.child);
  const P = snapshots(raw.parent);
  const childWrites = orders.child.length > 0;
  const parentWrites = orders.parent.length > 0;

  // The child's stores happen between its afterFork and afterChildWrites snapshots; the
  // parent's between its afterChildWrites and end snapshots.
  const childSide = childWrites ? verifySide(C.afterFork, C.afterChildWrites, orders.child, pfnVisible) : null;
  const parentSide = parentWrites ? verifySide(P.afterChildWrites, P.end, orders.parent, pfnVisible) : null;

  let pfnKeptInOther: number | null = null;
  if (pfnVisible && childWrites) pfnKeptInOther = pfnKept(P.afterFork, P.afterChildWrites, orders.child);
  else if (pfnVisible && parentWrites && o.parentWhen === 'child-alive') {
    pfnKeptInOther = pfnKept(C.afterFork, C.end, orders.parent);
  }
  const first = childSide ?? parentSide!;
  const firstWriter = childWrites
    ? { before: C.afterFork, after: C.afterChildWrites, order: orders.child }
    : { before: P.afterChildWrites, after: P.end, order: orders.parent };
  const verify: Verification = {
    pfnVisible,
    sharedAfterFork: sharedAfterFork(P.afterFork, C.afterFork, pfnVisible),
    pfnChangedInWriter: first.pfnChanged,
    pfnKeptInOther,
    exclusiveAfterWrite: first.exclusiveAfter,
    unwrittenShared: unwrittenShared(firstWriter.before, firstWriter.after, firstWriter.order, pfnVisible),
  };

  if (parentWrites) model.recordStores(orders.parent, tagHigh(index, 'parent'));
  const parentMismatches = model.mismatches();
  const side = (
    r: ForkProbeSideRaw,
    v: { pfnChanged: number | null; exclusiveAfter: number } | null,
    mismatches: number,
  ): SideRun | null =>
    v === null
      ? null
      : {
          written: r.written,
          faults: r.minorFaults,
          majorFaults: r.majorFaults,
          latencyNs: r.latencyNs,
          startNs: r.startNs,
          perPageNs: summarize(r.latencyNs),
          vmstat: vmstatOf(r),
          pfnChanged: v.pfnChanged,
          exclusiveAfter: v.exclusiveAfter,
          contentMismatches: mismatches,
        };
  const kpc = raw.kpagecountAfterFork;
  return {
    index,
    warmup,
    forkNs: raw.forkNs,
    forkedAtNs: raw.forkedAtNs,
    childPid: raw.childPid,
    child: side(raw.child, childSide, readbackMismatches(raw.child.readback, orders.child, tagHigh(index, 'child'))),
    parent: side(raw.parent, parentSide, parentMismatches),
    verify,
    kpagecountTwoAfterFork: kpc ? kpc.filter((c) => c === 2).length : null,
    timerOverheadNs: raw.timerOverheadNs,
  };
}

/** A content mismatch means the kernel or cowlab is broken: never report such a run as data. */
function checkContent(run: ForkWriteRun): void {
  if (run.parent && run.parent.contentMismatches > 0) {
    throw new CowlabError(
      'ERR_VERIFY',
      `run ${run.index}: ${run.parent.contentMismatches} pages of the parent's region differ from what was written to them`,
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
 * Maps and populates a private anonymous region of `pages` pages, then runs warmup +
 * repeats fork probes over it. Options are checked before anything is mapped.
 */
export async function forkWrite(options: ForkWriteOptions): Promise<ForkWriteResult> {
  const o = resolveForkWriteOptions(options);
  const access = pfnAccess();
  const order = o.order ?? pageOrder(o.pattern, o.pages, o.count);
  const orders = {
    child: o.writer === 'parent' ? new Uint32Array(0) : order,
    parent: o.writer === 'child' ? new Uint32Array(0) : order,
  };
  const mapping = Mapping.create({ pages: o.pages, thp: o.thp });
  try {
    const model = new ContentModel(mapping);
    model.fill();
    const thp = thpBacking(mapping, o.thp === 'always', access.pfnVisible, access.kpageflags);
    const runs: ForkWriteRun[] = [];
    const total = o.warmup + o.repeats;
    for (let i = 0; i < total; i++) {
      const watch = watchChild();
      options.onRunStart?.({ index: i, address: mapping.address, bytes: mapping.bytes, childPid: watch.childPid });
      const release = mapping.acquire('forkWrite');
      let raw: ForkProbeRaw;
      try {
        raw = await forkProbe({
          address: mapping.address,
          pages: o.pages,
          childOrder: orders.child,
          parentOrder: orders.parent,
          parentWhen: o.writer === 'child' ? 0 : o.parentWhen === 'child-alive' ? 1 : 2,
          childTag: BigInt(tagHigh(i, 'child')) << 32n,
          parentTag: BigInt(tagHigh(i, 'parent')) << 32n,
          deadlineMs: o.deadlineMs,
          holdMs: o.holdMs,
          kpagecount: access.pfnVisible && access.kpagecount,
          childAccess: o.childAccess === 'read' ? 1 : 0,
          parentPaceNs: o.parentPaceNs,
        });
      } finally {
        watch.end();
        release();
      }
      const run = analyzeRun(raw, i, i < o.warmup, orders, o, model, access.pfnVisible);
      checkContent(run);
      runs.push(run);
      options.onProgress?.({ done: i + 1, total, warmup: i < o.warmup });
    }
    return { options: o, pfnVisible: access.pfnVisible, thp, runs, summary: summarizeRuns(runs) };
  } finally {
    mapping.unmap();
  }
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
