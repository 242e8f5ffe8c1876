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

// The experiment suite (cowlab run / list / report / compare).
export { EXPERIMENTS } from '../experiments/index.js';
export { runSuite, selectExperiments, type SuiteOptions, type SuiteProgress } from './suite/runner.js';
export {
  ResultsSchema,
  EnvironmentSchema,
  RESULTS_VERSION,
  parseResults,
  type ResultsDocument,
  type ExperimentResult,
  type ExperimentStatus,
} from './suite/schema.js';
export {
  defineExperiment,
  type Experiment,
  type AnyExperiment,
  type RunContext,
  type Verdict,
  type VerdictKind,
  type Metric,
  type Presentation,
  type Requirements,
  type TableSpec,
} from './suite/types.js';
export { plannedExperiment } from './suite/planned.js';
export { registerEngine, engineAvailable } from './suite/engines.js';
export { compareResults, beyondNoise, COMPARE_RULE, type Comparison } from './suite/compare.js';
export { renderReport } from './report/html.js';
export { renderChart, type ChartSpec, type Axis } from './report/chart.js';
