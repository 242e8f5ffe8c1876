/** measureKernelCosts: every event of the cost model measured on the running kernel. */
import { describe, expect, it } from 'vitest';

import { CowlabError } from '../../src/errors.js';
import { calibrationTrace, measureKernelCosts, type KernelCostName } from '../../src/internal.js';
import { engine } from './helpers.js';

const NAMES: KernelCostName[] = ['forkBaseNs', 'forkPerPageNs', 'copyNs', 'reuseNs', 'zeroFillNs', 'faultNs', 'accessNs'];

describe('measureKernelCosts', () => {
  it('measures every event of its calibration trace, each class of access where it expects it', async () => {
    const r = await engine.runDetailed(calibrationTrace(64));
    const e = (step: number) => r.observations.steps[step + 1]!.events;
    expect(e(2).a).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 64 });
    expect(e(3).b).toEqual({ copies: 0, reuses: 0, zeroFills: 64, faults: 64 });
    expect(e(4).b).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(e(6).b).toEqual({ copies: 64, reuses: 0, zeroFills: 0, faults: 64 });
    expect(e(8).b).toEqual({ copies: 0, reuses: 64, zeroFills: 0, faults: 64 });
  });

  it('returns a median and a min-max band over the repeats for each cost, with the environment', async () => {
    const c = await measureKernelCosts({ pages: 512, repeats: 2, warmup: 0 });
    for (const name of NAMES) {
      const b = c.bands[name];
      expect(Number.isFinite(c[name])).toBe(true);
      expect(c[name]).toBe(b.median);
      expect(b.min).toBeLessThanOrEqual(b.median);
      expect(b.median).toBeLessThanOrEqual(b.max);
    }
    for (const name of NAMES.filter((n) => n !== 'forkPerPageNs')) expect(c[name]).toBeGreaterThan(0);
    expect(c).toMatchObject({ pages: 512, repeats: 2, warmup: 0 });
    expect(c.environment.kernel).toBeTruthy();
  });

  it('checks its options before running anything', async () => {
    await expect(measureKernelCosts({ pages: 0 })).rejects.toThrow(CowlabError);
    await expect(measureKernelCosts({ repeats: -1 })).rejects.toThrow(/repeats: must be a positive integer/);
  });
});
