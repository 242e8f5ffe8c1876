/**
 * How much each fuzz property tries. Under `npm test` a bounded number of inputs per kind (a
 * few seconds each); under `npm run fuzz -- --seconds N` (scripts/fuzz.mjs sets
 * COWLAB_FUZZ_SECONDS) each kind runs for its share of N seconds. Every property counts the
 * inputs it tried into COWLAB_FUZZ_REPORT (one JSON line per kind), which the script prints.
 */
import { appendFileSync } from 'node:fs';

import type { Parameters as FcParameters } from 'fast-check';

const SECONDS = Number(process.env.COWLAB_FUZZ_SECONDS ?? 0);

/** Shares of a long run, per kind (they add up to 1). */
const SHARE = { traces: 0.2, 'sim-vs-kernel': 0.25, results: 0.15, cli: 0.25, region: 0.15 } as const;
export type FuzzKind = keyof typeof SHARE;

/** True during `npm run fuzz` (time-bounded), false under `npm test` (count-bounded). */
export const LONG_RUN = SECONDS > 0;

/** fast-check parameters: `bounded` inputs under npm test, else the kind's share of the time. */
export function budget(kind: FuzzKind, bounded: number): FcParameters<unknown> {
  const seed = process.env.COWLAB_FUZZ_SEED === undefined ? undefined : Number(process.env.COWLAB_FUZZ_SEED);
  if (!LONG_RUN) return { numRuns: bounded, ...(seed === undefined ? {} : { seed }) };
  return { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: SHARE[kind] * SECONDS * 1000, markInterruptAsFailure: false, ...(seed === undefined ? {} : { seed }) };
}

/** The vitest timeout of a property of this kind. */
export function timeoutOf(kind: FuzzKind, boundedMs: number): number {
  return LONG_RUN ? SHARE[kind] * SECONDS * 1000 + 120_000 : boundedMs;
}

/** Counts inputs per kind (and per outcome) and writes them to the report file at the end. */
export class Tally {
  readonly counts: Record<string, number> = {};
  constructor(readonly kind: FuzzKind) {}

  add(outcome: string): void {
    this.counts[outcome] = (this.counts[outcome] ?? 0) + 1;
  }

  write(): void {
    const file = process.env.COWLAB_FUZZ_REPORT;
    if (file) appendFileSync(file, `${JSON.stringify({ kind: this.kind, counts: this.counts })}\n`);
  }
}
