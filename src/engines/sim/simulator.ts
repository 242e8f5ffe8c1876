/**
 * The simulator: runs a trace through the model of the kernel (fault.ts, huge.ts, fork.ts,
 * unmap.ts, mprotect.ts) one step at a time and observes, after each step, what pagemap and
 * kpageflags would show (pagemap.ts) and what the step cost.
 *
 * A step's work is O(pages touched) on typed arrays, and each observation O(pages x live
 * processes), so a 65,536-page fork-and-write-all trace takes milliseconds. Runs of pages in
 * a common state take the fast paths of fastpath.ts (the same result, checked against the
 * per-page path by test/sim/fastpaths.test.ts).
 *
 * Memory is the frame tables (physmem.ts) and a page table per process and region; the
 * observations are kept packed, a bit per page, shared with the step before where nothing
 * changed (engines/pageBits.ts), and a range of pages is walked without a list of its pages.
 * So a 64 GiB (16,777,216-page) fork-and-write-all trace is predicted in seconds, within 1 GiB.
 */
import { CowlabError } from '../../errors.js';
import { isCheckedTrace, parseTrace } from '../../trace/parse.js';
import { selectPages } from '../../trace/select.js';
import { ROOT_PROC, type PageSelector, type RegionSpec, type Step, type Trace } from '../../trace/types.js';
import { PageBits, packedObservation, type PackedRegion } from '../pageBits.js';
import type { RegionObservation, StepEvents, StepObservation } from '../types.js';
import { dupMmap } from './fork.js';
import { handleMmFault } from './fault.js';
import { doAnonymousPageRun, wpPageCopyRun } from './fastpath.js';
import { checkInvariants } from './invariants.js';
import {
  FAULT_COPY,
  FAULT_COW_FILL,
  FAULT_HUGE_MAP_NEW,
  FAULT_HUGE_ZERO_FILL,
  FAULT_KINDS,
  FAULT_MAP,
  FAULT_MAP_NEW,
  FAULT_NONE,
  FAULT_REUSE,
  FAULT_SWAP_IN,
  FAULT_WP_SHARED,
  FAULT_ZERO_FILL,
  type Machine,
} from './machine.js';
import { changeProtection } from './mprotect.js';
import { resolveSimOptions, type ResolvedSimOptions, type SimDebugOptions, type SimOptions } from './options.js';
import { FRAME_USED, PhysMem } from './physmem.js';
import { distinctFrames, pagemapRead } from './pagemap.js';
import { exitMmap } from './unmap.js';
import { madvisePageout, SwapSpace } from './swap.js';
import { Mm, PTE_PRESENT, PTE_WRITE, ShmemFile, Vma } from './vm.js';

/**
 * The step's events in one region, counted per fault as the kernel takes them: how many
 * faults of each FAULT_* kind (index), so recording one is a single array increment.
 */
type FaultCounts = Int32Array;

function stepEvents(c: FaultCounts, swapIns: boolean): StepEvents {
  let faults = 0;
  for (let kind = FAULT_NONE + 1; kind < FAULT_KINDS; kind++) faults += c[kind]!;
  const events: StepEvents = {
    copies: c[FAULT_COPY]!,
    reuses: c[FAULT_REUSE]!,
    zeroFills: c[FAULT_ZERO_FILL]! + c[FAULT_HUGE_ZERO_FILL]! + c[FAULT_COW_FILL]!,
    faults,
  };
  if (swapIns) events.swapIns = c[FAULT_SWAP_IN]!;
  return events;
}

/** Nanoseconds per access, indexed by FAULT_* kind (cost.ts explains the constants). */
function costTable(opts: ResolvedSimOptions): Float64Array {
  const c = opts.costModel.constants;
  const t = new Float64Array(FAULT_KINDS);
  t[FAULT_NONE] = c.accessNs;
  t[FAULT_MAP] = c.faultNs;
  t[FAULT_WP_SHARED] = c.faultNs;
  t[FAULT_MAP_NEW] = c.zeroFillNs;
  t[FAULT_ZERO_FILL] = c.zeroFillNs;
  t[FAULT_HUGE_ZERO_FILL] = c.hugeZeroFillNs;
  t[FAULT_HUGE_MAP_NEW] = c.hugeZeroFillNs;
  t[FAULT_COW_FILL] = c.copyNs;
  t[FAULT_COPY] = c.copyNs;
  t[FAULT_REUSE] = c.reuseNs;
  // Uncalibrated: a swap-in from zram decompresses 4 KiB into a new page, of the order of a copy.
  t[FAULT_SWAP_IN] = c.copyNs;
  return t;
}

/** Pages start..end-1 in order: a range of stride 1, walked without a list of its pages. */
interface PageRange {
  start: number;
  end: number;
}

/** The pages a selector names, in order: a range of stride 1 as such, anything else as a list. */
function selectedPages(sel: PageSelector, regionPages: number): Uint32Array | PageRange {
  if (!('random' in sel) && !('pages' in sel) && (sel.stride ?? 1) === 1) return { start: sel.start, end: sel.end };
  return selectPages(sel, regionPages);
}

/** How many pages of a range go through touch() at a time (a list of them in RANGE_PAGES). */
const RANGE_CHUNK = 65_536;
/** The numbers of one chunk of a range: a list of every page of a 64 GiB range would be 64 MiB. */
const RANGE_PAGES = new Uint32Array(RANGE_CHUNK);

/** The pages start..end-1 (at most RANGE_CHUNK of them) as a list, in RANGE_PAGES. */
function rangeChunk(start: number, end: number): Uint32Array {
  const n = end - start;
  for (let k = 0; k < n; k++) RANGE_PAGES[k] = start + k;
  return RANGE_PAGES.subarray(0, n);
}

/** The pages of `pages` as lists, in order: the list itself, or a range chunk by chunk. */
function* pageChunks(pages: Uint32Array | PageRange): Generator<Uint32Array> {
  if (pages instanceof Uint32Array) {
    yield pages;
    return;
  }
  for (let from = pages.start; from < pages.end; from += RANGE_CHUNK) yield rangeChunk(from, Math.min(from + RANGE_CHUNK, pages.end));
}

/** What touch() adds up over the lists of one access step. */
interface TouchTotals {
  /** Predicted ns of the faults, in page order. */
  ns: number;
  /** Accesses that took no fault. */
  none: number;
  /** Steps with timing 'each': the predicted ns of every access, in page order; else null. */
  each: Float64Array | null;
  /** Accesses of the step touched so far (the index into `each`). */
  at: number;
}

/** One byte per page of present / exclusive / zero page: what pagemapRead fills, before packing. */
interface PagemapScratch {
  present: Uint8Array;
  exclusive: Uint8Array;
  zeroPage: Uint8Array;
  swapped: Uint8Array;
}

/** What a VMA looks like inside, for invariant checks and tests (copies). */
export interface VmaState {
  region: number;
  shared: boolean;
  anonymous: boolean;
  hasAnonVma: boolean;
  /** Per page: pfn (0 with PTE_SPECIAL: the zero page) and PTE_* flags. */
  pfn: Int32Array;
  flags: Uint8Array;
  /** Per 2 MiB chunk: PMD_* state. */
  pmd: Uint8Array;
  readonly: Uint8Array | null;
}

export interface ProcessState {
  name: string;
  mmId: number;
  alive: boolean;
  execd: boolean;
  /** Per region index. */
  vmas: (VmaState | null)[];
}

/** Physical memory, indexed by pfn 1..top (copies). */
export interface FrameTable {
  top: number;
  inUse: number;
  head: Int32Array;
  frameState: Uint8Array;
  refcount: Int32Array;
  nrPages: Int32Array;
  mapcount: Int32Array;
  entireMapcount: Int32Array;
  anonExclusive: Uint8Array;
  /** 1 for anonymous folios (at the head pfn), 0 for page-cache ones. */
  anon: Uint8Array;
}

export interface SimState {
  regions: RegionSpec[];
  frames: FrameTable;
  /** Every process ever created, in creation order. */
  processes: ProcessState[];
  /** Per region index: the shmem page cache (index -> pfn, 0 = hole), null for private anon. */
  pageCache: (Int32Array | null)[];
  /** Swap (traces that page out, with swap): per slot, the entries holding it and its
   *  swap-cache pfn (0: none). Null without swap. */
  swap: { count: Int32Array; cache: Int32Array } | null;
}

/**
 * Runs one trace: `setup()` (p0 maps and populates every region), then `step()` once per
 * trace step, each returning the observation after it. `state()` exposes the model's
 * internals.
 */
export class Simulator {
  readonly trace: Trace;
  readonly options: ResolvedSimOptions;
  private readonly m: Machine;
  private readonly mms: Mm[] = [];
  private readonly byName = new Map<string, Mm>();
  private readonly files: (ShmemFile | null)[];
  private readonly cost: Float64Array;
  /** The step being applied asked for every access's time (timing 'each'). */
  private accessNs: Float64Array | null = null;
  private next = -1;
  /** pagemapRead's output arrays, sized for the largest region and reused for every read. */
  private scratch: PagemapScratch | null = null;
  /** Per process (mm id - 1) and region: its last observation, to share what a step left alone. */
  private readonly lastObserved: PackedRegion[][] = [];
  /** The trace pages out: observations carry `swapped` and `swapIns`. */
  private readonly pagesOut: boolean;

  /**
   * `offsets`: per region, where its first page lies in its page table (Vma.offset); 0 for
   * every region unless given. Only regions placed by the kernel may have another (engine.ts
   * simulateOutcomes tries them).
   */
  constructor(trace: Trace, options: SimOptions = {}, debug: SimDebugOptions = {}, private readonly offsets: readonly number[] = []) {
    this.trace = isCheckedTrace(trace) ? trace : parseTrace(trace);
    this.options = resolveSimOptions(options);
    // Room for every page twice (populated, then copied once) before the frame tables grow;
    // huge pages only where some region may get them (Vma.hugepage).
    const regions = this.trace.regions;
    const frames = 2 * regions.reduce((n, r) => n + r.pages, 0) + 1;
    const hugepages = regions.some((r) => r.thp && r.map === 'private' && r.backing === 'anon');
    this.pagesOut = this.trace.steps.some((s) => s.op === 'pageout');
    const swap = this.pagesOut && this.options.swap !== 'none' ? new SwapSpace(this.options.swap === 'sync-io') : null;
    this.m = {
      mem: debug.pool ? debug.pool.take(frames, hugepages) : new PhysMem(frames, hugepages),
      opts: this.options,
      // The fast paths know no swap entries (fastpath.ts): a trace that pages out goes per page.
      fastPaths: (debug.fastPaths ?? true) && !this.pagesOut,
      swap,
    };
    this.cost = costTable(this.options);
    this.files = this.trace.regions.map((r, i) => (r.map === 'shared' || r.backing === 'memfd' ? new ShmemFile(i, r.pages) : null));
  }

  /** The frame tables, for a pool to reuse once this simulator is done with them. */
  releaseFrameTables(): PhysMem {
    return this.m.mem;
  }

  /** True once every step has run. */
  get done(): boolean {
    return this.next >= this.trace.steps.length;
  }

  /** Runs setup and every step; returns the observations (setup first). */
  run(): StepObservation[] {
    const out = [this.setup()];
    while (!this.done) out.push(this.step());
    return out;
  }

  /** p0 maps every region (mmap + madvise) and touches it as `populate` says, page 0 first. */
  setup(): StepObservation {
    if (this.next !== -1) throw new Error('Simulator.setup() runs once, first');
    const p0 = this.spawn(ROOT_PROC);
    const tallies = this.tallies();
    let ns = 0;
    this.trace.regions.forEach((spec, r) => {
      const vma = new Vma(r, spec, this.files[r]!);
      vma.offset = this.offsets[r] ?? 0;
      p0.vmas[r] = vma;
      if (spec.populate !== 'none') ns += this.touch(p0, vma, { start: 0, end: spec.pages }, spec.populate === 'write', tallies[r]!);
    });
    this.next = 0;
    return this.finish(-1, 'setup', ROOT_PROC, tallies, ns);
  }

  /** Runs the next trace step. */
  step(): StepObservation {
    if (this.next < 0) throw new Error('Simulator.step(): call setup() first');
    if (this.done) throw new Error('Simulator.step(): every step has run');
    const i = this.next++;
    const s = this.trace.steps[i]!;
    const tallies = this.tallies();
    this.accessNs = null;
    const ns = this.apply(s, tallies);
    const obs = this.finish(i, s.op, s.proc, tallies, ns);
    if (this.accessNs !== null) obs.accessNs = this.accessNs;
    return obs;
  }

  private apply(s: Step, tallies: FaultCounts[]): number | null {
    const mm = this.process(s.proc);
    switch (s.op) {
      case 'fork': {
        const child = this.spawn(s.child);
        child.execd = mm.execd;
        const copied = dupMmap(this.m, mm, child);
        const c = this.options.costModel.constants;
        return c.forkBaseNs + c.forkPerPageNs * copied;
      }
      case 'write':
      case 'read': {
        const r = this.regionIndex(s.region);
        const vma = this.vma(mm, r);
        const pages = selectedPages(s.pages, vma.pages);
        if (s.timing === 'each') this.accessNs = new Float64Array('start' in pages ? pages.end - pages.start : pages.length);
        return this.touch(mm, vma, pages, s.op === 'write', tallies[r]!, this.accessNs);
      }
      case 'mprotect': {
        const vma = this.vma(mm, this.regionIndex(s.region));
        changeProtection(this.m, mm, vma, s.pages ? selectPages(s.pages, vma.pages) : null, s.prot);
        return null;
      }
      case 'exec':
        exitMmap(this.m, mm);
        mm.execd = true;
        return null;
      case 'exit':
        exitMmap(this.m, mm);
        mm.alive = false;
        return null;
      case 'pageout': {
        const vma = this.vma(mm, this.regionIndex(s.region));
        madvisePageout(this.m, mm, vma, selectPages(s.pages ?? { start: 0, end: vma.pages }, vma.pages));
        return null;
      }
    }
  }

  /**
   * Loads or stores `pages` in order, as the CPU would: an access the page table allows takes
   * no fault; any other faults (handleMmFault), or a run of them goes through a fast path.
   * Counts the faults by kind; returns the predicted time (the faults' costs in page order,
   * then the accesses without a fault).
   */
  private touch(
    mm: Mm,
    vma: Vma,
    pages: Uint32Array | PageRange,
    write: boolean,
    counts: FaultCounts,
    each: Float64Array | null = null,
  ): number {
    const totals: TouchTotals = { ns: 0, none: 0, each, at: 0 };
    for (const list of pageChunks(pages)) this.touchList(mm, vma, list, write, counts, totals);
    return totals.ns + totals.none * this.cost[FAULT_NONE]!;
  }

  /**
   * touch() for one list of pages, adding to `totals`: a range is touched a chunk at a time,
   * and its time is still summed page after page, so the prediction is the same to the bit.
   */
  private touchList(mm: Mm, vma: Vma, pages: Uint32Array, write: boolean, counts: FaultCounts, totals: TouchTotals): void {
    const m = this.m;
    const flags = vma.pt.flags;
    const need = write ? PTE_PRESENT | PTE_WRITE : PTE_PRESENT;
    const cost = this.cost;
    const n = pages.length;
    const each = totals.each;
    const at = totals.at;
    let ns = totals.ns;
    let none = totals.none;
    let k = 0;
    while (k < n) {
      const i = pages[k]!;
      if ((flags[i]! & need) === need) {
        none++; // the access needs no fault
        if (each !== null) each[at + k] = cost[FAULT_NONE]!;
        k++;
        continue;
      }
      if (m.fastPaths && write) {
        let kind = FAULT_ZERO_FILL;
        let end = doAnonymousPageRun(m, vma, pages, k);
        if (end === k) {
          kind = FAULT_COPY;
          end = wpPageCopyRun(m, mm, vma, pages, k);
        }
        if (end > k) {
          counts[kind] = counts[kind]! + (end - k);
          const c = cost[kind]!;
          if (each !== null) each.fill(c, at + k, at + end);
          for (; k < end; k++) ns += c;
          continue;
        }
      }
      const kind = handleMmFault(m, mm, vma, i, write);
      counts[kind] = counts[kind]! + 1;
      ns += cost[kind]!;
      if (each !== null) each[at + k] = cost[kind]!;
      k++;
    }
    totals.at = at + n;
    totals.ns = ns;
    totals.none = none;
  }

  private spawn(name: string): Mm {
    const mm = new Mm(name, this.mms.length + 1, this.trace.regions.length);
    this.mms.push(mm);
    this.byName.set(name, mm);
    return mm;
  }

  private process(name: string): Mm {
    const mm = this.byName.get(name);
    if (!mm || !mm.alive) throw new CowlabError('ERR_TRACE_INVALID', `proc: no live process '${name}'`, { field: 'proc' });
    return mm;
  }

  private regionIndex(id: string): number {
    return this.trace.regions.findIndex((r) => r.id === id);
  }

  private vma(mm: Mm, r: number): Vma {
    const vma = mm.vmas[r];
    if (!vma) throw new CowlabError('ERR_TRACE_INVALID', `region: process '${mm.name}' does not map region ${r}`, { field: 'region' });
    return vma;
  }

  private tallies(): FaultCounts[] {
    return this.trace.regions.map(() => new Int32Array(FAULT_KINDS));
  }

  private finish(step: number, op: StepObservation['op'], proc: string, tallies: FaultCounts[], timeNs: number | null): StepObservation {
    const obs = this.observe(step, op, proc, tallies, timeNs);
    if (this.options.checkInvariants) {
      const problems = checkInvariants(this.state());
      if (problems.length > 0) {
        throw new Error(`sim invariant broken after ${step < 0 ? 'setup' : `steps[${step}]`}: ${problems.slice(0, 5).join('; ')}`);
      }
    }
    return obs;
  }

  // --- observation: what pagemap (present, exclusive) and kpageflags (zero page) would show ---

  private observe(step: number, op: StepObservation['op'], proc: string, tallies: FaultCounts[], timeNs: number | null): StepObservation {
    const live = this.mms.filter((mm) => mm.alive);
    const processes: StepObservation['processes'] = {};
    for (const mm of live) processes[mm.name] = {};
    const events: StepObservation['events'] = {};
    const frames: StepObservation['frames'] = {};
    this.trace.regions.forEach((spec, r) => {
      // A frame is mapped at most once per process (one entry per page), so by at most every
      // live process (and pagemapRead counts up to 2 in any case).
      const mappings = new Int32Array(Math.max(live.length, 2) + 1);
      for (const mm of live) {
        const out = this.pagemapScratch(spec.pages);
        const vma = mm.vmas[r] ?? null;
        if (vma !== null) pagemapRead(this.m, vma, out, mappings);
        processes[mm.name]![spec.id] = this.keep(mm, r, out);
      }
      events[spec.id] = stepEvents(tallies[r]!, this.pagesOut);
      frames[spec.id] = distinctFrames(mappings);
    });
    return { step, op, proc, processes, events, frames, timeNs };
  }

  /** pagemapRead's output arrays for a region of `pages` pages, all zero. */
  private pagemapScratch(pages: number): PagemapScratch {
    if (this.scratch === null || this.scratch.present.length < pages) {
      const most = this.trace.regions.reduce((n, r) => Math.max(n, r.pages), 0);
      const swapped = new Uint8Array(this.pagesOut ? most : 0);
      this.scratch = { present: new Uint8Array(most), exclusive: new Uint8Array(most), zeroPage: new Uint8Array(most), swapped };
    }
    const { present, exclusive, zeroPage, swapped } = this.scratch;
    const view = (a: Uint8Array) => a.fill(0, 0, pages).subarray(0, pages);
    return { present: view(present), exclusive: view(exclusive), zeroPage: view(zeroPage), swapped: this.pagesOut ? view(swapped) : swapped };
  }

  /**
   * The observation of region `r` in `mm` from pagemapRead's arrays, packed; each flag's bits
   * are the previous observation's when equal (a process the step left alone costs nothing).
   */
  private keep(mm: Mm, r: number, out: PagemapScratch): RegionObservation {
    const byRegion = (this.lastObserved[mm.id - 1] ??= []);
    const last = byRegion[r];
    const packed: PackedRegion = {
      present: PageBits.pack(out.present, last?.present),
      exclusive: PageBits.pack(out.exclusive, last?.exclusive ?? undefined),
      zeroPage: PageBits.pack(out.zeroPage, last?.zeroPage ?? undefined),
    };
    if (this.pagesOut) packed.swapped = PageBits.pack(out.swapped, last?.swapped ?? undefined);
    byRegion[r] = packed;
    return packedObservation(packed);
  }

  /** A copy of the model's internals (frames, page tables, page caches). */
  state(): SimState {
    const mem = this.m.mem;
    const n = mem.top + 1;
    const anon = new Uint8Array(n);
    for (let p = 1; p < n; p++) if (mem.frameState[p] === FRAME_USED && mem.headOf(p) === p && mem.isAnon(p)) anon[p] = 1;
    return {
      regions: this.trace.regions.map((r) => ({ ...r, advice: [...r.advice] })),
      frames: {
        top: mem.top,
        inUse: mem.inUse,
        head: mem.largeFolios ? mem.head.slice(0, n) : Int32Array.from({ length: n }, (_, p) => p), // small folios: their own heads
        frameState: mem.frameState.slice(0, n),
        refcount: mem.refcount.slice(0, n),
        nrPages: mem.largeFolios ? Int32Array.from(mem.nrPages.subarray(0, n)) : Int32Array.from({ length: n }, (_, p) => mem.nrPagesOf(p)),
        mapcount: mem.mapcount.slice(0, n),
        entireMapcount: mem.largeFolios ? mem.entireMapcount.slice(0, n) : new Int32Array(n),
        anonExclusive: mem.anonExclusive.slice(0, n),
        anon,
      },
      processes: this.mms.map((mm) => ({
        name: mm.name,
        mmId: mm.id,
        alive: mm.alive,
        execd: mm.execd,
        vmas: mm.vmas.map((v) =>
          v === null
            ? null
            : {
                region: v.region,
                shared: v.shared,
                anonymous: v.anonymous,
                hasAnonVma: v.hasAnonVma,
                pfn: v.pt.pfn.slice(),
                flags: v.pt.flags.slice(),
                pmd: v.pt.pmd.slice(),
                readonly: v.readonly ? v.readonly.slice() : null,
              },
        ),
      })),
      pageCache: this.files.map((f) => (f ? f.cache.slice() : null)),
      swap: this.m.swap ? { count: this.m.swap.count.slice(), cache: this.m.swap.cache.slice() } : null,
    };
  }
}
