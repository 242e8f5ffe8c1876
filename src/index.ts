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
  type ResolvedForkWriteOptions,
  type Writer,
  type ParentWhen,
} from './forkwrite/options.js';
export { parsePattern, pageOrder, formatPattern, type WritePattern } from './forkwrite/pattern.js';
export type { Verification } from './forkwrite/verify.js';
export {
  CowRegion,
  CowView,
  AttachedView,
  copyoutError,
  PAGE_STATE,
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
  regionWriteRun,
  createBenchRegion,
  resolveRegionBenchOptions,
  describeRegionBenchOptions,
  PER_PAGE_DEFINITIONS,
  type RegionBenchOptions,
  type RegionBenchResult,
  type ResolvedRegionBenchOptions,
  type RegionWriteRun,
  type BenchSide,
  type PerPage,
} from './region/bench.js';
export { RegionEngine, type RegionEngineOptions } from './engines/region/regionEngine.js';
