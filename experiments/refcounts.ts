/** Experiment 7 (planned: needs the kernel engine and root): reference counts. */
import { plannedExperiment } from '../src/suite/planned.js';

export default plannedExperiment({
  number: 7,
  name: 'refcounts',
  title: 'Reference counts',
  claim:
    "A frame's mapcount (/proc/kpagecount) follows its sharers: 2 after a fork, N with N sharers, one less after each copy or exit, and the frame is freed when the last sharer leaves.",
  short: 'kpagecount follows the sharers',
  rule:
    'Confirmed when kpagecount equals the number of live sharers of each frame after every step of every trace, and a frame whose count reaches zero is no longer mapped by anyone; refuted at the first step where it differs.',
  measures:
    'Traces on the kernel engine with three and more processes (a tree and a chain of forks): kpagecount of every page after fork, write, exit; frames in use per step against the simulator.',
  requirements: { engines: ['kernel'], root: true },
});
