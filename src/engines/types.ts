/**
 * Observations: the one shape every engine produces for a trace, so validate can diff them
 * step by step. Engines observe; they never format (report/ does that).
 *
 * Definitions (the same in every engine; docs/trace.md explains them to users):
 *   present    the process maps the page (pagemap bit 63)
 *   exclusive  the page's frame is mapped by this process only (pagemap bit 56)
 *   shared     present and not exclusive (the zero page counts as shared: everyone maps it)
 *   zeroPage   mapped to the (huge) zero page (kpageflags bit 24)
 *   copies     write faults that gave a present page a new frame
 *   reuses     write faults that made a present COW page writable in place (same frame)
 *   zeroFills  write faults that put a fresh frame where none, or the zero page, was mapped
 *   faults     all page faults (minor and major) the acting process took during the step's operation (the
 *              kernel engine leaves out spurious ones: kernel/observe.ts)
 *   frames     distinct physical frames mapped by the live processes (zero page excluded)
 *   swapped    (traces with pageout) the page's entry holds a swap slot (pagemap bit 62)
 *   swapIns    (traces with pageout) faults that read a swapped-out page back
 */
import type { StepOp, Trace } from '../trace/types.js';

export type EngineName = 'sim' | 'kernel' | 'region';

/** Per-page state of one region in one live process (index = page). Null: not observable here. */
export interface RegionObservation {
  present: Uint8Array;
  exclusive: Uint8Array | null;
  zeroPage: Uint8Array | null;
  /**
   * The page is swapped out (pagemap bit 62): its entry holds a swap slot, not a frame. Only in
   * observations of traces that page out (a `pageout` step); null: not observable here.
   */
  swapped?: Uint8Array | null;
}

/** What the acting process's operation did to one region. Null: not observable here. */
export interface StepEvents {
  copies: number | null;
  reuses: number | null;
  zeroFills: number | null;
  faults: number | null;
  /** Faults that read a swapped-out page back (not copies, reuses or zero-fills: the page was
   *  not present). Only in traces that page out. */
  swapIns?: number | null;
}

export interface StepObservation {
  /** Index into trace.steps; -1 for the state after setup (p0 mapped and populated). */
  step: number;
  op: StepOp | 'setup';
  proc: string;
  /** Live processes after the step -> region id -> pages. */
  processes: Record<string, Record<string, RegionObservation>>;
  /** Region id -> events of the acting process (every region, zeros where untouched). */
  events: Record<string, StepEvents>;
  /** Region id -> distinct frames across live processes; null without PFNs. */
  frames: Record<string, number | null>;
  /** Duration of the operation, ns: measured (kernel, region) or predicted (sim). For
   *  write/read: the sum of the individually timed accesses; for fork: the fork() call. */
  timeNs: number | null;
  /**
   * Write/read steps with timing 'each': the latency of every access, ns, in the step's page
   * order (measured, or predicted from the simulator's cost model). A figure, not COW state:
   * validate never compares it.
   */
  accessNs?: Float64Array;
}

export interface TraceObservations {
  engine: EngineName;
  trace: Trace;
  /** setup first, then one per step. */
  steps: StepObservation[];
  /** Fields this engine could not observe here, with the reason (e.g. no root: frames). */
  unavailable: Record<string, string>;
  /**
   * A prediction of a trace that leaves something to the kernel (a region placed where mmap
   * chooses): every distinct outcome the kernel allows, `steps` being the first. validate
   * judges the kernel against all of them (validate/compare.ts compareOutcomes).
   */
  outcomes?: PredictedOutcome[];
  /**
   * Kernel engine, for regions placed by the kernel: where each one's first page landed, as its
   * index in its page table (0-511). Lets validate judge the run against the very outcome of
   * that place among those the prediction allows.
   */
  placement?: Record<string, number>;
}

export interface PredictedOutcome {
  /** What makes this outcome: "shm at page 13 of its page table". */
  label: string;
  /**
   * Every placement that gives it, as products: in each entry, per region placed by the
   * kernel, the indices its first page may have in its page table (0-511).
   */
  places: Record<string, number[]>[];
  steps: StepObservation[];
}

export interface Engine {
  readonly name: EngineName;
  /** Null when the engine can run the trace; otherwise why not (validate reports it). */
  supports(trace: Trace): string | null;
  /**
   * Engines that allocate real memory: throws ERR_TOO_LARGE when running `trace` would not fit
   * this machine (run() checks it too). validate asks every engine first, so no engine spends
   * a run on a trace another one refuses.
   */
  checkMemory?(trace: Trace): void;
  run(trace: Trace, options?: EngineRunOptions): Promise<TraceObservations>;
}

export interface EngineRunOptions {
  /** A step that takes longer is abandoned, every process killed and reaped. */
  stepDeadlineMs?: number;
  onStep?: (done: number, total: number) => void;
}
