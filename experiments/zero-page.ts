/** Experiment 5 (planned: needs the kernel engine): the shared zero page. */
import { plannedExperiment } from '../src/suite/planned.js';

export default plannedExperiment({
  number: 5,
  name: 'zero-page',
  title: 'The zero page',
  claim:
    'Reading never-touched anonymous memory maps one shared zero frame and allocates nothing; the first write then allocates a fresh zeroed page (a zero fill, not a copy).',
  short: 'reads map one zero frame; writes allocate',
  rule:
    'Confirmed when, after the reads, every page maps the zero page (kpageflags bit 24) with one distinct frame for the region, and each first write is a zero fill (a new frame, no copy); refuted otherwise.',
  measures:
    'A trace on the kernel engine: read every page of an untouched region (kpageflags zero-page bit, distinct frames), then write them (zero fills, new frames), checked against the simulator.',
  requirements: { engines: ['kernel'], root: true },
});
