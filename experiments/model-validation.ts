/** Experiment 12 (planned: needs the simulator and the kernel engine): model validation. */
import { plannedExperiment } from '../src/suite/planned.js';

export default plannedExperiment({
  number: 12,
  name: 'model-validation',
  title: 'Model validation',
  claim:
    'The COW simulator predicts this kernel exactly: on every built-in scenario its copies, reuses, zero fills, present/shared/exclusive pages and frames match the kernel step by step.',
  short: 'the simulator matches the kernel',
  rule:
    'Confirmed when every built-in scenario validates (sim against kernel, exact on copies, reuses, zero fills, page states and frames; faults within the allowance); refuted by the first scenario that does not, named with its step.',
  measures: 'The built-in scenario suite through validate (sim against kernel), as a table of matched and mismatched steps.',
  requirements: { engines: ['sim', 'kernel'] },
});
