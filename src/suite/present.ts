/** Formatting of bands and figures for experiment tables and headline figures. */
import { formatNs } from '../report/format.js';
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
