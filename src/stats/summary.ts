/** Percentile summaries of latency samples, and the medians-over-repeats the measuring rules ask for. */
import { quantileSorted } from 'simple-statistics';

export interface LatencySummary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Percentiles of a sample (null for an empty one). */
export function summarize(values: ArrayLike<number>): LatencySummary | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  const arr = sorted as unknown as number[];
  return {
    count: sorted.length,
    min: sorted[0]!,
    p50: quantileSorted(arr, 0.5),
    p90: quantileSorted(arr, 0.9),
    p99: quantileSorted(arr, 0.99),
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length,
  };
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  return quantileSorted([...values].sort((a, b) => a - b), 0.5);
}

/** Median, min and max over repeats, and whether the band is wider than 2x (noise). */
export interface Band {
  median: number;
  min: number;
  max: number;
  /** max/min > 2: the measuring rules call that noise, not a result. */
  noisy: boolean;
  /** The values the band was made from, in the order measured (`compare` tests a difference
   *  over them). Absent in results written before samples were kept. */
  samples?: number[];
}

export function band(values: readonly number[]): Band | null {
  if (values.length === 0) return null;
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { median: median(values)!, min, max, noisy: min > 0 ? max / min > 2 : max > 0 };
}
