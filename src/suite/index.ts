/**
 * cowlab/suite: the experiment suite as a library (what `cowlab run`, `list`, `report` and
 * `compare` are built on). A separate entry point from 'cowlab', so the measuring API does not
 * load the suite, its schemas and its charts.
 */
export { EXPERIMENTS } from '../../experiments/index.js';
export { runSuite, selectExperiments, type SuiteOptions, type SuiteProgress } from './runner.js';
export {
  ResultsSchema,
  EnvironmentSchema,
  RESULTS_VERSION,
  parseResults,
  type ResultsDocument,
  type ExperimentResult,
  type ExperimentStatus,
} from './schema.js';
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
} from './types.js';
export { Steps, sized, STOP, type BySize, type SweepOptions } from './steps.js';
export { registerEngine, unregisterEngine, engineAvailable } from './engines.js';
export {
  compareResults,
  judgeDifference,
  anyDifference,
  COMPARE_RULE,
  COMPARE_TEST,
  METRIC_OUTCOMES,
  type Comparison,
  type MetricComparison,
  type MetricOutcome,
} from './compare.js';
export { renderReport } from '../report/html.js';
export { renderChart, type ChartSpec, type Axis } from '../report/chart.js';
