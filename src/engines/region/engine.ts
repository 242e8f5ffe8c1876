/**
 * The region engine: runs a trace on cowlab's userspace COW manager. Each process is a set of
 * views (one per trace region); fork forks every view of the process, exit and exec release
 * them, writes and reads are real stores and loads into the views (timed in native code, the
 * handler doing the COW work). Observations come from the manager's own tables and counters;
 * every step also checks the first word of every present page of every live view against a
 * plain copying model, so a wrong observation can never come out silently.
 *
 * Untouched pages behave as private anonymous memory: a read maps the kernel's zero page, a
 * write allocates a zeroed frame, and a fork of a view that never had a frame copies no entry
 * (a VMA without anon_vma). mprotect is view.protect(), with Linux's rule for 'rw' (writable
 * again only where the view alone maps the frame); MADV_DONTFORK regions are not forked,
 * MADV_WIPEONFORK ones are forked empty. What the manager does not model (shared mappings,
 * memfd backing, THP, a fork after mprotect split a region that had no anon_vma yet) is
 * refused by supports().
 */
import { CowlabError } from '../../errors.js';
import { pageSize } from '../../memory/mapping.js';
import { native } from '../../native.js';
import { CowRegion, type CowView } from '../../region/region.js';
import { formatPolicy, parsePolicy, type CowPolicyInput } from '../../region/policy.js';
import { selectPages } from '../../trace/select.js';
import { traceMemoryProblem } from '../sim/peak.js';
import { ROOT_PROC, type RegionSpec, type Step, type Trace } from '../../trace/types.js';
import type {
  Engine,
  EngineRunOptions,
  RegionObservation,
  StepEvents,
  StepObservation,
  TraceObservations,
} from '../types.js';

export interface RegionEngineOptions {
  /** The manager's copy policy. Default lazy (the kernel's); others make observations differ
   *  from the kernel's by design (eager copies at fork, faultAround copies neighbours). */
  policy?: CowPolicyInput;
}

/** Why the region engine cannot mirror a region spec, or null. */
function unsupportedRegion(r: RegionSpec): string | null {
  const why = (what: string) => `region '${r.id}': ${what}`;
  if (r.map !== 'private') {
    return why("map 'shared' is not modeled: MAP_SHARED pages are never copy-on-write, and the region engine mirrors private memory");
  }
  if (r.backing !== 'anon') {
    return why(`backing '${r.backing}' is not modeled: the region engine mirrors private anonymous memory (its own frames are memfd pages)`);
  }
  if (r.thp) return why('thp is not modeled: region frames are 4 KiB pages; a COW on a huge page (split, then copy 4 KiB) has no counterpart');
  return null;
}

/**
 * Why the trace splits a region the way the manager cannot mirror, or null. The manager keeps
 * one anon_vma flag per view; the kernel keeps one per VMA. A partial mprotect before the
 * process ever allocated in the region splits it into VMAs that each get their own anon_vma
 * later (only where something is written), and a fork then copies only the pieces that have
 * one. Refused from the split on, whatever is written later (a conservative rule: tracking
 * the kernel's pieces and merges is the simulator's job). Walks the process tree statically:
 * a process inherits its parent's state at fork.
 */
function unsupportedSplit(trace: Trace): string | null {
  type State = { allocated: boolean; splitAt: number | null };
  const procs = new Map<string, Map<string, State>>();
  procs.set(ROOT_PROC, new Map(trace.regions.map((r) => [r.id, { allocated: r.populate === 'write', splitAt: null }])));
  for (let i = 0; i < trace.steps.length; i++) {
    const step = trace.steps[i]!;
    const regions = procs.get(step.proc);
    if (regions === undefined) continue; // run() reports the dead process
    switch (step.op) {
      case 'fork': {
        for (const [id, s] of regions) {
          if (s.splitAt !== null) {
            return (
              `region '${id}': mprotect at step ${s.splitAt} splits it before anything is allocated in it, so each piece gets ` +
              `its own anon_vma, and fork at step ${i} copies only the pieces that have one; the manager keeps one per view`
            );
          }
        }
        const child = new Map<string, State>();
        for (const [id, s] of regions) {
          const advice = trace.regions.find((r) => r.id === id)!.advice;
          if (advice.includes('dontfork')) continue;
          child.set(id, advice.includes('wipeonfork') ? { allocated: false, splitAt: null } : { ...s });
        }
        procs.set(step.child, child);
        break;
      }
      case 'write': {
        const s = regions.get(step.region);
        if (s !== undefined) s.allocated = true;
        break;
      }
      case 'mprotect': {
        const s = regions.get(step.region);
        const pages = trace.regions.find((r) => r.id === step.region)?.pages ?? 0;
        if (s !== undefined && !s.allocated && step.pages !== undefined && !coversAll(step.pages, pages)) s.splitAt ??= i;
        break;
      }
      case 'exit':
      case 'exec':
        procs.delete(step.proc);
        break;
    }
  }
  return null;
}

/** Why the manager cannot make an access the trace asks for, or null. */
function unsupportedAccess(trace: Trace): string | null {
  for (const [i, s] of trace.steps.entries()) {
    if (s.op === 'write' && s.via === 'pread') {
      return `steps[${i}]: a write by pread(2) is the kernel writing into the page, which a userspace write tracker never sees (the read fails with EFAULT: the copyout experiment shows it)`;
    }
    if ((s.op === 'write' || s.op === 'read') && s.paceNs !== undefined && s.paceNs > 0) {
      return `steps[${i}]: paced accesses (paceNs) are the kernel engine's (the manager's accesses run back to back)`;
    }
    if (s.op === 'pageout') {
      return `steps[${i}]: pageout is the kernel's reclaim (MADV_PAGEOUT to swap); the manager's views keep their memory resident`;
    }
  }
  return null;
}

/** Whether a page selector names every page of a region (an mprotect that splits nothing). */
function coversAll(sel: NonNullable<Extract<Step, { op: 'mprotect' }>['pages']>, pages: number): boolean {
  return new Set(selectPages(sel, pages)).size === pages;
}

interface Process {
  views: Map<string, CowView>;
  /** Model of the first 8 bytes of every page, per region: what a correct view holds. */
  model: Map<string, BigUint64Array>;
}

export class RegionEngine implements Engine {
  readonly name = 'region' as const;
  readonly #policy: CowPolicyInput;
  /** The latencies of the step #apply just ran, when it asked for timing 'each'. */
  #accessNs: Float64Array | undefined;

  /** @param options.policy copy policy of every region (default lazy). */
  constructor(options: RegionEngineOptions = {}) {
    this.#policy = options.policy ?? 'lazy';
    parsePolicy(this.#policy);
  }

  /**
   * Null when the trace can run here; otherwise the first thing the manager does not model, or
   * why its memory does not fit: the frames the simulator predicts at the trace's peak (the
   * manager's frames are the kernel's for private anonymous memory), plus the observations,
   * within half of MemAvailable.
   */
  supports(trace: Trace): string | null {
    for (const r of trace.regions) {
      const why = unsupportedRegion(r);
      if (why !== null) return why;
    }
    const split = unsupportedSplit(trace);
    if (split !== null) return split;
    const how = unsupportedAccess(trace);
    if (how !== null) return how;
    // Per page of every live view: the observation's three bytes, each step; the page table
    // read for it (state, present, exclusive, zero page) and the model's 8 bytes, at once.
    return traceMemoryProblem(trace, { recordBytes: (b) => b.observedEntries * 3 + b.maxObservedEntries * 12 });
  }

  /**
   * Runs the trace: setup (p0 creates and populates every region), then each step. Throws
   * ERR_INVALID_OPTION for a trace supports() refuses or that names a process without the
   * region; ERR_VERIFY if a view's content ever differs from the model. Every region is
   * closed on every path.
   */
  async run(trace: Trace, options: EngineRunOptions = {}): Promise<TraceObservations> {
    const why = this.supports(trace);
    if (why !== null) throw new CowlabError('ERR_INVALID_OPTION', `the region engine cannot run trace '${trace.name}': ${why}`);
    const regions = new Map<string, CowRegion>();
    const procs = new Map<string, Process>();
    try {
      const root: Process = { views: new Map(), model: new Map() };
      procs.set(ROOT_PROC, root);
      for (const spec of trace.regions) {
        const region = CowRegion.create({ pages: spec.pages, policy: this.#policy, populate: 'none' });
        regions.set(spec.id, region);
        root.views.set(spec.id, region.root);
        root.model.set(spec.id, new BigUint64Array(spec.pages));
      }
      const steps: StepObservation[] = [];
      steps.push(
        this.#observe(trace, regions, procs, -1, 'setup', ROOT_PROC, () => {
          let ns = 0;
          for (const spec of trace.regions) {
            if (spec.populate === 'none') continue;
            const all = selectPages({ start: 0, end: spec.pages }, spec.pages);
            ns += access(root, spec.id, all, spec.populate === 'write', 0).ns;
          }
          return ns;
        }),
      );
      for (let i = 0; i < trace.steps.length; i++) {
        const step = trace.steps[i]!;
        steps.push(this.#observe(trace, regions, procs, i, step.op, step.proc, () => this.#apply(trace, procs, step, i)));
        options.onStep?.(i + 1, trace.steps.length);
      }
      return { engine: 'region', trace, steps, unavailable: {} };
    } finally {
      for (const region of regions.values()) region.close();
    }
  }

  #apply(trace: Trace, procs: Map<string, Process>, step: Step, i: number): number | null {
    const proc = procs.get(step.proc);
    if (proc === undefined) throw stepError(i, `process '${step.proc}' is not alive`);
    switch (step.op) {
      case 'fork': {
        const child: Process = { views: new Map(), model: new Map() };
        let ns = 0;
        for (const [id, view] of proc.views) {
          // MADV_DONTFORK: the child does not get the region (and fork leaves the parent's
          // pages alone); MADV_WIPEONFORK: it gets the region empty.
          const advice = trace.regions.find((r) => r.id === id)!.advice;
          if (advice.includes('dontfork')) continue;
          const wipe = advice.includes('wipeonfork');
          const v = view.fork({ wipe });
          ns += v.forkNs!;
          child.views.set(id, v);
          child.model.set(id, wipe ? new BigUint64Array(view.pages) : proc.model.get(id)!.slice());
        }
        procs.set(step.child, child);
        return ns;
      }
      case 'write':
      case 'read': {
        const spec = trace.regions.find((r) => r.id === step.region);
        if (spec === undefined || !proc.views.has(step.region)) {
          throw stepError(i, `process '${step.proc}' has no region '${step.region}'`);
        }
        const r = access(proc, step.region, selectPages(step.pages, spec.pages), step.op === 'write', i + 1);
        if (step.timing === 'each') this.#accessNs = r.latencyNs;
        return r.ns;
      }
      case 'exit':
      case 'exec':
        for (const view of proc.views.values()) view.release();
        proc.views.clear();
        proc.model.clear();
        if (step.op === 'exit') procs.delete(step.proc);
        return null;
      case 'pageout':
        throw stepError(i, 'pageout is not supported by the region engine (supports() refuses it)');
      case 'mprotect': {
        const spec = trace.regions.find((r) => r.id === step.region);
        const view = proc.views.get(step.region);
        if (spec === undefined || view === undefined) throw stepError(i, `process '${step.proc}' has no region '${step.region}'`);
        const selected = step.pages ? selectPages(step.pages, spec.pages) : selectPages({ start: 0, end: spec.pages }, spec.pages);
        const sorted = Uint32Array.from(new Set(selected)).sort();
        for (let a = 0; a < sorted.length; ) {
          let b = a + 1;
          while (b < sorted.length && sorted[b] === sorted[b - 1]! + 1) b++;
          view.protect(sorted[a]!, sorted[b - 1]! + 1, step.prot);
          a = b;
        }
        return null;
      }
    }
  }

  #observe(
    trace: Trace,
    regions: Map<string, CowRegion>,
    procs: Map<string, Process>,
    step: number,
    op: StepObservation['op'],
    proc: string,
    run: () => number | null,
  ): StepObservation {
    const before = new Map([...regions].map(([id, r]) => [id, r.stats()]));
    this.#accessNs = undefined;
    const timeNs = run();
    const accessNs = this.#accessNs;
    const events: Record<string, StepEvents> = {};
    const frames: Record<string, number | null> = {};
    for (const [id, region] of regions) {
      const a = before.get(id)!;
      const b = region.stats();
      events[id] = { copies: b.copies - a.copies, reuses: b.reuses - a.reuses, zeroFills: b.zeroFills - a.zeroFills, faults: b.faults - a.faults };
      frames[id] = b.framesInUse;
    }
    // Every live process reports every region; one that exec'd (or descends from one) maps
    // none of them any more, so nothing is present.
    const processes: Record<string, Record<string, RegionObservation>> = {};
    for (const [name, p] of procs) {
      const out: Record<string, RegionObservation> = {};
      for (const spec of trace.regions) {
        const view = p.views.get(spec.id);
        if (view === undefined) {
          const none = () => new Uint8Array(spec.pages);
          out[spec.id] = { present: none(), exclusive: none(), zeroPage: none() };
          continue;
        }
        const t = view.pageTable();
        verify(trace, step, name, spec.id, view, t.state, p.model.get(spec.id)!);
        out[spec.id] = { present: t.present, exclusive: t.exclusive, zeroPage: t.zeroPage };
      }
      processes[name] = out;
    }
    const obs: StepObservation = { step, op, proc, processes, events, frames, timeNs };
    if (accessNs !== undefined) obs.accessNs = accessNs;
    return obs;
  }

  /** The policy as text, for reports. */
  get policy(): string {
    return formatPolicy(parsePolicy(this.#policy));
  }
}

function stepError(i: number, message: string): CowlabError {
  return new CowlabError('ERR_INVALID_OPTION', `steps[${i}]: ${message}`, { field: `steps[${i}]` });
}

/** Stores `tag + page` (u64) at offset 0 of each page, or loads it; returns the summed ns. */
/** The timed accesses, each page's first word recorded in the model; their latencies and sum. */
function access(proc: Process, regionId: string, pages: Uint32Array, write: boolean, stepTag: number): { ns: number; latencyNs: Float64Array } {
  const view = proc.views.get(regionId)!;
  const tag = BigInt(stepTag) << 32n;
  const lat = native().regionTimedAccess(view.handle, pages, write, tag);
  if (write) {
    const model = proc.model.get(regionId)!;
    for (const p of pages) model[p] = tag + BigInt(p);
  }
  let ns = 0;
  for (let i = 0; i < lat.length; i++) ns += lat[i]!;
  return { ns, latencyNs: Float64Array.from(lat) };
}

/** Every present page's first word equals the model (untouched pages are not read: a load
 *  there would map the zero page and change what is observed). */
function verify(trace: Trace, step: number, proc: string, regionId: string, view: CowView, state: Uint8Array, model: BigUint64Array): void {
  const words = new BigUint64Array(view.buffer);
  const stride = pageSize() / 8;
  let bad = 0;
  let first = -1;
  for (let p = 0; p < state.length; p++) {
    if (state[p] === 0) continue;
    if (words[p * stride] !== model[p]) {
      bad++;
      if (first < 0) first = p;
    }
  }
  if (bad > 0) {
    throw new CowlabError(
      'ERR_VERIFY',
      `trace '${trace.name}' step ${step}: ${bad} pages of region '${regionId}' in process '${proc}' differ from what was written to them (first: page ${first})`,
    );
  }
}
