/**
 * The kernel engine on private anonymous memory: real processes, real forks, observations from
 * real pagemap reads, content checked by reading it back in the processes themselves.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { kernelWriteValue, KPF, readKpageFlags } from '../../src/internal.js';
import {
  all,
  asRoot,
  engine,
  events,
  expectNoProcessesLeft,
  NEEDS_ROOT,
  obs,
  pages,
  pfns,
  readValues,
  region,
  trace,
} from './helpers.js';

const N = 256;
const written = (step: number, n = N) => Array.from({ length: n }, (_, p) => kernelWriteValue(step, p));

afterEach(() => expectNoProcessesLeft());

describe('fork, then the child writes every page', () => {
  const t = trace('fork-child-writes-all', [region({ pages: N })], [
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'write', proc: 'c1', region: 'm', pages: all(N) },
    { op: 'read', proc: 'c1', region: 'm', pages: all(N) },
    { op: 'read', proc: 'p0', region: 'm', pages: all(N) },
  ]);

  it('shares every page after the fork, then copies each one in the child exactly once', async () => {
    const r = await engine.runDetailed(t);
    expect(obs(r, -1).op).toBe('setup');
    expect(pages(r, -1, 'p0')).toEqual({ present: N, exclusive: N, zeroPage: 0 });
    expect(events(r, -1)).toEqual({ copies: 0, reuses: 0, zeroFills: N, faults: N });
    expect(pages(r, 0, 'p0')).toEqual({ present: N, exclusive: 0, zeroPage: 0 });
    expect(pages(r, 0, 'c1')).toEqual({ present: N, exclusive: 0, zeroPage: 0 });
    expect(events(r, 0)).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(r.details[1]!.opFaults).toBe(0); // the fork itself faults nowhere
    expect(events(r, 1)).toEqual({ copies: N, reuses: 0, zeroFills: 0, faults: N });
    // The only faults of the write are the stores' own: one per page, none from the loop.
    expect(Array.from(r.details[2]!.access[0]!.faults)).toEqual(new Array(N).fill(1));
    // After the copy each side maps its own frame.
    expect(pages(r, 1, 'c1')).toEqual({ present: N, exclusive: N, zeroPage: 0 });
    expect(pages(r, 1, 'p0')).toEqual({ present: N, exclusive: N, zeroPage: 0 });
    expect(events(r, 2)).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(obs(r, 1).timeNs).toBeGreaterThan(0);
    expect(obs(r, 0).timeNs).toBeGreaterThan(0);
  });

  it("reads back its own stores in the child and the untouched content in the parent", async () => {
    const r = await engine.runDetailed(t);
    expect(readValues(r, 2)).toEqual(written(1));
    expect(readValues(r, 3)).toEqual(written(-1));
  });

  it.skipIf(!asRoot)(`gives the child new frames and leaves the parent's frames where they were (${NEEDS_ROOT})`, async () => {
    const r = await engine.runDetailed(t);
    const original = pfns(r, -1, 'p0');
    expect(pfns(r, 0, 'p0')).toEqual(original);
    expect(pfns(r, 0, 'c1')).toEqual(original);
    expect(obs(r, 0).frames.m).toBe(N);
    expect(pfns(r, 1, 'p0')).toEqual(original);
    const mine = new Set(original);
    expect(pfns(r, 1, 'c1').filter((f) => mine.has(f))).toEqual([]);
    expect(obs(r, 1).frames.m).toBe(2 * N);
  });
});

describe('the parent writes after the child exited', () => {
  const t = trace('reuse-after-exit', [region({ pages: N })], [
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'exit', proc: 'c1' },
    { op: 'write', proc: 'p0', region: 'm', pages: all(N) },
    { op: 'read', proc: 'p0', region: 'm', pages: all(N) },
  ]);

  it('takes one fault per page and reuses every frame in place', async () => {
    const r = await engine.runDetailed(t);
    expect(Object.keys(obs(r, 1).processes)).toEqual(['p0']);
    // The sharer is gone: the pages are exclusive again, but still write-protected.
    expect(pages(r, 1, 'p0')).toEqual({ present: N, exclusive: N, zeroPage: 0 });
    expect(events(r, 2)).toEqual({ copies: 0, reuses: N, zeroFills: 0, faults: N });
    expect(readValues(r, 3)).toEqual(written(2));
    if (asRoot) {
      expect(pfns(r, 2, 'p0')).toEqual(pfns(r, -1, 'p0'));
      expect(obs(r, 2).frames.m).toBe(N);
    }
  });

  it('copies instead when the parent writes while the child still lives, and the child keeps the old content', async () => {
    const r = await engine.runDetailed(
      trace('parent-writes-child-alive', [region({ pages: N })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'p0', region: 'm', pages: { start: 0, end: N, stride: 2 } },
        { op: 'read', proc: 'c1', region: 'm', pages: all(N) },
      ]),
    );
    expect(events(r, 1)).toEqual({ copies: N / 2, reuses: 0, zeroFills: 0, faults: N / 2 });
    expect(pages(r, 1, 'c1')).toEqual({ present: N, exclusive: N / 2, zeroPage: 0 });
    expect(readValues(r, 2)).toEqual(written(-1));
  });
});

describe('untouched private memory', () => {
  const n = 64;
  const t = trace('zero-page-then-write', [region({ pages: n, populate: 'none' })], [
    { op: 'read', proc: 'p0', region: 'm', pages: all(n) },
    { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
  ]);

  it('maps the shared zero page on a read and zero-fills a fresh frame on the first write', async () => {
    const r = await engine.runDetailed(t);
    expect(pages(r, -1, 'p0')).toEqual({ present: 0, exclusive: 0, zeroPage: 0 });
    expect(events(r, 0)).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: n });
    expect(pages(r, 0, 'p0')).toEqual({ present: n, exclusive: 0, zeroPage: n });
    expect(readValues(r, 0)).toEqual(new Array(n).fill(0n));
    expect(events(r, 1)).toEqual({ copies: 0, reuses: 0, zeroFills: n, faults: n });
    expect(pages(r, 1, 'p0')).toEqual({ present: n, exclusive: n, zeroPage: 0 });
    if (asRoot) {
      expect(obs(r, 0).frames.m).toBe(0);
      expect(obs(r, 1).frames.m).toBe(n);
    }
  });

  it.skipIf(!asRoot)(`agrees with /proc/kpageflags on which pages are the zero page (${NEEDS_ROOT})`, async () => {
    const r = await engine.runDetailed(t);
    const flags = readKpageFlags(Float64Array.from(pfns(r, 0, 'p0')));
    expect(flags.count(KPF.ZERO_PAGE)).toBe(n);
    expect(new Set(pfns(r, 0, 'p0')).size).toBe(1);
  });

  it('is not inherited at all when it was only read: no anon_vma, so fork copies no page table entry', async () => {
    const r = await engine.runDetailed(
      trace('fork-after-read', [region({ pages: n, populate: 'read' })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'read', proc: 'c1', region: 'm', pages: all(n) },
        { op: 'write', proc: 'c1', region: 'm', pages: all(n) },
      ]),
    );
    expect(pages(r, -1, 'p0')).toEqual({ present: n, exclusive: 0, zeroPage: n });
    expect(pages(r, 0, 'p0')).toEqual({ present: n, exclusive: 0, zeroPage: n });
    expect(pages(r, 0, 'c1')).toEqual({ present: 0, exclusive: 0, zeroPage: 0 });
    expect(events(r, 1)).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: n });
    expect(pages(r, 1, 'c1')).toEqual({ present: n, exclusive: 0, zeroPage: n });
    expect(events(r, 2)).toEqual({ copies: 0, reuses: 0, zeroFills: n, faults: n });
  });
});

describe('a chain of three forks', () => {
  const n = 16;
  const t = trace('fork-chain', [region({ pages: n })], [
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'fork', proc: 'c1', child: 'c2' },
    { op: 'fork', proc: 'c2', child: 'c3' },
    { op: 'write', proc: 'c3', region: 'm', pages: all(n) },
    { op: 'exit', proc: 'c1' },
    { op: 'exit', proc: 'c2' },
    { op: 'write', proc: 'p0', region: 'm', pages: all(n) },
  ]);

  it('shares each page four ways, copies only in the writer, and reuses once the others are gone', async () => {
    const r = await engine.runDetailed(t);
    for (const p of ['p0', 'c1', 'c2', 'c3']) expect(pages(r, 2, p)).toEqual({ present: n, exclusive: 0, zeroPage: 0 });
    expect(events(r, 3)).toEqual({ copies: n, reuses: 0, zeroFills: 0, faults: n });
    expect(pages(r, 3, 'p0').exclusive).toBe(0); // c1 and c2 still map the originals
    expect(pages(r, 5, 'p0').exclusive).toBe(n); // c1 exited and c2 (reparented to Node) exited
    expect(events(r, 6)).toEqual({ copies: 0, reuses: n, zeroFills: 0, faults: n });
    expect(Object.keys(obs(r, 6).processes).sort()).toEqual(['c3', 'p0']);
  });

  it.skipIf(!asRoot)(`counts four mappings of each frame in /proc/kpagecount, three after the writer copied (${NEEDS_ROOT})`, async () => {
    const r = await engine.runDetailed(t, { kpagecount: true });
    expect(Array.from(r.details[3]!.kpagecount!.p0!.m!)).toEqual(new Array(n).fill(4));
    expect(Array.from(r.details[4]!.kpagecount!.p0!.m!)).toEqual(new Array(n).fill(3));
    expect(Array.from(r.details[4]!.kpagecount!.c3!.m!)).toEqual(new Array(n).fill(1));
    expect(obs(r, 2).frames.m).toBe(n);
    expect(obs(r, 3).frames.m).toBe(2 * n);
  });
});
