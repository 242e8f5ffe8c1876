/** Formatting of bands and figures for experiment tables and headline figures. */
import { formatBytes, formatNs } from '../report/format.js';
import type { Band } from '../stats/summary.js';

/** "5.60 µs (5.50–5.80)", with "noisy" when the band is wider than 2x. */
export function formatBand(b: Band, fmt: (v: number) => string = formatNs): string {
  const range = b.min === b.max ? '' : ` (${fmt(b.min)}–${fmt(b.max)})`;
  return `${fmt(b.median)}${range}${b.noisy ? ' noisy' : ''}`;
}

export function formatPercent(f: number, digits = 0): string {
  return `${(f * 100).toFixed(digits)} %`;
}

export function formatMs(ns: number, digits = 2): string {
  return `${(ns / 1e6).toFixed(digits)} ms`;
}

/**
 * A metric's value in its unit, for people: times and sizes in their units, counts and ratios
 * exact (65,536, never 65540), at most two decimals for a median between two counts.
 */
export function formatMetricValue(unit: string): (v: number) => string {
  switch (unit) {
    case 'ns':
      return formatNs;
    case 'bytes':
      return formatBytes;
    case 'percent':
      return (v) => `${v.toFixed(1)} %`;
    case 'ns/GiB':
      return (v) => `${(v / 1e6).toFixed(2)} ms/GiB`;
    default:
      return (v) => (Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: 2 }) : '-');
  }
}
