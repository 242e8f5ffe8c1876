/**
 * The fast paths (src/engines/sim/fastpath.ts, the small-folio pagemap read in pagemap.ts)
 * against the per-page reference path: one trace run with fastPaths on and off must give the
 * same observation after every step (pages, events, frames, time to the last bit) and the same
 * model state (frames, page tables, page caches), for seeded random traces over every op,
 * backing, THP, mprotect, dontfork/wipeonfork and fork chains, under every simulator option.
 */
import { describe, expect, it } from 'vitest';

import type { SimOptions } from '../../src/engines/sim/options.js';
import { Simulator } from '../../src/engines/sim/simulator.js';
import { parseTrace } from '../../src/trace/parse.js';
import { listScenarios, loadScenario } from '../../src/trace/scenarios.js';
import type { PageSelector, RegionSpec, Step, Trace } from '../../src/trace/types.js';
import { firstDifference } from '../helpers/firstDifference.js';
import { randomTrace } from '../helpers/randomTrace.js';
import { SIM_VARIANTS } from './variants.js';

/** Fractional constants: the predicted times must be summed in the same order both ways. */
const FRACTIONAL_COSTS: SimOptions['costModel'] = {
  version: 1,
  env: { note: 'test' },
  measuredAt: '2026-11-22T10:00:00Z',
  constants: {
    forkBaseNs: 150_000.3, forkPerPageNs: 15.7, copyNs: 5_523.1, reuseNs: 1_500.9, zeroFillNs: 3_500.11,
    hugeZeroFillNs: 250_000.7, faultNs: 1_500.33, accessNs: 30.1,
  },
};

const VARIANTS: { name: string; options: SimOptions }[] = [
  ...SIM_VARIANTS,
  { name: 'folio exclusivity', options: { pagemapExclusive: 'folio' } },
  { name: 'fractional costs', options: { costModel: FRACTIONAL_COSTS } },
];

/** Runs `trace` both ways, step by step, and expects the same observation and state each time. */
function expectSameBothWays(trace: Trace, options: SimOptions): void {
  const fast = new Simulator(trace, options, { fastPaths: true });
  const slow = new Simulator(trace, options, { fastPaths: false });
  const check = (where: string, a: unknown, b: unknown) => {
    expect(firstDifference(a, b), `${trace.name} after ${where}: observation`).toBeNull();
    expect(firstDifference(fast.state(), slow.state()), `${trace.name} after ${where}: state`).toBeNull();
  };
  check('setup', fast.setup(), slow.setup());
  for (let i = 0; !slow.done; i++) check(`steps[${i}] ${JSON.stringify(trace.steps[i])}`, fast.step(), slow.step());
  expect(fast.done).toBe(true);
}

function trace(name: string, regions: (Partial<RegionSpec> & { id: string; pages: number })[], steps: Step[]): Trace {
  const full = regions.map((r) => ({ map: 'private' as const, backing: 'anon' as const, thp: false, advice: [], populate: 'write' as const, ...r }));
  return parseTrace({ name, regions: full, steps });
}

const write = (proc: string, region: string, pages: PageSelector): Step => ({ op: 'write', proc, region, pages });

/** Shapes the fast paths are made for, and their edges: runs broken by a page in another state. */
const SHAPED: Trace[] = [
  trace('fork-child-writes-all', [{ id: 'heap', pages: 3000 }], [
    { op: 'fork', proc: 'p0', child: 'c1' },
    write('c1', 'heap', { start: 0, end: 3000 }),
    write('p0', 'heap', { start: 0, end: 3000 }),
  ]),
  trace('runs-broken', [{ id: 'heap', pages: 1100, populate: 'none' }, { id: 'huge', pages: 1024 + 300, thp: true }], [
    write('p0', 'heap', { start: 0, end: 1100, stride: 3 }),
    { op: 'read', proc: 'p0', region: 'heap', pages: { start: 0, end: 600 } },
    { op: 'fork', proc: 'p0', child: 'c1' },
    write('c1', 'heap', { pages: [5, 5, 6, 7, 6, 8, 1000, 999, 0, 1, 2, 3, 4] }),
    write('c1', 'heap', { start: 0, end: 1100 }),
    { op: 'fork', proc: 'c1', child: 'c2' },
    write('c2', 'huge', { start: 0, end: 1324, stride: 2 }),
    write('p0', 'huge', { start: 500, end: 1324 }),
    { op: 'exit', proc: 'c1' },
    write('p0', 'heap', { start: 0, end: 1100 }),
    write('c2', 'heap', { random: 1100, seed: 3 }),
  ]),
  trace('backings', [
    { id: 'memfd', pages: 700, backing: 'memfd' },
    { id: 'shm', pages: 700, map: 'shared' },
    { id: 'wipe', pages: 700, advice: ['wipeonfork'] },
    { id: 'nofork', pages: 700, advice: ['dontfork'] },
  ], [
    { op: 'fork', proc: 'p0', child: 'c1' },
    write('c1', 'memfd', { start: 0, end: 700 }),
    write('c1', 'shm', { start: 0, end: 700 }),
    write('c1', 'wipe', { start: 0, end: 700 }),
    { op: 'mprotect', proc: 'p0', region: 'memfd', prot: 'r', pages: { start: 100, end: 200 } },
    { op: 'mprotect', proc: 'p0', region: 'memfd', prot: 'rw', pages: { start: 150, end: 200 } },
    write('p0', 'memfd', { start: 150, end: 700 }),
    { op: 'fork', proc: 'c1', child: 'c2' },
    write('c2', 'memfd', { start: 0, end: 700 }),
    { op: 'exec', proc: 'c1' },
    write('p0', 'nofork', { start: 0, end: 700 }),
  ]),
];

describe('fast paths give the same observations and state as the per-page path', () => {
  it.each(SHAPED.flatMap((t) => VARIANTS.map((v) => ({ name: t.name, variant: v.name, t, options: v.options }))))(
    '$name ($variant)',
    ({ t, options }) => expectSameBothWays(t, options),
  );

  it.each(listScenarios().flatMap((s) => VARIANTS.map((v) => ({ scenario: s.name, variant: v.name, options: v.options }))))(
    'scenario $scenario ($variant)',
    ({ scenario, options }) => expectSameBothWays(loadScenario(scenario), options),
  );

  const seeds = Array.from({ length: 120 }, (_, i) => i + 1);
  it.each(seeds)('random trace, seed %i', (seed) => {
    const t = parseTrace(randomTrace(seed, { cowHeavy: seed % 3 === 0, maxPages: seed % 2 === 0 ? 3000 : 1200 }));
    expectSameBothWays(t, VARIANTS[seed % VARIANTS.length]!.options);
  });
});
