/**
 * cowlab/internal: the building blocks under the public API, for tools built on cowlab and for
 * cowlab's own tests, benchmarks and experiments. Everything public ('cowlab') plus decoders,
 * table helpers, option resolvers and the addon. No stability promise: any of these may change
 * or go in a minor release (README, "As a library").
 */
export * from './index.js';
export { loadNative, type NativeAddon } from './native.js';
export { PagemapEntries, PageFlagsList, PageCategories } from './pagemap/pagemap.js';
export { parseVmstat } from './vmstat/vmstat.js';
export { band, median } from './stats/summary.js';
export { resolveForkWriteOptions, type ResolvedForkWriteOptions } from './forkwrite/options.js';
export { parsePattern, pageOrder, formatPattern, type WritePattern } from './forkwrite/pattern.js';
export { traceInvalid } from './trace/parse.js';
export { selectPages, describeSelector } from './trace/select.js';
export { resolveTraceArg, scenariosDir } from './trace/scenarios.js';
export { parseEngineList } from './engines/registry.js';
export { kernelWriteValue, MAX_TRACE_PROCESSES } from './engines/kernel/engine.js';
export { ACCESS_CLASS, type AccessClass } from './engines/kernel/observe.js';
export { measureKernelCosts, calibrationTrace, type KernelCosts, type KernelCostOptions, type KernelCostName } from './engines/kernel/calibrate.js';
export { stepToJson, countRegion, sharedPages, compactPages, expandPages, regionPageLists, type RegionCounts, type RegionPageLists } from './engines/observations.js';
export {
  Simulator,
  checkInvariants,
  resolveSimOptions,
  DEFAULT_SIM_OPTIONS,
  parseCostModel,
  isCalibrated,
  describeCostModel,
  type ResolvedSimOptions,
  type SimState,
} from './engines/sim/index.js';
export { referenceEngine } from './validate/validate.js';
export { compareStep, faultAllowance } from './validate/compare.js';
export { chooseCostModel, saveCostModel, defaultCostModelPath, type ChosenCostModel } from './calibrate/store.js';
export { resolveDebianPackage, type DebianPackage } from './kernels/obtain.js';
export { cacheRoot } from './kernels/store.js';
export { resolveTargets, HOST_TARGET, type KernelTarget } from './kernels/targets.js';
export { factsFromEnvironment } from './kernels/facts.js';
export { parseConfig, readConfigFile, type KernelConfig, type ConfigFact } from './kernels/config.js';
export { parseVersion, compareVersions, compareDebianVersions, kernelVersion, type KernelVersion } from './kernels/version.js';
export { guestOptions } from './guest/runner.js';
export { envInGuest, suiteInGuest, type GuestRunInfo, type GuestTarget } from './guest/commands.js';
export { chooseAccel, type AccelChoice, type AccelDecision } from './guest/accel.js';
export { copyoutError, PAGE_STATE, NO_FRAME, pageRuns } from './region/region.js';
export { parsePolicy, formatPolicy, MAX_FAULT_AROUND } from './region/policy.js';
export {
  resolveRegionBenchOptions,
  describeRegionBenchOptions,
  PER_PAGE_DEFINITIONS,
  type ResolvedRegionBenchOptions,
} from './region/bench.js';
export { regionWriteRun, createBenchRegion, type RegionWriteRun } from './region/writeRun.js';
export { decideAvailability } from './tracking/mechanisms.js';
export { cheapest, checkTrackRaw, fillWord, storeTag, summarizeRuns, type ContentProblems } from './tracking/tracker.js';
export { recordMeta, softDirtyAvailable } from './watch/record.js';
export { startPrivateRedis, RedisClient, type PrivateRedis } from './watch/redis.js';
