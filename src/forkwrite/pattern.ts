/**
 * Write patterns: which pages a fork-write run stores to, and in what order.
 *   seq       every page, ascending
 *   rand      every page once, in a seeded random order (defeats prefetch and locality)
 *   stride:N  pages 0, N, 2N, ... (one page in N)
 */
import { invalidOption } from '../errors.js';
import { permutation } from '../util/prng.js';

/** A pattern as written in options and on the command line: `seq`, `rand` or `stride:N`. */
export type PatternSpec = 'seq' | 'rand' | `stride:${number}`;

export type WritePattern =
  | { kind: 'seq' }
  | { kind: 'rand'; seed: number }
  | { kind: 'stride'; stride: number };

export function parsePattern(text: string, seed = 1, field = 'pattern'): WritePattern {
  if (text === 'seq') return { kind: 'seq' };
  if (text === 'rand') return { kind: 'rand', seed };
  const m = /^stride:(\d+)$/.exec(text);
  if (m) {
    const stride = Number(m[1]);
    if (stride >= 1 && Number.isSafeInteger(stride)) return { kind: 'stride', stride };
  }
  throw invalidOption(field, `must be seq, rand or stride:N with N >= 1, got '${text}'`);
}

export function formatPattern(p: WritePattern): PatternSpec {
  return p.kind === 'stride' ? `stride:${p.stride}` : p.kind;
}

/** The pages to write, in order; `count` keeps the first `count` of them. */
export function pageOrder(p: WritePattern, pages: number, count?: number): Uint32Array {
  let order: Uint32Array;
  switch (p.kind) {
    case 'seq':
      order = new Uint32Array(pages).map((_, i) => i);
      break;
    case 'rand':
      order = permutation(pages, p.seed);
      break;
    case 'stride': {
      order = new Uint32Array(Math.ceil(pages / p.stride)).map((_, i) => i * p.stride);
      break;
    }
  }
  return count === undefined || count >= order.length ? order : order.slice(0, count);
}
