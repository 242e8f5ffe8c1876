/**
 * classifyAccesses on hand-made snapshots: which write faults it calls copies, reuses and
 * zero-fills from the pagemap bits, PAGEMAP_SCAN's categories and PFNs it is given, and which
 * it leaves unclassified because those do not tell.
 */
import { describe, expect, it } from 'vitest';

import {
  ACCESS_CLASS,
  classifyAccesses,
  HUGE_PAGE_AMBIGUOUS,
  ZERO_PAGE_AMBIGUOUS,
  type AccessInput,
  type RegionSnapshot,
} from '../../src/engines/kernel/observe.js';
import { PagemapEntries } from '../../src/pagemap/pagemap.js';

interface Bits {
  pfn?: number;
  present?: boolean;
  exclusive?: boolean;
  file?: boolean;
}

/** Raw pagemap entries (Documentation/admin-guide/mm/pagemap.rst), one per page. */
function entries(pages: Bits[]): PagemapEntries {
  const raw = new BigUint64Array(
    pages.map((b) => {
      let e = BigInt(b.pfn ?? 0);
      if (b.exclusive) e |= 1n << 56n;
      if (b.file) e |= 1n << 61n;
      if (b.present) e |= 1n << 63n;
      return e;
    }),
  );
  return new PagemapEntries(raw.buffer);
}

function snapshot(pages: Bits[], o: { zero?: number[] | null; huge?: number[] | null } = {}): RegionSnapshot {
  return {
    entries: entries(pages),
    zero: o.zero === undefined || o.zero === null ? null : Uint8Array.from(o.zero),
    huge: o.huge === undefined || o.huge === null ? null : Uint8Array.from(o.huge),
  };
}

/** A write of every page of `before`, one fault each. */
function write(before: RegionSnapshot, after: RegionSnapshot, o: Partial<AccessInput> = {}): AccessInput {
  const n = before.entries.length;
  return {
    write: true,
    shared: false,
    pages: Uint32Array.from({ length: n }, (_, i) => i),
    faults: new Uint32Array(n).fill(1),
    flags: new Uint8Array(n),
    before,
    after,
    framesBefore: null,
    anonThp: false,
    ...o,
  };
}

// Four pages of a huge page after a fork and a COW write elsewhere in it, as an unprivileged
// reader sees them without PAGEMAP_SCAN: page 0 exclusive (pagemap follows the head page, or
// the page's own mapcount), page 1 shared, page 2 a file page (the huge zero page reads so),
// page 3 absent. After the write every page is present and exclusive.
const present = (o: Bits = {}): Bits => ({ present: true, ...o });
const before4 = [present({ exclusive: true }), present(), present({ file: true }), {}];
const after4 = [present({ exclusive: true }), present({ exclusive: true }), present({ exclusive: true }), present({ exclusive: true })];
const classes = (...names: (keyof typeof ACCESS_CLASS)[]) => Uint8Array.from(names.map((c) => ACCESS_CLASS[c]));

describe('classifyAccesses without PFNs and without PAGEMAP_SCAN', () => {
  it('leaves copies, reuses and zero-fills of a huge-page region null, naming the missing PAGEMAP_SCAN and PFNs', () => {
    const c = classifyAccesses(write(snapshot(before4), snapshot(after4), { anonThp: true }));
    expect({ copies: c.copies, reuses: c.reuses, zeroFills: c.zeroFills }).toEqual({ copies: null, reuses: null, zeroFills: null });
    expect(c.ambiguous).toBe(HUGE_PAGE_AMBIGUOUS);
    expect(c.ambiguous).toMatch(/PAGEMAP_SCAN/);
    expect(c.ambiguous).toMatch(/PFNs/);
    expect(c.unknown).toEqual({ copies: HUGE_PAGE_AMBIGUOUS, reuses: HUGE_PAGE_AMBIGUOUS, zeroFills: HUGE_PAGE_AMBIGUOUS });
    // Unclassified accesses are plain faults; the absent page's write is still a zero-fill.
    expect(c.classes).toEqual(classes('fault', 'fault', 'fault', 'zeroFill'));
  });

  it('still counts the zero-fills of a huge-page region when it knows which pages were the zero page', () => {
    const c = classifyAccesses(write(snapshot(before4, { zero: [0, 0, 0, 0] }), snapshot(after4, { zero: [0, 0, 0, 0] }), { anonThp: true }));
    expect({ copies: c.copies, reuses: c.reuses, zeroFills: c.zeroFills }).toEqual({ copies: null, reuses: null, zeroFills: 1 });
    expect(c.unknown).toEqual({ copies: HUGE_PAGE_AMBIGUOUS, reuses: HUGE_PAGE_AMBIGUOUS });
  });

  it('reads a region of 4 KiB pages from the exclusive and file bits, as before', () => {
    const zero = [0, 0, 0, 0];
    const c = classifyAccesses(write(snapshot(before4, { zero }), snapshot(after4, { zero })));
    expect({ copies: c.copies, reuses: c.reuses, zeroFills: c.zeroFills, ambiguous: c.ambiguous }).toEqual({ copies: 2, reuses: 1, zeroFills: 1, ambiguous: null });
    expect(c.classes).toEqual(classes('reuse', 'copy', 'copy', 'zeroFill'));
    // Without zero-page information the shared page may be the zero page.
    const blind = classifyAccesses(write(snapshot(before4), snapshot(after4)));
    expect({ copies: blind.copies, reuses: blind.reuses, zeroFills: blind.zeroFills, ambiguous: blind.ambiguous }).toEqual({
      copies: null,
      reuses: 1,
      zeroFills: null,
      ambiguous: ZERO_PAGE_AMBIGUOUS,
    });
  });

  it('ignores reads and accesses that took no fault', () => {
    const c = classifyAccesses(write(snapshot(before4), snapshot(after4), { anonThp: true, write: false }));
    expect({ copies: c.copies, reuses: c.reuses, zeroFills: c.zeroFills, ambiguous: c.ambiguous }).toEqual({ copies: 0, reuses: 0, zeroFills: 0, ambiguous: null });
    const none = classifyAccesses(write(snapshot(before4), snapshot(after4), { anonThp: true, faults: new Uint32Array(4) }));
    expect(none.ambiguous).toBeNull();
  });
});

describe('classifyAccesses of a huge-page region with PAGEMAP_SCAN or PFNs', () => {
  it("with PAGEMAP_SCAN's huge flag: a PMD still huge after the write was reused, one split by it was copied", () => {
    const pmd = [present({ exclusive: true }), present({ exclusive: true })];
    const zero = [0, 0];
    const c = classifyAccesses(write(snapshot(pmd, { zero, huge: [1, 1] }), snapshot(pmd, { zero, huge: [1, 0] }), { anonThp: true }));
    expect({ copies: c.copies, reuses: c.reuses, zeroFills: c.zeroFills, ambiguous: c.ambiguous }).toEqual({ copies: 1, reuses: 1, zeroFills: 0, ambiguous: null });
    expect(c.classes).toEqual(classes('reuse', 'copy'));
  });

  it('with PFNs: the same frame after the write is a reuse, another frame a copy, whatever the exclusive bit said', () => {
    const b = [present({ pfn: 10, exclusive: true }), present({ pfn: 11 })];
    const f = [present({ pfn: 20, exclusive: true }), present({ pfn: 11, exclusive: true })];
    const zero = [0, 0];
    const c = classifyAccesses(write(snapshot(b, { zero }), snapshot(f, { zero }), { anonThp: true, framesBefore: new Set([10, 11]) }));
    expect({ copies: c.copies, reuses: c.reuses, zeroFills: c.zeroFills, ambiguous: c.ambiguous }).toEqual({ copies: 1, reuses: 1, zeroFills: 0, ambiguous: null });
    expect(c.classes).toEqual(classes('copy', 'reuse'));
  });
});

describe('classifyAccesses: spurious write faults on a PMD already made writable', () => {
  // Two huge pages (1,024 pages), PMD-mapped and exclusive before and after: the same frames.
  const pmd = Array.from({ length: 1024 }, (_, i) => present({ pfn: 1000 + i, exclusive: true }));
  const zero = new Array<number>(1024).fill(0);
  const huge = new Array<number>(1024).fill(1);
  const stores = (pages: number[], o: Partial<AccessInput> = {}) =>
    write(snapshot(pmd, { zero, huge }), snapshot(pmd, { zero, huge: o.after?.huge ? Array.from(o.after.huge) : huge }), {
      anonThp: true,
      framesBefore: new Set(pmd.map((b) => b.pfn!)),
      pages: Uint32Array.from(pages),
      faults: new Uint32Array(pages.length).fill(1),
      ...o,
    });

  it('counts one reuse per huge page; the later faults there are spurious, left out of the faults, and the PMD is remembered as writable', () => {
    const writable = new Set<number>();
    const c = classifyAccesses(stores([275, 500, 527, 408, 996], { writableHuge: writable }));
    expect(c.classes).toEqual(classes('reuse', 'spurious', 'reuse', 'spurious', 'spurious'));
    expect({ reuses: c.reuses, copies: c.copies, spuriousFaults: c.spuriousFaults }).toEqual({ reuses: 2, copies: 0, spuriousFaults: 3 });
    expect([...writable].sort()).toEqual([0, 1]);
  });

  it('calls every fault spurious on a huge page an earlier step already made writable', () => {
    const c = classifyAccesses(stores([1, 2, 600], { writableHuge: new Set([0]) }));
    expect(c.classes).toEqual(classes('spurious', 'spurious', 'reuse'));
    expect(c.reuses).toBe(1);
  });

  it('classifies as usual where the PMD is no longer huge after the step, and without the set', () => {
    const split = huge.map((_, i) => (i < 512 ? 0 : 1));
    const after = snapshot(pmd, { zero, huge: split });
    const c = classifyAccesses(stores([1, 2], { writableHuge: new Set([0]), after }));
    expect(c.classes).toEqual(classes('reuse', 'reuse'));
    expect(classifyAccesses(stores([1, 2])).classes).toEqual(classes('reuse', 'reuse'));
  });

  it('applies to writes only', () => {
    const c = classifyAccesses(stores([1, 2], { write: false, writableHuge: new Set([0]) }));
    expect(c.classes).toEqual(classes('fault', 'fault'));
    expect(c.spuriousFaults).toBe(0);
  });
});
