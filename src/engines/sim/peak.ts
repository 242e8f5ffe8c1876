/**
 * How much memory a trace needs at its peak, before anything runs: the most 4 KiB frames in use
 * at once (anonymous pages, page-cache pages, whole huge pages), as the simulator predicts them.
 * The kernel and region engines ask this before they allocate anything (docs/trace.md, Limits).
 *
 * Simulating a big trace costs time and memory of its own (page tables and frame tables in typed
 * arrays, one observation per step), so the answer comes in three tries, cheapest first:
 *
 *   1. traceBounds(): one walk over the steps, no simulation, gives an upper bound. Most traces
 *      fit by it, and need nothing more.
 *   2. simulatePeak(): the simulator's own count, step by step, when the bound does not fit and
 *      the simulation itself is affordable (simBudgetBytes, simBudgetWork).
 *   3. Otherwise the bound is all there is, and a trace that may not fit is refused as such.
 */
import { describeLimit, memoryLimit } from '../../memory/budget.js';
import { formatBytes } from '../../util/units.js';
import type { PageSelector, RegionSpec, Trace } from '../../trace/types.js';
import { ROOT_PROC } from '../../trace/types.js';
import { isCheckedTrace, parseTrace } from '../../trace/parse.js';
import type { SimOptions } from './options.js';
import { HPAGE_PMD_NR } from './physmem.js';
import { Simulator } from './simulator.js';

const PAGE_BYTES = 4096;

/** What one walk over the steps tells about a trace's memory, without simulating it. */
export interface TraceBounds {
  /** No more frames than this are ever in use at once (after setup or any step). */
  upperFrames: number;
  /** The observation where the bound is highest (-1: setup). */
  upperStep: number;
  /** Frames the trace can allocate over its whole life (frees not subtracted). */
  allocations: number;
  /** Most page-table entries that exist at once (every page of every region each live process maps). */
  maxEntries: number;
  /** Most (live process, region page) pairs one observation reports. */
  maxObservedEntries: number;
  /** (live process, region page) pairs over every observation: what an engine keeps per page. */
  observedEntries: number;
  /** Page accesses of the populate passes and every read and write. */
  accesses: number;
}

/** Pages a selector names (with repeats), without listing them. */
function selectedCount(sel: PageSelector): number {
  if ('random' in sel) return sel.random;
  if ('pages' in sel) return sel.pages.length;
  return Math.ceil((sel.end - sel.start) / (sel.stride ?? 1));
}

function isHuge(r: RegionSpec): boolean {
  return r.thp && r.map === 'private' && r.backing === 'anon';
}

function shmemBacked(r: RegionSpec): boolean {
  return r.map === 'shared' || r.backing === 'memfd';
}

/**
 * The most frames `n` accesses to region `r` can allocate: none for a read of private anonymous
 * 4 KiB memory (the zero page); one per page for shared memory and for reads of a private memfd
 * (the page-cache page); two for a write to a private memfd (its page-cache page and the copy);
 * a whole huge page per access in a THP region (a write, or a read without the huge zero page).
 */
function allocationsOf(r: RegionSpec, n: number, write: boolean): number {
  const pages = Math.min(n, r.pages);
  if (isHuge(r)) return Math.min(Math.ceil(r.pages / HPAGE_PMD_NR) * HPAGE_PMD_NR, n * HPAGE_PMD_NR);
  if (r.map === 'shared') return pages;
  if (r.backing === 'memfd') return write ? 2 * pages : pages;
  return write ? pages : 0;
}

interface WalkProc {
  execd: boolean;
  maps: boolean[];
}

/**
 * An upper bound of the frames in use after setup and after every step, from the trace alone.
 * Per region, the frames in use are at most the frames allocated so far, and (4 KiB regions) at
 * most one per page for each process mapping it, plus the page cache for shmem-backed memory:
 * every anonymous frame is mapped by someone, or it is freed. A huge page lives on while any of
 * its 512 pages is mapped, so THP regions are bounded by their allocations only.
 */
export function traceBounds(trace: Trace): TraceBounds {
  const regions = trace.regions;
  const totalPages = regions.reduce((n, r) => n + r.pages, 0);
  const allocated = regions.map(() => 0);
  // A region that pages out reads pages back (frames on a read too, two on a store), and keeps
  // up to a swap-cache folio per swap entry besides the frames mapped.
  const swapping = regions.map((r) => trace.steps.some((s) => s.op === 'pageout' && s.region === r.id));
  const procs = new Map<string, WalkProc>([[ROOT_PROC, { execd: false, maps: regions.map(() => true) }]]);
  const out: TraceBounds = { upperFrames: 0, upperStep: -1, allocations: 0, maxEntries: 0, maxObservedEntries: 0, observedEntries: 0, accesses: 0 };

  const observe = (step: number) => {
    let frames = 0;
    let entries = 0;
    regions.forEach((r, i) => {
      let mapping = 0;
      for (const p of procs.values()) if (!p.execd && p.maps[i]) mapping++;
      entries += mapping * r.pages;
      const byMappings = isHuge(r) ? Infinity : r.map === 'shared' ? r.pages : r.pages * mapping * (swapping[i] ? 2 : 1) + (shmemBacked(r) ? r.pages : 0);
      frames += Math.min(allocated[i]!, byMappings);
    });
    if (frames > out.upperFrames || step === -1) {
      out.upperFrames = frames;
      out.upperStep = step;
    }
    out.maxEntries = Math.max(out.maxEntries, entries);
    const observed = procs.size * totalPages;
    out.maxObservedEntries = Math.max(out.maxObservedEntries, observed);
    out.observedEntries += observed;
  };
  const access = (r: number, n: number, write: boolean) => {
    // A store to a page swapped out while shared reads it into the swap cache and copies it.
    const a = swapping[r] ? 2 * Math.min(n, regions[r]!.pages) : allocationsOf(regions[r]!, n, write);
    allocated[r] = allocated[r]! + a;
    out.allocations += a;
    out.accesses += n;
  };

  regions.forEach((r, i) => {
    if (r.populate !== 'none') access(i, r.pages, r.populate === 'write');
  });
  observe(-1);
  const regionIndex = new Map(regions.map((r, i) => [r.id, i]));
  trace.steps.forEach((s, i) => {
    const p = procs.get(s.proc);
    switch (s.op) {
      case 'fork':
        if (p) procs.set(s.child, { execd: p.execd, maps: p.maps.map((m, r) => m && !regions[r]!.advice.includes('dontfork')) });
        break;
      case 'write':
      case 'read': {
        const r = regionIndex.get(s.region);
        if (r !== undefined) access(r, selectedCount(s.pages), s.op === 'write');
        break;
      }
      case 'exec':
        if (p) p.execd = true;
        break;
      case 'exit':
        procs.delete(s.proc);
        break;
      case 'mprotect':
      case 'pageout':
        break;
    }
    observe(i);
  });
  return out;
}

/** Bytes per frame of the simulator's frame tables (physmem.ts), without and with huge pages. */
const FRAME_TABLE_BYTES = 11;
const FRAME_TABLE_BYTES_LARGE = 42;

/** What simulating `trace` costs: bytes it holds at most, and page entries it handles (its time). */
export function simulationCost(trace: Trace, b: TraceBounds = traceBounds(trace)): { bytes: number; work: number } {
  const totalPages = trace.regions.reduce((n, r) => n + r.pages, 0);
  const perFrame = trace.regions.some(isHuge) ? FRAME_TABLE_BYTES_LARGE : FRAME_TABLE_BYTES;
  // Frame numbers are never reused and the tables double as they grow: twice the allocations.
  const frameTables = 2 * perFrame * Math.max(2 * totalPages + 1, b.allocations);
  // Page tables: a pfn (4 bytes) and flags (1) per entry, and read-only bits after an mprotect.
  const pageTables = 6 * b.maxEntries;
  // pagemapRead's arrays (present, exclusive, zero page: a byte per page of the largest region),
  // and one observation at a time packed a bit per page, with the one before it (pageBits.ts).
  const largestRegion = trace.regions.reduce((n, r) => Math.max(n, r.pages), 0);
  const observation = 3 * largestRegion + 2 * (3 / 8) * b.maxObservedEntries;
  return { bytes: frameTables + pageTables + observation, work: b.observedEntries + b.accesses };
}

/** The simulator's most frames in use at once, and the observation where they are first reached (-1: setup). */
export interface SimulatedPeak {
  frames: number;
  step: number;
}

const simulated = new WeakMap<Trace, Map<string, SimulatedPeak>>();

/**
 * Runs the simulator over `trace` and returns its most frames in use (allocated and not freed:
 * mapped pages, page-cache pages nobody maps, every page of a huge page), keeping no
 * observation. Within a step the count only grows (or, for exit and exec, only shrinks), so the
 * most after any step is the peak. Remembered per checked trace and options.
 */
export function simulatePeak(trace: Trace, options: SimOptions = {}): SimulatedPeak {
  const key = JSON.stringify(options);
  const known = isCheckedTrace(trace) ? simulated.get(trace)?.get(key) : undefined;
  if (known) return known;
  const checked = isCheckedTrace(trace) ? trace : parseTrace(trace);
  const sim = new Simulator(checked, options);
  // releaseFrameTables() hands over the frame tables without ending the run: their inUse is the
  // count of frames allocated and not freed.
  const inUse = () => sim.releaseFrameTables().inUse;
  sim.setup();
  const peak: SimulatedPeak = { frames: inUse(), step: -1 };
  for (let i = 0; !sim.done; i++) {
    sim.step();
    const n = inUse();
    if (n > peak.frames) {
      peak.frames = n;
      peak.step = i;
    }
  }
  if (isCheckedTrace(trace)) {
    const byOptions = simulated.get(trace) ?? new Map<string, SimulatedPeak>();
    byOptions.set(key, peak);
    simulated.set(trace, byOptions);
  }
  return peak;
}

/** The simulator may use up to this much memory to predict a peak (the caller may lower it). */
export const SIM_BUDGET_BYTES = 1024 * 1024 * 1024;
/** ... and handle this many page entries (about 10 s on this machine's CPU). */
export const SIM_BUDGET_WORK = 2 ** 28;

export interface PeakOptions {
  /** The trace fits when at most this many frames are ever in use. */
  limitFrames: number;
  /** The simulator's options (default: the built-in model); a function is called only if the simulator runs. */
  options?: SimOptions | (() => SimOptions);
  simBudgetBytes?: number;
  simBudgetWork?: number;
}

export interface PeakPrediction {
  /** exact: the simulator's peak; otherwise the upper bound of traceBounds(). */
  frames: number;
  /** Where the peak (or the bound's peak) is reached: -1 setup, i steps[i]. */
  step: number;
  exact: boolean;
  fits: boolean;
  /** For a bound that does not fit: why the simulator was not asked. */
  why?: string;
}

/**
 * Whether `trace` fits in `limitFrames` frames at its peak: by the upper bound when that fits,
 * else by the simulator when it can afford to simulate the trace, else (refused) by the bound.
 */
export function predictPeak(trace: Trace, opts: PeakOptions): PeakPrediction {
  const bounds = traceBounds(trace);
  if (bounds.upperFrames <= opts.limitFrames) return { frames: bounds.upperFrames, step: bounds.upperStep, exact: false, fits: true };
  const cost = simulationCost(trace, bounds);
  const budgetBytes = opts.simBudgetBytes ?? SIM_BUDGET_BYTES;
  const budgetWork = opts.simBudgetWork ?? SIM_BUDGET_WORK;
  if (cost.bytes > budgetBytes || cost.work > budgetWork) {
    const why =
      cost.bytes > budgetBytes
        ? `simulating it would take about ${mib(cost.bytes)} MiB itself (more than ${mib(budgetBytes)} MiB)`
        : `simulating it would take about ${cost.work.toLocaleString('en-US')} page entries (more than ${budgetWork.toLocaleString('en-US')})`;
    return { frames: bounds.upperFrames, step: bounds.upperStep, exact: false, fits: false, why };
  }
  const peak = simulatePeak(trace, typeof opts.options === 'function' ? opts.options() : opts.options);
  return { frames: peak.frames, step: peak.step, exact: true, fits: peak.frames <= opts.limitFrames };
}

function mib(bytes: number): string {
  return Math.ceil(bytes / 2 ** 20).toLocaleString('en-US');
}

/** "setup" or "steps[7] (c4: write heap)". */
export function describeObservation(trace: Trace, step: number): string {
  if (step < 0) return 'setup';
  const s = trace.steps[step]!;
  const what = 'region' in s ? `${s.op} ${s.region}` : s.op === 'fork' ? `fork ${s.child}` : s.op;
  return `steps[${step}] (${s.proc}: ${what})`;
}

export interface MemoryCheck {
  /** Bytes the engine itself keeps while it runs the trace (observations, pagemap snapshots). */
  recordBytes: (bounds: TraceBounds) => number;
  /** The simulator's options for the prediction (the running kernel's profile, for the kernel engine). */
  options?: SimOptions | (() => SimOptions);
}

/**
 * Null when running `trace` fits the machine: its predicted peak frames, plus what the engine
 * keeps of every step, within half of MemAvailable (memory/budget.ts). Otherwise why not, with
 * the peak and the limit: "it needs about 55.4 GiB: the simulator predicts a peak of ...".
 */
export function traceMemoryProblem(trace: Trace, check: MemoryCheck): string | null {
  const limit = memoryLimit();
  const bounds = traceBounds(trace);
  const records = check.recordBytes(bounds);
  const over = describeLimit(limit);
  const recordsText = `the engine's own records of the steps take about ${formatBytes(records)}`;
  if (records > limit.limitBytes) return `${recordsText} alone; that is ${over}`;
  const limitFrames = Math.floor((limit.limitBytes - records) / PAGE_BYTES);
  const opts: PeakOptions = { limitFrames, simBudgetBytes: Math.min(SIM_BUDGET_BYTES, limit.limitBytes / 4) };
  if (check.options !== undefined) opts.options = check.options;
  const p = predictPeak(trace, opts);
  if (p.fits) return null;
  const bytes = p.frames * PAGE_BYTES;
  const frames = `${p.frames.toLocaleString('en-US')} frames (${formatBytes(bytes)})`;
  const where = describeObservation(trace, p.step);
  if (p.exact) {
    return `it needs about ${formatBytes(bytes + records)}: the simulator predicts a peak of ${frames} after ${where}, and ${recordsText}; that is ${over}`;
  }
  return `it may need up to ${formatBytes(bytes + records)}: a simple bound allows ${frames} by ${where}, and ${p.why}; ${recordsText}; that is ${over}`;
}
