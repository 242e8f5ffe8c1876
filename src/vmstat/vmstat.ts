/**
 * /proc/vmstat counters. They are system-wide: a delta around a measurement also counts
 * whatever else the machine did meanwhile, so treat them as a lower bound plus noise.
 */
import { readFileSync } from 'node:fs';

/** The counters cowlab reports around COW work. */
export const COW_COUNTERS = ['pgfault', 'pgreuse', 'thp_split_pmd', 'thp_fault_alloc'] as const;
export type CowCounter = (typeof COW_COUNTERS)[number];
/** Deltas of the COW counters; null where this kernel does not have the counter. */
export type CowCounters = Record<CowCounter, number | null>;

export type Vmstat = ReadonlyMap<string, number>;

export function parseVmstat(text: string): Vmstat {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const v = Number(line.slice(sp + 1));
    if (Number.isFinite(v)) out.set(line.slice(0, sp), v);
  }
  return out;
}

export function readVmstat(): Vmstat {
  return parseVmstat(readFileSync('/proc/vmstat', 'utf8'));
}

export function cowDelta(before: Vmstat, after: Vmstat): CowCounters {
  const d = {} as CowCounters;
  for (const k of COW_COUNTERS) {
    const a = before.get(k);
    const b = after.get(k);
    d[k] = a === undefined || b === undefined ? null : b - a;
  }
  return d;
}
