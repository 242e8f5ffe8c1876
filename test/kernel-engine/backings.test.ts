/**
 * The kernel engine across memory backings and the advice, exec and mprotect cases: what the
 * real kernel does, pinned by observation and by content. Where the kernel does something a
 * textbook model would not, the test says so: the simulator must match these. Where kernels
 * differ (mprotect upgrades, huge pages: profiles.ts BEHAVIOURS), the expectation is what the
 * simulator predicts with the running kernel's profile (predict()), and the test names the
 * switch; the content (values read back, PFNs as root) is checked on every kernel alike.
 */
import { readlinkSync } from 'node:fs';

import { afterEach, describe, expect, it } from 'vitest';

import { kernelWriteValue, type RegionSpec } from '../../src/internal.js';
import { descendants } from '../helpers/processes.js';
import {
  all,
  asRoot,
  because,
  engine,
  events,
  expectAsPredicted,
  expectNoProcessesLeft,
  obs,
  pages,
  pfns,
  predict,
  readValues,
  region,
  trace,
} from './helpers.js';

const n = 16;
const values = (step: number, count = n) => Array.from({ length: count }, (_, p) => kernelWriteValue(step, p));
const none = { copies: 0, reuses: 0, zeroFills: 0 };

afterEach(() => expectNoProcessesLeft());

describe.each<{ backing: RegionSpec['backing'] }>([{ backing: 'anon' }, { backing: 'memfd' }])(
  'a shared $backing mapping',
  ({ backing }) => {
    it("is not copied at fork (no page table entries in the child), and the child's writes reach the parent", async () => {
      const r = await engine.runDetailed(
        trace(`shared-${backing}`, [region({ pages: n, map: 'shared', backing })], [
          { op: 'fork', proc: 'p0', child: 'c1' },
          { op: 'write', proc: 'c1', region: 'm', pages: all(n) },
          { op: 'read', proc: 'p0', region: 'm', pages: all(n) },
        ]),
      );
      expect(pages(r, 0, 'c1')).toEqual({ present: 0, exclusive: 0, zeroPage: 0 });
      // Each write fault maps the existing page-cache frame: a fault, not an event.
      expect(events(r, 1)).toEqual({ ...none, faults: n });
      expect(pages(r, 1, 'c1')).toEqual({ present: n, exclusive: 0, zeroPage: 0 });
      expect(pages(r, 1, 'p0')).toEqual({ present: n, exclusive: 0, zeroPage: 0 });
      expect(readValues(r, 2)).toEqual(values(1));
      if (asRoot) {
        expect(pfns(r, 1, 'c1')).toEqual(pfns(r, -1, 'p0'));
        expect(obs(r, 1).frames.m).toBe(n);
      }
    });

    it('zero-fills pages first written in any process, and only maps the ones already in the page cache', async () => {
      const r = await engine.runDetailed(
        trace(`shared-${backing}-unpopulated`, [region({ pages: n, map: 'shared', backing, populate: 'none' })], [
          { op: 'fork', proc: 'p0', child: 'c1' },
          { op: 'write', proc: 'c1', region: 'm', pages: all(n / 2) },
          { op: 'exit', proc: 'c1' },
          // Pages 0-7 are in the page cache although no live process maps them any more.
          { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
          { op: 'fork', proc: 'p0', child: 'c2' },
          { op: 'read', proc: 'c2', region: 'm', pages: all(n) },
        ]),
      );
      expect(events(r, 1)).toEqual({ ...none, zeroFills: n / 2, faults: n / 2 });
      expect(events(r, 3)).toEqual({ ...none, zeroFills: n / 2, faults: n });
      expect(readValues(r, 5)).toEqual(values(3));
      // Read faults on cached shmem pages map their neighbours too (fault-around, 16 pages):
      // one fault maps the whole region.
      expect(events(r, 5)).toEqual({ ...none, faults: 1 });
      expect(pages(r, 5, 'c2')).toEqual({ present: n, exclusive: 0, zeroPage: 0 });
    });
  },
);

describe('a private memfd mapping', () => {
  it('shares the populated (anonymous) copies after fork and copies them again on write', async () => {
    const r = await engine.runDetailed(
      trace('memfd-private', [region({ pages: n, backing: 'memfd' })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'c1', region: 'm', pages: all(n) },
        { op: 'read', proc: 'p0', region: 'm', pages: all(n) },
        { op: 'read', proc: 'c1', region: 'm', pages: all(n) },
      ]),
    );
    // populate 'write' already replaced each page-cache page by a private anonymous copy.
    expect(events(r, -1)).toEqual({ ...none, zeroFills: n, faults: n });
    expect(pages(r, 0, 'c1')).toEqual({ present: n, exclusive: 0, zeroPage: 0 });
    expect(events(r, 1)).toEqual({ ...none, copies: n, faults: n });
    expect(readValues(r, 2)).toEqual(values(-1));
    expect(readValues(r, 3)).toEqual(values(1));
    if (asRoot) expect(obs(r, 1).frames.m).toBe(2 * n);
  });

  it('maps page-cache pages on read; a write then copies a mapped one, or zero-fills one the process did not map', async () => {
    const r = await engine.runDetailed(
      trace('memfd-private-read', [region({ pages: n, backing: 'memfd', populate: 'read' })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'c1', region: 'm', pages: all(n) },
        { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
      ]),
    );
    // Read faults allocate the page-cache pages one by one (nothing cached yet to fault around).
    expect(events(r, -1)).toEqual({ ...none, faults: n });
    expect(pages(r, -1, 'p0')).toEqual({ present: n, exclusive: n, zeroPage: 0 });
    // No anonymous page in the mapping: fork copies no page table entry.
    expect(pages(r, 0, 'c1')).toEqual({ present: 0, exclusive: 0, zeroPage: 0 });
    // A fresh anonymous frame (filled from the page cache) where the child mapped nothing.
    expect(events(r, 1)).toEqual({ ...none, zeroFills: n, faults: n });
    // p0 mapped the page-cache frames: its writes copy them.
    expect(events(r, 2)).toEqual({ ...none, copies: n, faults: n });
    if (asRoot) expect(obs(r, 2).frames.m).toBe(2 * n);
  });
});

describe('fork advice', () => {
  it('MADV_DONTFORK: the child has no page of the region, and the parent keeps writing without faults', async () => {
    const r = await engine.runDetailed(
      trace('dontfork', [region({ pages: n, advice: ['dontfork'] })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
      ]),
    );
    expect(pages(r, 0, 'c1')).toEqual({ present: 0, exclusive: 0, zeroPage: 0 });
    expect(pages(r, 0, 'p0')).toEqual({ present: n, exclusive: n, zeroPage: 0 });
    expect(events(r, 1)).toEqual({ ...none, faults: 0 });
  });

  it('MADV_WIPEONFORK: the child reads zeros (the zero page), then zero-fills; the parent is not write-protected', async () => {
    const r = await engine.runDetailed(
      trace('wipeonfork', [region({ pages: n, advice: ['wipeonfork'] })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'read', proc: 'c1', region: 'm', pages: all(n) },
        { op: 'write', proc: 'c1', region: 'm', pages: all(n) },
        { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
        { op: 'read', proc: 'p0', region: 'm', pages: all(n) },
      ]),
    );
    expect(pages(r, 0, 'c1')).toEqual({ present: 0, exclusive: 0, zeroPage: 0 });
    expect(readValues(r, 1)).toEqual(new Array(n).fill(0n));
    expect(pages(r, 1, 'c1')).toEqual({ present: n, exclusive: 0, zeroPage: n });
    expect(events(r, 2)).toEqual({ ...none, zeroFills: n, faults: n });
    expect(events(r, 3)).toEqual({ ...none, faults: 0 });
    expect(readValues(r, 4)).toEqual(values(3));
  });
});

describe('exec', () => {
  it("replaces the child's image: its mappings are gone, its copies freed, the parent's pages exclusive again", async () => {
    const execd: string[] = [];
    const r = await engine.runDetailed(
      trace('fork-exec', [region({ pages: n })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'c1', region: 'm', pages: all(n / 2) },
        { op: 'exec', proc: 'c1' },
        { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
        { op: 'exit', proc: 'c1' },
      ]),
      {
        onStep: (done) => {
          if (done !== 3) return;
          for (const p of descendants()) {
            try {
              execd.push(readlinkSync(`/proc/${p.pid}/exe`));
            } catch {
              // gone meanwhile
            }
          }
        },
      },
    );
    expect(execd.some((exe) => /\/cat$/.test(exe))).toBe(true);
    expect(pages(r, 2, 'c1')).toEqual({ present: 0, exclusive: 0, zeroPage: 0 });
    expect(pages(r, 2, 'p0')).toEqual({ present: n, exclusive: n, zeroPage: 0 });
    expect(events(r, 2)).toEqual({ ...none, faults: 0 });
    // Every page of p0 is still write-protected from the fork but no longer shared.
    expect(events(r, 3)).toEqual({ ...none, reuses: n, faults: n });
    expect(r.details[3]!.pids.c1).toBe(r.details[1]!.pids.c1);
    if (asRoot) {
      expect(obs(r, 1).frames.m).toBe(n + n / 2);
      expect(obs(r, 2).frames.m).toBe(n);
    }
    expect(Object.keys(obs(r, 4).processes)).toEqual(['p0']);
  });
});

describe('mprotect read-only, then read-write, then write', () => {
  it.each([
    {
      // 6.0+: mprotect sets the write bit of exclusive anonymous PTEs itself (6.0, 6.1: dirty
      // ones, which these are); before, each store takes a write fault that reuses the page.
      name: "exclusive pages are made writable by mprotect itself or by one reusing fault each, as the kernel's profile says (mprotectUpgrade)",
      steps: [] as const,
    },
    {
      // On every kernel: fork took the pages' exclusive mark, and only a fault gives it back.
      name: 'pages that were shared by a fork (sharer gone) stay write-protected: each write faults and reuses (mprotectUpgrade)',
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'exit', proc: 'c1' },
      ] as const,
    },
  ])('$name', async ({ steps }) => {
    const t = trace('mprotect', [region({ pages: n })], [
      ...steps,
      { op: 'mprotect', proc: 'p0', region: 'm', prot: 'r' },
      { op: 'mprotect', proc: 'p0', region: 'm', prot: 'rw' },
      { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
      { op: 'read', proc: 'p0', region: 'm', pages: all(n) },
    ]);
    const r = await engine.runDetailed(t);
    const p = predict(t);
    const last = steps.length + 2;
    expect(events(r, last - 2)).toEqual({ ...none, faults: 0 });
    expectAsPredicted(r, p, last, ['p0'], because('mprotectUpgrade'));
    expect(readValues(r, last + 1)).toEqual(values(last));
  });

  it("changes only the listed pages, and untouched pages still zero-fill, as the kernel's profile says (mprotectUpgrade)", async () => {
    const t = trace('mprotect-some', [region({ pages: n, populate: 'none' })], [
      { op: 'write', proc: 'p0', region: 'm', pages: all(n / 2) },
      { op: 'mprotect', proc: 'p0', region: 'm', prot: 'r', pages: { start: 0, end: 4 } },
      { op: 'mprotect', proc: 'p0', region: 'm', prot: 'rw', pages: { start: 0, end: 4 } },
      { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
      { op: 'read', proc: 'p0', region: 'm', pages: all(n) },
    ]);
    const r = await engine.runDetailed(t);
    expectAsPredicted(r, predict(t), 3, ['p0'], because('mprotectUpgrade'));
    expect(events(r, 3).zeroFills).toBe(n / 2);
    expect(readValues(r, 4)).toEqual(values(3));
  });
});

describe('a THP region written after fork', () => {
  const big = 2048;
  const every64 = (from: number) => ({ start: from, end: big, stride: 64 });

  it('copies one 4 KiB page per written page; the neighbours keep their frames; the parent reuses whole huge pages later', async () => {
    const t = trace('thp-fork-write', [region({ pages: big, thp: true })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'm', pages: every64(0) },
      { op: 'exit', proc: 'c1' },
      { op: 'write', proc: 'p0', region: 'm', pages: every64(0) },
      { op: 'read', proc: 'p0', region: 'm', pages: every64(0) },
    ]);
    const r = await engine.runDetailed(t);
    // Four 2 MiB pages: one zero-filling fault each. Anything else means THP was not used.
    expect(events(r, -1), 'the region must be backed by 4 huge pages').toEqual({ ...none, zeroFills: 4, faults: 4 });
    expect(events(r, 1)).toEqual({ ...none, copies: big / 64, faults: big / 64 });
    expect(pages(r, 1, 'c1')).toEqual({ present: big, exclusive: big / 64, zeroPage: 0 });
    // What p0's PMD entries read (c1 copied every head page) is the kernel's: pmdExclusive.
    expectAsPredicted(r, predict(t), 1, ['p0', 'c1'], because('pmdExclusive', 'pagemapExclusive'));
    if (asRoot) {
      const before = pfns(r, 0, 'c1');
      const after = pfns(r, 1, 'c1');
      const moved = after.flatMap((f, p) => (f !== before[p] ? [p] : []));
      expect(moved).toEqual(Array.from({ length: big / 64 }, (_, i) => i * 64));
      expect(obs(r, 1).frames.m).toBe(big + big / 64);
    }
    // p0 still maps each huge page with one PMD: one fault reuses 512 pages at once.
    expect(events(r, 3)).toEqual({ ...none, reuses: 4, faults: 4 });
    expect(readValues(r, 4)).toEqual(Array.from({ length: big / 64 }, (_, i) => kernelWriteValue(3, i * 64)));
  });

  it("reuses or copies the subpages of a PTE-mapped huge page once the sharer is gone, as the kernel's profile says (thpPteReuse)", async () => {
    // 6.15+ reuses each page in place ('per-page'); 6.9 to 6.14 copy every one ('never');
    // before 6.9 a page is copied unless it holds the huge page's last reference ('sole-reference').
    const t = trace('thp-pte-mapped-reuse', [region({ pages: 512, thp: true })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      // p0's own write splits its PMD: from now on p0 maps the huge page with 512 PTEs.
      { op: 'write', proc: 'p0', region: 'm', pages: { pages: [0] } },
      { op: 'exit', proc: 'c1' },
      { op: 'write', proc: 'p0', region: 'm', pages: { start: 1, end: 512 } },
      { op: 'read', proc: 'p0', region: 'm', pages: all(512) },
    ]);
    const r = await engine.runDetailed(t);
    const p = predict(t);
    expect(events(r, -1), 'the region must be backed by a huge page').toEqual({ ...none, zeroFills: 1, faults: 1 });
    expect(events(r, 1)).toEqual({ ...none, copies: 1, faults: 1 });
    expectAsPredicted(r, p, 3, ['p0'], because('thpPteReuse'));
    expect(events(r, 3).faults).toBe(511); // one fault each, copied or reused
    expect(readValues(r, 4)).toEqual([kernelWriteValue(1, 0), ...values(3, 512).slice(1)]);
    if (asRoot) {
      // The pages reused kept their frames; the copied ones moved.
      const before = pfns(r, 2, 'p0');
      const kept = pfns(r, 3, 'p0').filter((f, i) => i > 0 && f === before[i]).length;
      expect(kept, because('thpPteReuse')).toBe(events(p, 3).reuses);
    }
  });

  it("reports a PMD-mapped page as exclusive or shared as the kernel's profile says (pmdExclusive)", async () => {
    // c1 copies 16 subpages; the other 1008 subpages of the two huge pages are still mapped by
    // both. p0 keeps its PMDs. 'head-page' (6.1, 6.18): all 512 entries of a PMD take the head
    // page's bit, so they read exclusive exactly when c1 copied the head; 'per-page' (6.11 to
    // 6.14): each entry its own page's, so exactly the 16 pages c1 copied read exclusive.
    for (const first of [0, 1]) {
      const written = { start: first, end: 1024, stride: 64 };
      const t = trace('thp-exclusive-bit', [region({ pages: 1024, thp: true })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'c1', region: 'm', pages: written },
        { op: 'read', proc: 'p0', region: 'm', pages: written },
      ]);
      const r = await engine.runDetailed(t);
      expect(events(r, -1), 'the region must be backed by 2 huge pages').toEqual({ ...none, zeroFills: 2, faults: 2 });
      expectAsPredicted(r, predict(t), 1, ['p0', 'c1'], `${because('pmdExclusive', 'pagemapExclusive')}, first written page ${first}`);
      expect(pages(r, 1, 'c1').exclusive).toBe(16); // c1's copies, on every kernel
      const pagesWritten = Array.from({ length: 16 }, (_, i) => first + 64 * i);
      expect(readValues(r, 2)).toEqual(pagesWritten.map((pg) => kernelWriteValue(-1, pg)));
      if (asRoot) {
        const before = pfns(r, 0, 'c1');
        expect(pfns(r, 1, 'c1').flatMap((f, pg) => (f !== before[pg] ? [pg] : []))).toEqual(pagesWritten);
      }
    }
  });
});

describe('a THP region and mprotect', () => {
  it("an exclusive huge page is made writable by mprotect itself or by one reusing fault per PMD, as the kernel's profile says (mprotectUpgrade)", async () => {
    // 'pte-and-pmd' (6.2+) upgrades the PMD too; 'dirty-pte' (6.0, 6.1) and 'none' leave it
    // write-protected, and the first store to each huge page reuses it whole.
    const written = { start: 0, end: 1024, stride: 64 };
    const t = trace('thp-mprotect', [region({ pages: 1024, thp: true })], [
      { op: 'mprotect', proc: 'p0', region: 'm', prot: 'r' },
      { op: 'mprotect', proc: 'p0', region: 'm', prot: 'rw' },
      { op: 'write', proc: 'p0', region: 'm', pages: written },
      { op: 'read', proc: 'p0', region: 'm', pages: written },
    ]);
    const r = await engine.runDetailed(t);
    expect(events(r, -1), 'the region must be backed by 2 huge pages').toEqual({ ...none, zeroFills: 2, faults: 2 });
    expectAsPredicted(r, predict(t), 2, ['p0'], because('mprotectUpgrade'));
    expect(readValues(r, 3)).toEqual(Array.from({ length: 16 }, (_, i) => kernelWriteValue(2, 64 * i)));
    if (asRoot) expect(pfns(r, 2, 'p0')).toEqual(pfns(r, -1, 'p0'));
  });
});

describe('a THP region only read', () => {
  it("maps the huge zero page; a write then gets a whole huge page or one 4 KiB page, as the kernel's profile says (hugeZeroWrite)", async () => {
    // 6.13+ replaces the huge zero page by a new huge page ('huge-page'); before, the PMD is
    // split into zero-page PTEs and the store zero-fills one 4 KiB page ('split'). Without
    // use_zero_page (hugeZeroPage off) the read already allocated huge pages.
    const t = trace('thp-huge-zero-write', [region({ pages: 1024, thp: true, populate: 'read' })], [
      { op: 'write', proc: 'p0', region: 'm', pages: { pages: [3] } },
      { op: 'read', proc: 'p0', region: 'm', pages: all(1024) },
    ]);
    const r = await engine.runDetailed(t);
    const p = predict(t);
    const what = because('hugeZeroPage', 'hugeZeroWrite');
    expectAsPredicted(r, p, -1, ['p0'], what);
    expectAsPredicted(r, p, 0, ['p0'], what);
    expect(readValues(r, 1)).toEqual(Array.from({ length: 1024 }, (_, pg) => (pg === 3 ? kernelWriteValue(0, 3) : 0n)));
  });
});
