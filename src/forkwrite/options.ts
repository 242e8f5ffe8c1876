/** Options of forkWrite: what a user may ask for, checked before anything is mapped. */
import { invalidOption } from '../errors.js';
import { choiceOption, integerOption } from '../options.js';
import { checkFitsHalfAvailable } from '../memory/budget.js';
import { pageSize } from '../memory/mapping.js';
import { formatPattern, parsePattern, type PatternSpec, type WritePattern } from './pattern.js';

export const WRITERS = ['child', 'parent', 'both'] as const;
export type Writer = (typeof WRITERS)[number];
export const PARENT_WHEN = ['child-alive', 'child-exited'] as const;
export type ParentWhen = (typeof PARENT_WHEN)[number];
export const THP_CHOICES = ['never', 'always'] as const;
export type ForkWriteThp = (typeof THP_CHOICES)[number];
export const CHILD_ACCESS = ['store', 'read'] as const;
export type ChildAccess = (typeof CHILD_ACCESS)[number];

export interface ForkWriteProgress {
  done: number;
  total: number;
  warmup: boolean;
}

/** What onRunStart is given: the run about to fork. */
export interface ForkWriteRunStart {
  index: number;
  /** The region the run forks over (the same address in the child). */
  address: bigint;
  bytes: number;
  /** pid of this run's forked child while it lives; null before the fork and once it has
   *  exited (reaped). Cheap enough to poll from a timer. */
  childPid(): number | null;
}

export interface ForkWriteOptions {
  /** Size of the region in pages (4 KiB). It is populated (written) before the first fork. */
  pages: number;
  /** seq | rand | stride:N. Default seq. */
  pattern?: PatternSpec;
  /** Seed of the rand pattern. Default 1. */
  seed?: number;
  /** Write only the first `count` pages of the pattern's order. Default: all of them. */
  count?: number;
  /** never: 4 KiB pages (MADV_NOHUGEPAGE); always: 2 MiB aligned, MADV_HUGEPAGE. Default never. */
  thp?: ForkWriteThp;
  /** Who writes after the fork. child: the child copies; parent: the parent copies while the
   *  child holds the snapshot (or reuses after it exited); both: the child first, then the
   *  parent. Default child. */
  writer?: Writer;
  /** When the parent writes: while the child is alive (copies), or after it exited (reuses).
   *  Default child-alive. */
  parentWhen?: ParentWhen;
  /** Measured runs. Default 5. */
  repeats?: number;
  /** Runs before the measured ones, reported apart as cold. Default 1. */
  warmup?: number;
  /** A child that has not finished by then is killed (ERR_CHILD_DEADLINE). Default: 10 s
   *  plus 50 µs per page plus holdMs. */
  deadlineMs?: number;
  /** The child keeps its snapshot this long after its writes. Default 0. */
  holdMs?: number;
  /** Explicit page order (indices below `pages`, repeats allowed: a repeated page is
   *  already copied, so it does not fault again). Replaces pattern and count. */
  order?: Uint32Array;
  /** How the child writes: `store` (a CPU store) or `read` (the kernel writes the page with
   *  read(2) from a file: the copyout case). Default store. */
  childAccess?: ChildAccess;
  /** > 0: the parent stores one page per this many ns (a writer at a set rate), recording
   *  when each store started (SideRun.startNs). Default 0: back to back. */
  parentPaceNs?: number;
  /** Called after each run. */
  onProgress?: (p: ForkWriteProgress) => void;
  /** Called just before each run's fork, with the region's address and a way to find the
   *  run's child while it lives (e.g. to sample both processes' smaps during the run). */
  onRunStart?: (r: ForkWriteRunStart) => void;
}

export interface ResolvedForkWriteOptions {
  pages: number;
  pattern: WritePattern;
  count: number;
  thp: ForkWriteThp;
  writer: Writer;
  parentWhen: ParentWhen;
  repeats: number;
  warmup: number;
  deadlineMs: number;
  holdMs: number;
  order: Uint32Array | null;
  childAccess: ChildAccess;
  parentPaceNs: number;
}

/** The largest region: page indices travel as 32-bit integers. */
export const MAX_PAGES = 0xffff_ffff;

/**
 * Validates and completes the options. Throws ERR_INVALID_OPTION (naming the field) or
 * ERR_TOO_LARGE; allocates nothing.
 */
export function resolveForkWriteOptions(
  o: ForkWriteOptions,
  f: (key: keyof ForkWriteOptions) => string = (k) => k,
): ResolvedForkWriteOptions {
  const pages = integerOption(f('pages'), o.pages, { min: 1, max: MAX_PAGES });
  checkFitsHalfAvailable(f('pages'), pages * pageSize(), `${pages} pages`);
  const seed = integerOption(f('seed'), o.seed ?? 1, { min: 0, max: 0xffff_ffff });
  const pattern = parsePattern(o.pattern ?? 'seq', seed, f('pattern'));
  const patternSize = pattern.kind === 'stride' ? Math.ceil(pages / pattern.stride) : pages;
  const count = integerOption(f('count'), o.count ?? patternSize, { min: 1 });
  if (o.order === undefined && count > patternSize) {
    throw invalidOption(
      f('count'),
      `must be at most ${patternSize}: pattern ${formatPattern(pattern)} over ${pages} pages writes ${patternSize} pages, got ${shown(o.count)}`,
    );
  }
  const holdMs = integerOption(f('holdMs'), o.holdMs ?? 0, { min: 0, max: 3_600_000 });
  const order = o.order === undefined ? null : checkOrder(f('order'), o.order, pages);
  const parentPaceNs = integerOption(f('parentPaceNs'), o.parentPaceNs ?? 0, { min: 0, max: 60_000_000_000 });
  const writer = choiceOption(f('writer'), o.writer ?? 'child', WRITERS);
  const parentWhen = choiceOption(f('parentWhen'), o.parentWhen ?? 'child-alive', PARENT_WHEN);
  const written = order?.length ?? pages;
  const pacedMs = Math.ceil((parentPaceNs * written) / 1e6);
  const deadlineMs = integerOption(f('deadlineMs'), o.deadlineMs ?? 10_000 + Math.ceil(pages * 0.05) + holdMs + pacedMs, {
    min: 1,
    max: 24 * 3_600_000,
  });
  const resolved: ResolvedForkWriteOptions = {
    pages,
    pattern,
    count: order?.length ?? count,
    thp: choiceOption(f('thp'), o.thp ?? 'never', THP_CHOICES),
    writer,
    parentWhen,
    repeats: integerOption(f('repeats'), o.repeats ?? 5, { min: 1, max: 100_000 }),
    warmup: integerOption(f('warmup'), o.warmup ?? 1, { min: 0, max: 100_000 }),
    holdMs,
    order,
    childAccess: choiceOption(f('childAccess'), o.childAccess ?? 'store', CHILD_ACCESS),
    parentPaceNs,
    deadlineMs,
  };
  return resolved;
}

/**
 * Throws ERR_INVALID_OPTION (naming `deadlineMs`) when the deadline cannot be met: it runs
 * from the fork to the child's exit, and the hold, and paced parent writes while the child
 * lives, are inside it, so a deadline they fill kills every child. The CLI calls this on its
 * flags; forkWrite() does not, so a caller can still ask for the deadline path on purpose
 * (it kills the child and rejects with ERR_CHILD_DEADLINE).
 */
export function checkDeadlineOutlastsChild(
  r: ResolvedForkWriteOptions,
  f: (key: keyof ForkWriteOptions) => string = (k) => k,
): void {
  const parentStores = r.order?.length ?? r.count;
  const pacedWhileAlive =
    r.writer !== 'child' && r.parentWhen === 'child-alive' ? Math.ceil((r.parentPaceNs * parentStores) / 1e6) : 0;
  if (r.deadlineMs > r.holdMs + pacedWhileAlive) return;
  const what = pacedWhileAlive > 0
    ? `${f('holdMs')} (${r.holdMs}) plus the paced parent writes (${pacedWhileAlive} ms)`
    : `${f('holdMs')} (${r.holdMs})`;
  throw invalidOption(
    f('deadlineMs'),
    `must be more than ${what}: the child cannot finish sooner, so every run would be killed; got ${r.deadlineMs}`,
  );
}

function shown(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

function checkOrder(field: string, order: Uint32Array, pages: number): Uint32Array {
  if (!(order instanceof Uint32Array) || order.length === 0) {
    throw invalidOption(field, 'must be a non-empty Uint32Array of page indices');
  }
  for (const p of order) {
    if (p >= pages) throw invalidOption(field, `page ${p} is outside the region (pages: ${pages})`);
  }
  return order;
}

/** The options as plain JSON (what results files record). */
export function describeOptions(o: ResolvedForkWriteOptions): Record<string, unknown> {
  const { order, ...rest } = o;
  return { ...rest, pattern: order ? `explicit (${order.length} stores)` : formatPattern(o.pattern) };
}
