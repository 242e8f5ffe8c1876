/** pagemap decoding, kpage reads, and what an unprivileged reader still sees. */
import { describe, expect, it } from 'vitest';

import { KPF, Mapping, PagemapEntries, pfnAccess, readKpageCounts, readKpageFlags, readPagemap } from '../../src/internal.js';
import { DIST_INDEX, runAsNobody } from '../helpers/cli.js';

const access = pfnAccess();
const asRoot = access.pfnVisible && access.kpagecount && access.kpageflags;
const NEEDS_ROOT = 'needs root: PFNs and /proc/kpage* are hidden otherwise';

/** One raw entry from its parts (bit layout of Documentation/admin-guide/mm/pagemap.rst). */
function entry(bits: { pfn?: number; present?: boolean; exclusive?: boolean; file?: boolean; swapped?: boolean; softDirty?: boolean; uffdWp?: boolean; guard?: boolean }): bigint {
  let e = BigInt(bits.pfn ?? 0);
  if (bits.softDirty) e |= 1n << 55n;
  if (bits.exclusive) e |= 1n << 56n;
  if (bits.uffdWp) e |= 1n << 57n;
  if (bits.guard) e |= 1n << 58n;
  if (bits.file) e |= 1n << 61n;
  if (bits.swapped) e |= 1n << 62n;
  if (bits.present) e |= 1n << 63n;
  return e;
}

describe('pagemap decoding', () => {
  it.each([
    { name: 'present exclusive anon page', bits: { pfn: 0x12345, present: true, exclusive: true } },
    { name: 'shared file page', bits: { pfn: 0x7, present: true, file: true } },
    { name: 'PFN above 2^32', bits: { pfn: 0x3f_ffff_ffff, present: true } },
    { name: 'all flags', bits: { pfn: 1, present: true, exclusive: true, file: true, softDirty: true, uffdWp: true, guard: true } },
    { name: 'swapped (bits 0-54 are a swap entry, not a PFN)', bits: { pfn: 0x99, swapped: true } },
    { name: 'not present', bits: {} },
  ])('decodes a $name', ({ bits }) => {
    const raw = new BigUint64Array([entry(bits)]);
    const e = new PagemapEntries(raw.buffer).at(0);
    expect(e).toEqual({
      pfn: bits.present ? bits.pfn : 0,
      present: bits.present ?? false,
      exclusive: bits.exclusive ?? false,
      file: bits.file ?? false,
      swapped: bits.swapped ?? false,
      softDirty: bits.softDirty ?? false,
      uffdWp: bits.uffdWp ?? false,
      guard: bits.guard ?? false,
    });
  });
});

describe('reading our own pagemap', () => {
  it('sees written pages present and exclusive, untouched pages absent', () => {
    const m = Mapping.create({ pages: 8, thp: 'never' });
    try {
      m.touch('write', 0, 4);
      const pm = readPagemap(process.pid, m.address, 8);
      expect(Array.from(pm.present)).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
      expect(Array.from(pm.exclusive)).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
      expect(pm.count('file')).toBe(0);
    } finally {
      m.unmap();
    }
  });

  it('marks shared anonymous (shmem) pages with the file/shared bit', () => {
    const m = Mapping.create({ pages: 2, backing: 'anon-shared' });
    try {
      m.touch('write');
      expect(Array.from(readPagemap(0, m.address, 2).file)).toEqual([1, 1]);
    } finally {
      m.unmap();
    }
  });

  it.skipIf(!asRoot)(`maps reads of untouched memory to the zero page, writes to fresh anon frames (${NEEDS_ROOT})`, () => {
    const m = Mapping.create({ pages: 4, thp: 'never' });
    try {
      m.touch('read', 0, 2);
      m.touch('write', 2, 4);
      const pm = readPagemap(0, m.address, 4);
      const flags = readKpageFlags(pm.pfn);
      expect([0, 1, 2, 3].map((i) => flags.has(i, KPF.ZERO_PAGE))).toEqual([true, true, false, false]);
      expect([2, 3].map((i) => flags.at(i).anon)).toEqual([true, true]);
      expect(pm.pfn[0]).toBe(pm.pfn[1]); // one zero frame for everyone
      expect(Array.from(readKpageCounts(pm.pfn.subarray(2)))).toEqual([1, 1]);
    } finally {
      m.unmap();
    }
  });

  it('reports every PFN of a 1 GiB-scale batch in input order, duplicates included', () => {
    if (!asRoot) return;
    const m = Mapping.create({ pages: 64 });
    try {
      m.touch('write');
      const pm = readPagemap(0, m.address, 64);
      const pfns = Float64Array.from([...pm.pfn, ...pm.pfn].reverse());
      const counts = readKpageCounts(pfns);
      expect(Array.from(counts).every((c) => c === 1)).toBe(true);
      expect(readKpageFlags(pfns).count(KPF.ANON)).toBe(128);
    } finally {
      m.unmap();
    }
  });
});

describe('without root', () => {
  it('detects hidden PFNs and says why, while present and exclusive still read correctly', () => {
    const script = `
      const { Mapping, readPagemap, pfnAccess, environment } = await import(${JSON.stringify(DIST_INDEX)});
      const m = Mapping.create({ pages: 4, thp: 'never' });
      m.touch('write', 0, 2);
      const pm = readPagemap(0, m.address, 4);
      const a = pfnAccess();
      console.log(JSON.stringify({
        uid: process.getuid(), access: a, root: environment().privileges.root,
        present: Array.from(pm.present), exclusive: Array.from(pm.exclusive), pfn: Array.from(pm.pfn),
      }));`;
    const r = runAsNobody(script);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as {
      uid: number; root: boolean; present: number[]; exclusive: number[]; pfn: number[];
      access: { pfnVisible: boolean; pfnReason: string; kpagecount: boolean; kpagecountReason: string; capSysAdmin: boolean };
    };
    expect(out.uid).toBe(65534);
    expect(out.root).toBe(false);
    expect(out.access.pfnVisible).toBe(false);
    expect(out.access.capSysAdmin).toBe(false);
    expect(out.access.pfnReason).toMatch(/CAP_SYS_ADMIN/);
    expect(out.access.kpagecount).toBe(false);
    expect(out.access.kpagecountReason).toMatch(/kpagecount/);
    expect(out.present).toEqual([1, 1, 0, 0]);
    expect(out.exclusive).toEqual([1, 1, 0, 0]);
    expect(out.pfn).toEqual([0, 0, 0, 0]);
  });

  it('runs forkWrite with the PFN checks reported as unavailable, not faked', () => {
    const script = `
      const { forkWrite } = await import(${JSON.stringify(DIST_INDEX)});
      const r = await forkWrite({ pages: 256, repeats: 1, warmup: 0 });
      console.log(JSON.stringify(r.runs[0].verify) + ' ' + r.runs[0].child.faults);`;
    const r = runAsNobody(script);
    expect(r.stderr).toBe('');
    const [verify, faults] = r.stdout.trim().split(' ');
    expect(JSON.parse(verify!)).toEqual({
      pfnVisible: false, sharedAfterFork: 256, pfnChangedInWriter: null, pfnKeptInOther: null, exclusiveAfterWrite: 256,
      unwrittenShared: 0,
    });
    expect(Number(faults)).toBe(256);
  });
});
