/** compareObservations on hand-built observations: what counts as a match and what does not. */
import { describe, expect, it } from 'vitest';

import type { RegionObservation, StepObservation, TraceObservations } from '../../src/engines/types.js';
import { compareObservations, faultAllowance } from '../../src/validate/compare.js';

const trace = {
  name: 't',
  regions: [{ id: 'heap', pages: 4, map: 'private' as const, backing: 'anon' as const, thp: false, advice: [], populate: 'write' as const }],
  steps: [{ op: 'fork' as const, proc: 'p0', child: 'c1' }, { op: 'write' as const, proc: 'c1', region: 'heap', pages: { start: 0, end: 2 } }],
};

function region(present: number[], exclusive: number[] | null, zeroPage: number[] | null = [0, 0, 0, 0]): RegionObservation {
  return {
    present: Uint8Array.from(present),
    exclusive: exclusive ? Uint8Array.from(exclusive) : null,
    zeroPage: zeroPage ? Uint8Array.from(zeroPage) : null,
  };
}

function step(i: number, over: Partial<StepObservation> = {}): StepObservation {
  return {
    step: i,
    op: i < 0 ? 'setup' : i === 0 ? 'fork' : 'write',
    proc: i === 1 ? 'c1' : 'p0',
    processes: { p0: { heap: region([1, 1, 1, 1], [1, 1, 1, 1]) } },
    events: { heap: { copies: 0, reuses: 0, zeroFills: 0, faults: 0 } },
    frames: { heap: 4 },
    timeNs: 100,
    ...over,
  };
}

function observations(engine: 'sim' | 'kernel', steps: StepObservation[], unavailable: Record<string, string> = {}): TraceObservations {
  return { engine, trace, steps, unavailable };
}

const afterWrite = (copies: number, faults: number, exclusive = [1, 1, 0, 0]) =>
  step(1, {
    processes: { p0: { heap: region([1, 1, 1, 1], [1, 1, 0, 0]) }, c1: { heap: region([1, 1, 1, 1], exclusive) } },
    events: { heap: { copies, reuses: 0, zeroFills: 0, faults } },
    frames: { heap: 6 },
  });

describe('compareObservations', () => {
  it('matches identical observations and names no step', () => {
    const a = observations('sim', [step(-1), step(0), afterWrite(2, 2)]);
    const b = observations('kernel', [step(-1), step(0), afterWrite(2, 2)]);
    const c = compareObservations(a, b);
    expect(c.matched).toBe(true);
    expect(c.firstMismatch).toBeNull();
    expect(c.steps.every((s) => s.diffs.length === 0)).toBe(true);
  });

  it('names the first step and field that differ, with the pages', () => {
    const a = observations('sim', [step(-1), step(0), afterWrite(2, 2, [1, 1, 0, 0])]);
    const b = observations('kernel', [step(-1), step(0), afterWrite(1, 2, [1, 0, 0, 0])]);
    const c = compareObservations(a, b);
    expect(c.matched).toBe(false);
    expect(c.firstMismatch).toBe(2);
    const fields = c.steps[2]!.diffs.map((d) => `${d.field}:${d.proc ?? ''}`);
    expect(fields).toEqual(expect.arrayContaining(['exclusive:c1', 'shared:c1', 'copies:']));
    expect(c.steps[2]!.diffs.find((d) => d.field === 'exclusive')!.pages).toEqual([1]);
  });

  it.each([
    { predicted: 100, observed: 100, ok: true },
    { predicted: 100, observed: 100 + faultAllowance(100), ok: true },
    { predicted: 100, observed: 101 + faultAllowance(100), ok: false },
    { predicted: 100, observed: 99, ok: false },
  ])('allows faults $predicted -> $observed: $ok', ({ predicted, observed, ok }) => {
    const a = observations('sim', [step(-1), step(0), afterWrite(2, predicted)]);
    const b = observations('kernel', [step(-1), step(0), afterWrite(2, observed)]);
    expect(compareObservations(a, b).matched).toBe(ok);
  });

  it('skips fields an engine could not observe and lists why', () => {
    const hidden = step(0, { processes: { p0: { heap: region([1, 1, 1, 1], [1, 1, 1, 1], null) } }, frames: { heap: null } });
    const a = observations('sim', [step(-1), step(0, { frames: { heap: 99 } }), afterWrite(2, 2)]);
    const b = observations('kernel', [step(-1), hidden, afterWrite(2, 2)], { frames: 'PFNs hidden without root' });
    const c = compareObservations(a, b);
    expect(c.matched).toBe(true);
    expect(c.unavailable).toEqual({ frames: 'PFNs hidden without root' });
  });

  it('flags a process alive in one engine only', () => {
    const a = observations('sim', [step(-1), step(0), afterWrite(2, 2)]);
    const gone = afterWrite(2, 2);
    delete gone.processes.c1;
    const c = compareObservations(a, observations('kernel', [step(-1), step(0), gone]));
    expect(c.steps[2]!.diffs).toEqual([expect.objectContaining({ field: 'processes', proc: 'c1' })]);
  });

  it('reports the relative error of predicted write time', () => {
    const a = observations('sim', [step(-1), step(0), { ...afterWrite(2, 2), timeNs: 110 }]);
    const b = observations('kernel', [step(-1), step(0), { ...afterWrite(2, 2), timeNs: 100 }]);
    expect(compareObservations(a, b).writeTime.relError).toBeCloseTo(0.1);
  });
});
