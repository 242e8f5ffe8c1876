/** compare's test: a seeded bootstrap interval of the ratio of medians, and what it says with too few samples. */
import { describe, expect, it } from 'vitest';

import { bootstrapMedianRatio } from '../../src/stats/bootstrap.js';
import { COMPARE_TEST, judgeDifference } from '../../src/suite/compare.js';
import { bandOf } from '../../src/suite/measure.js';
import type { Band } from '../../src/stats/summary.js';
import { mulberry32 } from '../../src/util/prng.js';

/** n samples around `center`, spread +-`spread` (a fraction), from `seed`. */
function samplesAround(center: number, n: number, seed: number, spread = 0.05): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => center * (1 + spread * (2 * r() - 1)));
}

const withoutSamples = (b: Band): Band => ({ median: b.median, min: b.min, max: b.max, noisy: b.noisy });

describe('bootstrapMedianRatio', () => {
  it('is deterministic: the same samples give the same interval, around the ratio of the medians', () => {
    const a = samplesAround(1000, 15, 1);
    const b = samplesAround(1500, 15, 2);
    const x = bootstrapMedianRatio(a, b)!;
    expect(bootstrapMedianRatio(a, b)).toEqual(x);
    expect(x.level).toBe(0.95);
    expect(x.resamples).toBe(2000);
    expect(x.low).toBeLessThan(x.ratio);
    expect(x.high).toBeGreaterThan(x.ratio);
    expect(x.ratio).toBeCloseTo(1.5, 1);
  });

  it('has no ratio when a\'s median is 0, or a side is empty', () => {
    expect(bootstrapMedianRatio([0, 0, 0], [1, 2, 3])).toBeNull();
    expect(bootstrapMedianRatio([], [1, 2, 3])).toBeNull();
  });
});

describe('judgeDifference', () => {
  it('finds no difference between two sample sets drawn from the same distribution', () => {
    const j = judgeDifference(bandOf(samplesAround(5000, 20, 11)), bandOf(samplesAround(5000, 20, 12)));
    expect(j.outcome).toBe('no-difference');
    expect(j.interval!.low).toBeLessThan(1 + COMPARE_TEST.minEffect);
    expect(j.interval!.high).toBeGreaterThan(1 / (1 + COMPARE_TEST.minEffect));
    expect(j.why).toMatch(/^95 % CI of b\/a 0\.\d\dx-1\.\d\dx \(20 and 20 samples\) is not wholly beyond a 10 % change$/);
  });

  it('calls medians 2x apart with 20 samples a side different, in both directions', () => {
    const up = judgeDifference(bandOf(samplesAround(5000, 20, 11)), bandOf(samplesAround(10000, 20, 12)));
    expect(up.outcome).toBe('different');
    expect(up.interval!.low).toBeGreaterThan(1.8);
    expect(up.why).toMatch(/^b is above a: 95 % CI of b\/a .* lies above 1\.10x$/);
    const down = judgeDifference(bandOf(samplesAround(10000, 20, 11)), bandOf(samplesAround(5000, 20, 12)));
    expect(down.outcome).toBe('different');
    expect(down.why).toMatch(/^b is below a: .* lies below 0\.91x$/);
  });

  it('does not call a real but small change (5 %) different: it is below the minimum effect', () => {
    const j = judgeDifference(bandOf(samplesAround(5000, 30, 11, 0.01)), bandOf(samplesAround(5250, 30, 12, 0.01)));
    expect(j.interval!.low).toBeGreaterThan(1); // significant...
    expect(j.outcome).toBe('no-difference'); // ...but not 10 %
  });

  it("calls medians closer than the metric's resolution no difference, with the test or without; beyond it the test decides", () => {
    // MemAvailable lost by a fork of 256 MiB: 5 MiB against 8 MiB is 0.6x, both "almost none".
    const MiB = 2 ** 20;
    const res = { value: 25.6 * MiB, unit: 'bytes' };
    const a = bandOf(samplesAround(8 * MiB, 5, 11, 0.01));
    const b = bandOf(samplesAround(5 * MiB, 5, 12, 0.01));
    expect(judgeDifference(a, b).outcome).toBe('different');
    const j = judgeDifference(a, b, false, res);
    expect(j.outcome).toBe('no-difference');
    expect(j.why).toMatch(/^the medians are 3\.\d\d MiB apart, less than the 25\.6 MiB its experiment's rule resolves$/);
    // Single samples of the longest PFN run, 16 against 4 pages, with a huge page's 512 as resolution.
    expect(judgeDifference(bandOf([16]), bandOf([4])).outcome).toBe('different');
    expect(judgeDifference(bandOf([16]), bandOf([4]), false, { value: 512, unit: 'pages' }).outcome).toBe('no-difference');
    // A huge page's worth apart is beyond it: the bands decide again.
    expect(judgeDifference(bandOf([16]), bandOf([528]), false, { value: 512, unit: 'pages' }).outcome).toBe('different');
  });

  it('says "not enough samples" with fewer than 3 a side, even when the bands do not overlap', () => {
    // The case: two single-sample bands, 822 against 961 ns.
    const j = judgeDifference(bandOf([822]), bandOf([961]));
    expect(j.outcome).toBe('not-enough-samples');
    expect(j.why).toMatch(/^only 1 and 1 samples \(a test needs 3 per host\), and the bands are not clearly apart/);
    expect(judgeDifference(bandOf([100, 101]), bandOf([150, 151])).outcome).toBe('not-enough-samples');
  });

  it('with too few samples still calls counts more than 2x apart different (a 4 KiB page against a huge page), but never times', () => {
    const j = judgeDifference(bandOf([512]), bandOf([1]));
    expect(j.outcome).toBe('different');
    expect(j.why).toMatch(/^only 1 and 1 samples .*, but the bands do not overlap and the medians are 512\.00x apart/);
    // Times: one run each, 2.6x apart, is what load alone does.
    const t = judgeDifference(bandOf([39_200]), bandOf([103_800]), true);
    expect(t.outcome).toBe('not-enough-samples');
    expect(t.why).toMatch(/^only 1 and 1 samples \(a test needs 3 per host\): a time needs the test/);
    // With three samples a side the test is made, for times as for counts.
    expect(judgeDifference(bandOf([8.6e6, 8.9e6, 9.2e6]), bandOf([1.4e6, 1.8e6, 2.2e6]), true).outcome).toBe('different');
  });

  it('reads bands without samples (results files written before they were kept) as not enough samples', () => {
    const j = judgeDifference(withoutSamples(bandOf(samplesAround(5000, 20, 11))), withoutSamples(bandOf(samplesAround(5500, 20, 12))));
    expect(j.outcome).toBe('not-enough-samples');
    expect(j.why).toMatch(/^samples not recorded \(an older results file\)/);
  });

  it('calls the same figures on both sides no difference, whatever the sample count', () => {
    expect(judgeDifference(bandOf([65536]), bandOf([65536])).outcome).toBe('no-difference');
    expect(judgeDifference(bandOf([4, 5]), bandOf([5, 4])).why).toBe('the same figures on both hosts');
  });
});
