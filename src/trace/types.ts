/**
 * The trace: a workload written once and run by every engine (sim, kernel, region).
 * Documented for users in docs/trace.md; parsed and checked by src/trace/parse.ts.
 */

export type MapKind = 'private' | 'shared';
export type BackingKind = 'anon' | 'memfd';
export type Populate = 'none' | 'read' | 'write';
/** madvise advice that changes what fork does to a region. */
export type ForkAdvice = 'dontfork' | 'wipeonfork';

export interface RegionSpec {
  id: string;
  pages: number;
  map: MapKind;
  backing: BackingKind;
  /** Huge pages advised (MADV_HUGEPAGE, region 2 MiB aligned). */
  thp: boolean;
  advice: ForkAdvice[];
  /** How p0 touches the region before step 0. */
  populate: Populate;
  /**
   * Where the region's first page lies. 'aligned' (the default): on a 2 MiB boundary, so page i
   * of the region is page i of its page table and of its fault-around window, on every kernel.
   * 'kernel': wherever mmap puts it, as for any program; the simulator then predicts every
   * outcome the placement allows (docs/trace.md). Regions of 4 KiB pages only.
   */
  placement?: Placement;
}

export type Placement = 'aligned' | 'kernel';

/** Which pages a step touches. Random selections are the same in every engine. */
export type PageSelector =
  | { start: number; end: number; stride?: number }
  | { pages: number[] }
  | { random: number; seed: number };

export type Step =
  | { op: 'fork'; proc: string; child: string }
  | { op: 'write'; proc: string; region: string; pages: PageSelector }
  | { op: 'read'; proc: string; region: string; pages: PageSelector }
  | { op: 'exit'; proc: string }
  | { op: 'exec'; proc: string }
  | { op: 'mprotect'; proc: string; region: string; prot: 'r' | 'rw'; pages?: PageSelector };

export type StepOp = Step['op'];

export interface Trace {
  name: string;
  description?: string;
  regions: RegionSpec[];
  steps: Step[];
}

/** The first process; it maps every region before step 0. */
export const ROOT_PROC = 'p0';
