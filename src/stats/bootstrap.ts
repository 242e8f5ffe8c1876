/**
 * A percentile bootstrap confidence interval for the ratio of two medians, median(b) / median(a):
 * each side is resampled with replacement, `resamples` times, from a seeded generator
 * (mulberry32), so the same samples always give the same interval.
 */
import { mulberry32 } from '../util/prng.js';

export interface BootstrapOptions {
  /** Confidence level, 0 < level < 1 (0.95: a 95 % interval). */
  level?: number;
  /** Resamples drawn per side. */
  resamples?: number;
  seed?: number;
}

export interface RatioInterval {
  /** median(b) / median(a) of the samples themselves. */
  ratio: number;
  low: number;
  high: number;
  level: number;
  resamples: number;
}

export const BOOTSTRAP_DEFAULTS = { level: 0.95, resamples: 2000, seed: 0x5eed } as const;

function medianOfSorted(s: Float64Array): number {
  const n = s.length;
  const h = n >> 1;
  return n % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

export function medianOf(values: readonly number[]): number {
  return medianOfSorted(Float64Array.from(values).sort());
}

function resampleMedian(values: readonly number[], scratch: Float64Array, rand: () => number): number {
  const n = values.length;
  for (let i = 0; i < n; i++) scratch[i] = values[Math.floor(rand() * n)]!;
  scratch.sort();
  return medianOfSorted(scratch);
}

/** The value at quantile q of sorted values (linear between neighbours). */
function quantile(sorted: Float64Array, q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * The interval of median(b) / median(a); null when either side is empty or a's median (or a
 * resample's) is not positive, where a ratio means nothing.
 */
export function bootstrapMedianRatio(a: readonly number[], b: readonly number[], opts: BootstrapOptions = {}): RatioInterval | null {
  const level = opts.level ?? BOOTSTRAP_DEFAULTS.level;
  const resamples = opts.resamples ?? BOOTSTRAP_DEFAULTS.resamples;
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be between 0 and 1, got ${level}`);
  if (a.length === 0 || b.length === 0) return null;
  const ma = medianOf(a);
  if (!(ma > 0)) return null;
  const rand = mulberry32(opts.seed ?? BOOTSTRAP_DEFAULTS.seed);
  const sa = new Float64Array(a.length);
  const sb = new Float64Array(b.length);
  const ratios = new Float64Array(resamples);
  for (let i = 0; i < resamples; i++) {
    const ra = resampleMedian(a, sa, rand);
    if (!(ra > 0)) return null;
    ratios[i] = resampleMedian(b, sb, rand) / ra;
  }
  ratios.sort();
  const tail = (1 - level) / 2;
  return { ratio: medianOf(b) / ma, low: quantile(ratios, tail), high: quantile(ratios, 1 - tail), level, resamples };
}
