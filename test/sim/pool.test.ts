/**
 * The simulator's frame-table pool (PhysMemPool): a run on tables cleared after an earlier run
 * must observe exactly what a run on fresh tables observes, whatever ran before it (larger or
 * smaller traces, with and without huge pages), and tables too large to keep are dropped.
 */
import { describe, expect, it } from 'vitest';

import { simulateTrace } from '../../src/engines/sim/engine.js';
import { PhysMem, PhysMemPool } from '../../src/engines/sim/physmem.js';
import { parseTrace } from '../../src/trace/parse.js';
import { listScenarios, loadScenario } from '../../src/trace/scenarios.js';
import type { Trace } from '../../src/trace/types.js';
import { firstDifference } from '../helpers/firstDifference.js';
import { randomTrace } from '../helpers/randomTrace.js';

/** A pool that never keeps anything: every run gets fresh tables. */
const fresh = () => new PhysMemPool(0);

describe('a pooled simulator run observes what a run on fresh tables observes', () => {
  // Scenarios (some with THP, some without) and random traces of changing sizes, one after
  // the other through one pool, so each run starts on the leftovers of a different one.
  const traces: Trace[] = [
    ...listScenarios().map((s) => loadScenario(s.name)),
    ...Array.from({ length: 30 }, (_, i) =>
      parseTrace(randomTrace(i + 1, { cowHeavy: i % 2 === 0, maxPages: i % 3 === 0 ? 3000 : 600 })),
    ),
  ];

  it('over a sequence of scenarios and random traces', () => {
    const pool = new PhysMemPool();
    for (const t of traces) {
      const pooled = simulateTrace(t, {}, undefined, pool);
      const alone = simulateTrace(t, {}, undefined, fresh());
      expect(firstDifference(pooled.steps, alone.steps), t.name).toBeNull();
    }
  });
});

describe('PhysMemPool', () => {
  it('hands back the same tables, cleared, when they can serve the next run', () => {
    const pool = new PhysMemPool();
    const m = pool.take(5000, false);
    m.allocMappedAnonPages(100);
    pool.give(m);
    const again = pool.take(4000, false);
    expect(again).toBe(m);
    expect(again.top).toBe(0);
    expect(again.inUse).toBe(0);
    expect(again.refcount.subarray(0, 200).every((x) => x === 0)).toBe(true);
  });

  it('gives fresh tables when the spare ones lack the large-folio tables or are too small', () => {
    const pool = new PhysMemPool();
    const small = pool.take(2000, false);
    pool.give(small);
    expect(pool.take(2000, true)).not.toBe(small);
    pool.give(small);
    expect(pool.take(small.capacity + 1, false)).not.toBe(small);
  });

  it('does not keep tables larger than its limit', () => {
    const m = new PhysMem(5000, true);
    const pool = new PhysMemPool(m.bytes - 1);
    pool.give(m);
    expect(pool.take(1000, true)).not.toBe(m);
  });
});
