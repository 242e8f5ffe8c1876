/**
 * From a trace to what the process tree needs: one slot per process (p0 first, then in fork
 * order), the parent slot of each, the longest page list each will be sent, and every step with
 * its pages resolved. It also refuses steps a real process could not survive or perform (an
 * access to a region the process does not map, a write to a page it made read-only, a command
 * to a process that exited or exec'd), naming the step and field.
 */
import { CowlabError } from '../../errors.js';
import { selectPages } from '../../trace/select.js';
import { ROOT_PROC, type RegionSpec, type Trace } from '../../trace/types.js';

export type PlannedStep =
  | { op: 'fork'; slot: number; childSlot: number }
  | { op: 'write' | 'read'; slot: number; region: number; pages: Uint32Array }
  | { op: 'mprotect'; slot: number; region: number; prot: 'r' | 'rw'; pages: Uint32Array }
  | { op: 'exec'; slot: number }
  | { op: 'exit'; slot: number };

export interface KernelPlan {
  /** Process name of each slot. */
  procs: string[];
  slotOf: Map<string, number>;
  /** Parent slot of each slot (-1 for p0). */
  parents: Int32Array;
  /** Longest page list sent to each slot (p0 includes its populate pass). */
  capacity: Uint32Array;
  steps: PlannedStep[];
  regionIndex: Map<string, number>;
}

function invalid(field: string, message: string): CowlabError {
  return new CowlabError('ERR_TRACE_INVALID', `${field}: ${message}`, { field });
}

/** What a live process has: which regions it maps, which pages it made read-only. */
interface ProcState {
  slot: number;
  execd: boolean;
  mapped: boolean[];
  readOnly: Uint8Array[];
}

/** Whether a region survives into a forked child (MADV_DONTFORK: it does not). */
function inheritedByChild(r: RegionSpec): boolean {
  return !r.advice.includes('dontfork');
}

export function planTrace(trace: Trace): KernelPlan {
  const regionIndex = new Map<string, number>();
  trace.regions.forEach((r, i) => {
    if (regionIndex.has(r.id)) throw invalid(`regions[${i}].id`, `'${r.id}' is used twice`);
    regionIndex.set(r.id, i);
  });
  const procs = [ROOT_PROC];
  const slotOf = new Map([[ROOT_PROC, 0]]);
  const parents = [-1];
  const capacity = [Math.max(1, ...trace.regions.map((r) => (r.populate === 'none' ? 0 : r.pages)))];
  const live = new Map<string, ProcState>([
    [ROOT_PROC, { slot: 0, execd: false, mapped: trace.regions.map(() => true), readOnly: trace.regions.map((r) => new Uint8Array(r.pages)) }],
  ]);
  const steps: PlannedStep[] = [];

  const liveProc = (i: number, name: string, op: string): ProcState => {
    const p = live.get(name);
    if (p) return p;
    const why = slotOf.has(name) ? 'has already exited' : 'does not exist (yet)';
    throw invalid(`steps[${i}].proc`, `process '${name}' ${why}, so it cannot ${op}`);
  };
  const runningProc = (i: number, name: string, op: string): ProcState => {
    const p = liveProc(i, name, op);
    if (p.execd) throw invalid(`steps[${i}].proc`, `process '${name}' has exec'd (it runs another program now), so it cannot ${op}`);
    return p;
  };
  const regionOf = (i: number, id: string, p: ProcState, name: string): number => {
    const r = regionIndex.get(id);
    if (r === undefined) throw invalid(`steps[${i}].region`, `no region '${id}'`);
    if (!p.mapped[r]) {
      throw invalid(`steps[${i}].region`, `process '${name}' does not map region '${id}' (MADV_DONTFORK kept it out of the fork)`);
    }
    return r;
  };
  const pagesOf = (i: number, r: number, sel: Parameters<typeof selectPages>[0]): Uint32Array => {
    const n = trace.regions[r]!.pages;
    const pages = selectPages(sel, n);
    for (const p of pages) {
      if (p >= n) throw invalid(`steps[${i}].pages`, `page ${p} is outside region '${trace.regions[r]!.id}' (${n} pages)`);
    }
    return pages;
  };
  const need = (slot: number, n: number) => {
    capacity[slot] = Math.max(capacity[slot]!, n);
  };

  trace.steps.forEach((step, i) => {
    switch (step.op) {
      case 'fork': {
        const p = runningProc(i, step.proc, 'fork');
        if (slotOf.has(step.child)) throw invalid(`steps[${i}].child`, `process name '${step.child}' is already used`);
        const slot = procs.length;
        procs.push(step.child);
        slotOf.set(step.child, slot);
        parents.push(p.slot);
        capacity.push(1);
        live.set(step.child, {
          slot,
          execd: false,
          mapped: p.mapped.map((m, r) => m && inheritedByChild(trace.regions[r]!)),
          readOnly: p.readOnly.map((ro) => ro.slice()),
        });
        steps.push({ op: 'fork', slot: p.slot, childSlot: slot });
        break;
      }
      case 'write':
      case 'read': {
        const p = runningProc(i, step.proc, step.op);
        const r = regionOf(i, step.region, p, step.proc);
        const pages = pagesOf(i, r, step.pages);
        if (step.op === 'write') {
          const ro = p.readOnly[r]!;
          const bad = pages.find((pg) => ro[pg] === 1);
          if (bad !== undefined) {
            throw invalid(`steps[${i}].pages`, `page ${bad} of region '${step.region}' is read-only in '${step.proc}' (mprotect r): the write would kill it with SIGSEGV`);
          }
        }
        need(p.slot, pages.length);
        steps.push({ op: step.op, slot: p.slot, region: r, pages });
        break;
      }
      case 'mprotect': {
        const p = runningProc(i, step.proc, 'mprotect');
        const r = regionOf(i, step.region, p, step.proc);
        const pages = step.pages ? pagesOf(i, r, step.pages) : new Uint32Array(0);
        const ro = p.readOnly[r]!;
        if (step.pages) for (const pg of pages) ro[pg] = step.prot === 'r' ? 1 : 0;
        else ro.fill(step.prot === 'r' ? 1 : 0);
        need(p.slot, pages.length);
        steps.push({ op: 'mprotect', slot: p.slot, region: r, prot: step.prot, pages });
        break;
      }
      case 'exec': {
        const p = runningProc(i, step.proc, 'exec');
        p.execd = true;
        p.mapped = p.mapped.map(() => false);
        steps.push({ op: 'exec', slot: p.slot });
        break;
      }
      case 'exit': {
        const p = liveProc(i, step.proc, 'exit');
        live.delete(step.proc);
        steps.push({ op: 'exit', slot: p.slot });
        break;
      }
      default:
        throw invalid(`steps[${i}].op`, `unknown op '${(step as { op: string }).op}'`);
    }
  });
  return {
    procs,
    slotOf,
    parents: Int32Array.from(parents),
    capacity: Uint32Array.from(capacity),
    steps,
    regionIndex,
  };
}
