/**
 * Copy policies of a COW region:
 *   lazy           the kernel's: a write fault copies the one page it hit (or reuses it when
 *                  no other view maps its frame any more)
 *   eager          the naive fork: a snapshot copies every page at once; writes never fault
 *   faultAround:K  lazy, but a copying fault also copies the up-to-K following pages of the
 *                  same view that are still shared, into adjacent frames, with one mmap
 */
import { invalidOption } from '../errors.js';

export type CowPolicy = { kind: 'lazy' } | { kind: 'eager' } | { kind: 'faultAround'; pages: number };

/** What users may pass: 'lazy', 'eager', 'faultAround:16', or { faultAround: 16 }. */
export type CowPolicyInput = 'lazy' | 'eager' | `faultAround:${number}` | { faultAround: number } | CowPolicy;

/** The largest fault-around window: 1 MiB of 4 KiB pages after the faulting one. */
export const MAX_FAULT_AROUND = 256;

function aroundPages(value: unknown, field: string, given: string): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_FAULT_AROUND) {
    throw invalidOption(field, `faultAround needs K between 1 and ${MAX_FAULT_AROUND} (faultAround:K), got ${given}`);
  }
  return n;
}

export function parsePolicy(input: unknown, field = 'policy'): CowPolicy {
  if (input === undefined || input === 'lazy') return { kind: 'lazy' };
  if (input === 'eager') return { kind: 'eager' };
  if (typeof input === 'string') {
    const m = /^faultAround:(.*)$/.exec(input);
    if (m) return { kind: 'faultAround', pages: aroundPages(m[1], field, `'${input}'`) };
  } else if (typeof input === 'object' && input !== null) {
    const o = input as Record<string, unknown>;
    if (o.kind === 'lazy' || o.kind === 'eager') return { kind: o.kind };
    if (o.kind === 'faultAround') return { kind: 'faultAround', pages: aroundPages(o.pages, field, String(o.pages)) };
    if ('faultAround' in o) return { kind: 'faultAround', pages: aroundPages(o.faultAround, field, String(o.faultAround)) };
  }
  const shown = typeof input === 'string' ? `'${input}'` : JSON.stringify(input);
  throw invalidOption(field, `must be lazy, eager or faultAround:K, got ${shown}`);
}

export function formatPolicy(p: CowPolicy): string {
  return p.kind === 'faultAround' ? `faultAround:${p.pages}` : p.kind;
}
