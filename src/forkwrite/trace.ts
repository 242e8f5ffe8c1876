/**
 * The trace a fork-write run is: one populated private anonymous region in the Node process
 * (p0 'node', so the fork copies Node's whole address space, as forking a real program does),
 * one fork, the timed writes of the child and/or the parent, and the reads that check the
 * content afterwards. forkWrite() runs it on the kernel engine; the simulator predicts it.
 */
import type { PageSelector, Step, Trace } from '../trace/types.js';
import { formatPattern } from './pattern.js';
import type { ResolvedForkWriteOptions } from './options.js';

/** The names the trace gives the region and the forked process. */
export const REGION = 'mem';
export const CHILD = 'child';
export const PARENT = 'p0';

/** Where each part of the run is in the trace's steps (-1: the run has no such step). */
export interface ForkWriteSteps {
  fork: number;
  childWrite: number;
  /** The child reads back what it wrote, before it exits. */
  childReadback: number;
  parentWrite: number;
  exit: number;
  /** The parent reads every page at the end: the content check of its side. */
  parentReadback: number;
}

/** The pages to write as a selector: a range where the pattern is one, else the list. */
export function writeSelector(o: ResolvedForkWriteOptions, order: Uint32Array): PageSelector {
  if (o.order === null && o.pattern.kind === 'seq') return { start: 0, end: o.count };
  if (o.order === null && o.pattern.kind === 'stride') {
    return { start: 0, end: (o.count - 1) * o.pattern.stride + 1, stride: o.pattern.stride };
  }
  return { pages: Array.from(order) };
}

/** The trace of one run, and where its parts are. */
export function forkWriteTrace(o: ResolvedForkWriteOptions, order: Uint32Array): { trace: Trace; at: ForkWriteSteps } {
  const pages = writeSelector(o, order);
  const steps: Step[] = [];
  const at: ForkWriteSteps = { fork: -1, childWrite: -1, childReadback: -1, parentWrite: -1, exit: -1, parentReadback: -1 };
  const push = (s: Step) => steps.push(s) - 1;
  const childWrites = o.writer !== 'parent';
  const parentWrites = o.writer !== 'child';
  const parentWrite = (): number =>
    push({ op: 'write', proc: PARENT, region: REGION, pages, timing: 'each', ...(o.parentPaceNs > 0 ? { paceNs: o.parentPaceNs } : {}) });

  at.fork = push({ op: 'fork', proc: PARENT, child: CHILD });
  if (childWrites) {
    at.childWrite = push({ op: 'write', proc: CHILD, region: REGION, pages, timing: 'each', ...(o.childAccess === 'read' ? { via: 'pread' as const } : {}) });
    at.childReadback = push({ op: 'read', proc: CHILD, region: REGION, pages });
  }
  if (parentWrites && o.parentWhen === 'child-alive') at.parentWrite = parentWrite();
  at.exit = push({ op: 'exit', proc: CHILD, ...(o.holdMs > 0 ? { afterMs: o.holdMs } : {}) });
  if (parentWrites && o.parentWhen === 'child-exited') at.parentWrite = parentWrite();
  at.parentReadback = push({ op: 'read', proc: PARENT, region: REGION, pages: { start: 0, end: o.pages } });

  const who = o.writer === 'both' ? 'the child, then the parent,' : `the ${o.writer}`;
  const trace: Trace = {
    name: `fork-write-${o.pages}`,
    description:
      `fork-write: ${o.pages} populated pages (${o.thp === 'always' ? 'THP' : '4 KiB'}); after the fork ${who} ` +
      `${o.childAccess === 'read' && childWrites ? 'writes (the child by read(2))' : 'writes'} ` +
      `${o.order ? `${o.order.length} listed pages` : `pattern ${formatPattern(o.pattern)}, ${o.count} pages`}` +
      `${parentWrites ? ` (the parent ${o.parentWhen === 'child-alive' ? 'while the child lives' : 'after the child exited'})` : ''}`,
    p0: 'node',
    regions: [{ id: REGION, pages: o.pages, map: 'private', backing: 'anon', thp: o.thp === 'always', advice: [], populate: 'write' }],
    steps,
  };
  return { trace, at };
}
