/** Observations as JSON: counts, compact page lists, and the round trip of those lists. */
import { describe, expect, it } from 'vitest';

import { compactPages, countRegion, expandPages, observationsToJson } from '../../src/engines/observations.js';
import { simulateTrace } from '../../src/engines/sim/engine.js';
import { loadScenario } from '../../src/trace/scenarios.js';

describe('compact page lists', () => {
  it.each([
    { pages: [0, 0, 0], text: '' },
    { pages: [1, 1, 1, 0, 1, 0, 0, 1, 1], text: '0-2,4,7-8' },
    { pages: [0, 1], text: '1' },
  ])('$text', ({ pages, text }) => {
    expect(compactPages(Uint8Array.from(pages))).toBe(text);
    expect([...expandPages(text, pages.length)]).toEqual(pages);
  });
});

describe('observationsToJson', () => {
  const obs = simulateTrace(loadScenario('zero-page-read-then-write'));

  it('turns per-page arrays into counts, shared = present and not exclusive (the zero page is shared)', () => {
    const json = observationsToJson(obs);
    const afterFork = json.steps[3]!;
    expect(afterFork.op).toBe('fork');
    expect(afterFork.processes.c1!.heap).toEqual({ present: 1024, shared: 1024, exclusive: 0, zeroPage: 512 });
    expect(afterFork.processes.c1!.heap!.pages).toBeUndefined();
    expect(json.steps[0]!.op).toBe('setup');
  });

  it('adds page lists with pages: true, and survives JSON', () => {
    const json = JSON.parse(JSON.stringify(observationsToJson(obs, { pages: true }))) as ReturnType<typeof observationsToJson>;
    const written = json.steps[2]!.processes.p0!.heap!;
    expect(written.pages).toEqual({ present: '0-1023', shared: '512-1023', exclusive: '0-511', zeroPage: '512-1023' });
    expect(countRegion(obs.steps[2]!.processes.p0!.heap!)).toMatchObject({ exclusive: 512 });
  });

  it('keeps null for what an engine could not observe', () => {
    const r = { present: Uint8Array.from([1, 1]), exclusive: null, zeroPage: null };
    expect(countRegion(r)).toEqual({ present: 2, shared: null, exclusive: null, zeroPage: null });
  });
});
