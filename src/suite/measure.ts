/**
 * Helpers experiments share: the summary of a forkWrite side they record (cold run apart from
 * the warm median and band), log-spaced histograms, bands, and the zod shapes of these.
 * Pure functions, no measuring.
 */
import { z } from 'zod';

import type { ForkWriteResult, ForkWriteRun, SideRun } from '../forkwrite/forkWrite.js';
import { band, type Band } from '../stats/summary.js';
import { BandSchema } from './schema.js';

/**
 * A band that never fails to exist: an empty sample gives NaNs, which the schema rejects. It
 * keeps the values it was made from (`samples`): `compare` judges a difference over them.
 */
export function bandOf(values: readonly number[]): Band {
  const b = band(values);
  return b ? { ...b, samples: [...values] } : { median: Number.NaN, min: Number.NaN, max: Number.NaN, noisy: true, samples: [] };
}

/** A single value as a band (no repeats behind it: one sample, too few for `compare` to test). */
export function pointBand(v: number): Band {
  return { median: v, min: v, max: v, noisy: false, samples: [v] };
}

/** Two bands overlap (neither is wholly above the other). */
export function overlaps(a: Band, b: Band): boolean {
  return !(a.max < b.min || b.max < a.min);
}

export const SideSummarySchema = z.object({
  /** The first run (on memory not warmed up): its p50 and p99 per page, ns. */
  cold: z.object({ p50: z.number(), p99: z.number() }),
  /** Over the measured runs: median and band of each run's p50 / p99 per page, ns. */
  warm: z.object({ p50: BandSchema, p99: BandSchema }),
  /** Minor faults per run (measured runs). */
  faults: BandSchema,
  /** Pages written per run. */
  written: z.number().int(),
  /** Sum of the per-page latencies of each measured run, ns. */
  totalNs: BandSchema,
});
export type SideSummary = z.infer<typeof SideSummarySchema>;

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

/** Cold (run 0) and warm (measured runs) figures of one side of a forkWrite result. */
export function summarizeSide(r: ForkWriteResult, pick: (run: ForkWriteRun) => SideRun | null): SideSummary {
  const first = pick(r.runs[0]!)!;
  const measured = r.runs.filter((x) => !x.warmup).map(pick).filter((s): s is SideRun => s !== null);
  return {
    cold: { p50: first.perPageNs!.p50, p99: first.perPageNs!.p99 },
    warm: {
      p50: bandOf(measured.map((s) => s.perPageNs!.p50)),
      p99: bandOf(measured.map((s) => s.perPageNs!.p99)),
    },
    faults: bandOf(measured.map((s) => s.faults)),
    written: first.written,
    totalNs: bandOf(measured.map((s) => sum(s.latencyNs))),
  };
}

/** Edges from `lo` to at least `hi`, `perDecade` bins per decade (log-spaced). */
export function logEdges(lo: number, hi: number, perDecade = 10): number[] {
  const edges: number[] = [];
  const start = Math.floor(Math.log10(lo) * perDecade);
  for (let k = start; ; k++) {
    const e = 10 ** (k / perDecade);
    edges.push(Number(e.toPrecision(4)));
    if (e >= hi) break;
  }
  return edges;
}

/** Counts of `values` in [edges[i], edges[i+1]); values outside go to the end bins. */
export function histogramCounts(values: ArrayLike<number>, edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let b = edges.findIndex((e) => e > v) - 1;
    if (b < 0) b = v < edges[0]! ? 0 : counts.length - 1;
    counts[Math.min(b, counts.length - 1)]!++;
  }
  return counts;
}

export const HistogramSchema = z.object({
  label: z.string(),
  edgesNs: z.array(z.number()),
  cold: z.array(z.number()),
  warm: z.array(z.number()),
});

export const toUs = (ns: number): number => ns / 1000;
export const toMs = (ns: number): number => ns / 1e6;
