/**
 * The simulator against the kernel facts it models (DESIGN.md, mm/memory.c, mm/huge_memory.c,
 * mm/mprotect.c): each test states one fact and checks the observations, and where the fact
 * is about frames, the pfns in the model's page tables.
 */
import { describe, expect, it } from 'vitest';

import { countRegion } from '../../src/engines/observations.js';
import { SimEngine } from '../../src/engines/sim/engine.js';
import type { SimOptions } from '../../src/engines/sim/options.js';
import { HPAGE_PMD_NR } from '../../src/engines/sim/physmem.js';
import { Simulator } from '../../src/engines/sim/simulator.js';
import { PMD_HUGE, PMD_HUGE_ZERO, PMD_TABLE } from '../../src/engines/sim/vm.js';
import type { StepObservation } from '../../src/engines/types.js';
import { loadScenario } from '../../src/trace/scenarios.js';
import type { RegionSpec, Step, Trace } from '../../src/trace/types.js';

type RegionDoc = Partial<RegionSpec> & { id?: string; pages: number };

function trace(regions: RegionDoc | RegionDoc[], steps: Step[]): Trace {
  const list = (Array.isArray(regions) ? regions : [regions]).map((r, i) => ({
    id: r.id ?? (i === 0 ? 'heap' : `r${i}`), map: 'private' as const, backing: 'anon' as const, thp: false, advice: [], populate: 'write' as const, ...r,
  }));
  return { name: 'test', regions: list as RegionSpec[], steps };
}

const fork = (proc: string, child: string): Step => ({ op: 'fork', proc, child });
const write = (proc: string, start: number, end: number, stride = 1, region = 'heap'): Step => ({ op: 'write', proc, region, pages: { start, end, stride } });
const writePages = (proc: string, pages: number[], region = 'heap'): Step => ({ op: 'write', proc, region, pages: { pages } });
const read = (proc: string, start: number, end: number, region = 'heap'): Step => ({ op: 'read', proc, region, pages: { start, end } });
const exit = (proc: string): Step => ({ op: 'exit', proc });
const exec = (proc: string): Step => ({ op: 'exec', proc });
const mprotect = (proc: string, prot: 'r' | 'rw', pages?: { start: number; end: number }, region = 'heap'): Step =>
  pages ? { op: 'mprotect', proc, region, prot, pages } : { op: 'mprotect', proc, region, prot };

/** Runs a trace step by step, keeping each step's observation and the pfns of every process. */
function run(t: Trace, options: SimOptions = {}) {
  const sim = new Simulator(t, { checkInvariants: true, ...options });
  const obs: StepObservation[] = [sim.setup()];
  const pfns: Record<string, Int32Array | null>[] = [pfnsOf(sim)];
  while (!sim.done) {
    obs.push(sim.step());
    pfns.push(pfnsOf(sim));
  }
  /** After step i (-1 = setup). */
  const at = (i: number) => obs[i + 1]!;
  return {
    sim,
    at,
    events: (i: number, region = 'heap') => at(i).events[region]!,
    counts: (i: number, proc: string, region = 'heap') => countRegion(at(i).processes[proc]![region]!),
    frames: (i: number, region = 'heap') => at(i).frames[region],
    pfn: (i: number, proc: string, region = 0) => pfns[i + 1]![`${proc}/${region}`] ?? null,
    pmd: (proc: string, region = 0) => sim.state().processes.find((p) => p.name === proc)!.vmas[region]!.pmd,
  };
}

function pfnsOf(sim: Simulator): Record<string, Int32Array | null> {
  const out: Record<string, Int32Array | null> = {};
  for (const p of sim.state().processes) p.vmas.forEach((v, r) => (out[`${p.name}/${r}`] = v ? v.pfn : null));
  return out;
}

const same = (a: Int32Array | null, b: Int32Array | null, from = 0, to = a?.length ?? 0) => {
  for (let i = from; i < to; i++) if (a![i] !== b![i]) return false;
  return true;
};
const allDiffer = (a: Int32Array | null, b: Int32Array | null, from = 0, to = a?.length ?? 0) => {
  for (let i = from; i < to; i++) if (a![i] === b![i]) return false;
  return true;
};
const events = (copies: number, reuses: number, zeroFills: number, faults: number) => ({ copies, reuses, zeroFills, faults });

describe('private anonymous memory and fork', () => {
  it('fork shares every written page read-only: same frames, nothing exclusive, no fault', () => {
    const r = run(trace({ pages: 64 }, [fork('p0', 'c1')]));
    expect(r.events(0)).toEqual(events(0, 0, 0, 0));
    expect(r.counts(0, 'p0')).toEqual({ present: 64, shared: 64, exclusive: 0, zeroPage: 0 });
    expect(r.counts(0, 'c1')).toEqual({ present: 64, shared: 64, exclusive: 0, zeroPage: 0 });
    expect(same(r.pfn(0, 'p0'), r.pfn(0, 'c1'))).toBe(true);
    expect(r.frames(0)).toBe(64);
  });

  it('fork then the child writes every page: one copy per page, the parent keeps its frames, frames double', () => {
    const r = run(trace({ pages: 1024 }, [fork('p0', 'c1'), write('c1', 0, 1024)]));
    expect(r.events(1)).toEqual(events(1024, 0, 0, 1024));
    expect(same(r.pfn(1, 'p0'), r.pfn(-1, 'p0'))).toBe(true);
    expect(allDiffer(r.pfn(1, 'c1'), r.pfn(1, 'p0'))).toBe(true);
    expect(r.frames(1)).toBe(2048);
    expect(r.counts(1, 'c1').exclusive).toBe(1024);
    expect(r.counts(1, 'p0').exclusive).toBe(1024);
  });

  it('a write after the sharer exited reuses the page in place: same frame, a fault, no copy', () => {
    const r = run(trace({ pages: 256 }, [fork('p0', 'c1'), exit('c1'), write('p0', 0, 256)]));
    expect(r.counts(1, 'p0').exclusive).toBe(256); // mapped once again, though still read-only
    expect(r.events(2)).toEqual(events(0, 256, 0, 256));
    expect(same(r.pfn(2, 'p0'), r.pfn(-1, 'p0'))).toBe(true);
  });

  it('a write after the sharer copied the page reuses it too (its reference count is back to 1)', () => {
    const r = run(trace({ pages: 64 }, [fork('p0', 'c1'), write('c1', 0, 32), write('p0', 0, 64)]));
    expect(r.events(2)).toEqual(events(32, 32, 0, 64));
    expect(same(r.pfn(2, 'p0'), r.pfn(-1, 'p0'), 0, 32)).toBe(true);
  });

  it('a store to a page already made writable takes no fault', () => {
    const r = run(trace({ pages: 64 }, [fork('p0', 'c1'), write('c1', 0, 64), write('c1', 0, 64)]));
    expect(r.events(2)).toEqual(events(0, 0, 0, 0));
  });

  it('reads of shared pages take no fault and change nothing', () => {
    const r = run(trace({ pages: 64 }, [fork('p0', 'c1'), read('c1', 0, 64)]));
    expect(r.events(1)).toEqual(events(0, 0, 0, 0));
  });

  it('counts above two: a page is reused only when the last other sharer left', () => {
    const r = run(trace({ pages: 16 }, [fork('p0', 'c1'), fork('p0', 'c2'), exit('c1'), write('p0', 0, 8), exit('c2'), write('p0', 8, 16)]));
    expect(r.events(3)).toEqual(events(8, 0, 0, 8));
    expect(r.events(5)).toEqual(events(0, 8, 0, 8));
  });

  it('reuse: false turns every reuse into a copy (no kernel does this: it exists to fail validation)', () => {
    const t = trace({ pages: 128 }, [fork('p0', 'c1'), exit('c1'), write('p0', 0, 128)]);
    expect(run(t).events(2)).toEqual(events(0, 128, 0, 128));
    expect(run(t, { reuse: false }).events(2)).toEqual(events(128, 0, 0, 128));
  });

  it('exit and exec drop every mapping; frames whose count reaches zero are freed', () => {
    const r = run(trace({ pages: 32 }, [fork('p0', 'c1'), write('c1', 0, 32), fork('c1', 'c2'), exec('c1'), exit('c2')]));
    expect(r.counts(3, 'c1')).toEqual({ present: 0, shared: 0, exclusive: 0, zeroPage: 0 });
    expect(r.frames(3)).toBe(64); // c2 still maps c1's copies
    expect(r.frames(4)).toBe(32);
    expect(r.sim.state().frames.inUse).toBe(32);
  });
});

describe('fault-around at a VMA boundary', () => {
  // Found by the fuzzer (sim against kernel): the window was the aligned one cut at the boundary.
  it('a read fault maps fault_around_bytes of cached pages from the VMA start, past the aligned block', () => {
    const r = run(trace({ pages: 32, map: 'shared', populate: 'write' }, [fork('p0', 'c1'), mprotect('c1', 'r', { start: 4, end: 32 }), read('c1', 8, 9)]));
    expect(r.counts(2, 'c1').present).toBe(16); // pages 4..19
    expect(r.events(2).faults).toBe(1);
  });
});

describe('the zero page and anon_vma', () => {
  // Found by the fuzzer (sim against kernel): the model kept one anon_vma per region.
  it('a piece mprotect split off before any write has no anon_vma of its own: fork copies none of its entries', () => {
    const r = run(trace({ pages: 64, populate: 'none' }, [mprotect('p0', 'r', { start: 48, end: 64 }), write('p0', 0, 32), read('p0', 32, 64), fork('p0', 'c1')]));
    // p0 maps all 64 (32 written, 32 zero page); c1 gets the piece [0, 48) that has an anon_vma.
    expect(r.counts(2, 'p0')).toEqual({ present: 64, shared: 32, exclusive: 32, zeroPage: 32 });
    expect(r.counts(3, 'c1')).toEqual({ present: 48, shared: 48, exclusive: 0, zeroPage: 16 });
  });

  it('reads of untouched private memory map the zero page (shared, never exclusive); a write then zero-fills', () => {
    const r = run(trace({ pages: 64, populate: 'none' }, [read('p0', 0, 64), write('p0', 0, 32)]));
    expect(r.events(0)).toEqual(events(0, 0, 0, 64));
    expect(r.counts(0, 'p0')).toEqual({ present: 64, shared: 64, exclusive: 0, zeroPage: 64 });
    expect(r.frames(0)).toBe(0); // the zero page is not counted
    expect(r.events(1)).toEqual(events(0, 0, 32, 32));
    expect(r.counts(1, 'p0')).toEqual({ present: 64, shared: 32, exclusive: 32, zeroPage: 32 });
  });

  it('memory only ever read has no anon_vma: fork copies nothing and the child starts empty', () => {
    const r = run(trace({ pages: 64, populate: 'read' }, [fork('p0', 'c1'), read('c1', 0, 16), write('c1', 0, 64)]));
    expect(r.counts(0, 'c1').present).toBe(0);
    expect(r.events(1)).toEqual(events(0, 0, 0, 16));
    expect(r.events(2)).toEqual(events(0, 0, 64, 64)); // 16 over the zero page, 48 over nothing
  });

  it('once one page was written, fork copies every entry, zero-page ones included', () => {
    const r = run(trace({ pages: 64, populate: 'read' }, [write('p0', 0, 1), fork('p0', 'c1'), write('c1', 1, 64)]));
    expect(r.counts(1, 'c1')).toEqual({ present: 64, shared: 64, exclusive: 0, zeroPage: 63 });
    expect(r.events(2)).toEqual(events(0, 0, 63, 63));
  });
});

describe('shared mappings and the page cache', () => {
  it.each([{ backing: 'anon' as const }, { backing: 'memfd' as const }])('MAP_SHARED $backing is never copied: the child maps the same frames', ({ backing }) => {
    const r = run(trace({ pages: 64, map: 'shared', backing }, [fork('p0', 'c1'), write('c1', 0, 64), write('p0', 0, 64)]));
    expect(r.counts(0, 'c1').present).toBe(0); // fork copies no page table for it
    expect(r.events(1)).toEqual(events(0, 0, 0, 64)); // maps existing page-cache pages
    expect(same(r.pfn(1, 'c1'), r.pfn(1, 'p0'))).toBe(true);
    expect(r.events(2)).toEqual(events(0, 0, 0, 0));
    expect(r.frames(2)).toBe(64);
    expect(r.counts(2, 'p0').shared).toBe(64);
  });

  it('a first touch of an untouched shmem page allocates it in the page cache: no zero page', () => {
    const r = run(trace({ pages: 8, map: 'shared', populate: 'none' }, [read('p0', 0, 8), write('p0', 0, 8)]));
    expect(r.counts(0, 'p0')).toEqual({ present: 8, shared: 0, exclusive: 8, zeroPage: 0 });
    expect(r.frames(0)).toBe(8);
    expect(r.events(1)).toEqual(events(0, 0, 0, 0)); // a shared read maps the page writable
  });

  it('a write to a hole of a shared mapping zero-fills a fresh page-cache page', () => {
    const r = run(trace({ pages: 8, map: 'shared', populate: 'none' }, [write('p0', 0, 8)]));
    expect(r.events(0)).toEqual(events(0, 0, 8, 8));
  });

  it.each([
    { pages: 40, sel: [0, 40], around: 16, faults: 3, present: 40 },
    { pages: 40, sel: [17, 18], around: 16, faults: 1, present: 16 }, // pages 16..31
    { pages: 20, sel: [17, 18], around: 16, faults: 1, present: 4 }, // 16..19: clipped to the region
    { pages: 40, sel: [0, 40], around: 1, faults: 40, present: 40 },
    { pages: 64, sel: [0, 64], around: 32, faults: 2, present: 64 },
  ])('fault-around: a read of $pages-page memory $sel with window $around takes $faults faults', ({ pages, sel, around, faults, present }) => {
    const r = run(trace({ pages, map: 'shared', backing: 'memfd' }, [fork('p0', 'c1'), read('c1', sel[0]!, sel[1]!)]), { faultAroundPages: around });
    expect(r.events(1).faults).toBe(faults);
    expect(r.counts(1, 'c1').present).toBe(present);
  });

  it('fault-around maps only pages the page cache holds, and write faults never fault around', () => {
    const r = run(trace({ pages: 32, map: 'shared', populate: 'none' }, [write('p0', 0, 4), fork('p0', 'c1'), write('c1', 8, 9), read('c1', 9, 10)]));
    expect(r.counts(2, 'c1').present).toBe(1);
    expect(r.counts(3, 'c1').present).toBe(6); // 0..3 and 8 mapped around, 9 faulted in
    expect(r.events(3)).toEqual(events(0, 0, 0, 1));
  });

  it('memfd MAP_PRIVATE: a first write fills a private copy (a zero-fill); page-cache frames are not mapped, so not counted', () => {
    const r = run(trace({ pages: 16, backing: 'memfd', populate: 'none' }, [write('p0', 0, 16)]));
    expect(r.events(0)).toEqual(events(0, 0, 16, 16));
    expect(r.frames(0)).toBe(16);
    expect(r.sim.state().frames.inUse).toBe(32); // 16 private copies + 16 page-cache pages
  });

  it('a page-cache page in a private mapping is always copied on write, even mapped once', () => {
    const r = run(trace({ pages: 16, backing: 'memfd', populate: 'read' }, [write('p0', 0, 16)]));
    expect(r.counts(-1, 'p0').exclusive).toBe(16); // exclusive: mapped once (the cache's reference is no mapping)
    expect(r.events(0)).toEqual(events(16, 0, 0, 16));
  });
});

describe('madvise', () => {
  it('MADV_DONTFORK: the child maps nothing there, and the parent keeps writing without faults', () => {
    const r = run(trace({ pages: 64, advice: ['dontfork'] }, [fork('p0', 'c1'), write('p0', 0, 64)]));
    expect(r.counts(0, 'c1').present).toBe(0);
    expect(r.counts(0, 'p0').exclusive).toBe(64);
    expect(r.events(1)).toEqual(events(0, 0, 0, 0));
  });

  it('MADV_WIPEONFORK: the child reads zero pages and zero-fills; the parent is untouched', () => {
    const r = run(trace({ pages: 64, advice: ['wipeonfork'] }, [fork('p0', 'c1'), read('c1', 0, 32), write('c1', 0, 64), write('p0', 0, 64)]));
    expect(r.counts(0, 'c1').present).toBe(0);
    expect(r.counts(1, 'c1').zeroPage).toBe(32);
    expect(r.events(2)).toEqual(events(0, 0, 64, 64));
    expect(r.events(3)).toEqual(events(0, 0, 0, 0));
  });
});

describe('mprotect', () => {
  it.each([
    { mode: 'pte-and-pmd' as const, small: events(0, 0, 0, 0), huge: events(0, 0, 0, 0) }, // 6.2+
    { mode: 'dirty-pte' as const, small: events(0, 0, 0, 0), huge: events(0, 2, 0, 2) }, // 6.0, 6.1: the PTEs are dirty, the PMDs are not upgraded
    { mode: 'none' as const, small: events(0, 64, 0, 64), huge: events(0, 2, 0, 2) }, // before 6.0
  ])('mprotectUpgrade $mode: PROT_READ then PROT_READ|PROT_WRITE makes exclusive pages writable again, or leaves each to a reusing fault', ({ mode, small, huge }) => {
    const dance = [mprotect('p0', 'r'), mprotect('p0', 'rw'), write('p0', 0, 64)];
    expect(run(trace({ pages: 64 }, dance), { mprotectUpgrade: mode }).events(2)).toEqual(small);
    const r = run(trace({ pages: 1024, thp: true }, [mprotect('p0', 'r'), mprotect('p0', 'rw'), write('p0', 0, 1024, 64)]), { mprotectUpgrade: mode });
    expect(r.events(2)).toEqual(huge); // a PMD is reused whole: one fault per 2 MiB
    expect([...r.pmd('p0')]).toEqual([PMD_HUGE, PMD_HUGE]);
  });

  it('pages still shared after fork stay read-only through the dance: the write copies', () => {
    const r = run(trace({ pages: 64 }, [fork('p0', 'c1'), mprotect('c1', 'r'), mprotect('c1', 'rw'), write('c1', 0, 64)]));
    expect(r.events(3)).toEqual(events(64, 0, 0, 64));
  });

  it('after fork nothing is exclusive, even once unshared: the dance leaves them read-only and the write reuses', () => {
    const r = run(trace({ pages: 64 }, [fork('p0', 'c1'), exit('c1'), mprotect('p0', 'r'), mprotect('p0', 'rw'), write('p0', 0, 64)]));
    expect(r.events(4)).toEqual(events(0, 64, 0, 64));
  });

  it('mprotect on part of a region touches only those pages', () => {
    const r = run(trace({ pages: 64 }, [mprotect('p0', 'r', { start: 0, end: 8 }), write('p0', 8, 64), mprotect('p0', 'rw', { start: 0, end: 8 }), write('p0', 0, 8)]));
    expect(r.events(1)).toEqual(events(0, 0, 0, 0));
    expect(r.events(3)).toEqual(events(0, 0, 0, 0));
  });

  it('the zero page is never made writable by mprotect', () => {
    const r = run(trace({ pages: 8, populate: 'read' }, [mprotect('p0', 'r'), mprotect('p0', 'rw'), write('p0', 0, 8)]));
    expect(r.events(2)).toEqual(events(0, 0, 8, 8));
  });

  it('a shared mapping gets its write bit back on every present page', () => {
    const r = run(trace({ pages: 8, map: 'shared' }, [fork('p0', 'c1'), write('c1', 0, 8), mprotect('c1', 'r'), mprotect('c1', 'rw'), write('c1', 0, 8)]));
    expect(r.events(4)).toEqual(events(0, 0, 0, 0));
  });

  it('mprotect on part of a huge page splits its PMD (a VMA boundary inside 2 MiB)', () => {
    const r = run(trace({ pages: 1024, thp: true }, [mprotect('p0', 'r', { start: 0, end: 8 }), write('p0', 8, 512)]));
    expect([...r.pmd('p0')]).toEqual([PMD_TABLE, PMD_HUGE]);
    expect(r.events(1)).toEqual(events(0, 0, 0, 0)); // the split keeps the write bit
  });
});

describe('transparent huge pages', () => {
  const thp = (pages = 2048, populate: RegionSpec['populate'] = 'write') => ({ pages, thp: true, populate });

  it('a written region is mapped by whole huge pages: one fault and one zero-fill per 2 MiB', () => {
    const r = run(trace(thp(2048), []));
    expect(r.events(-1)).toEqual(events(0, 0, 4, 4));
    expect([...r.pmd('p0')]).toEqual([PMD_HUGE, PMD_HUGE, PMD_HUGE, PMD_HUGE]);
    expect(r.frames(-1)).toBe(2048);
  });

  it('a region smaller than 2 MiB, or the tail past the last 2 MiB, uses 4 KiB pages', () => {
    const r = run(trace(thp(600), []));
    expect(r.events(-1)).toEqual(events(0, 0, 1 + 88, 1 + 88));
    expect([...r.pmd('p0')]).toEqual([PMD_HUGE, PMD_TABLE]);
  });

  it('a COW write splits the writer\'s PMD and copies 4 KiB; the other process keeps its PMD', () => {
    const r = run(trace(thp(1024), [fork('p0', 'c1'), writePages('c1', [5])]));
    expect(r.events(1)).toEqual(events(1, 0, 0, 1));
    expect(r.frames(1)).toBe(1025);
    expect([...r.pmd('c1')]).toEqual([PMD_TABLE, PMD_HUGE]);
    expect([...r.pmd('p0')]).toEqual([PMD_HUGE, PMD_HUGE]);
    // c1's new page 5 is its own; its other 511 PTEs still share the huge page.
    expect(r.counts(1, 'c1')).toEqual({ present: 1024, shared: 1023, exclusive: 1, zeroPage: 0 });
    // p0 still maps the huge page with a PMD: pagemap judges all 512 entries by the head page
    // (pmdExclusive 'head-page', the default), which c1 still maps, so none reads exclusive
    // (not even page 5, whose own mapcount is 1).
    expect(r.counts(1, 'p0')).toEqual({ present: 1024, shared: 1024, exclusive: 0, zeroPage: 0 });
    expect(same(r.pfn(1, 'c1'), r.pfn(1, 'p0'), 6, 512)).toBe(true); // the other 511 PTEs point into the huge page
  });

  it.each([
    // 6.1, 6.18: the bit is computed once, from the head page (pmd_page), for all 512 entries.
    { mode: 'head-page' as const, copied: 0, exclusive: 512 },
    { mode: 'head-page' as const, copied: 5, exclusive: 0 },
    // 6.11 to 6.14: each entry from its own page's precise mapcount (its PTE mappings plus the
    // folio's PMD mappings), so exactly the page c1 copied (mapped by p0's PMD only) reads exclusive.
    { mode: 'per-page' as const, copied: 0, exclusive: 1 },
    { mode: 'per-page' as const, copied: 5, exclusive: 1 },
  ])("pmdExclusive '$mode': once the other process copied page $copied, $exclusive entries of a PMD mapping read exclusive", ({ mode, copied, exclusive }) => {
    const r = run(trace(thp(1024), [fork('p0', 'c1'), writePages('c1', [copied])]), { pmdExclusive: mode });
    expect(r.counts(1, 'p0')).toEqual({ present: 1024, shared: 1024 - exclusive, exclusive, zeroPage: 0 });
    expect(r.counts(1, 'c1')).toEqual({ present: 1024, shared: 1023, exclusive: 1, zeroPage: 0 });
    expect([...r.pmd('p0')]).toEqual([PMD_HUGE, PMD_HUGE]);
  });

  it("pagemapExclusive 'folio' reports a split huge page's pages as shared until no other process maps it", () => {
    const r = run(trace(thp(512), [fork('p0', 'c1'), writePages('c1', [5])]), { pagemapExclusive: 'folio' });
    expect(r.counts(1, 'p0').exclusive).toBe(0);
    expect(r.counts(1, 'c1').exclusive).toBe(1); // the new 4 KiB page
  });

  it.each([
    { mode: 'per-page' as const, expected: events(0, 4, 0, 4) },
    { mode: 'never' as const, expected: events(4, 0, 0, 4) },
    // p0's other PTEs still reference each huge page: none of these is its last reference.
    { mode: 'sole-reference' as const, expected: events(4, 0, 0, 4) },
  ])('PTE-mapped pages of a huge page after the sharer left: thpPteReuse $mode', ({ mode, expected }) => {
    const steps = [fork('p0', 'c1'), write('c1', 0, 2048, 512), write('p0', 1, 2048, 512), exit('c1'), write('p0', 2, 2048, 512)];
    expect(run(trace(thp(2048), steps), { thpPteReuse: mode }).events(4)).toEqual(expected);
  });

  it('the last page of a split huge page still mapped is copied, not reused (the huge page is let go)', () => {
    const pages = Array.from({ length: 511 }, (_, i) => i + 1);
    const r = run(trace(thp(512), [fork('p0', 'c1'), writePages('p0', pages), exit('c1'), writePages('p0', [0])]));
    expect(r.events(3)).toEqual(events(1, 0, 0, 1));
  });

  it('an unsplit PMD whose sharer left is reused whole: one fault for 512 pages', () => {
    const r = run(trace(thp(1024), [fork('p0', 'c1'), exit('c1'), write('p0', 0, 1024)]));
    expect(r.events(2)).toEqual(events(0, 2, 0, 2));
    expect([...r.pmd('p0')]).toEqual([PMD_HUGE, PMD_HUGE]);
  });

  it('fork copies one entry per PMD, so it costs far less than for 4 KiB pages', () => {
    const huge = run(trace(thp(2048), [fork('p0', 'c1')])).at(0).timeNs!;
    const small = run(trace({ pages: 2048 }, [fork('p0', 'c1')])).at(0).timeNs!;
    const c = new Simulator(trace({ pages: 1 }, [])).options.costModel.constants;
    expect(huge).toBe(c.forkBaseNs + 4 * c.forkPerPageNs);
    expect(small).toBe(c.forkBaseNs + 2048 * c.forkPerPageNs);
  });

  it("hugeZeroWrite 'huge-page': reads of untouched huge-page memory map the huge zero page; a write then allocates a whole huge page", () => {
    const r = run(trace(thp(1024, 'read'), [writePages('p0', [3])]));
    expect(r.events(-1)).toEqual(events(0, 0, 0, 2));
    expect(r.counts(-1, 'p0')).toEqual({ present: 1024, shared: 1024, exclusive: 0, zeroPage: 1024 });
    expect(r.events(0)).toEqual(events(0, 0, 1, 1));
    expect([...r.pmd('p0')]).toEqual([PMD_HUGE, PMD_HUGE_ZERO]);
    expect(r.counts(0, 'p0')).toEqual({ present: 1024, shared: 512, exclusive: 512, zeroPage: 512 });
    expect(r.frames(0)).toBe(HPAGE_PMD_NR);
  });

  it("hugeZeroWrite 'split' (before 6.13): a write to the huge zero page splits the PMD into zero-page PTEs and zero-fills one 4 KiB page", () => {
    const r = run(trace(thp(1024, 'read'), [writePages('p0', [3])]), { hugeZeroWrite: 'split' });
    expect(r.events(0)).toEqual(events(0, 0, 1, 1));
    expect([...r.pmd('p0')]).toEqual([PMD_TABLE, PMD_HUGE_ZERO]);
    expect(r.counts(0, 'p0')).toEqual({ present: 1024, shared: 1023, exclusive: 1, zeroPage: 1023 });
    expect(r.frames(0)).toBe(1);
  });

  it('without the huge zero page a read allocates a huge page', () => {
    const r = run(trace(thp(512, 'read'), []), { hugeZeroPage: false });
    expect(r.frames(-1)).toBe(HPAGE_PMD_NR);
    expect(r.events(-1)).toEqual(events(0, 0, 0, 1));
  });

  it('a huge zero page shared by fork is zero-filled by a write in either process', () => {
    const r = run(trace(thp(512, 'read'), [fork('p0', 'c1'), writePages('c1', [0])]));
    expect(r.counts(0, 'c1').zeroPage).toBe(512); // read-populated THP memory has an anon_vma: fork copies the PMD
    expect(r.events(1)).toEqual(events(0, 0, 1, 1));
  });
});

describe('time prediction', () => {
  it('sums the cost of every access by kind; fork costs base + per entry copied', () => {
    const sim = new Simulator(trace({ pages: 100 }, [fork('p0', 'c1'), write('c1', 0, 50), write('c1', 0, 100), exit('c1')]));
    const c = sim.options.costModel.constants;
    const obs = sim.run();
    expect(obs[0]!.timeNs).toBe(100 * c.zeroFillNs);
    expect(obs[1]!.timeNs).toBe(c.forkBaseNs + 100 * c.forkPerPageNs);
    expect(obs[2]!.timeNs).toBe(50 * c.copyNs);
    expect(obs[3]!.timeNs).toBe(50 * c.accessNs + 50 * c.copyNs);
    expect(obs[4]!.timeNs).toBeNull(); // exit is not predicted
  });
});

describe('SimEngine', () => {
  it('runs any trace through the Engine interface: setup plus one observation per step', async () => {
    const engine = new SimEngine({ reuse: false });
    const t = loadScenario('fork-parent-writes-after-exit');
    expect(engine.supports(t)).toBeNull();
    const calls: number[] = [];
    const obs = await engine.run(t, { onStep: (done) => calls.push(done) });
    expect(obs.engine).toBe('sim');
    expect(obs.steps.map((s) => s.step)).toEqual([-1, 0, 1, 2]);
    expect(obs.steps[3]!.events.heap).toEqual(events(1024, 0, 0, 1024));
    expect(calls).toEqual([1, 2, 3]);
    expect(obs.unavailable).toEqual({});
  });
});
