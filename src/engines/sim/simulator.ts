/**
 * The simulator: runs a trace through the model of the kernel (fault.ts, huge.ts, fork.ts,
 * unmap.ts, mprotect.ts) one step at a time and observes, after each step, what pagemap and
 * kpageflags would show and what the step cost.
 *
 * A step's work is O(pages touched) on typed arrays, and each observation O(pages x live
 * processes), so a 65,536-page fork-and-write-all trace takes milliseconds.
 */
import { CowlabError } from '../../errors.js';
import { isCheckedTrace, parseTrace } from '../../trace/parse.js';
import { selectPages } from '../../trace/select.js';
import { ROOT_PROC, type RegionSpec, type Step, type Trace } from '../../trace/types.js';
import type { RegionObservation, StepEvents, StepObservation } from '../types.js';
import { dupMmap } from './fork.js';
import { handleMmFault } from './fault.js';
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
  FAULT_WP_SHARED,
  FAULT_ZERO_FILL,
  type Machine,
} from './machine.js';
import { changeProtection } from './mprotect.js';
import { resolveSimOptions, type ResolvedSimOptions, type SimOptions } from './options.js';
import { FRAME_USED, PhysMem } from './physmem.js';
import { exitMmap } from './unmap.js';
import { Mm, PTE_HUGE, PTE_PRESENT, PTE_SPECIAL, PTE_WRITE, ShmemFile, Vma } from './vm.js';

/** The step's events in one region, counted per fault as the kernel takes them. */
class Tally {
  copies = 0;
  reuses = 0;
  zeroFills = 0;
  faults = 0;

  record(kind: number): void {
    if (kind === FAULT_NONE) return;
    this.faults++;
    if (kind === FAULT_COPY) this.copies++;
    else if (kind === FAULT_REUSE) this.reuses++;
    else if (kind === FAULT_ZERO_FILL || kind === FAULT_HUGE_ZERO_FILL || kind === FAULT_COW_FILL) this.zeroFills++;
  }

  events(): StepEvents {
    return { copies: this.copies, reuses: this.reuses, zeroFills: this.zeroFills, faults: this.faults };
  }
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
  return t;
}

function allPages(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
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
  private next = -1;
  private epoch = 0;

  constructor(trace: Trace, options: SimOptions = {}) {
    this.trace = isCheckedTrace(trace) ? trace : parseTrace(trace, { checkMemory: false });
    this.options = resolveSimOptions(options);
    // Room for every page twice (populated, then copied once) before the frame tables grow.
    this.m = { mem: new PhysMem(2 * this.trace.regions.reduce((n, r) => n + r.pages, 0) + 1), opts: this.options };
    this.cost = costTable(this.options);
    this.files = this.trace.regions.map((r, i) => (r.map === 'shared' || r.backing === 'memfd' ? new ShmemFile(i, r.pages) : null));
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
      p0.vmas[r] = vma;
      if (spec.populate !== 'none') ns += this.touch(p0, vma, allPages(spec.pages), spec.populate === 'write', tallies[r]!);
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
    const ns = this.apply(s, tallies);
    return this.finish(i, s.op, s.proc, tallies, ns);
  }

  private apply(s: Step, tallies: Tally[]): number | null {
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
        return this.touch(mm, vma, selectPages(s.pages, vma.pages), s.op === 'write', tallies[r]!);
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
    }
  }

  /** Loads or stores `pages` in order; returns their predicted time. */
  private touch(mm: Mm, vma: Vma, pages: Uint32Array, write: boolean, tally: Tally): number {
    const flags = vma.pt.flags;
    const need = write ? PTE_PRESENT | PTE_WRITE : PTE_PRESENT;
    const cost = this.cost;
    let ns = 0;
    let none = 0;
    for (let k = 0; k < pages.length; k++) {
      const i = pages[k]!;
      if ((flags[i]! & need) === need) {
        none++; // the access needs no fault
        continue;
      }
      const kind = handleMmFault(this.m, mm, vma, i, write);
      tally.record(kind);
      ns += cost[kind]!;
    }
    return ns + none * cost[FAULT_NONE]!;
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

  private tallies(): Tally[] {
    return this.trace.regions.map(() => new Tally());
  }

  private finish(step: number, op: StepObservation['op'], proc: string, tallies: Tally[], timeNs: number | null): StepObservation {
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

  private observe(step: number, op: StepObservation['op'], proc: string, tallies: Tally[], timeNs: number | null): StepObservation {
    const live = this.mms.filter((mm) => mm.alive);
    const processes: StepObservation['processes'] = {};
    for (const mm of live) processes[mm.name] = {};
    const events: StepObservation['events'] = {};
    const frames: StepObservation['frames'] = {};
    this.trace.regions.forEach((spec, r) => {
      const epoch = ++this.epoch;
      let distinct = 0;
      for (const mm of live) {
        const seen = this.observeRegion(spec.pages, mm.vmas[r]!, epoch);
        processes[mm.name]![spec.id] = seen.region;
        distinct += seen.newFrames;
      }
      events[spec.id] = tallies[r]!.events();
      frames[spec.id] = distinct;
    });
    return { step, op, proc, processes, events, frames, timeNs };
  }

  /**
   * pagemap_pte_range in a nutshell: present when an entry maps something; zero page for
   * special entries (never exclusive: it has no rmap); exclusive when the page is mapped once
   * (precise page mapcount 1), or with pagemapExclusive 'folio' when its folio is not
   * maybe-mapped-shared. Also counts the frames not yet marked with `epoch`, so a region's
   * distinct frames (zero page excluded) come out of the same pass.
   */
  private observeRegion(pages: number, vma: Vma | null, epoch: number): { region: RegionObservation; newFrames: number } {
    const present = new Uint8Array(pages);
    const exclusive = new Uint8Array(pages);
    const zeroPage = new Uint8Array(pages);
    const region = { present, exclusive, zeroPage };
    if (vma === null) return { region, newFrames: 0 };
    const mem = this.m.mem;
    const { mark, mapcount, entireMapcount, head } = mem;
    const precise = this.options.pagemapExclusive === 'precise';
    const { flags, pfn } = vma.pt;
    let newFrames = 0;
    for (let i = 0; i < pages; i++) {
      const f = flags[i]!;
      if ((f & PTE_PRESENT) === 0) continue;
      present[i] = 1;
      if ((f & PTE_SPECIAL) !== 0) {
        zeroPage[i] = 1;
        continue;
      }
      const p = pfn[i]!;
      if (mark[p] !== epoch) {
        mark[p] = epoch;
        newFrames++;
      }
      // folio_precise_page_mapcount(page) == 1, without a call: this loop runs for every page.
      // For a PMD mapping, pagemap_pmd_range_thp computes the bit once, from the head page
      // (pmd_page), and gives it to all 512 entries: once the other process has copied the
      // head subpage, every entry of our huge mapping reads exclusive (seen on 6.18).
      const h = head[p]!;
      const mapped = mapcount[(f & PTE_HUGE) !== 0 ? h : p]!;
      if (precise ? mapped <= 1 && mapped + entireMapcount[h]! === 1 : !mem.maybeMappedShared(h)) exclusive[i] = 1;
    }
    return { region, newFrames };
  }

  /** A copy of the model's internals (frames, page tables, page caches). */
  state(): SimState {
    const mem = this.m.mem;
    const n = mem.top + 1;
    const anon = new Uint8Array(n);
    for (let p = 1; p < n; p++) if (mem.frameState[p] === FRAME_USED && mem.head[p] === p && mem.isAnon(p)) anon[p] = 1;
    return {
      regions: this.trace.regions.map((r) => ({ ...r, advice: [...r.advice] })),
      frames: {
        top: mem.top,
        inUse: mem.inUse,
        head: mem.head.slice(0, n),
        frameState: mem.frameState.slice(0, n),
        refcount: mem.refcount.slice(0, n),
        nrPages: mem.nrPages.slice(0, n),
        mapcount: mem.mapcount.slice(0, n),
        entireMapcount: mem.entireMapcount.slice(0, n),
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
    };
  }
}
