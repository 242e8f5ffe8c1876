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

/** How a write puts its 8 bytes at offset 0 of each page: a CPU store, or pread(2) from a file
 *  (the kernel writes the page: a COW break inside its copy to user memory). */
export type WriteVia = 'store' | 'pread';

/** What a write or read step may ask of the engine besides the accesses themselves. */
export interface AccessOptions {
  /** 'each': the step's observation carries every access's latency (accessNs), kept out of
   *  the comparison. */
  timing?: 'each';
  /** > 0: access i starts no earlier than the step's start plus i * paceNs (a writer at a set
   *  rate; the kernel engine sleeps between accesses). */
  paceNs?: number;
}

export type Step =
  | { op: 'fork'; proc: string; child: string }
  | ({ op: 'write'; proc: string; region: string; pages: PageSelector; via?: WriteVia } & AccessOptions)
  | ({ op: 'read'; proc: string; region: string; pages: PageSelector } & AccessOptions)
  /** afterMs: the process keeps its memory this long after the previous step before it exits. */
  | { op: 'exit'; proc: string; afterMs?: number }
  | { op: 'exec'; proc: string }
  | { op: 'mprotect'; proc: string; region: string; prot: 'r' | 'rw'; pages?: PageSelector }
  /**
   * madvise(MADV_PAGEOUT) on the selected pages (or the whole region): reclaim them now. The
   * kernel skips pages mapped by another process too, and without swap keeps every anonymous
   * page; the others go to swap (pagemap bit 62). Private anonymous regions of 4 KiB pages.
   */
  | { op: 'pageout'; proc: string; region: string; pages?: PageSelector };

export type StepOp = Step['op'];

/**
 * Where p0 lives. 'process' (the default): a process of its own, forked from Node, holding
 * nothing but the regions. 'node': the Node process itself, so a fork in the trace copies Node's
 * whole address space (its heap, its libraries), as forking a real program does; p0 then
 * cannot exit or exec.
 */
export type RootKind = 'process' | 'node';

export interface Trace {
  name: string;
  description?: string;
  p0?: RootKind;
  regions: RegionSpec[];
  steps: Step[];
}

/** The first process; it maps every region before step 0. */
export const ROOT_PROC = 'p0';
