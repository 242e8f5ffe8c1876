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

// The experiment suite (cowlab run / list / report / compare) is its own entry point,
// 'cowlab/suite' (src/suite/index.ts), so importing the measuring API loads none of it.
