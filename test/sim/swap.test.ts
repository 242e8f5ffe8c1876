/**
 * The simulator's swap model (src/engines/sim/swap.ts): MADV_PAGEOUT respects sharing, needs a
 * swap to do anything, and what a swap-in maps depends on the device and on swapinWritable.
 * Every run checks the model's invariants (swap slots and swap-cache references included).
 */
import { describe, expect, it } from 'vitest';

import { countRegion } from '../../src/engines/observations.js';
import { simulateTrace } from '../../src/engines/sim/engine.js';
import type { SimOptions, SwapDevice, SwapinWritable } from '../../src/engines/sim/options.js';
import type { StepObservation } from '../../src/engines/types.js';
import { resolveTraceArg } from '../../src/trace/scenarios.js';
import { parseTrace } from '../../src/trace/parse.js';
import type { Trace } from '../../src/trace/types.js';

const PAGES = 64;
const heap = [{ id: 'heap', pages: PAGES }];
const all = { start: 0, end: PAGES };

function run(trace: Trace, options: SimOptions): StepObservation[] {
  return simulateTrace(trace, { checkInvariants: true, ...options }).steps;
}

/** After step `i` (0-based trace step): p0's counts of heap, and its swapped pages. */
function p0(steps: StepObservation[], i: number) {
  return countRegion(steps[i + 1]!.processes.p0!.heap!);
}

describe('pageout', () => {
  const sharedThenAlone = parseTrace({
    name: 'shared-then-alone',
    regions: heap,
    steps: [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'pageout', proc: 'p0', region: 'heap' },
      { op: 'exit', proc: 'c1' },
      { op: 'pageout', proc: 'p0', region: 'heap' },
    ],
  });

  it.each(['sync-io', 'block'] as const)('leaves pages another process maps resident, and swaps them out once it has gone (%s swap)', (swap) => {
    const steps = run(sharedThenAlone, { swap });
    expect(p0(steps, 1)).toMatchObject({ present: PAGES, shared: PAGES, swapped: 0 });
    expect(p0(steps, 3)).toMatchObject({ present: 0, swapped: PAGES });
    expect(steps[4]!.frames.heap).toBe(0); // no process maps a frame of it any more
  });

  it('without swap keeps every anonymous page resident', () => {
    const steps = run(sharedThenAlone, { swap: 'none' });
    expect(p0(steps, 3)).toMatchObject({ present: PAGES, exclusive: PAGES, swapped: 0 });
    expect(steps[4]!.frames.heap).toBe(PAGES);
  });

  it('skips the zero page (no folio on the LRU)', () => {
    const t = parseTrace({ name: 'zero', regions: [{ id: 'heap', pages: PAGES, populate: 'read' }], steps: [{ op: 'pageout', proc: 'p0', region: 'heap' }] });
    expect(p0(run(t, { swap: 'sync-io' }), 0)).toMatchObject({ present: PAGES, zeroPage: PAGES, swapped: 0 });
  });

  it('pages out only the selected pages', () => {
    const t = parseTrace({ name: 'some', regions: heap, steps: [{ op: 'pageout', proc: 'p0', region: 'heap', pages: { start: 0, end: 16 } }] });
    const steps = run(t, { swap: 'sync-io' });
    expect(p0(steps, 0)).toMatchObject({ present: PAGES - 16, swapped: 16 });
    expect(steps[1]!.events.heap!.swapIns).toBe(0);
  });

  it('observations of traces without pageout carry no swap fields', () => {
    const t = parseTrace({ name: 'plain', regions: heap, steps: [{ op: 'fork', proc: 'p0', child: 'c1' }] });
    const s = run(t, { swap: 'sync-io' })[1]!;
    expect(s.events.heap).not.toHaveProperty('swapIns');
    expect(s.processes.p0!.heap).not.toHaveProperty('swapped');
  });
});

describe('swap-in', () => {
  /** p0's pages paged out, read back, then written: the write step's events. */
  const readThenWrite = parseTrace({
    name: 'read-then-write',
    regions: heap,
    steps: [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'exit', proc: 'c1' },
      { op: 'pageout', proc: 'p0', region: 'heap' },
      { op: 'read', proc: 'p0', region: 'heap', pages: all },
      { op: 'write', proc: 'p0', region: 'heap', pages: all },
    ],
  });

  // The read swap-in maps writable only what it knows is exclusive: a synchronous device's
  // fresh folio (it skipped the swap cache), never a page found in the swap cache, whose entry
  // lost its exclusive bit at fork.
  const cases: { swap: SwapDevice; swapinWritable: SwapinWritable; reuses: number }[] = [
    { swap: 'sync-io', swapinWritable: 'exclusive', reuses: 0 },
    { swap: 'sync-io', swapinWritable: 'write-fault', reuses: PAGES },
    { swap: 'block', swapinWritable: 'exclusive', reuses: PAGES },
    { swap: 'block', swapinWritable: 'write-fault', reuses: PAGES },
  ];
  it.each(cases)('$swap swap, swapinWritable $swapinWritable: the write after a read swap-in reuses $reuses pages', ({ swap, swapinWritable, reuses }) => {
    const steps = run(readThenWrite, { swap, swapinWritable });
    expect(steps[4]!.events.heap).toMatchObject({ swapIns: PAGES, copies: 0, zeroFills: 0 });
    expect(steps[5]!.events.heap).toMatchObject({ swapIns: 0, copies: 0, reuses, faults: reuses });
    expect(p0(steps, 4)).toMatchObject({ present: PAGES, exclusive: PAGES, swapped: 0 });
  });

  it.each(['sync-io', 'block'] as const)('a store to a slot fork shared copies the page, and the sharer finds the original in the swap cache (%s swap)', (swap) => {
    const t = parseTrace({
      name: 'shared-slot',
      regions: heap,
      steps: [
        { op: 'pageout', proc: 'p0', region: 'heap' },
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'c1', region: 'heap', pages: all },
        { op: 'read', proc: 'p0', region: 'heap', pages: all },
        { op: 'write', proc: 'p0', region: 'heap', pages: all },
      ],
    });
    const steps = run(t, { swap });
    expect(steps[3]!.events.heap).toMatchObject({ swapIns: PAGES, copies: 0 });
    expect(steps[3]!.frames.heap).toBe(PAGES); // the child's copies; the originals wait in the swap cache
    expect(steps[4]!.frames.heap).toBe(2 * PAGES);
    // The parent's page is its alone now: its store reuses it once the swap cache lets go.
    expect(steps[5]!.events.heap).toMatchObject({ reuses: PAGES, copies: 0 });
  });
});

describe('built-in pageout scenarios', () => {
  const devices: SwapDevice[] = ['none', 'sync-io', 'block'];
  for (const name of ['pageout-after-sharer-exits', 'pageout-before-fork']) {
    it.each(devices)(`${name} keeps the model's invariants with swap %s`, (swap) => {
      const trace = resolveTraceArg(name);
      expect(() => run(trace, { swap })).not.toThrow();
    });
  }
});
