/**
 * From a trace to what the process tree needs: one slot per process (p0 first, then in fork
 * order), the parent slot of each, the longest page list each will be sent, and every step with
 * its pages resolved. What a trace may do (who is alive, exec'd, maps a region, may write a page)
 * is the parser's to decide, for every engine alike: planTrace takes a trace parseTrace returned
 * and checks one that did not come from it the same way, in the parser's words.
 */
import { isCheckedTrace, parseTrace } from '../../trace/parse.js';
import { selectPages } from '../../trace/select.js';
import { ROOT_PROC, type Trace } from '../../trace/types.js';

export type PlannedStep =
  | { op: 'fork'; slot: number; childSlot: number }
  | { op: 'write' | 'read'; slot: number; region: number; pages: Uint32Array; paceNs: number; viaPread: boolean; each: boolean }
  | { op: 'mprotect'; slot: number; region: number; prot: 'r' | 'rw'; pages: Uint32Array }
  | { op: 'pageout'; slot: number; region: number; pages: Uint32Array }
  | { op: 'exec'; slot: number }
  | { op: 'exit'; slot: number; afterMs: number };

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

export function planTrace(input: Trace): KernelPlan {
  const trace = isCheckedTrace(input) ? input : parseTrace(input);
  const regionIndex = new Map(trace.regions.map((r, i) => [r.id, i]));
  const procs = [ROOT_PROC];
  const slotOf = new Map([[ROOT_PROC, 0]]);
  const parents = [-1];
  const capacity = [Math.max(1, ...trace.regions.map((r) => (r.populate === 'none' ? 0 : r.pages)))];
  const steps: PlannedStep[] = [];
  const slot = (name: string) => slotOf.get(name)!;
  const need = (s: number, n: number) => {
    capacity[s] = Math.max(capacity[s]!, n);
  };
  const pagesOf = (r: number, sel: Parameters<typeof selectPages>[0]) => selectPages(sel, trace.regions[r]!.pages);

  for (const step of trace.steps) {
    const p = slot(step.proc);
    switch (step.op) {
      case 'fork': {
        const child = procs.length;
        procs.push(step.child);
        slotOf.set(step.child, child);
        parents.push(p);
        capacity.push(1);
        steps.push({ op: 'fork', slot: p, childSlot: child });
        break;
      }
      case 'write':
      case 'read': {
        const r = regionIndex.get(step.region)!;
        const pages = pagesOf(r, step.pages);
        need(p, pages.length);
        steps.push({
          op: step.op,
          slot: p,
          region: r,
          pages,
          paceNs: step.paceNs ?? 0,
          viaPread: step.op === 'write' && step.via === 'pread',
          each: step.timing === 'each',
        });
        break;
      }
      case 'mprotect': {
        const r = regionIndex.get(step.region)!;
        const pages = step.pages ? pagesOf(r, step.pages) : new Uint32Array(0);
        need(p, pages.length);
        steps.push({ op: 'mprotect', slot: p, region: r, prot: step.prot, pages });
        break;
      }
      case 'pageout': {
        const r = regionIndex.get(step.region)!;
        const pages = step.pages ? pagesOf(r, step.pages) : new Uint32Array(0);
        need(p, pages.length);
        steps.push({ op: 'pageout', slot: p, region: r, pages });
        break;
      }
      case 'exec':
        steps.push({ op: 'exec', slot: p });
        break;
      case 'exit':
        steps.push({ op: 'exit', slot: p, afterMs: step.afterMs ?? 0 });
        break;
    }
  }
  return {
    procs,
    slotOf,
    parents: Int32Array.from(parents),
    capacity: Uint32Array.from(capacity),
    steps,
    regionIndex,
  };
}
