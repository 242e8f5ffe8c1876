/**
 * Resolves a page selector to the pages it names, in order. Every engine calls this, so a
 * random selection is the same pages everywhere (mulberry32 from src/util/prng.ts).
 */
import { sample } from '../util/prng.js';
import type { PageSelector } from './types.js';

export function selectPages(sel: PageSelector, regionPages: number): Uint32Array {
  if ('random' in sel) return sample(regionPages, sel.random, sel.seed);
  if ('pages' in sel) return Uint32Array.from(sel.pages);
  const stride = sel.stride ?? 1;
  const n = sel.end > sel.start ? Math.ceil((sel.end - sel.start) / stride) : 0;
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = sel.start + i * stride;
  return out;
}

/** Human form, for reports: "0..512", "0..8/2", "[3, 9, 27]", "64 random (seed 7)". */
export function describeSelector(sel: PageSelector): string {
  if ('random' in sel) return `${sel.random} random (seed ${sel.seed})`;
  if ('pages' in sel) return sel.pages.length <= 6 ? `[${sel.pages.join(', ')}]` : `${sel.pages.length} listed pages`;
  return `${sel.start}..${sel.end}${sel.stride && sel.stride !== 1 ? `/${sel.stride}` : ''}`;
}
