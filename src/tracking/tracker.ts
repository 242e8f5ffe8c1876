/**
 * Userspace write tracking, measured: each mechanism of mechanisms.ts over the same N pages in
 * the same order, with the three costs a user picks a mechanism by:
 *   arm      protecting the N pages (mprotect, UFFDIO_WRITEPROTECT, clear_refs 4; the region's
 *            view.fork(); the kernel's fork(), which forks all of Node)
 *   store    each first store to a page, timed alone in native code
 *   collect  finding what was written (the handler's table, PAGEMAP_SCAN, pagemap, the
 *            region's page table; the kernel keeps no such list: null)
 * Content, not trust: after every run the set of pages reported written must equal the set
 * written, every page must hold what was stored to it (or its fill), and a mechanism that
 * copies must hold the old bytes in its snapshot; otherwise ERR_VERIFY.
 *
 *   const t = WriteTracker.create({ pages: 4096, pattern: 'rand' });
 *   try { const r = await t.run('uffd-wp-async'); } finally { t.close(); }
 */
import { CowlabError } from '../errors.js';
import { forkWrite } from '../forkwrite/forkWrite.js';
import { formatPattern, pageOrder, parsePattern, type PatternSpec, type WritePattern } from '../forkwrite/pattern.js';
import { checkFitsHalfAvailable } from '../memory/budget.js';
import { pageSize } from '../memory/mapping.js';
import { native, type TrackRaw } from '../native.js';
import { choiceOption, integerOption } from '../options.js';
import { createBenchRegion, regionWriteRun } from '../region/writeRun.js';
import type { CowRegion } from '../region/region.js';
import { band, summarize, type Band } from '../stats/summary.js';
import { MECHANISM_INFO, MECHANISMS, mechanismAvailability, type Mechanism } from './mechanisms.js';

export interface WriteTrackerOptions {
  pages: number;
  /** seq | rand | stride:N. Default rand. */
  pattern?: PatternSpec;
  seed?: number;
}

export interface TrackingRun {
  mechanism: Mechanism;
  pages: number;
  /** Pages stored to (the order's length). */
  written: number;
  armNs: number;
  latencyNs: Float64Array;
  /** null: the mechanism keeps no list of written pages (kernel COW). */
  collectNs: number | null;
  /** Faults a user handler resolved; null where the kernel resolves them. */
  faults: number | null;
  /** What the content check covered: pages whose bytes were read back, snapshot pages checked. */
  checked: { pages: number; snapshotPages: number };
}

/** Every u32 of page p holds fillWord(p) before the stores. */
export function fillWord(p: number): number {
  return (Math.imul(p + 1, 0x9e37_79b1) ^ 0x5a5a_5a5a) >>> 0;
}

/** The u64 a run's store writes into page p: tag + p, tag = (0xc0000000 | run) << 32. */
export function storeTag(run: number): bigint {
  return BigInt((0xc000_0000 | (run & 0xff_ffff)) >>> 0) << 32n;
}

export interface ContentProblems {
  /** Written pages the collection missed, and pages it reported that were not written. */
  missed: number;
  extra: number;
  /** Pages whose live bytes are not the store (word 0) and the fill (the rest). */
  liveBad: number;
  /** Written pages whose snapshot copy is not the fill. */
  snapshotBad: number;
}

/**
 * Checks one native run against what was done to the pages. Pure over its inputs.
 * `reportedSuperset`: the collection may report more than was written (fault-around copies).
 */
export function checkTrackRaw(
  raw: Pick<TrackRaw, 'reported' | 'live' | 'snapshot'>,
  order: Uint32Array,
  pages: number,
  tag: bigint,
  reportedSuperset = false,
): ContentProblems {
  const written = new Uint8Array(pages);
  for (const p of order) written[p] = 1;
  let missed = 0;
  let extra = 0;
  for (let p = 0; p < pages; p++) {
    if (written[p] === 1 && raw.reported[p] !== 1) missed++;
    if (written[p] === 0 && raw.reported[p] === 1 && !reportedSuperset) extra++;
  }
  const wpp = pageSize() / 4;
  let liveBad = 0;
  if (raw.live !== null) {
    const w = new Uint32Array(raw.live);
    const lo = Number(tag & 0xffff_ffffn);
    const hi = Number(tag >> 32n);
    for (let p = 0; p < pages; p++) {
      const base = p * wpp;
      const f = fillWord(p);
      let ok = written[p] === 1 ? w[base] === ((lo + p) >>> 0) && w[base + 1] === hi : w[base] === f && w[base + 1] === f;
      for (let i = base + 2; ok && i < base + wpp; i++) ok = w[i] === f;
      if (!ok) liveBad++;
    }
  }
  let snapshotBad = 0;
  if (raw.snapshot !== null) {
    const s = new Uint32Array(raw.snapshot);
    for (let p = 0; p < pages; p++) {
      if (written[p] === 0) continue;
      const f = fillWord(p);
      let ok = true;
      for (let i = p * wpp; ok && i < (p + 1) * wpp; i++) ok = s[i] === f;
      if (!ok) snapshotBad++;
    }
  }
  return { missed, extra, liveBad, snapshotBad };
}

function describeProblems(m: Mechanism, c: ContentProblems): string | null {
  const parts: string[] = [];
  if (c.missed > 0) parts.push(`${c.missed} written pages were not reported`);
  if (c.extra > 0) parts.push(`${c.extra} pages were reported but never written`);
  if (c.liveBad > 0) parts.push(`${c.liveBad} pages do not hold what was stored to them`);
  if (c.snapshotBad > 0) parts.push(`${c.snapshotBad} snapshot copies do not hold the old bytes`);
  return parts.length === 0 ? null : `${MECHANISM_INFO[m].label}: ${parts.join('; ')}`;
}

/** The error a mechanism the kernel lacks gives. */
export function notAvailable(m: Mechanism): CowlabError | null {
  const a = mechanismAvailability(m);
  return a.available ? null : new CowlabError('ERR_KERNEL_FEATURE', `${MECHANISM_INFO[m].label} is not available here: ${a.reason}`);
}

/** Words a native handler failure (the stores completed, the tracking did not). */
function handlerFailure(m: Mechanism, raw: TrackRaw): CowlabError | null {
  if (raw.handlerErrno === undefined) return null;
  const what = raw.handlerCall === 'pool' ? 'the frame pool ran out' : `${raw.handlerCall}() failed with ${raw.handlerErrno}`;
  return new CowlabError('ERR_VERIFY', `${MECHANISM_INFO[m].label}: inside the fault handler ${what}; the run's tracking is incomplete`);
}

export interface RunOptions {
  /** sigsegv-remap: also copy up to this many following unwritten pages per fault. Default 0. */
  around?: number;
  /** sigsegv-remap: madvise(MADV_DONTFORK) each new mapping, as the region does. Default false. */
  dontfork?: boolean;
}

/**
 * One set of pages and one store order, measured with any mechanism, one run at a time. Holds
 * the region it measures `region` with (created at the first region run, so its frame pool is
 * warm for the next ones, as region-bench's is); close() releases it.
 */
export class WriteTracker {
  readonly pages: number;
  readonly pattern: WritePattern;
  readonly order: Uint32Array;
  #fill: Uint32Array;
  #region: CowRegion | null = null;
  #runs = 0;

  private constructor(pages: number, pattern: WritePattern) {
    this.pages = pages;
    this.pattern = pattern;
    this.order = pageOrder(pattern, pages);
    this.#fill = new Uint32Array(pages).map((_, p) => fillWord(p));
  }

  /** Checks the options (ERR_INVALID_OPTION naming the field; ERR_TOO_LARGE when the pages and
   *  their copies would exceed half of MemAvailable) before anything is mapped. */
  static create(o: WriteTrackerOptions, f: (key: keyof WriteTrackerOptions) => string = (k) => k): WriteTracker {
    const pages = integerOption(f('pages'), o.pages, { min: 1, max: 1 << 22 });
    const seed = integerOption(f('seed'), o.seed ?? 1, { min: 0, max: 0xffff_ffff });
    const pattern = parsePattern(o.pattern ?? 'rand', seed, f('pattern'));
    checkFitsHalfAvailable(f('pages'), 4 * pages * pageSize(), `${pages} tracked pages, their copies and the read-back`);
    return new WriteTracker(pages, pattern);
  }

  /**
   * Measures one run of `mechanism`: arm, the timed stores in order, collect, and the content
   * check. Throws ERR_KERNEL_FEATURE (with the reason) for a mechanism this kernel lacks,
   * ERR_VERIFY when the content check fails.
   */
  async run(mechanism: Mechanism, options: RunOptions = {}): Promise<TrackingRun> {
    const m = choiceOption('mechanism', mechanism, MECHANISMS);
    const unavailable = notAvailable(m);
    if (unavailable) throw unavailable;
    const around = integerOption('around', options.around ?? 0, { min: 0, max: 256 });
    const run = this.#runs++;
    if (m === 'kernel-cow') return this.#kernel();
    if (m === 'region') return this.#regionRun(run);
    const tag = storeTag(run);
    const input = { pages: this.pages, order: this.order, fill: this.#fill, tag, content: true };
    const n = native();
    const raw =
      m === 'sigsegv-mprotect' || m === 'sigsegv-remap'
        ? n.trackSignal({ ...input, mode: m === 'sigsegv-mprotect' ? 0 : 1, around: m === 'sigsegv-remap' ? around : 0, dontfork: options.dontfork === true })
        : m === 'soft-dirty'
          ? n.trackSoftDirty(input)
          : n.trackUffd({ ...input, async: m === 'uffd-wp-async' });
    const failed = handlerFailure(m, raw);
    if (failed) throw failed;
    const problems = describeProblems(m, checkTrackRaw(raw, this.order, this.pages, tag, around > 0));
    if (problems) throw new CowlabError('ERR_VERIFY', problems);
    return {
      mechanism: m,
      pages: this.pages,
      written: this.order.length,
      armNs: raw.armNs,
      latencyNs: raw.latencyNs,
      collectNs: raw.collectNs,
      faults: raw.faults ?? null,
      checked: { pages: this.pages, snapshotPages: raw.snapshot !== null ? new Set(this.order).size : 0 },
    };
  }

  async #kernel(): Promise<TrackingRun> {
    // forkWrite checks the child's stores and the parent's pages itself (ERR_VERIFY).
    const seed = this.pattern.kind === 'rand' ? this.pattern.seed : 1;
    const r = await forkWrite({ pages: this.pages, pattern: formatPattern(this.pattern), seed, repeats: 1, warmup: 0 });
    const run = r.runs[0]!;
    return {
      mechanism: 'kernel-cow',
      pages: this.pages,
      written: run.child!.written,
      armNs: run.forkNs,
      latencyNs: run.child!.latencyNs,
      collectNs: null,
      faults: null,
      checked: { pages: this.pages, snapshotPages: this.pages },
    };
  }

  #regionRun(run: number): TrackingRun {
    this.#region ??= createBenchRegion(this.pages, 'lazy');
    // regionWriteRun checks every byte of the fork and of the root (the snapshot) itself.
    const r = regionWriteRun(this.#region, this.order, run, true);
    const written = new Uint8Array(this.pages);
    for (const p of this.order) written[p] = 1;
    let wrong = 0;
    for (let p = 0; p < this.pages; p++) if (written[p] !== r.reported![p]) wrong++;
    if (wrong > 0) throw new CowlabError('ERR_VERIFY', `${MECHANISM_INFO.region.label}: the fork's page table disagrees with the pages written on ${wrong} pages`);
    return {
      mechanism: 'region',
      pages: this.pages,
      written: this.order.length,
      armNs: r.snapshotNs,
      latencyNs: r.latencyNs,
      collectNs: r.collectNs,
      faults: r.faults,
      checked: { pages: this.pages, snapshotPages: this.pages },
    };
  }

  close(): void {
    this.#region?.close();
    this.#region = null;
  }
}

export interface MechanismSummary {
  mechanism: Mechanism;
  label: string;
  available: boolean;
  /** Why not, when not available. */
  reason: string | null;
  /** p50 of each repeat's per-store latencies: band over repeats. */
  storeP50Ns: Band | null;
  /** p90 / p99 over every measured store. */
  storeP90Ns: number | null;
  storeP99Ns: number | null;
  armNs: Band | null;
  collectNs: Band | null;
  faults: Band | null;
  /** First (cold) repeat's p50, apart. */
  coldStoreP50Ns: number | null;
  checkedPages: number;
  snapshotPagesChecked: number;
  /** The measured repeats' figures behind the bands. */
  samples: { storeP50Ns: number[]; armNs: number[]; collectNs: number[] };
}

export interface TrackingComparison {
  pages: number;
  pattern: PatternSpec;
  repeats: number;
  warmup: number;
  mechanisms: MechanismSummary[];
}

export interface CompareOptions extends WriteTrackerOptions {
  mechanisms?: readonly Mechanism[];
  repeats?: number;
  warmup?: number;
  run?: RunOptions;
  /** Called between runs; throw to stop (an AbortSignal's throwIfAborted). */
  onRun?: (p: { done: number; total: number; mechanism: Mechanism }) => void;
}

/** Summarizes the runs of one mechanism (the first `warmup` reported as cold only). */
export function summarizeRuns(m: Mechanism, runs: TrackingRun[], warmup: number): MechanismSummary {
  const measured = runs.slice(warmup);
  const p50s = measured.map((r) => summarize(r.latencyNs)?.p50 ?? 0);
  const all = measured.flatMap((r) => Array.from(r.latencyNs));
  const whole = summarize(all);
  const collect = measured.map((r) => r.collectNs).filter((x): x is number => x !== null);
  const faults = measured.map((r) => r.faults).filter((x): x is number => x !== null);
  return {
    mechanism: m,
    label: MECHANISM_INFO[m].label,
    available: true,
    reason: null,
    storeP50Ns: band(p50s),
    storeP90Ns: whole?.p90 ?? null,
    storeP99Ns: whole?.p99 ?? null,
    armNs: band(measured.map((r) => r.armNs)),
    collectNs: band(collect),
    faults: band(faults),
    coldStoreP50Ns: runs[0] ? (summarize(runs[0].latencyNs)?.p50 ?? null) : null,
    checkedPages: runs.reduce((n, r) => n + r.checked.pages, 0),
    snapshotPagesChecked: runs.reduce((n, r) => n + r.checked.snapshotPages, 0),
    samples: { storeP50Ns: p50s, armNs: measured.map((r) => r.armNs), collectNs: collect },
  };
}

/**
 * Every mechanism (or the listed ones) over the same pages and order, interleaved: each repeat
 * runs every available mechanism once, after `warmup` unrecorded repeats. Missing mechanisms
 * are reported with their reason, not measured.
 */
export async function compareTracking(o: CompareOptions): Promise<TrackingComparison> {
  const tracker = WriteTracker.create(o);
  const repeats = integerOption('repeats', o.repeats ?? 3, { min: 1, max: 1000 });
  const warmup = integerOption('warmup', o.warmup ?? 1, { min: 0, max: 1000 });
  const list = (o.mechanisms ?? MECHANISMS).map((m) => choiceOption('mechanisms', m, MECHANISMS));
  const available = list.filter((m) => mechanismAvailability(m).available);
  const runs = new Map<Mechanism, TrackingRun[]>(available.map((m) => [m, []]));
  const total = (repeats + warmup) * available.length;
  let done = 0;
  try {
    for (let i = 0; i < repeats + warmup; i++) {
      for (const m of available) {
        o.onRun?.({ done, total, mechanism: m });
        runs.get(m)!.push(await tracker.run(m, o.run));
        done++;
      }
    }
  } finally {
    tracker.close();
  }
  return {
    pages: tracker.pages,
    pattern: formatPattern(tracker.pattern),
    repeats,
    warmup,
    mechanisms: list.map((m) => {
      const a = mechanismAvailability(m);
      if (!a.available) {
        return { mechanism: m, label: MECHANISM_INFO[m].label, available: false, reason: a.reason, storeP50Ns: null, storeP90Ns: null,
          storeP99Ns: null, armNs: null, collectNs: null, faults: null, coldStoreP50Ns: null, checkedPages: 0, snapshotPagesChecked: 0,
          samples: { storeP50Ns: [], armNs: [], collectNs: [] } };
      }
      return summarizeRuns(m, runs.get(m)!, warmup);
    }),
  };
}

/** The cheapest available mechanism by per-store p50 (median over repeats); null when none ran. */
export function cheapest(c: TrackingComparison, exclude: readonly Mechanism[] = []): MechanismSummary | null {
  let best: MechanismSummary | null = null;
  for (const s of c.mechanisms) {
    if (!s.storeP50Ns || exclude.includes(s.mechanism)) continue;
    if (best === null || s.storeP50Ns.median < best.storeP50Ns!.median) best = s;
  }
  return best;
}


