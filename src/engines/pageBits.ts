/**
 * Per-page flags packed 32 pages to a word, and observations kept that way.
 *
 * An observation holds, per live process and region, three per-page arrays (present,
 * exclusive, zero page). One byte per page is 48 MiB per process and step for a 64 GiB region
 * (16,777,216 pages): a fork-and-write trace of it would need hundreds of MiB of observations
 * alone. The simulator therefore keeps them packed (PageBits: 2 MiB per flag), and shares a
 * packed array with the step before when it did not change. Readers see the usual shape
 * (RegionObservation: Uint8Arrays, unpacked on first access); counts and page lists
 * (observations.ts) are computed from the packed form, so printing a prediction never unpacks.
 */
import type { RegionObservation } from './types.js';

const WORD_BITS = 32;

/**
 * Four 0/1 bytes read as one little-endian 32-bit word, times this, hold the four bits side by
 * side at bits 21..24 (byte k lands at 21 + k; no two partial products meet, so nothing carries).
 */
const GATHER_4 = 0x00204081;
/** The reverse: nibble n -> the 32-bit word of its four bits as 0/1 bytes. */
const SPREAD_4 = Uint32Array.from({ length: 16 }, (_, n) => (n & 1) | ((n & 2) << 7) | ((n & 4) << 14) | ((n & 8) << 21));

/** Packing goes through this first, so an unchanged observation allocates nothing (PageBits.pack). */
let packScratch = new Uint32Array(0);

/** Packs 0/1 bytes into words[0..], 32 to a word, four bytes at a time where `a` is 4-aligned. */
function packInto(a: Uint8Array, words: Uint32Array): void {
  const n = a.length;
  const full = n >>> 5;
  if (a.byteOffset % 4 === 0) {
    const quads = new Uint32Array(a.buffer, a.byteOffset, full * 8);
    for (let w = 0; w < full; w++) {
      let bits = 0;
      for (let q = 0; q < 8; q++) {
        const x = quads[w * 8 + q]!;
        if (x !== 0) bits |= ((Math.imul(x, GATHER_4) >>> 21) & 0xf) << (q * 4);
      }
      words[w] = bits;
    }
  } else {
    for (let w = 0; w < full; w++) {
      let bits = 0;
      for (let k = 0; k < WORD_BITS; k++) if (a[(w << 5) + k] !== 0) bits |= 1 << k;
      words[w] = bits;
    }
  }
  if (full < words.length) {
    let bits = 0;
    for (let i = full << 5; i < n; i++) if (a[i] !== 0) bits |= 1 << (i & 31);
    words[full] = bits;
  }
}

/** Set bits in a 32-bit word (the classic SWAR popcount). */
function popcount(w: number): number {
  w -= (w >>> 1) & 0x55555555;
  w = (w & 0x33333333) + ((w >>> 2) & 0x33333333);
  return (Math.imul((w + (w >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let w = 0; w < a.length; w++) if (a[w] !== b[w]) return false;
  return true;
}

/** One 0/1 flag per page, packed; immutable once made, so observations may share one. */
export class PageBits {
  private constructor(
    /** Pages. */
    readonly length: number,
    /** Bit k of words[w] is page 32w + k; bits past `length` are 0. */
    private readonly words: Uint32Array,
  ) {}

  /**
   * Packs an array of 0/1 bytes (an observation's). `previous`: bits to share when they hold
   * the same pages (the step did not change them); then nothing new is kept.
   */
  static pack(a: Uint8Array, previous?: PageBits): PageBits {
    const nWords = Math.ceil(a.length / WORD_BITS);
    if (packScratch.length < nWords) packScratch = new Uint32Array(nWords);
    const words = packScratch.subarray(0, nWords);
    packInto(a, words);
    if (previous !== undefined && previous.length === a.length && sameWords(previous.words, words)) return previous;
    return new PageBits(a.length, words.slice());
  }

  equals(other: PageBits): boolean {
    return other.length === this.length && sameWords(this.words, other.words);
  }

  /** The flags as one byte per page (a new array, the caller's to keep). */
  unpack(): Uint8Array {
    const out = new Uint8Array(this.length);
    const words = this.words;
    const full = this.length >>> 5;
    const quads = new Uint32Array(out.buffer, 0, full * 8);
    for (let w = 0; w < full; w++) {
      const bits = words[w]!;
      if (bits === 0) continue;
      for (let q = 0; q < 8; q++) quads[w * 8 + q] = SPREAD_4[(bits >>> (q * 4)) & 0xf]!;
    }
    for (let i = full << 5; i < this.length; i++) out[i] = (words[full]! >>> (i & 31)) & 1;
    return out;
  }

  /** Pages set. */
  count(): number {
    let n = 0;
    const words = this.words;
    for (let w = 0; w < words.length; w++) if (words[w] !== 0) n += popcount(words[w]!);
    return n;
  }

  /** Pages set here and not in `other` (shared = present and not exclusive). */
  without(other: PageBits): PageBits {
    const words = new Uint32Array(this.words.length);
    for (let w = 0; w < words.length; w++) words[w] = this.words[w]! & ~other.words[w]!;
    return new PageBits(this.length, words);
  }

  /** Whether page `i` is set. */
  has(i: number): boolean {
    return ((this.words[i >>> 5]! >>> (i & 31)) & 1) === 1;
  }

  /**
   * The pages set as inclusive ranges, "0-511,1024,1030-1039" ("" when none): what
   * compactPages (observations.ts) gives for the unpacked array. Whole words of one value are
   * skipped at once, so a long run costs a step per 32 pages.
   */
  ranges(): string {
    const parts: string[] = [];
    const n = this.length;
    let i = 0;
    while (i < n) {
      i = this.skip(i, 0);
      if (i >= n) break;
      const end = Math.min(this.skip(i, 1), n);
      parts.push(end - 1 === i ? String(i) : `${i}-${end - 1}`);
      i = end;
    }
    return parts.join(',');
  }

  /** The first page at or after `i` whose bit is not `bit` (or past the end). */
  private skip(i: number, bit: 0 | 1): number {
    const whole = bit === 1 ? 0xffffffff : 0;
    const words = this.words;
    while (i < this.length) {
      const w = i >>> 5;
      if ((i & 31) === 0 && words[w] === whole) {
        i += WORD_BITS;
        continue;
      }
      if (((words[w]! >>> (i & 31)) & 1) !== bit) return i;
      i++;
    }
    return i;
  }
}

/** An observation of one region in one process, packed (see the top of this file). */
export interface PackedRegion {
  present: PageBits;
  exclusive: PageBits | null;
  zeroPage: PageBits | null;
  /** Traces with pageout only (RegionObservation.swapped). */
  swapped?: PageBits | null;
}

const packedOf = new WeakMap<RegionObservation, PackedRegion>();

/**
 * A RegionObservation over packed flags. Its arrays are plain Uint8Arrays to every reader,
 * unpacked on first access and kept (each observation its own, as an engine that fills arrays
 * gives them); packedRegion() hands the packed form to the counting helpers.
 */
export function packedObservation(packed: PackedRegion): RegionObservation {
  const obs = {} as RegionObservation;
  for (const key of ['present', 'exclusive', 'zeroPage', 'swapped'] as const) {
    if (key === 'swapped' && packed.swapped === undefined) continue;
    const bits = packed[key]!;
    let bytes: Uint8Array | null | undefined;
    Object.defineProperty(obs, key, {
      enumerable: true,
      get: () => (bytes ??= bits === null ? null : bits.unpack()),
    });
  }
  packedOf.set(obs, packed);
  return obs;
}

/** The packed form of an observation made by packedObservation, else undefined. */
export function packedRegion(r: RegionObservation): PackedRegion | undefined {
  return packedOf.get(r);
}
