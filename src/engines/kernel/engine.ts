/**
 * The kernel engine: runs a trace in real processes and observes every step with real
 * pagemap reads.
 *
 * p0 is forked from Node (so Node's own page faults and heap never appear in the figures) and
 * maps every region; with the trace's `p0: 'node'`, p0 is the Node process itself (its
 * commands run on a Node worker thread, and a fork copies Node's whole address space, as
 * forking a real program does). Each `fork` step forks the acting trace process; every forked
 * process runs the native command loop (native/proctree_loop.cc) on its own shared stack, so
 * the fault counts it reports belong to the operation alone. After the setup and after every step, Node
 * reads the pagemap of every region in every live process and derives the observations
 * (./observe.ts). Whatever happens, every process is killed and reaped before run() settles.
 */
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { CowlabError } from '../../errors.js';
import { environment } from '../../env/environment.js';
import { anonThpUnavailable, readThp, shmemThpUnavailable } from '../../env/thp.js';
import { runningKernelFacts } from '../../kernels/facts.js';
import { pageSize } from '../../memory/mapping.js';
import { smapsFor, smapsRollup, type SmapsTotals } from '../../memory/smaps.js';
import { native, type ProcTreeAccessRaw } from '../../native.js';
import { pfnAccess } from '../../pagemap/access.js';
import { readKpageCounts, readPageCategories, type PagemapEntries } from '../../pagemap/pagemap.js';
import { isCheckedTrace, parseTrace } from '../../trace/parse.js';
import { MAX_TRACE_PROCESSES } from '../../trace/schema.js';
import type { RegionSpec, Trace } from '../../trace/types.js';
import { describeEnded, describeWaitStatus } from '../../util/procStat.js';
import type {
  Engine,
  EngineRunOptions,
  RegionObservation,
  StepEvents,
  StepObservation,
  TraceObservations,
} from '../types.js';
import {
  allFrames,
  classifyAccesses,
  countFrames,
  readSnapshot,
  type AmbiguousCount,
  type RegionGeometry,
  type RegionSnapshot,
  type ZeroSource,
} from './observe.js';
import { traceMemoryProblem, type TraceBounds } from '../sim/peak.js';
import { profileFor } from '../sim/profiles.js';
import { planTrace, type KernelPlan, type PlannedStep } from './plan.js';
import { ProcessTree } from './tree.js';

/** The most processes a trace may have: a trace rule (src/trace/schema.ts), from the kernel
 *  engine's one command channel per process (native/proctree.h). */
export { MAX_TRACE_PROCESSES };
export const DEFAULT_STEP_DEADLINE_MS = 60_000;
const DESTROY_BUDGET_MS = 10_000;
/** How often a holding process is checked for a death from outside. */
const HOLD_POLL_MS = 20;
/** How long a read that failed with ESRCH waits for its dying trace process to be a zombie. */
const DEATH_WAIT_MS = 1_000;

/** Programs `exec` may run: they stay alive until their stdin (the command pipe) closes. */
const EXEC_CANDIDATES = ['/bin/cat', '/usr/bin/cat'];

/**
 * The value a write stores at offset 0 of `page`: `tag + page`, with the tag (upper 32 bits)
 * naming the step (setup = step -1), so any page's content says who wrote it.
 */
export function kernelWriteValue(step: number, page: number): bigint {
  return writeTag(step) + BigInt(page);
}

function writeTag(step: number): bigint {
  return BigInt(step + 2) << 32n;
}

/** Per-access record of a write or read (setup populate included). */
export interface KernelAccessDetail {
  region: string;
  write: boolean;
  pages: Uint32Array;
  latencyNs: Float64Array;
  /** Minor faults of each access. */
  faults: Uint32Array;
  /** ACCESS_CLASS of each access (observe.ts). */
  classes: Uint8Array;
  /** Read: the u64 at offset 0 of each page. */
  values: BigUint64Array | null;
  /** CLOCK_MONOTONIC ns (process.hrtime's clock) at which each access started. */
  startNs: Float64Array;
}

/** Everything measured at one step, beyond the observation shape (tests, calibration). */
export interface KernelStepDetail {
  step: number;
  /** pid of every live process after the step. */
  pids: Record<string, number>;
  /** Raw pagemap of every region in every live process after the step. */
  pagemap: Record<string, Record<string, PagemapEntries>>;
  /** With `kpagecount: true` (root): /proc/kpagecount of each page's frame after the step, 0
   *  where the page is not present. */
  kpagecount: Record<string, Record<string, Float64Array>> | null;
  /** With `smaps: true`: /proc/<pid>/smaps of every live process after the step. */
  smaps: Record<string, KernelSmaps> | null;
  /** write/read (and the setup's populate passes). */
  access: KernelAccessDetail[];
  /** Minor faults of the acting process over the whole operation (null: not measured). */
  opFaults: number | null;
  /** fork: the fork() call. */
  forkNs: number | null;
  /** fork: CLOCK_MONOTONIC ns (process.hrtime's clock) when fork() returned in the parent. */
  forkedAtNs: number | null;
  /** Major faults of the acting process over the whole operation (write/read; else null). */
  opMajorFaults: number | null;
  /** The smallest back-to-back clock read of the acting process (setup: p0; fork: the child):
   *  the timer's share of each latency. Null for other steps. */
  timerOverheadNs: number | null;
  /** With `vmstat: true`: /proc/vmstat just before and just after the step's operation
   *  (system-wide counters; the setup's: around the populate passes). */
  vmstat: { before: string; after: string } | null;
}

/** The live processes, as run() goes: given after the setup and after every step. */
export interface KernelLive {
  /** Steps done (0: the setup). */
  done: number;
  /** pid of every live trace process (p0 is process.pid with p0 'node'). */
  pids: Record<string, number>;
  /** Where each region starts in the processes that map it (the same address in every one). */
  addresses: Record<string, bigint>;
}

export interface KernelDetailOptions extends EngineRunOptions {
  /** Read /proc/kpagecount of every present frame after each step (root only). */
  kpagecount?: boolean;
  /** Read /proc/<pid>/smaps of every live process after each step (no privilege needed). */
  smaps?: boolean;
  /** Read /proc/vmstat around each step's operation. */
  vmstat?: boolean;
  /** Called after the setup and after every step, while the processes live (e.g. to sample
   *  their smaps from a timer during the next step). */
  onLive?: (live: KernelLive) => void;
}

/** smaps of one live trace process after a step. */
export interface KernelSmaps {
  /** Region id -> totals of the VMAs over the region; null for an exec'd process (its
   *  address space is another program's: the region's addresses are not read). */
  regions: Record<string, SmapsTotals> | null;
  /** The whole process (smaps_rollup): for an exec'd process, what the new program holds. */
  process: SmapsTotals;
}

export interface KernelRunDetailed {
  observations: TraceObservations;
  details: KernelStepDetail[];
}

type ProcState = 'unborn' | 'running' | 'execd' | 'exited';

function isShmemBacked(r: RegionSpec): boolean {
  return r.map === 'shared' || r.backing === 'memfd';
}

function backingCode(r: RegionSpec): number {
  const c = native().constants;
  if (r.backing === 'anon') return r.map === 'shared' ? c.BACKING_ANON_SHARED : c.BACKING_ANON_PRIVATE;
  return r.map === 'shared' ? c.BACKING_MEMFD_SHARED : c.BACKING_MEMFD_PRIVATE;
}

function execPath(): string | null {
  for (const p of EXEC_CANDIDATES) {
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

let zeroSourceCached: ZeroSource | undefined;

/** PAGEMAP_SCAN when the kernel has it; else kpageflags as root; else nothing. */
function zeroSource(): ZeroSource {
  if (zeroSourceCached !== undefined) return zeroSourceCached;
  try {
    readPageCategories(0, BigInt(0x10000), 1);
    zeroSourceCached = 'pagemap-scan';
  } catch {
    zeroSourceCached = pfnAccess().kpageflags ? 'kpageflags' : null;
  }
  return zeroSourceCached;
}

function wrapError(err: unknown, where: string): unknown {
  if (!(err instanceof CowlabError)) return err;
  const details: ConstructorParameters<typeof CowlabError>[2] = { cause: err };
  if (err.errno !== undefined) details.errno = err.errno;
  if (err.errnoNumber !== undefined) details.errnoNumber = err.errnoNumber;
  if (err.syscall !== undefined) details.syscall = err.syscall;
  if (err.field !== undefined) details.field = err.field;
  return new CowlabError(err.code, `${where}: ${err.message}`, details);
}

/** One run of one trace: the process tree, who is alive, the last snapshot. */
class KernelRun {
  readonly tree: ProcessTree;
  readonly plan: KernelPlan;
  readonly geometry: RegionGeometry[] = [];
  readonly state: ProcState[];
  readonly pids: number[];
  /** Current parent of each slot: a slot, or -1 for Node (p0, and orphans adopted by Node). */
  readonly parentOf: number[];
  /** Exited, not yet reaped. */
  readonly zombies = new Set<number>();
  readonly pfnVisible: boolean;
  readonly zero: ZeroSource;
  snapshot = new Map<number, RegionSnapshot[]>();
  /** Why some copies/reuses/zeroFills could not be classified (no zero-page information, or
   *  huge pages seen neither by PAGEMAP_SCAN nor by PFNs), per count. */
  readonly ambiguous: Partial<Record<AmbiguousCount, string>> = {};
  /** Per `slot/region`: huge pages whose PMD a write fault of that process made writable
   *  since its last fork or mprotect of the region (observe.ts: spurious faults). */
  readonly writableHuge = new Map<string, Set<number>>();
  /** The trace pages out: observations carry `swapped` and `swapIns`. */
  readonly pagesOut: boolean;

  constructor(
    readonly trace: Trace,
    readonly deadlineMs: number,
    readonly keepDetails: boolean,
    readonly kpagecount: boolean,
    readonly smaps: boolean,
    readonly vmstat: boolean,
  ) {
    this.plan = planTrace(trace);
    this.pagesOut = trace.steps.some((s) => s.op === 'pageout');
    const n = this.plan.procs.length;
    this.state = Array.from({ length: n }, (_, i) => (i === 0 ? 'running' : 'unborn'));
    this.pids = new Array<number>(n).fill(0);
    this.parentOf = Array.from(this.plan.parents);
    this.pfnVisible = pfnAccess().pfnVisible;
    this.zero = zeroSource();
    this.tree = new ProcessTree({
      regions: trace.regions.map((r) => ({
        pages: r.pages,
        backing: backingCode(r),
        thp: r.thp,
        dontfork: r.advice.includes('dontfork'),
        wipeonfork: r.advice.includes('wipeonfork'),
        anywhere: r.placement === 'kernel',
      })),
      parents: this.plan.parents,
      capacity: this.plan.capacity,
      execPath: execPath() ?? EXEC_CANDIDATES[0]!,
      p0InNode: trace.p0 === 'node',
    }, this.plan.procs);
  }

  liveSlots(): number[] {
    return this.state.flatMap((s, i) => (s === 'running' || s === 'execd' ? [i] : []));
  }

  takeSnapshot(): Map<number, RegionSnapshot[]> {
    const targets = this.liveSlots().map((slot) => ({ slot, pid: this.pids[slot]!, execd: this.state[slot] === 'execd' }));
    return readSnapshot(targets, this.geometry, this.zero);
  }

  async setup(): Promise<{ obs: StepObservation; detail: KernelStepDetail }> {
    const started = await this.tree.start(this.deadlineMs);
    this.pids[0] = started.pid;
    this.parentOf[0] = -1;
    this.trace.regions.forEach((r, i) => this.geometry.push({ address: started.addresses[i]!, pages: r.pages }));
    const events = this.zeroEvents();
    const access: KernelAccessDetail[] = [];
    let timeNs = started.mapNs;
    const vmBefore = this.readVmstat();
    let before = this.takeSnapshot();
    for (const [r, region] of this.trace.regions.entries()) {
      if (region.populate === 'none') continue;
      const pages = Uint32Array.from({ length: region.pages }, (_, i) => i);
      const write = region.populate === 'write';
      const raw = await this.tree.access(0, write, r, pages, writeTag(-1), this.deadlineMs);
      const after = this.takeSnapshot();
      const { ev, detail } = this.accessEvents(0, r, write, pages, raw, before, after);
      events[region.id] = ev;
      access.push(detail);
      timeNs += sum(raw.latencyNs);
      before = after;
    }
    this.snapshot = before;
    const obs = this.observation(-1, 'setup', 'p0', events, timeNs);
    const vmstat = vmBefore === null ? null : { before: vmBefore, after: this.readVmstat()! };
    return { obs, detail: this.detail(-1, access, { timerOverheadNs: started.timerOverheadNs, vmstat }) };
  }

  readVmstat(): string | null {
    return this.vmstat ? readFileSync('/proc/vmstat', 'utf8') : null;
  }

  /** The live processes and where the regions are, for onLive. */
  live(done: number): KernelLive {
    const pids: Record<string, number> = {};
    for (const slot of this.liveSlots()) pids[this.plan.procs[slot]!] = this.pids[slot]!;
    const addresses = Object.fromEntries(this.trace.regions.map((r, i) => [r.id, this.geometry[i]!.address]));
    return { done, pids, addresses };
  }

  async step(i: number, ps: PlannedStep): Promise<{ obs: StepObservation; detail: KernelStepDetail }> {
    const before = this.snapshot;
    const proc = this.plan.procs[ps.slot]!;
    const events = this.zeroEvents();
    const access: KernelAccessDetail[] = [];
    let timeNs: number;
    let opFaults: number | null = 0;
    const more: Partial<KernelStepDetail> = {};
    let accessNs: Float64Array | undefined;
    let after: Map<number, RegionSnapshot[]>;
    if (ps.op === 'exit' && ps.afterMs > 0) await this.hold(ps.slot, ps.afterMs);
    const vmBefore = this.readVmstat();
    switch (ps.op) {
      case 'fork': {
        // fork write-protects the parent's PMDs of every region it copies (copy_huge_pmd);
        // MADV_DONTFORK and MADV_WIPEONFORK regions are not copied.
        this.trace.regions.forEach((reg, r) => {
          if (!reg.advice.includes('dontfork') && !reg.advice.includes('wipeonfork')) this.writableHuge.delete(`${ps.slot}/${r}`);
        });
        const r = await this.tree.fork(ps.slot, ps.childSlot, this.deadlineMs);
        this.pids[ps.childSlot] = r.pid;
        this.state[ps.childSlot] = 'running';
        timeNs = more.forkNs = r.forkNs;
        more.forkedAtNs = r.forkedAtNs;
        more.timerOverheadNs = r.timerOverheadNs;
        opFaults = r.faults;
        after = this.takeSnapshot();
        break;
      }
      case 'write':
      case 'read': {
        const write = ps.op === 'write';
        const how = { paceNs: ps.paceNs, viaPread: ps.viaPread };
        // A paced step takes as long as its schedule: the deadline counts from its last access.
        const deadline = this.deadlineMs + Math.ceil((ps.paceNs * ps.pages.length) / 1e6);
        const raw = await this.tree.access(ps.slot, write, ps.region, ps.pages, writeTag(i), deadline, how);
        after = this.takeSnapshot();
        const { ev, detail } = this.accessEvents(ps.slot, ps.region, write, ps.pages, raw, before, after);
        events[this.trace.regions[ps.region]!.id] = ev;
        access.push(detail);
        timeNs = sum(raw.latencyNs);
        opFaults = raw.opFaults;
        more.opMajorFaults = raw.opMajorFaults;
        if (ps.each) accessNs = raw.latencyNs;
        break;
      }
      case 'pageout': {
        const r = await this.tree.pageout(ps.slot, ps.region, ps.pages, this.deadlineMs);
        timeNs = r.opNs;
        opFaults = r.opFaults;
        events[this.trace.regions[ps.region]!.id]!.faults = r.opFaults;
        after = this.takeSnapshot();
        break;
      }
      case 'mprotect': {
        const c = native().constants;
        const prot = ps.prot === 'r' ? c.PROT_READ : c.PROT_READ | c.PROT_WRITE;
        this.writableHuge.delete(`${ps.slot}/${ps.region}`);
        const r = await this.tree.protect(ps.slot, ps.region, prot, ps.pages, this.deadlineMs);
        timeNs = r.opNs;
        opFaults = r.opFaults;
        events[this.trace.regions[ps.region]!.id]!.faults = r.opFaults;
        after = this.takeSnapshot();
        break;
      }
      case 'exec': {
        const r = await this.tree.exec(ps.slot, this.deadlineMs);
        this.state[ps.slot] = 'execd';
        timeNs = r.opNs;
        opFaults = null;
        after = this.takeSnapshot();
        break;
      }
      case 'exit': {
        const r = await this.tree.exit(ps.slot, this.deadlineMs);
        this.state[ps.slot] = 'exited';
        this.zombies.add(ps.slot);
        // Its children, running or not yet reaped, now belong to Node (the subreaper).
        this.parentOf.forEach((p, c) => {
          if (p === ps.slot && this.state[c] !== 'unborn') this.parentOf[c] = -1;
        });
        await this.reapWhatWeCan();
        timeNs = r.opNs;
        opFaults = null;
        after = this.takeSnapshot();
        break;
      }
    }
    if (vmBefore !== null) more.vmstat = { before: vmBefore, after: this.readVmstat()! };
    this.snapshot = after;
    const obs = this.observation(i, ps.op, proc, events, timeNs);
    if (accessNs !== undefined) obs.accessNs = accessNs;
    return { obs, detail: this.detail(i, access, { ...more, opFaults }) };
  }

  /**
   * The process keeps its memory `ms` before its exit: Node waits, watching it, so a death
   * meanwhile (a kill from outside) is reported at once. A hold the step deadline cannot
   * contain ends at the deadline (the run's teardown then kills every process).
   */
  async hold(slot: number, ms: number): Promise<void> {
    const pid = this.pids[slot]!;
    const who = `trace process '${this.plan.procs[slot]}' (pid ${pid})`;
    const start = Date.now();
    const end = start + Math.min(ms, this.deadlineMs);
    for (let now = start; now < end; now = Date.now()) {
      await sleep(Math.min(HOLD_POLL_MS, end - now));
      const how = describeEnded(pid);
      if (how !== null) throw new CowlabError('ERR_CHILD_FAILED', `${who} ${how} while it held its memory before its exit`);
    }
    if (ms >= this.deadlineMs) {
      throw new CowlabError(
        'ERR_CHILD_DEADLINE',
        `${who} was to hold its memory ${ms} ms before its exit, past the ${this.deadlineMs} ms step deadline; every trace process was killed and reaped`,
      );
    }
  }

  /** Reaps exited processes by their parent when it runs the loop, or by Node when Node
   *  adopted them; a zombie whose parent exec'd waits until that parent exits. */
  async reapWhatWeCan(): Promise<void> {
    for (const z of [...this.zombies]) {
      const parent = this.parentOf[z]!;
      if (parent >= 0 && this.state[parent] !== 'running') continue;
      const st = await this.tree.reap(parent, this.pids[z]!, this.deadlineMs);
      this.zombies.delete(z);
      if (st.exitCode !== 0) {
        const how = describeWaitStatus(st.status);
        throw new CowlabError('ERR_CHILD_FAILED', `trace process '${this.plan.procs[z]}' (pid ${this.pids[z]}) ${how} instead of exiting normally`);
      }
    }
  }

  zeroEvents(): Record<string, StepEvents> {
    const none = (): StepEvents => ({ copies: 0, reuses: 0, zeroFills: 0, faults: 0, ...(this.pagesOut ? { swapIns: 0 } : {}) });
    return Object.fromEntries(this.trace.regions.map((r) => [r.id, none()]));
  }

  accessEvents(
    slot: number,
    r: number,
    write: boolean,
    pages: Uint32Array,
    raw: ProcTreeAccessRaw,
    before: Map<number, RegionSnapshot[]>,
    after: Map<number, RegionSnapshot[]>,
  ): { ev: StepEvents; detail: KernelAccessDetail } {
    const region = this.trace.regions[r]!;
    const c = classifyAccesses({
      write,
      shared: region.map === 'shared',
      pages,
      faults: raw.faults,
      flags: raw.flags,
      before: before.get(slot)![r]!,
      after: after.get(slot)![r]!,
      framesBefore: this.pfnVisible ? allFrames(before) : null,
      anonThp: region.thp && region.map === 'private' && region.backing === 'anon',
      writableHuge: this.writableHugeOf(slot, r),
    });
    for (const [k, why] of Object.entries(c.unknown) as [AmbiguousCount, string][]) this.ambiguous[k] ??= why;
    return {
      ev: {
        copies: c.copies,
        reuses: c.reuses,
        zeroFills: c.zeroFills,
        faults: raw.opFaults + raw.opMajorFaults - c.spuriousFaults,
        ...(this.pagesOut ? { swapIns: c.swapIns } : {}),
      },
      detail: {
        region: region.id,
        write,
        pages,
        latencyNs: raw.latencyNs,
        faults: raw.faults,
        classes: c.classes,
        values: raw.values,
        startNs: raw.startNs,
      },
    };
  }

  writableHugeOf(slot: number, r: number): Set<number> {
    const key = `${slot}/${r}`;
    let set = this.writableHuge.get(key);
    if (set === undefined) this.writableHuge.set(key, (set = new Set()));
    return set;
  }

  observation(step: number, op: StepObservation['op'], proc: string, events: Record<string, StepEvents>, timeNs: number): StepObservation {
    const processes: StepObservation['processes'] = {};
    for (const [slot, regions] of this.snapshot) {
      const byRegion: Record<string, RegionObservation> = {};
      regions.forEach((s, r) => {
        const obs: RegionObservation = { present: s.entries.present, exclusive: s.entries.exclusive, zeroPage: s.zero };
        if (this.pagesOut) obs.swapped = s.entries.swapped;
        byRegion[this.trace.regions[r]!.id] = obs;
      });
      processes[this.plan.procs[slot]!] = byRegion;
    }
    const frames: Record<string, number | null> = {};
    this.trace.regions.forEach((reg, r) => {
      frames[reg.id] = this.pfnVisible ? countFrames(this.snapshot, r) : null;
    });
    return { step, op, proc, processes, events, frames, timeNs };
  }

  detail(step: number, access: KernelAccessDetail[], more: Partial<KernelStepDetail>): KernelStepDetail {
    const pids: Record<string, number> = {};
    const pagemap: Record<string, Record<string, PagemapEntries>> = {};
    for (const [slot, regions] of this.snapshot) {
      const name = this.plan.procs[slot]!;
      pids[name] = this.pids[slot]!;
      if (this.keepDetails) {
        pagemap[name] = Object.fromEntries(regions.map((s, r) => [this.trace.regions[r]!.id, s.entries]));
      }
    }
    return {
      step,
      pids,
      pagemap,
      kpagecount: this.kpagecount ? this.readCounts() : null,
      smaps: this.smaps ? this.readSmaps() : null,
      access: this.keepDetails ? access : [],
      opFaults: more.opFaults ?? null,
      forkNs: more.forkNs ?? null,
      forkedAtNs: more.forkedAtNs ?? null,
      opMajorFaults: more.opMajorFaults ?? null,
      timerOverheadNs: more.timerOverheadNs ?? null,
      vmstat: more.vmstat ?? null,
    };
  }

  readSmaps(): Record<string, KernelSmaps> {
    const out: Record<string, KernelSmaps> = {};
    const ps = BigInt(pageSize());
    for (const slot of this.liveSlots()) {
      const pid = this.pids[slot]!;
      const regions =
        this.state[slot] === 'execd'
          ? null
          : Object.fromEntries(
              this.trace.regions.map((r, i) => {
                const g = this.geometry[i]!;
                return [r.id, smapsFor(pid, g.address, g.address + BigInt(g.pages) * ps)];
              }),
            );
      out[this.plan.procs[slot]!] = { regions, process: smapsRollup(pid) };
    }
    return out;
  }

  readCounts(): Record<string, Record<string, Float64Array>> {
    const out: Record<string, Record<string, Float64Array>> = {};
    for (const [slot, regions] of this.snapshot) {
      out[this.plan.procs[slot]!] = Object.fromEntries(
        regions.map((s, r) => {
          const present = s.entries.pfn.filter((_, i) => s.entries.present[i] === 1);
          const counts = present.length > 0 ? readKpageCounts(present) : new Float64Array(0);
          const full = new Float64Array(s.entries.length);
          for (let i = 0, k = 0; i < full.length; i++) if (s.entries.present[i]) full[i] = counts[k++]!;
          return [this.trace.regions[r]!.id, full];
        }),
      );
    }
    return out;
  }

  /**
   * A failure while a live trace process had died is that death. A process killed from
   * outside (Ctrl-C's killAllChildren, the OOM killer) between the native step and Node's
   * reads makes the read of its pagemap fail with ESRCH, which says nothing of the cause.
   * ESRCH comes as soon as the dying process has dropped its memory, a little before it is a
   * zombie: after one, the engine waits up to a second for the zombie to show.
   */
  async blameDeath(err: unknown): Promise<unknown> {
    // An interrupted paced loop was stopped by killAllChildren, which killed the processes too.
    const own = ['ERR_CHILD_FAILED', 'ERR_CHILD_DEADLINE', 'ERR_INTERRUPTED'];
    if (!(err instanceof CowlabError) || own.includes(err.code)) return err;
    const end = Date.now() + (err.errno === 'ESRCH' ? DEATH_WAIT_MS : 0);
    for (;;) {
      for (const slot of this.liveSlots()) {
        const pid = this.pids[slot]!;
        const how = pid > 0 ? describeEnded(pid) : null;
        if (how === null) continue;
        const who = `trace process '${this.plan.procs[slot]}' (pid ${pid})`;
        return new CowlabError('ERR_CHILD_FAILED', `${who} ${how}; then ${err.message}`, { cause: err });
      }
      if (Date.now() >= end) return err;
      await sleep(2);
    }
  }

  /** Where the kernel put the regions the trace left to it: the page table entry of the first page. */
  placement(): Record<string, number> | null {
    const placed = this.trace.regions.flatMap((r, i) => (r.placement === 'kernel' && this.geometry[i] ? [[r.id, i] as const] : []));
    if (placed.length === 0) return null;
    const ps = BigInt(pageSize());
    return Object.fromEntries(placed.map(([id, i]) => [id, Number((this.geometry[i]!.address / ps) % 512n)]));
  }

  unavailable(): Record<string, string> {
    const out: Record<string, string> = {};
    const access = pfnAccess();
    if (!this.pfnVisible) {
      out.frames = `physical frame numbers are not visible: ${access.pfnReason ?? 'unknown reason'}`;
    }
    if (this.zero === null) {
      out.zeroPage =
        'zero-page mappings cannot be identified: the kernel lacks PAGEMAP_SCAN (Linux < 6.7) and /proc/kpageflags is root-only';
    }
    for (const [k, why] of Object.entries(this.ambiguous)) out[`events.${k}`] = why;
    return out;
  }
}

function sum(a: Float64Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s;
}

/**
 * Bytes the engine holds for a run besides the trace's own memory: every observation keeps
 * present, exclusive and zero-page bytes per page of every live process; the pagemap snapshots
 * before and after a step, about 25 bytes per page each (raw entry, PFN, flags, categories);
 * with details, every step's pagemap and every access's latency, faults, class and value too.
 */
function kernelRecordBytes(b: TraceBounds, details: boolean): number {
  return b.observedEntries * (details ? 26 : 3) + b.maxObservedEntries * 50 + (details ? b.accesses * 25 : 0);
}

function describeStep(trace: Trace, i: number): string {
  const s = trace.steps[i]!;
  const what = 'region' in s ? `${s.op} ${s.region}` : s.op === 'fork' ? `fork ${s.child}` : s.op;
  return `steps[${i}] (${s.proc}: ${what})`;
}

/** Runs traces in real processes. */
export class KernelEngine implements Engine {
  readonly name = 'kernel' as const;

  /**
   * Null when this machine can run the trace; otherwise why not (what the machine lacks: Linux,
   * THP, a program to exec). What a trace may do is the parser's to say (parseTrace); whether its
   * memory fits is checked by checkMemory() when it runs, because that is an error of the input
   * (ERR_TOO_LARGE), not something the machine lacks.
   */
  supports(trace: Trace): string | null {
    if (process.platform !== 'linux') return `the kernel engine needs Linux (this is ${process.platform})`;
    const processes = 1 + trace.steps.filter((s) => s.op === 'fork').length;
    if (processes > MAX_TRACE_PROCESSES) {
      // Only for a trace that never went through parseTrace, which refuses it (a trace rule).
      return `the trace has ${processes} processes; a trace has at most ${MAX_TRACE_PROCESSES}`;
    }
    // Read only for a trace that asks for huge pages, and as sysfs says now (env/thp.ts).
    const thp = trace.regions.some((r) => r.thp) ? readThp() : null;
    for (const r of trace.regions) {
      if (thp !== null && r.thp && !isShmemBacked(r)) {
        const missing = anonThpUnavailable(thp);
        if (missing === 'absent') return `region '${r.id}' asks for THP, but this kernel has no transparent huge pages`;
        if (missing === 'never') return `region '${r.id}' asks for THP, but transparent_hugepage/enabled is 'never' here`;
      }
      if (thp !== null && r.thp && isShmemBacked(r)) {
        const mode = shmemThpUnavailable(thp);
        if (mode !== null) return `region '${r.id}' asks for THP on shmem (${r.map} ${r.backing}), but transparent_hugepage/shmem_enabled is '${mode}' here`;
      }
      if (r.advice.includes('wipeonfork') && (r.map !== 'private' || r.backing !== 'anon')) {
        return `region '${r.id}': MADV_WIPEONFORK applies only to private anonymous memory (the kernel refuses it for ${r.map} ${r.backing})`;
      }
    }
    if (trace.p0 === 'node' && trace.steps.some((s) => s.op === 'pageout')) {
      // Node's threads fault pages in on every CPU, and MADV_PAGEOUT drains only its own CPU's
      // LRU batch: pages waiting in another's could not be reclaimed, a result of chance.
      return "pageout needs p0 as a process of its own (p0 'process'): p0 'node' runs in Node, whose threads fault pages in on every CPU, where reclaim may not see them";
    }
    if (trace.steps.some((s) => s.op === 'exec') && execPath() === null) {
      return `exec steps need a program that waits on its stdin (${EXEC_CANDIDATES.join(' or ')}), and none is installed`;
    }
    return null;
  }

  /**
   * Throws ERR_TOO_LARGE when running `trace` here would not fit in half of MemAvailable: the
   * frames the simulator predicts at the trace's peak (with the running kernel's profile), plus
   * what this engine keeps of every step. Nothing is allocated for the trace before this passed;
   * run() and runDetailed() call it first. `details`: as runDetailed() keeps them.
   */
  checkMemory(trace: Trace, options: { details?: boolean } = {}): void {
    const checked = isCheckedTrace(trace) ? trace : parseTrace(trace);
    const why = traceMemoryProblem(checked, {
      recordBytes: (b) => kernelRecordBytes(b, options.details === true),
      options: () => profileFor(runningKernelFacts(environment())).options,
    });
    if (why !== null) {
      throw new CowlabError('ERR_TOO_LARGE', `the kernel engine cannot run trace '${trace.name}': ${why}`, { field: 'trace' });
    }
  }

  async run(trace: Trace, options: EngineRunOptions = {}): Promise<TraceObservations> {
    return (await this.execute(trace, options, false)).observations;
  }

  /** run(), plus per-step pids, raw pagemaps (and kpagecounts, smaps) and per-access latencies,
   *  faults, classes and values. */
  async runDetailed(trace: Trace, options: KernelDetailOptions = {}): Promise<KernelRunDetailed> {
    if (options.kpagecount && !pfnAccess().kpagecount) {
      throw new CowlabError('ERR_NOT_MEASURABLE', `kpagecount: ${pfnAccess().kpagecountReason ?? 'not readable'}`);
    }
    return this.execute(trace, options, true);
  }

  private async execute(trace: Trace, options: KernelDetailOptions, keepDetails: boolean): Promise<KernelRunDetailed> {
    const reason = this.supports(trace);
    if (reason !== null) throw new CowlabError('ERR_NOT_MEASURABLE', `the kernel engine cannot run trace '${trace.name}': ${reason}`);
    // The parser's rules hold for every trace an engine runs (a checked one passed them already).
    const checked = isCheckedTrace(trace) ? trace : parseTrace(trace);
    this.checkMemory(checked, { details: keepDetails });
    const deadlineMs = options.stepDeadlineMs ?? DEFAULT_STEP_DEADLINE_MS;
    const run = new KernelRun(checked, deadlineMs, keepDetails, options.kpagecount === true, options.smaps === true, options.vmstat === true);
    const steps: StepObservation[] = [];
    const details: KernelStepDetail[] = [];
    let failure: unknown = null;
    try {
      let where = 'setup (p0 maps and populates the regions)';
      try {
        const s = await run.setup();
        steps.push(s.obs);
        details.push(s.detail);
        options.onLive?.(run.live(0));
        for (const [i, ps] of run.plan.steps.entries()) {
          where = describeStep(trace, i);
          const r = await run.step(i, ps);
          steps.push(r.obs);
          details.push(r.detail);
          options.onLive?.(run.live(i + 1));
          options.onStep?.(i + 1, trace.steps.length);
        }
      } catch (err) {
        throw wrapError(await run.blameDeath(err), where);
      }
    } catch (err) {
      failure = err;
    }
    try {
      await run.tree.destroy(DESTROY_BUDGET_MS);
    } catch (err) {
      failure ??= err;
    }
    if (failure !== null) throw failure;
    const observations: TraceObservations = { engine: 'kernel', trace, steps, unavailable: run.unavailable() };
    const placement = run.placement();
    if (placement !== null) observations.placement = placement;
    return { observations, details };
  }
}
