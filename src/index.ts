/**
 * cowlab: a laboratory for Linux copy-on-write. The typed public API: what a user measures,
 * simulates and validates with. The CLI (src/cli/) is a thin layer over it. The suite is its
 * own entry point, 'cowlab/suite' (src/suite/index.ts), so importing this loads none of it.
 * Building blocks without a stability promise (decoders, table helpers, option resolvers, the
 * addon itself) are in 'cowlab/internal' (src/internal.ts).
 */
export { CowlabError, isUsageError, type CowlabErrorCode, type CowlabErrorDetails } from './errors.js';
export { environment, type Environment } from './env/environment.js';

// Memory, pagemap and counters: what a page is, seen from outside.
export { Mapping, pageSize, HUGE_PAGE_BYTES, type Backing, type ThpMode, type Advice, type MappingOptions } from './memory/mapping.js';
export { smapsFor, smapsRollup, type SmapsTotals } from './memory/smaps.js';
export {
  readPagemap,
  readKpageCounts,
  readKpageFlags,
  readPageCategories,
  KPF,
  PAGE_IS,
  type PagemapEntries,
  type PageFlagsList,
  type PageCategories,
  type PagemapEntry,
  type PageFlags,
} from './pagemap/pagemap.js';
export { pfnAccess, type PfnAccess } from './pagemap/access.js';
export { readVmstat, cowDelta, COW_COUNTERS, type CowCounters, type Vmstat } from './vmstat/vmstat.js';
export { summarize, type LatencySummary, type Band } from './stats/summary.js';

// fork-write: per-page COW fault latency of a real fork.
export {
  forkWrite,
  forkWriteToJson,
  type ForkWriteResult,
  type ForkWriteRun,
  type ForkWriteSummary,
  type SideRun,
  type SideSummary,
  type ThpBacking,
} from './forkwrite/forkWrite.js';
export type { ForkWriteOptions, ForkWriteRunStart, ForkWriteThp, ChildAccess, Writer, ParentWhen } from './forkwrite/options.js';
export type { PatternSpec } from './forkwrite/pattern.js';
export type { Verification } from './forkwrite/verify.js';
// Probes: one mechanism each, beside forkWrite (src/probes/).
export { timeSpawn, SPAWN_KINDS, type SpawnKind, type SpawnTimingOptions, type SpawnTiming } from './probes/spawn.js';
export { timeEagerCopy, COPY_DESTINATIONS, type CopyDestination, type EagerCopyOptions, type EagerCopyTiming } from './probes/copy.js';

// Traces and the engines that run them (docs/trace.md).
export { parseTrace, loadTrace, type ParseTraceOptions } from './trace/parse.js';
export { listScenarios, loadScenario, type ScenarioInfo } from './trace/scenarios.js';
export type { Trace, RegionSpec, Step, StepOp, PageSelector, MapKind, BackingKind, Populate, ForkAdvice } from './trace/types.js';
export type { Engine, EngineName, EngineRunOptions, RegionObservation, StepEvents, StepObservation, TraceObservations } from './engines/types.js';
export { createEngine, ENGINE_NAMES, type EngineConfig } from './engines/registry.js';
export {
  KernelEngine,
  type KernelRunDetailed,
  type KernelDetailOptions,
  type KernelStepDetail,
  type KernelAccessDetail,
  type KernelSmaps,
} from './engines/kernel/engine.js';
export { observationsToJson, observationsFromJson, type TraceObservationsJson, type StepJson } from './engines/observations.js';
export {
  SimEngine,
  simulateTrace,
  DEFAULT_COST_MODEL,
  loadCostModel,
  type SimOptions,
  type CostModel,
  type CostConstants,
  BEHAVIOURS,
  KNOBS,
  profileFor,
  profileTable,
  type Behaviour,
  type KernelProfile,
  type ProfileEntry,
  type ProfileSwitch,
} from './engines/sim/index.js';
export { RecordedEngine, type RecordedOutcome } from './engines/recorded.js';
export { RegionEngine, type RegionEngineOptions } from './engines/region/engine.js';
export { validateTrace, type TraceValidation, type EngineOutcome } from './validate/validate.js';
export { compareObservations, type TraceComparison, type StepComparison, type FieldDiff } from './validate/compare.js';
export { calibrate, type Calibration } from './calibrate/calibrate.js';

// Kernels as inputs (docs/kernels.md): specs, the cache, guests, the matrix.
export { parseKernelSpec, parseKernelList, type KernelSpec } from './kernels/spec.js';
export { obtainKernel } from './kernels/obtain.js';
export { listCachedKernels, cachedKernel, type CachedKernel } from './kernels/store.js';
export { runningKernelFacts, type KernelFacts } from './kernels/facts.js';
export { runInGuest, DEFAULT_GUEST_OPTIONS, type GuestOptions, type GuestCommand, type GuestResult, type GuestHooks } from './guest/runner.js';
export { observeInGuest } from './guest/commands.js';
export { validateOnKernels, type KernelValidation, type KernelValidateOptions } from './validate/kernels.js';
export { kernelDisagreements, type Disagreement, type KernelRun, type Explanation } from './validate/disagreements.js';

// The userspace COW region (docs/region.md) and write tracking.
export {
  CowRegion,
  CowView,
  AttachedView,
  type CowRegionOptions,
  type CowRegionStats,
  type CowViewStats,
  type CowViewPages,
  type RegionCounters,
  type RegionPopulate,
  type PageStateName,
} from './region/region.js';
export type { CowPolicy, CowPolicyInput } from './region/policy.js';
export { regionBench, type RegionBenchOptions, type RegionBenchResult, type BenchSide, type PerPage } from './region/bench.js';
export { MECHANISMS, MECHANISM_INFO, mechanismAvailability, type Mechanism, type MechanismInfo, type Availability } from './tracking/mechanisms.js';
export {
  WriteTracker,
  compareTracking,
  type WriteTrackerOptions,
  type TrackingRun,
  type RunOptions,
  type MechanismSummary,
  type TrackingComparison,
  type CompareOptions,
} from './tracking/tracker.js';

// A real program's snapshot: watch, record, predict.
export { watchFork, type WatchOptions, type WatchResult, type WatchSample } from './watch/watch.js';
export { recordWrites, RECORD_METHODS, type RecordOptions, type RecordResult, type RecordMeta, type RecordMethod } from './watch/record.js';
export { predictSnapshot, measureForkCost, type PredictOptions, type PredictResult, type ForkCost } from './watch/predict.js';
