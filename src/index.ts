/**
 * cowlab: a laboratory for Linux copy-on-write. The typed public API; the CLI (src/cli/) is a
 * thin layer over it.
 */
export { CowlabError, isUsageError, type CowlabErrorCode, type CowlabErrorDetails } from './errors.js';
export { loadNative, type NativeAddon } from './native.js';
export { environment, type Environment } from './env/environment.js';
export { Mapping, pageSize, HUGE_PAGE_BYTES, type Backing, type ThpMode, type Advice, type MappingOptions } from './memory/mapping.js';
export { smapsFor, smapsRollup, type SmapsTotals } from './memory/smaps.js';
export {
  readPagemap,
  readKpageCounts,
  readKpageFlags,
  readPageCategories,
  PageCategories,
  PAGE_IS,
  PagemapEntries,
  PageFlagsList,
  KPF,
  type PagemapEntry,
  type PageFlags,
} from './pagemap/pagemap.js';
export { pfnAccess, type PfnAccess } from './pagemap/access.js';
export { readVmstat, parseVmstat, cowDelta, COW_COUNTERS, type CowCounters, type Vmstat } from './vmstat/vmstat.js';
export { summarize, band, median, type LatencySummary, type Band } from './stats/summary.js';
export {
  forkWrite,
  forkWriteToJson,
  type ForkWriteResult,
  type ForkWriteRun,
  type ForkWriteSummary,
  type SideRun,
  type ThpBacking,
} from './forkwrite/forkWrite.js';
export {
  resolveForkWriteOptions,
  type ForkWriteOptions,
  type ForkWriteRunStart,
  type ResolvedForkWriteOptions,
  type Writer,
  type ParentWhen,
} from './forkwrite/options.js';
export { parsePattern, pageOrder, formatPattern, type WritePattern } from './forkwrite/pattern.js';
export type { Verification } from './forkwrite/verify.js';
// Probes: measurements of one mechanism each, beside forkWrite (src/probes/).
export { timeSpawn, SPAWN_KINDS, type SpawnKind, type SpawnTimingOptions, type SpawnTiming } from './probes/spawn.js';
export { timeEagerCopy, COPY_DESTINATIONS, type CopyDestination, type EagerCopyOptions, type EagerCopyTiming } from './probes/copy.js';
export { parseTrace, loadTrace, traceInvalid, type ParseTraceOptions } from './trace/parse.js';
export { selectPages, describeSelector } from './trace/select.js';
export { listScenarios, loadScenario, resolveTraceArg, scenariosDir, type ScenarioInfo } from './trace/scenarios.js';
export type { Trace, RegionSpec, Step, StepOp, PageSelector, MapKind, BackingKind, Populate, ForkAdvice } from './trace/types.js';
export type {
  Engine,
  EngineName,
  EngineRunOptions,
  RegionObservation,
  StepEvents,
  StepObservation,
  TraceObservations,
} from './engines/types.js';
export {
  KernelEngine,
  kernelWriteValue,
  MAX_TRACE_PROCESSES,
  type KernelRunDetailed,
  type KernelDetailOptions,
  type KernelStepDetail,
  type KernelAccessDetail,
  type KernelSmaps,
} from './engines/kernel/engine.js';
export { ACCESS_CLASS, type AccessClass } from './engines/kernel/observe.js';
export {
  measureKernelCosts,
  calibrationTrace,
  type KernelCosts,
  type KernelCostOptions,
  type KernelCostName,
} from './engines/kernel/calibrate.js';
export {
  observationsToJson,
  stepToJson,
  countRegion,
  sharedPages,
  compactPages,
  expandPages,
  regionPageLists,
  type RegionCounts,
  type RegionPageLists,
  type TraceObservationsJson,
  type StepJson,
} from './engines/observations.js';
export {
  SimEngine,
  simulateTrace,
  Simulator,
  checkInvariants,
  resolveSimOptions,
  DEFAULT_SIM_OPTIONS,
  DEFAULT_COST_MODEL,
  loadCostModel,
  parseCostModel,
  isCalibrated,
  describeCostModel,
  type SimOptions,
  type ResolvedSimOptions,
  type SimState,
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
export { observationsFromJson } from './engines/observations.js';
// Kernels as inputs (docs/kernels.md): specs, the cache, and the guest runner.
export { parseKernelSpec, parseKernelList, type KernelSpec } from './kernels/spec.js';
export { obtainKernel, resolveDebianPackage, type DebianPackage } from './kernels/obtain.js';
export { listCachedKernels, cachedKernel, cacheRoot, type CachedKernel } from './kernels/store.js';
export { resolveTargets, HOST_TARGET, type KernelTarget } from './kernels/targets.js';
export { factsFromEnvironment, runningKernelFacts, type KernelFacts } from './kernels/facts.js';
export { parseConfig, readConfigFile, type KernelConfig, type ConfigFact } from './kernels/config.js';
export { parseVersion, compareVersions, compareDebianVersions, kernelVersion, type KernelVersion } from './kernels/version.js';
export { runInGuest, guestOptions, DEFAULT_GUEST_OPTIONS, type GuestOptions, type GuestCommand, type GuestResult, type GuestHooks } from './guest/runner.js';
export { observeInGuest, envInGuest, suiteInGuest, type GuestRunInfo, type GuestTarget } from './guest/commands.js';
export { chooseAccel, type AccelChoice, type AccelDecision } from './guest/accel.js';
export { validateOnKernels, type KernelValidation, type KernelValidateOptions } from './validate/kernels.js';
export { kernelDisagreements, type Disagreement, type KernelRun, type Explanation } from './validate/disagreements.js';
export { calibrate, type Calibration } from './calibrate/calibrate.js';
export { chooseCostModel, saveCostModel, defaultCostModelPath, type ChosenCostModel } from './calibrate/store.js';
export { createEngine, parseEngineList, ENGINE_NAMES, type EngineConfig } from './engines/registry.js';
export { validateTrace, referenceEngine, type TraceValidation, type EngineOutcome } from './validate/validate.js';
export {
  compareObservations,
  compareStep,
  faultAllowance,
  type TraceComparison,
  type StepComparison,
  type FieldDiff,
} from './validate/compare.js';

// The experiment suite (cowlab run / list / report / compare) is its own entry point,
// 'cowlab/suite' (src/suite/index.ts), so importing the measuring API loads none of it.
export {
  CowRegion,
  CowView,
  AttachedView,
  copyoutError,
  PAGE_STATE,
  pageRuns,
  NO_FRAME,
  type CowRegionOptions,
  type CowRegionStats,
  type CowViewStats,
  type CowViewPages,
  type RegionCounters,
  type RegionPopulate,
  type PageStateName,
} from './region/region.js';
export { parsePolicy, formatPolicy, MAX_FAULT_AROUND, type CowPolicy, type CowPolicyInput } from './region/policy.js';
export {
  regionBench,
  resolveRegionBenchOptions,
  describeRegionBenchOptions,
  PER_PAGE_DEFINITIONS,
  type RegionBenchOptions,
  type RegionBenchResult,
  type ResolvedRegionBenchOptions,
  type BenchSide,
  type PerPage,
} from './region/bench.js';
export { regionWriteRun, createBenchRegion, type RegionWriteRun } from './region/writeRun.js';
export { RegionEngine, type RegionEngineOptions } from './engines/region/engine.js';
export {
  MECHANISMS,
  MECHANISM_INFO,
  mechanismAvailability,
  decideAvailability,
  type Mechanism,
  type MechanismInfo,
  type Availability,
} from './tracking/mechanisms.js';
export {
  WriteTracker,
  compareTracking,
  cheapest,
  checkTrackRaw,
  fillWord,
  storeTag,
  summarizeRuns,
  type WriteTrackerOptions,
  type TrackingRun,
  type RunOptions,
  type MechanismSummary,
  type TrackingComparison,
  type CompareOptions,
  type ContentProblems,
} from './tracking/tracker.js';
export { watchFork, type WatchOptions, type WatchResult, type WatchSample } from './watch/watch.js';
export { recordWrites, recordMeta, softDirtyAvailable, RECORD_METHODS, type RecordOptions, type RecordResult, type RecordMeta, type RecordMethod } from './watch/record.js';
export { predictSnapshot, measureForkCost, type PredictOptions, type PredictResult, type ForkCost } from './watch/predict.js';
export { startPrivateRedis, RedisClient, type PrivateRedis } from './watch/redis.js';
