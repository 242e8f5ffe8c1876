/**
 * The kernel profile table (src/engines/sim/profiles.ts): every value of every switch is
 * checked against the behaviour it names, by a witness trace whose observation that value
 * changes; profileFor picks the values the table says for a kernel's version, config and
 * knobs; docs/kernels.md holds the table as it is.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { PROFILE_TABLE_HEAD } from '../../src/cli/commands/kernels.js';
import { countRegion } from '../../src/engines/observations.js';
import { simulateTrace } from '../../src/engines/sim/engine.js';
import type { ResolvedSimOptions, SimOptions } from '../../src/engines/sim/options.js';
import { BEHAVIOURS, OLDEST_MODELLED, profileFor, profileTable, type ProfileSwitch } from '../../src/engines/sim/profiles.js';
import type { StepObservation } from '../../src/engines/types.js';
import { parseConfig, unknownConfig } from '../../src/kernels/config.js';
import type { KernelFacts } from '../../src/kernels/facts.js';
import { markdownTable } from '../../src/report/table.js';
import { parseTrace } from '../../src/trace/parse.js';
import type { Step } from '../../src/trace/types.js';
import { packageRoot } from '../../src/util/package.js';

const fork: Step = { op: 'fork', proc: 'p0', child: 'c1' };
const exit: Step = { op: 'exit', proc: 'c1' };
const write = (proc: string, pages: { start: number; end: number; stride?: number } | { pages: number[] }): Step => ({ op: 'write', proc, region: 'm', pages });
const mprotect = (prot: 'r' | 'rw'): Step => ({ op: 'mprotect', proc: 'p0', region: 'm', prot });

function traceOf(region: { pages: number; thp?: boolean; populate?: 'none' | 'read' | 'write' }, steps: Step[]) {
  return parseTrace({ name: 'witness', regions: [{ id: 'm', ...region }], steps }, { checkMemory: false });
}

/** The observation after step `i` (0-based; the setup is -1) with one switch set. */
function observe(t: ReturnType<typeof traceOf>, options: SimOptions, i: number): StepObservation {
  return simulateTrace(t, { checkInvariants: true, ...options }).steps[i + 1]!;
}

const events = (o: StepObservation) => {
  const e = o.events.m!;
  return { copies: e.copies, reuses: e.reuses, zeroFills: e.zeroFills, faults: e.faults };
};
const counts = (o: StepObservation, proc: string) => countRegion(o.processes[proc]!.m!);

interface Witness {
  /** What the value means, in words (the test's name). */
  says: string;
  check: (options: SimOptions) => void;
}

/** The witness of every value of every switch in BEHAVIOURS. */
const WITNESSES: { [K in ProfileSwitch]?: Record<string, Witness> } = {
  reuse: {
    true: {
      says: 'a write fault on a page nobody else references any more reuses it in place',
      check: (o) => expect(events(observe(traceOf({ pages: 64 }, [fork, exit, write('p0', { start: 0, end: 64 })]), o, 2))).toEqual({ copies: 0, reuses: 64, zeroFills: 0, faults: 64 }),
    },
  },
  thpPteReuse: {
    'per-page': {
      says: 'the pages of a split huge page are reused one fault each once the sharer left',
      check: (o) => expect(events(observe(thpSplitThenExit, o, 3))).toEqual({ copies: 0, reuses: 2, zeroFills: 0, faults: 2 }),
    },
    never: {
      says: 'the pages of a split huge page are copied even after the sharer left',
      check: (o) => expect(events(observe(thpSplitThenExit, o, 3))).toEqual({ copies: 2, reuses: 0, zeroFills: 0, faults: 2 }),
    },
    'sole-reference': {
      says: "a page of a split huge page is copied unless its mapping is the folio's last reference",
      check: (o) => {
        expect(events(observe(thpSplitThenExit, o, 3))).toEqual({ copies: 2, reuses: 0, zeroFills: 0, faults: 2 });
        // p0 splits its huge page (copying page 0), the sharer leaves, p0 copies every other
        // page but the last: that one holds the folio's only reference, and the whole-folio
        // rule reuses it, where 'never' copies it too.
        const t = traceOf({ pages: 512, thp: true }, [fork, write('p0', { pages: [0] }), exit, write('p0', { start: 1, end: 511 }), write('p0', { pages: [511] })]);
        expect(events(observe(t, o, 3))).toEqual({ copies: 510, reuses: 0, zeroFills: 0, faults: 510 });
        expect(events(observe(t, o, 4))).toEqual({ copies: 0, reuses: 1, zeroFills: 0, faults: 1 });
        expect(events(observe(t, { ...o, thpPteReuse: 'never' }, 4))).toEqual({ copies: 1, reuses: 0, zeroFills: 0, faults: 1 });
      },
    },
  },
  hugeZeroWrite: {
    'huge-page': {
      says: 'a write to the huge zero page allocates a whole huge page: no page maps the zero page after',
      check: (o) => {
        const after = observe(hugeZeroThenWrite, o, 0);
        expect(events(after)).toEqual({ copies: 0, reuses: 0, zeroFills: 1, faults: 1 });
        expect(counts(after, 'p0')).toEqual({ present: 512, shared: 0, exclusive: 512, zeroPage: 0 });
      },
    },
    split: {
      says: 'a write to the huge zero page splits it and zero-fills 4 KiB: 511 pages still map the zero page',
      check: (o) => {
        const after = observe(hugeZeroThenWrite, o, 0);
        expect(events(after)).toEqual({ copies: 0, reuses: 0, zeroFills: 1, faults: 1 });
        expect(counts(after, 'p0')).toEqual({ present: 512, shared: 511, exclusive: 1, zeroPage: 511 });
      },
    },
  },
  pmdExclusive: {
    'head-page': {
      says: "pagemap gives all 512 entries of a PMD mapping the head page's exclusive bit",
      check: (o) => expect(counts(observe(childCopiesHead, o, 1), 'p0').exclusive).toBe(512),
    },
    'per-page': {
      says: 'pagemap judges each entry of a PMD mapping by its own page',
      check: (o) => expect(counts(observe(childCopiesHead, o, 1), 'p0').exclusive).toBe(1),
    },
  },
  pagemapExclusive: {
    precise: {
      says: "a page of a large folio is exclusive when the page itself is mapped once",
      check: (o) => expect(counts(observe(childCopiesOne, o, 1), 'p0').exclusive).toBe(0),
    },
    folio: {
      says: 'a page of a large folio is exclusive only when the whole folio is not maybe mapped shared',
      check: (o) => {
        expect(counts(observe(childCopiesOne, o, 1), 'p0').exclusive).toBe(0);
        // After the child's exit the folio is the parent's alone again: every page reads exclusive.
        expect(counts(observe(childCopiesOne, o, 2), 'p0').exclusive).toBe(512);
      },
    },
  },
  mprotectUpgrade: {
    'pte-and-pmd': {
      says: 'mprotect(RW) makes exclusive PTEs and huge PMDs writable: the writes take no fault',
      check: (o) => {
        expect(events(observe(mprotectDance(false), o, 2)).faults).toBe(0);
        expect(events(observe(mprotectDance(true), o, 2)).faults).toBe(0);
      },
    },
    'dirty-pte': {
      says: 'mprotect(RW) makes exclusive dirty PTEs writable, not huge PMDs: one reuse fault per huge page',
      check: (o) => {
        expect(events(observe(mprotectDance(false), o, 2)).faults).toBe(0);
        expect(events(observe(mprotectDance(true), o, 2))).toEqual({ copies: 0, reuses: 2, zeroFills: 0, faults: 2 });
      },
    },
    none: {
      says: 'mprotect(RW) makes nothing writable: every write takes a reuse fault',
      check: (o) => expect(events(observe(mprotectDance(false), o, 2))).toEqual({ copies: 0, reuses: 64, zeroFills: 0, faults: 64 }),
    },
  },
};

/** Two huge pages shared by fork; the parent's writes split its own PMDs (copying page 1 of
 *  each), the child exits, and the parent writes page 2 of each: a page of a split huge page. */
const thpSplitThenExit = traceOf({ pages: 1024, thp: true }, [fork, write('p0', { start: 1, end: 1024, stride: 512 }), exit, write('p0', { start: 2, end: 1024, stride: 512 })]);
const hugeZeroThenWrite = traceOf({ pages: 512, thp: true, populate: 'read' }, [write('p0', { pages: [7] })]);
const childCopiesHead = traceOf({ pages: 512, thp: true }, [fork, write('c1', { pages: [0] })]);
const childCopiesOne = traceOf({ pages: 512, thp: true }, [fork, write('c1', { pages: [5] }), exit]);
const mprotectDance = (thp: boolean) => traceOf({ pages: thp ? 1024 : 64, thp }, [mprotect('r'), mprotect('rw'), write('p0', { start: 0, end: thp ? 1024 : 64 })]);

describe('every value of every profile switch does what its row says', () => {
  const cases = BEHAVIOURS.flatMap((b) => [...new Set(b.changes.map((c) => String(c.value)))].map((value) => ({ b, value })));
  it.each(cases.map(({ b, value }) => ({ option: b.option, value, witness: WITNESSES[b.option]?.[value] })))('$option $value', ({ option, value, witness }) => {
    expect(witness, `no witness for ${option} ${value}: add one to WITNESSES`).toBeDefined();
    const typed = value === 'true' ? true : value === 'false' ? false : value;
    witness!.check({ [option]: typed } as SimOptions);
  });

  it('every witness names a value the table has (none is left over)', () => {
    for (const [option, values] of Object.entries(WITNESSES)) {
      const b = BEHAVIOURS.find((x) => x.option === option)!;
      for (const v of Object.keys(values!)) expect(b.changes.map((c) => String(c.value))).toContain(v);
    }
  });
});

const facts = (version: string, config: string | null, knobs: Partial<KernelFacts['knobs']> = {}): KernelFacts => ({
  release: `${version}-test`,
  build: '',
  version,
  config: config === null ? unknownConfig() : parseConfig(config, 'test'),
  knobs: { thpEnabled: 'madvise', useZeroPage: true, ...knobs },
});

describe('profileFor picks the values the table gives for a kernel', () => {
  const kernelSwitches = (p: ReturnType<typeof profileFor>) => {
    const { hugeZeroPage: _, faultAroundPages: __, ...rest } = p.options;
    return rest;
  };

  it.each([
    { kernel: '6.1', expected: { reuse: true, thpPteReuse: 'sole-reference', hugeZeroWrite: 'split', pmdExclusive: 'head-page', pagemapExclusive: 'precise', mprotectUpgrade: 'dirty-pte' } },
    { kernel: '6.12', expected: { reuse: true, thpPteReuse: 'never', hugeZeroWrite: 'split', pmdExclusive: 'per-page', pagemapExclusive: 'precise', mprotectUpgrade: 'pte-and-pmd' } },
    { kernel: '6.18', expected: { reuse: true, thpPteReuse: 'per-page', hugeZeroWrite: 'huge-page', pmdExclusive: 'head-page', pagemapExclusive: 'precise', mprotectUpgrade: 'pte-and-pmd' } },
  ])('Linux $kernel, exactly', ({ kernel, expected }) => {
    expect(kernelSwitches(profileFor(kernel))).toEqual(expected);
  });

  it.each([
    { kernel: '6.0', option: 'mprotectUpgrade', value: 'dirty-pte' },
    { kernel: '6.2', option: 'mprotectUpgrade', value: 'pte-and-pmd' },
    { kernel: '5.19', option: 'mprotectUpgrade', value: 'none' },
    { kernel: '6.8.12', option: 'thpPteReuse', value: 'sole-reference' },
    { kernel: '6.9', option: 'thpPteReuse', value: 'never' },
    { kernel: '6.14.11', option: 'thpPteReuse', value: 'never' },
    { kernel: '6.15', option: 'thpPteReuse', value: 'per-page' },
    { kernel: '6.10', option: 'pmdExclusive', value: 'head-page' },
    { kernel: '6.11', option: 'pmdExclusive', value: 'per-page' },
    { kernel: '6.15.0', option: 'pmdExclusive', value: 'head-page' },
    { kernel: '6.12.117', option: 'hugeZeroWrite', value: 'split' },
    { kernel: '6.13', option: 'hugeZeroWrite', value: 'huge-page' },
  ] as const)('Linux $kernel: $option $value (a release boundary)', ({ kernel, option, value }) => {
    expect(profileFor(kernel).options[option]).toBe(value);
  });

  it('takes the upstream version, not the Debian ABI name, from the facts', () => {
    // 6.1.0-57-cloud-amd64 is 6.1.192: the version field decides, not the release string.
    const p = profileFor({ ...facts('6.1.192', 'CONFIG_TRANSPARENT_HUGEPAGE=y\n'), release: '6.1.0-57-cloud-amd64' });
    expect(p.version).toBe('6.1.192');
    expect(p.name).toBe('6.1');
  });

  it.each([
    { config: 'CONFIG_NO_PAGE_MAPCOUNT=y\n', value: 'folio', caveat: false },
    { config: '# CONFIG_NO_PAGE_MAPCOUNT is not set\nCONFIG_PAGE_MAPCOUNT=y\n', value: 'precise', caveat: false },
    { config: null, value: 'precise', caveat: true },
  ])('6.15+ reads CONFIG_NO_PAGE_MAPCOUNT from the config ($config): pagemapExclusive $value', ({ config, value, caveat }) => {
    const p = profileFor(facts('6.18.2', config));
    expect(p.options.pagemapExclusive).toBe(value);
    expect(p.caveats.some((c) => c.includes('CONFIG_NO_PAGE_MAPCOUNT'))).toBe(caveat);
  });

  it('before 6.15 CONFIG_NO_PAGE_MAPCOUNT does not exist and changes nothing', () => {
    expect(profileFor(facts('6.12', 'CONFIG_NO_PAGE_MAPCOUNT=y\n')).options.pagemapExclusive).toBe('precise');
  });

  it("follows the kernel's use_zero_page knob, and says where each value came from", () => {
    const off = profileFor(facts('6.18', '', { useZeroPage: false }));
    expect(off.options.hugeZeroPage).toBe(false);
    expect(off.entries.find((e) => e.option === 'hugeZeroPage')!.because).toMatch(/use_zero_page.*read off/);
    const pte = profileFor('6.15').entries.find((e) => e.option === 'thpPteReuse')!;
    expect(pte.because).toBe('since 6.15: mm: Copy-on-Write (COW) reuse support for PTE-mapped THP (1da190f4d0a6)');
  });

  it(`warns for a kernel older than ${OLDEST_MODELLED}, the oldest the model follows`, () => {
    expect(profileFor('5.4').caveats.join(' ')).toMatch(/older than 5\.9/);
    expect(profileFor('5.10').caveats).toEqual([]);
  });
});

describe('the profile table in words', () => {
  const rows = profileTable();

  it('has one row per change, and every row after the first of a switch names its kernel change', () => {
    expect(rows.length).toBe(BEHAVIOURS.reduce((n, b) => n + b.changes.length, 0));
    for (const b of BEHAVIOURS) {
      const mine = rows.filter((r) => r[0] === b.option);
      mine.forEach((r, i) => {
        expect(r[3]).not.toBe('');
        if (b.changes[i]!.since !== null) expect(r[4]).toMatch(/^\S.*\S$/);
      });
    }
  });

  it('is the table docs/kernels.md shows', () => {
    const doc = readFileSync(join(packageRoot(), 'docs', 'kernels.md'), 'utf8');
    expect(doc).toContain(markdownTable(PROFILE_TABLE_HEAD, rows));
  });
});

// A compile-time check that the witness table is keyed by real switches.
const _switches: ProfileSwitch[] = Object.keys(WITNESSES) as (keyof ResolvedSimOptions & ProfileSwitch)[];
void _switches;
