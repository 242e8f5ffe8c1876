/** Experiment 6 (planned: needs the kernel engine): MAP_SHARED against MAP_PRIVATE. */
import { plannedExperiment } from '../src/suite/planned.js';

export default plannedExperiment({
  number: 6,
  name: 'shared-vs-private',
  title: 'Shared against private mappings',
  claim:
    "MAP_SHARED pages are never copied on fork: both processes keep one frame and see each other's writes; the same writes to a MAP_PRIVATE mapping copy every page written.",
  short: 'MAP_SHARED never copies; private does',
  rule:
    'Confirmed when the shared mapping keeps one frame per page in both processes after the child\'s writes and each process reads the other\'s bytes, while the private mapping copies exactly the pages written; refuted otherwise.',
  measures:
    'Traces on the kernel engine over anonymous and memfd backings, shared and private: fork, the child writes, both read back; copies, frames and content per step.',
  requirements: { engines: ['kernel'] },
});
