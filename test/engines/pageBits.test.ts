/**
 * Packed observations (src/engines/pageBits.ts): a bit per page must say exactly what the byte
 * per page said, through every reader: the arrays themselves, counts, shared pages and page
 * lists, at lengths around the 32-page word and for every pattern of runs.
 */
import { describe, expect, it } from 'vitest';

import { compactPages, countRegion, regionPageLists, sharedPages } from '../../src/engines/observations.js';
import { PageBits, packedObservation, packedRegion } from '../../src/engines/pageBits.js';
import type { RegionObservation } from '../../src/engines/types.js';
import { mulberry32 } from '../../src/util/prng.js';

/** Pages set with probability `p`, in runs when `runs` (so whole words of one value occur). */
function pattern(length: number, seed: number, p: number, runs: boolean): Uint8Array {
  const rnd = mulberry32(seed);
  const a = new Uint8Array(length);
  let v = 0;
  for (let i = 0; i < length; i++) {
    if (!runs || rnd() < 0.02) v = rnd() < p ? 1 : 0;
    a[i] = v;
  }
  return a;
}

const LENGTHS = [0, 1, 31, 32, 33, 64, 95, 1000, 4096 + 7];
const CASES = LENGTHS.flatMap((length, i) => [
  { length, name: `${length} pages, scattered`, a: pattern(length, i + 1, 0.5, false) },
  { length, name: `${length} pages, in runs`, a: pattern(length, i + 100, 0.5, true) },
  { length, name: `${length} pages, all set`, a: new Uint8Array(length).fill(1) },
  { length, name: `${length} pages, none set`, a: new Uint8Array(length) },
]);

describe('PageBits holds what the bytes held', () => {
  it.each(CASES)('$name', ({ a }) => {
    const bits = PageBits.pack(a);
    expect(bits.length).toBe(a.length);
    expect([...bits.unpack()]).toEqual([...a]);
    expect(bits.count()).toBe(a.reduce((n, x) => n + x, 0));
    expect(bits.ranges()).toBe(compactPages(a));
    for (let i = 0; i < a.length; i++) if (bits.has(i) !== (a[i] === 1)) throw new Error(`page ${i}`);
  });

  it('without(): pages set here and not there', () => {
    const a = pattern(1000, 7, 0.6, false);
    const b = pattern(1000, 8, 0.4, true);
    const expected = a.map((x, i) => x & (b[i]! ^ 1));
    expect([...PageBits.pack(a).without(PageBits.pack(b)).unpack()]).toEqual([...expected]);
  });

  it('pack(a, previous): the earlier bits when they hold the same pages (shared, unchanged), else new ones', () => {
    const a = pattern(1000, 9, 0.5, true);
    const before = PageBits.pack(a);
    expect(PageBits.pack(a.slice(), before)).toBe(before);
    const changed = a.slice();
    changed[999] = changed[999]! ^ 1;
    const after = PageBits.pack(changed, before);
    expect(after).not.toBe(before);
    expect([...after.unpack()]).toEqual([...changed]);
    expect([...before.unpack()], 'the earlier bits are not changed by a later pack').toEqual([...a]);
    const ten = PageBits.pack(new Uint8Array(10));
    expect(PageBits.pack(new Uint8Array(11), ten), 'another length is never the same pages').not.toBe(ten);
  });

  it('packs the same from an array that does not start on a 4-byte boundary', () => {
    const backing = pattern(1001, 11, 0.5, false);
    const a = backing.subarray(1);
    expect([...PageBits.pack(a).unpack()]).toEqual([...a]);
    expect(PageBits.pack(a).ranges()).toBe(compactPages(a));
  });
});

describe('a packed observation reads as the arrays it was made from', () => {
  const present = pattern(4103, 21, 0.7, true);
  const exclusive = present.map((x, i) => x & (i % 3 === 0 ? 0 : 1));
  const zeroPage = present.map((x, i) => x & (i % 3 === 0 ? 1 : 0));
  const plain: RegionObservation = { present, exclusive, zeroPage };
  const packed = () => packedObservation({ present: PageBits.pack(present), exclusive: PageBits.pack(exclusive), zeroPage: PageBits.pack(zeroPage) });

  it('has the same keys and arrays (Uint8Arrays, one per observation)', () => {
    const r = packed();
    expect(Object.keys(r)).toEqual(['present', 'exclusive', 'zeroPage']);
    expect(r).toEqual(plain);
    expect(r.present).toBeInstanceOf(Uint8Array);
    expect(r.present).toBe(r.present); // unpacked once, then kept
    expect(packed().present).not.toBe(r.present);
  });

  it('counts, shared pages and page lists come out the same, without unpacking', () => {
    const r = packed();
    expect(packedRegion(r)).toBeDefined();
    expect(countRegion(r)).toEqual(countRegion(plain));
    expect(regionPageLists(r)).toEqual(regionPageLists(plain));
    expect([...sharedPages(r)!]).toEqual([...sharedPages(plain)!]);
    expect(packedRegion(plain)).toBeUndefined();
  });

  it('keeps null for what was not observed', () => {
    const r = packedObservation({ present: PageBits.pack(present), exclusive: null, zeroPage: null });
    expect(r.exclusive).toBeNull();
    expect(countRegion(r)).toEqual({ present: countRegion(plain).present, shared: null, exclusive: null, zeroPage: null });
    expect(regionPageLists(r)).toMatchObject({ shared: null, exclusive: null, zeroPage: null });
  });
});
