/** Experiment 11 (planned: needs the simulator and the region manager): eager top-of-stack. */
import { plannedExperiment } from '../src/suite/planned.js';

export default plannedExperiment({
  number: 11,
  name: 'eager-stack',
  title: 'Eager top-of-stack copy',
  claim:
    'Copying at fork time the pages a fork+exec child will write (the top of its stack) saves that child its COW faults at the cost of a few eager copies, against pure lazy COW.',
  short: 'eager stack copy saves the exec child faults',
  rule:
    'Confirmed when the eager policy takes fewer faults than lazy COW for the fork+exec child in both the simulator and the region engine, with the extra copies it makes stated; refuted when it saves none.',
  measures:
    'The fork+exec trace under a policy that copies the top stack pages at fork, in the simulator and in the region engine: faults and copies against the lazy policy.',
  requirements: { engines: ['sim', 'region'] },
});
