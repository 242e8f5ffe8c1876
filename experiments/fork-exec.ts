/** Experiment 3 (planned: needs the kernel engine): fork+exec copies nothing. */
import { plannedExperiment } from '../src/suite/planned.js';

export default plannedExperiment({
  number: 3,
  name: 'fork-exec',
  title: 'fork+exec copies nothing',
  claim:
    "A child that execs at once copies none of its parent's pages: of a 1 GiB parent, zero pages are copied (pagemap, Private_Dirty), and the parent's later writes are reuses, not copies.",
  short: 'fork+exec copies zero pages',
  rule:
    'Confirmed when the exec\'ing child\'s pages show zero copies (no PFN of the region changes in the parent, the child\'s Private_Dirty of it is 0) and every later parent write is a reuse (pgreuse grows by the pages written, no PFN changes); refuted when any page was copied.',
  measures:
    'A trace on the kernel engine: p0 maps and writes 1 GiB, forks c1, c1 execs; then p0 writes every page. Pagemap PFNs and Private_Dirty of both, copies and reuses per step (pgreuse).',
  requirements: { engines: ['kernel'], minMemoryBytes: 256 * 2 ** 20 },
});
