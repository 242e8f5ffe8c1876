/**
 * The kernel engine's pageout op (MADV_PAGEOUT) on this machine: what it swaps out depends on
 * the swap this machine has (/proc/swaps), and the expectation comes from the profile of the
 * kernel under test with that swap (its `swap` knob), never from a constant. On a host without
 * swap nothing may go; in a guest (CI validates the pageout scenarios in Debian 6.1 and 6.12
 * guests, which have zram) pages go. Every page's content is checked after it came back.
 */
import { describe, expect, it } from 'vitest';

import { countRegion } from '../../src/engines/observations.js';
import { kernelWriteValue } from '../../src/engines/kernel/engine.js';
import { compareObservations } from '../../src/validate/compare.js';
import { all, engine, expectNoProcessesLeft, obs, predict, profile, region, trace } from './helpers.js';

const PAGES = 256;
const t = trace('pageout-host', [region({ pages: PAGES })], [
  { op: 'fork', proc: 'p0', child: 'c1' },
  { op: 'pageout', proc: 'p0', region: 'm' },
  { op: 'exit', proc: 'c1' },
  { op: 'pageout', proc: 'p0', region: 'm' },
  { op: 'read', proc: 'p0', region: 'm', pages: all(PAGES) },
]);

describe(`pageout on this machine (swap: ${profile.options.swap})`, () => {
  it('swaps out what the profile predicts for this swap, and every page reads back its value', async () => {
    const r = await engine.runDetailed(t);
    const predicted = predict(t);
    expect(compareObservations(predicted, r.observations).matched).toBe(true);
    const after = countRegion(obs(r, 3).processes.p0!.m!);
    expect(after.swapped).toBe(profile.options.swap === 'none' ? 0 : PAGES);
    // Shared pages are never reclaimed, whatever the swap.
    expect(countRegion(obs(r, 1).processes.p0!.m!).swapped).toBe(0);
    const read = r.details[5]!.access[0]!;
    read.pages.forEach((p, k) => expect(read.values![k]).toBe(kernelWriteValue(-1, p)));
    expect(obs(r, 4).events.m!.swapIns).toBe(profile.options.swap === 'none' ? 0 : PAGES);
    expectNoProcessesLeft();
  });

  it("refuses pageout with p0 'node' (Node's threads fault pages in on any CPU)", () => {
    expect(engine.supports({ ...t, p0: 'node', steps: [{ op: 'pageout', proc: 'p0', region: 'm' }] })).toMatch(/pageout needs p0 as a process of its own/);
  });
});
