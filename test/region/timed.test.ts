/**
 * CowView.timedStores / timedLoads: one access per listed page, each timed in native code,
 * taking the region's real COW faults. Checked by content (what each store wrote, in this
 * view and not in its snapshot) and by the region's own counters.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { CowRegion, pageSize, type CowView } from '../../src/index.js';
import { thrownCowlabError } from '../helpers/errors.js';

const PAGES = 64;
const open: CowRegion[] = [];
function region(pages = PAGES): CowRegion {
  const r = CowRegion.create({ pages, populate: 'write' });
  open.push(r);
  return r;
}
afterEach(() => {
  for (const r of open.splice(0)) r.close();
});

/** The u64 at offset 0 of page p. */
function word0(v: CowView, p: number): bigint {
  return new BigUint64Array(v.buffer, p * pageSize(), 1)[0]!;
}

describe('CowView.timedStores', () => {
  it('stores tag + page into each listed page of this view only, one COW copy per shared page', () => {
    const r = region();
    const parent = r.root;
    new Uint8Array(parent.buffer).fill(0xab);
    const child = parent.fork();
    const order = Uint32Array.from([63, 7, 0, 7]);
    const before = r.stats();
    const lat = child.timedStores(order, 5n << 32n);
    const after = r.stats();
    expect(lat).toBeInstanceOf(Float64Array);
    expect(lat.length).toBe(order.length);
    for (const p of [63, 7, 0]) {
      expect(word0(child, p)).toBe((5n << 32n) + BigInt(p));
      expect(word0(parent, p)).toBe(0xababababababababn);
    }
    expect(word0(child, 1)).toBe(0xababababababababn);
    // Three distinct pages were shared: three faults, three copies; the repeat of page 7 is free.
    expect(after.faults - before.faults).toBe(3);
    expect(after.copies - before.copies).toBe(3);
  });

  it('reuses in place, without a copy, once the other view is gone', () => {
    const r = region();
    const child = r.root.fork();
    child.release();
    const before = r.stats();
    r.root.timedStores(Uint32Array.from([1, 2]));
    const after = r.stats();
    expect(after.reuses - before.reuses).toBe(2);
    expect(after.copies - before.copies).toBe(0);
    expect(word0(r.root, 2)).toBe(2n);
  });
});

describe('CowView.timedLoads', () => {
  it('times each load and changes nothing: no fault, no copy, the bytes as they were', () => {
    const r = region();
    new Uint8Array(r.root.buffer).fill(3);
    const snap = r.root.fork();
    const before = r.stats();
    const lat = snap.timedLoads(Uint32Array.from([0, 10, 20]));
    const after = r.stats();
    expect(lat.length).toBe(3);
    expect(after.faults).toBe(before.faults);
    expect(after.copies).toBe(before.copies);
    expect(word0(snap, 10)).toBe(0x0303030303030303n);
  });
});

describe('timed accesses refuse bad input, before any access', () => {
  it.each([
    ['a page list that is not a Uint32Array', [0, 1], /^pages: must be a Uint32Array of page indices$/],
    ['a page outside the view', Uint32Array.from([0, PAGES]), new RegExp(`^pages: page ${PAGES} \\(entry 1\\) is outside the view \\(pages: ${PAGES}\\)$`)],
  ])('%s', (_what, pages, message) => {
    const r = region();
    const before = r.stats();
    const e = thrownCowlabError(() => r.root.timedStores(pages as Uint32Array));
    expect(e).toMatchObject({ code: 'ERR_INVALID_OPTION', field: 'pages' });
    expect(e.message).toMatch(message);
    expect(thrownCowlabError(() => r.root.timedLoads(pages as Uint32Array)).message).toMatch(message);
    expect(r.stats().faults).toBe(before.faults);
  });

  it.each([-1n, 1n << 64n, 3])('a tag that is not a u64 bigint (%s)', (tag) => {
    const r = region();
    const e = thrownCowlabError(() => r.root.timedStores(Uint32Array.from([0]), tag as bigint));
    expect(e).toMatchObject({ code: 'ERR_INVALID_OPTION', field: 'tag' });
  });

  it('a released view', () => {
    const r = region();
    const v = r.root.fork();
    v.release();
    expect(thrownCowlabError(() => v.timedStores(Uint32Array.from([0]))).code).toBe('ERR_RELEASED');
    expect(thrownCowlabError(() => v.timedLoads(Uint32Array.from([0]))).code).toBe('ERR_RELEASED');
  });
});
