/**
 * The kernel profiles (src/engines/sim/profiles.ts) against the simulator and against
 * themselves:
 *
 *   - every value of every row of BEHAVIOURS has a witness: a small trace, run through
 *     simulateTrace with only that switch set, whose observation is the behaviour the row
 *     names; and each value's witnesses tell it apart from every other value of its switch
 *     (a witness that passes whatever the switch says proves nothing);
 *   - profileFor picks, for a kernel's version, configuration and knobs, the values the
 *     table gives;
 *   - profileTable says the table in words, one row per change, each with its range and the
 *     kernel change that made it.
 *
 * A new row (or value) in BEHAVIOURS without a witness here fails the suite.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { PROFILE_TABLE_HEAD } from '../../src/cli/commands/kernels.js';
import { markdownTable } from '../../src/report/table.js';
import { packageRoot } from '../../src/util/package.js';
import { isDeepStrictEqual } from 'node:util';

import { describe, expect, it } from 'vitest';

import { countRegion, type RegionCounts } from '../../src/engines/observations.js';
import { simulateTrace } from '../../src/engines/sim/engine.js';
import { DEFAULT_SIM_OPTIONS, resolveSimOptions, type SimOptions } from '../../src/engines/sim/options.js';
import {
  BEHAVIOURS,
  KNOBS,
  OLDEST_MODELLED,
  profileFor,
  profileTable,
  valueText,
  type Change,
  type KernelProfile,
  type ProfileSwitch,
} from '../../src/engines/sim/profiles.js';
import type { StepEvents } from '../../src/engines/types.js';
import { parseConfig, unknownConfig, type KernelConfig } from '../../src/kernels/config.js';
import type { KernelFacts } from '../../src/kernels/facts.js';
import { compareVersions, parseVersion } from '../../src/kernels/version.js';
import { parseTrace } from '../../src/trace/parse.js';
import type { Trace } from '../../src/trace/types.js';

// ---------------------------------------------------------------------------------------------
// Witness traces: JSON documents as a user would write them (docs/trace.md), one region 'heap'.

type Pages = { start: number; end: number; stride?: number } | { pages: number[] };

const fork = (proc = 'p0', child = 'c1') => ({ op: 'fork', proc, child });
const write = (proc: string, pages: Pages) => ({ op: 'write', proc, region: 'heap', pages });
const exit = (proc = 'c1') => ({ op: 'exit', proc });
const mprotect = (prot: 'r' | 'rw', proc = 'p0') => ({ op: 'mprotect', proc, region: 'heap', prot });
const read = (proc: string, pages: Pages) => ({ op: 'read', proc, region: 'heap', pages });
const pageout = (proc = 'p0') => ({ op: 'pageout', proc, region: 'heap' });
/** Page `offset` of each 2 MiB huge page of a region of `pages` pages. */
const eachHugePage = (pages: number, offset: number): Pages => ({ start: offset, end: pages, stride: 512 });

function witnessTrace(name: string, region: { pages: number; thp?: boolean; populate?: 'none' | 'read' | 'write' }, steps: object[]): Trace {
  return parseTrace({ name, regions: [{ id: 'heap', ...region }], steps });
}

const TRACES = {
  /** 64 pages shared by fork; the child exits; the parent writes them all. */
  sharerLeft: witnessTrace('sharer-left', { pages: 64 }, [fork(), exit(), write('p0', { start: 0, end: 64 })]),
  /**
   * Two huge pages shared by fork. The child's write to page 0 of each splits its PMDs and
   * copies; the parent's write to page 1 of each splits the parent's own PMDs and copies (without
   * it the parent would still map each huge page by a PMD, and after the child's exit reuse the
   * whole PMD whatever thpPteReuse says: see 'the witness needs the parent's own split' below).
   * The child exits; the parent writes page 2 of each: a page of a PTE-mapped THP whose sharer
   * left, while 510 other pages of the same folio stay mapped by the parent.
   */
  splitSharerLeft: witnessTrace('split-sharer-left', { pages: 1024, thp: true }, [
    fork(),
    write('c1', eachHugePage(1024, 0)),
    write('p0', eachHugePage(1024, 1)),
    exit(),
    write('p0', eachHugePage(1024, 2)),
  ]),
  /**
   * One huge page shared by fork; the parent writes pages 1-511 while the child lives (a split
   * and 511 copies), so only its PTE of page 0 still maps the folio. The child exits; the
   * parent's PTE is now the folio's last reference, and the parent writes page 0.
   */
  lastPageOfSplitFolio: witnessTrace('last-page-of-split-folio', { pages: 512, thp: true }, [
    fork(),
    write('p0', { start: 1, end: 512 }),
    exit(),
    write('p0', { pages: [0] }),
  ]),
  /** One huge page read (the huge zero page), then one store to page 3. */
  hugeZeroThenWrite: witnessTrace('huge-zero-then-write', { pages: 512, thp: true, populate: 'read' }, [write('p0', { pages: [3] })]),
  /** Two huge pages shared by fork; the child copies page 0 (the head page) of each. */
  childCopiesHeads: witnessTrace('child-copies-heads', { pages: 1024, thp: true }, [fork(), write('c1', eachHugePage(1024, 0))]),
  /** One huge page shared by fork; the child copies its head page: the parent keeps its PMD. */
  childCopiesHead: witnessTrace('child-copies-head', { pages: 512, thp: true }, [fork(), write('c1', { pages: [0] })]),
  /**
   * One huge page shared by fork; the parent copies page 0, the child page 1: both map the
   * folio by PTEs, folio page 1 only by the parent, folio page 0 only by the child.
   */
  bothSplit: witnessTrace('both-split', { pages: 512, thp: true }, [fork(), write('p0', { pages: [0] }), write('c1', { pages: [1] })]),
  /** 64 pages of p0's own (no fork): mprotect r, then rw, then a store to each. */
  mprotectDance: witnessTrace('mprotect-dance', { pages: 64 }, [mprotect('r'), mprotect('rw'), write('p0', { start: 0, end: 64 })]),
  /** The same on two huge pages of p0's own. */
  mprotectDanceThp: witnessTrace('mprotect-dance-thp', { pages: 1024, thp: true }, [
    mprotect('r'),
    mprotect('rw'),
    write('p0', { start: 0, end: 1024 }),
  ]),
  /** 64 pages of p0's own paged out, read back, then written. */
  swapInReadThenWrite: witnessTrace('swap-in-read-then-write', { pages: 64 }, [pageout(), read('p0', { start: 0, end: 64 }), write('p0', { start: 0, end: 64 })]),
} satisfies Record<string, Trace>;

// ---------------------------------------------------------------------------------------------
// Witnesses: per switch value, a trace, the step that shows the behaviour, and what it shows.

type Events = Record<Exclude<keyof StepEvents, 'swapIns'>, number>;
const events = (copies: number, reuses: number, zeroFills: number, faults: number): Events => ({ copies, reuses, zeroFills, faults });
const counts = (present: number, shared: number, exclusive: number, zeroPage: number): RegionCounts => ({ present, shared, exclusive, zeroPage });

/** What a witness expects after its step; only the fields given are compared. */
interface Outcome {
  events?: Events;
  counts?: Record<string, RegionCounts>;
  frames?: number;
}

interface Witness {
  option: ProfileSwitch;
  value: string | boolean;
  /** The behaviour, in words: the test's name. */
  says: string;
  trace: Trace;
  /** Index of the step whose observation shows it (-1: the setup). */
  step: number;
  expected: Outcome;
  /** Other switches the behaviour needs (a swap to page out to), the same for every value. */
  with?: SimOptions;
}

const WITNESSES: Witness[] = [
  // reuse
  {
    option: 'reuse', value: true, trace: TRACES.sharerLeft, step: 2,
    says: 'a write fault on a page nobody else maps any more reuses it in place: one reuse per page, no copy',
    expected: { events: events(0, 64, 0, 64), counts: { p0: counts(64, 0, 64, 0) }, frames: 64 },
  },
  {
    // No kernel does this (options.ts); the contrast shows the witness above depends on the switch.
    option: 'reuse', value: false, trace: TRACES.sharerLeft, step: 2,
    says: 'with reuse off the same writes copy every page, though nobody else maps them',
    expected: { events: events(64, 0, 0, 64), counts: { p0: counts(64, 0, 64, 0) }, frames: 64 },
  },

  // thpPteReuse
  {
    option: 'thpPteReuse', value: 'per-page', trace: TRACES.splitSharerLeft, step: 4,
    says: 'a page of a PTE-mapped THP whose sharer left is reused while other pages of the folio stay mapped',
    expected: { events: events(0, 2, 0, 2) },
  },
  {
    option: 'thpPteReuse', value: 'per-page', trace: TRACES.lastPageOfSplitFolio, step: 3,
    says: 'the last mapped page of a PTE-mapped THP is copied, so the huge page can be freed',
    expected: { events: events(1, 0, 0, 1), frames: 512 },
  },
  {
    option: 'thpPteReuse', value: 'never', trace: TRACES.splitSharerLeft, step: 4,
    says: 'a page of a PTE-mapped THP is copied even after the sharer left',
    expected: { events: events(2, 0, 0, 2) },
  },
  {
    option: 'thpPteReuse', value: 'never', trace: TRACES.lastPageOfSplitFolio, step: 3,
    says: "a page of a PTE-mapped THP is copied even when its mapping is the folio's last reference",
    expected: { events: events(1, 0, 0, 1), frames: 512 },
  },
  {
    option: 'thpPteReuse', value: 'sole-reference', trace: TRACES.splitSharerLeft, step: 4,
    says: 'a page of a PTE-mapped THP is copied while other pages of the folio still hold references',
    expected: { events: events(2, 0, 0, 2) },
  },
  {
    option: 'thpPteReuse', value: 'sole-reference', trace: TRACES.lastPageOfSplitFolio, step: 3,
    says: "a page of a PTE-mapped THP is reused when its mapping is the folio's last reference",
    expected: { events: events(0, 1, 0, 1), frames: 512 },
  },

  // hugeZeroWrite
  {
    option: 'hugeZeroWrite', value: 'huge-page', trace: TRACES.hugeZeroThenWrite, step: 0,
    says: 'a write to the huge zero page maps a whole new huge page: one zero-fill, no page left on the zero page',
    expected: { events: events(0, 0, 1, 1), counts: { p0: counts(512, 0, 512, 0) }, frames: 512 },
  },
  {
    option: 'hugeZeroWrite', value: 'split', trace: TRACES.hugeZeroThenWrite, step: 0,
    says: 'a write to the huge zero page splits it and zero-fills 4 KiB: 511 pages still map the zero page',
    expected: { events: events(0, 0, 1, 1), counts: { p0: counts(512, 511, 1, 511) }, frames: 1 },
  },

  // pmdExclusive (pagemapExclusive 'precise', the default)
  {
    option: 'pmdExclusive', value: 'head-page', trace: TRACES.childCopiesHeads, step: 1,
    says: "all 512 entries of a PMD mapping get the head page's exclusive bit: once the child copied the heads, all read exclusive",
    expected: { counts: { p0: counts(1024, 0, 1024, 0), c1: counts(1024, 1022, 2, 0) } },
  },
  {
    option: 'pmdExclusive', value: 'per-page', trace: TRACES.childCopiesHeads, step: 1,
    says: 'each entry of a PMD mapping gets its own page\'s exclusive bit: only the pages the child copied read exclusive',
    expected: { counts: { p0: counts(1024, 1022, 2, 0), c1: counts(1024, 1022, 2, 0) } },
  },

  // pagemapExclusive
  {
    option: 'pagemapExclusive', value: 'precise', trace: TRACES.childCopiesHead, step: 1,
    says: "a PMD-mapped page is exclusive by its (head) page's own mapcount, though the child still maps the folio",
    expected: { counts: { p0: counts(512, 0, 512, 0), c1: counts(512, 511, 1, 0) } },
  },
  {
    option: 'pagemapExclusive', value: 'precise', trace: TRACES.bothSplit, step: 2,
    says: 'a PTE-mapped page of a folio both processes map is exclusive when only this process maps that page',
    expected: { counts: { p0: counts(512, 510, 2, 0), c1: counts(512, 510, 2, 0) } },
  },
  {
    option: 'pagemapExclusive', value: 'folio', trace: TRACES.childCopiesHead, step: 1,
    says: 'no page of a folio another process maps reads exclusive, PMD-mapped pages included',
    expected: { counts: { p0: counts(512, 512, 0, 0), c1: counts(512, 511, 1, 0) } },
  },
  {
    option: 'pagemapExclusive', value: 'folio', trace: TRACES.bothSplit, step: 2,
    says: 'no PTE-mapped page of a folio another process maps reads exclusive, even one only this process maps',
    expected: { counts: { p0: counts(512, 511, 1, 0), c1: counts(512, 511, 1, 0) } },
  },

  // mprotectUpgrade. The model's anonymous PTEs are always dirty (a store maps them, and fork
  // keeps the dirty bit of private entries), so 'dirty-pte' and 'pte-and-pmd' part only on huge
  // PMDs: a clean exclusive anonymous PTE (after swap-in, say) cannot be written as a trace.
  {
    option: 'mprotectUpgrade', value: 'pte-and-pmd', trace: TRACES.mprotectDance, step: 2,
    says: 'mprotect rw makes exclusive anonymous PTEs writable: the writes take no fault',
    expected: { events: events(0, 0, 0, 0), counts: { p0: counts(64, 0, 64, 0) } },
  },
  {
    option: 'mprotectUpgrade', value: 'pte-and-pmd', trace: TRACES.mprotectDanceThp, step: 2,
    says: 'mprotect rw makes exclusive huge PMDs writable: the writes take no fault',
    expected: { events: events(0, 0, 0, 0), counts: { p0: counts(1024, 0, 1024, 0) } },
  },
  {
    option: 'mprotectUpgrade', value: 'dirty-pte', trace: TRACES.mprotectDance, step: 2,
    says: 'mprotect rw makes exclusive dirty PTEs writable: the writes take no fault',
    expected: { events: events(0, 0, 0, 0), counts: { p0: counts(64, 0, 64, 0) } },
  },
  {
    option: 'mprotectUpgrade', value: 'dirty-pte', trace: TRACES.mprotectDanceThp, step: 2,
    says: 'mprotect rw leaves huge PMDs read-only: one reuse fault per huge page on the next writes',
    expected: { events: events(0, 2, 0, 2), counts: { p0: counts(1024, 0, 1024, 0) } },
  },
  {
    option: 'mprotectUpgrade', value: 'none', trace: TRACES.mprotectDance, step: 2,
    says: 'mprotect rw makes nothing writable: every write takes a fault and reuses its page',
    expected: { events: events(0, 64, 0, 64), counts: { p0: counts(64, 0, 64, 0) } },
  },
  {
    option: 'mprotectUpgrade', value: 'none', trace: TRACES.mprotectDanceThp, step: 2,
    says: 'mprotect rw leaves huge PMDs read-only too: one reuse fault per huge page',
    expected: { events: events(0, 2, 0, 2), counts: { p0: counts(1024, 0, 1024, 0) } },
  },

  // swapinWritable (with a zram-like swap to page out to)
  {
    option: 'swapinWritable', value: 'exclusive', trace: TRACES.swapInReadThenWrite, step: 2, with: { swap: 'sync-io' },
    says: 'a page swapped in by a read, exclusive to its process, is mapped writable: the writes take no fault',
    expected: { events: events(0, 0, 0, 0), counts: { p0: { ...counts(64, 0, 64, 0), swapped: 0 } }, frames: 64 },
  },
  {
    option: 'swapinWritable', value: 'write-fault', trace: TRACES.swapInReadThenWrite, step: 2, with: { swap: 'sync-io' },
    says: 'a page swapped in by a read is mapped read-only: each write takes a fault that reuses it',
    expected: { events: events(0, 64, 0, 64), counts: { p0: { ...counts(64, 0, 64, 0), swapped: 0 } }, frames: 64 },
  },
];

/** The observation of `w`'s step under `options`, cut down to the fields `w` expects. */
function observe(w: Witness, options: SimOptions): Outcome {
  const o = simulateTrace(w.trace, { checkInvariants: true, ...w.with, ...options }).steps[w.step + 1]!;
  const out: Outcome = {};
  if (w.expected.events) {
    const e = o.events.heap!;
    out.events = { copies: e.copies!, reuses: e.reuses!, zeroFills: e.zeroFills!, faults: e.faults! };
  }
  if (w.expected.counts) {
    out.counts = Object.fromEntries(Object.keys(w.expected.counts).map((p) => [p, countRegion(o.processes[p]!.heap!)]));
  }
  if (w.expected.frames !== undefined) out.frames = o.frames.heap!;
  return out;
}

/** Options with only `option` set, everything else the default (observe adds checkInvariants, no kernel behaviour). */
const only = (option: ProfileSwitch, value: unknown): SimOptions => ({ [option]: value }) as SimOptions;

const witnessesOf = (option: ProfileSwitch, value: unknown) => WITNESSES.filter((w) => w.option === option && w.value === value);

/** A switch's values: those the table gives, then those only a witness names (reuse off). */
function valuesOf(option: ProfileSwitch): unknown[] {
  const b = BEHAVIOURS.find((x) => x.option === option)!;
  return [...new Set<unknown>([...b.changes.map((c) => c.value), ...WITNESSES.filter((w) => w.option === option).map((w) => w.value)])];
}

for (const b of BEHAVIOURS) {
  const option = b.option;
  describe(`profile switch ${option} (${b.flag})`, () => {
    for (const value of new Set<unknown>(b.changes.map((c) => c.value))) {
      it(`${valueText(value)}: the table's value has a witness case`, () => {
        expect(witnessesOf(option, value).length, `add a witness of ${option} ${valueText(value)} to WITNESSES`).toBeGreaterThan(0);
      });
    }

    for (const w of WITNESSES.filter((x) => x.option === option)) {
      it(`${valueText(w.value)}: ${w.says}`, () => {
        expect(observe(w, only(option, w.value))).toEqual(w.expected);
      });
    }

    // Every pair of values is told apart by some witness of the first: it fails under the second.
    const values = valuesOf(option);
    for (const v of values) {
      for (const u of values.filter((x) => x !== v)) {
        it(`${valueText(v)}: some witness of it does not hold under ${valueText(u)}`, () => {
          const told = witnessesOf(option, v).some((w) => !isDeepStrictEqual(observe(w, only(option, u)), w.expected));
          expect(told, `every witness of ${option} ${valueText(v)} also holds under ${valueText(u)}`).toBe(true);
        });
      }
    }
  });
}

describe('the witness table', () => {
  it('names only switches of BEHAVIOURS, with values the simulator accepts', () => {
    for (const w of WITNESSES) {
      expect(BEHAVIOURS.map((b) => b.option)).toContain(w.option);
      expect(() => resolveSimOptions(only(w.option, w.value))).not.toThrow();
    }
  });

  // Why splitSharerLeft has the parent write while the child lives: a parent that never split
  // its PMD reuses it whole after the child's exit (do_huge_pmd_wp_page), one fault per huge page
  // and whatever thpPteReuse says, so that trace would witness none of its values.
  it.each(['per-page', 'never', 'sole-reference'] as const)(
    "the THP witness needs the parent's own split: an unsplit PMD whose sharer left is reused whole under thpPteReuse %s",
    (mode) => {
      const t = witnessTrace('child-splits-only', { pages: 1024, thp: true }, [fork(), write('c1', eachHugePage(1024, 0)), exit(), write('p0', eachHugePage(1024, 1))]);
      const e = simulateTrace(t, { thpPteReuse: mode, checkInvariants: true }).steps[4]!.events.heap!;
      expect(e).toEqual({ copies: 0, reuses: 2, zeroFills: 0, faults: 2 });
    },
  );
});

// ---------------------------------------------------------------------------------------------
// profileFor

function facts(version: string | null, config: KernelConfig, useZeroPage: boolean | null = true, release = `${version ?? '6.18.0'}-test`): KernelFacts {
  return { release, build: '', version, config, knobs: { thpEnabled: 'madvise', useZeroPage } };
}
const noPageMapcount = () => parseConfig('CONFIG_TRANSPARENT_HUGEPAGE=y\nCONFIG_NO_PAGE_MAPCOUNT=y\n', 'test');
const pageMapcount = () => parseConfig('CONFIG_TRANSPARENT_HUGEPAGE=y\nCONFIG_PAGE_MAPCOUNT=y\n# CONFIG_NO_PAGE_MAPCOUNT is not set\n', 'test');

/** The switches kernel versions decide (not the knobs). */
const versionSwitches = (p: KernelProfile) => {
  const { hugeZeroPage: _zero, faultAroundPages: _around, swap: _swap, ...rest } = p.options;
  return rest;
};

describe('profileFor: the profile of a kernel version', () => {
  it('Linux 6.1: sole-reference THP reuse, split huge zero page, head-page PMD bit, precise, dirty PTEs only', () => {
    expect(profileFor('6.1').options).toEqual({
      reuse: true,
      thpPteReuse: 'sole-reference',
      faultAroundPages: 16,
      hugeZeroPage: true,
      pagemapExclusive: 'precise',
      pmdExclusive: 'head-page',
      hugeZeroWrite: 'split',
      mprotectUpgrade: 'dirty-pte',
      swap: 'none',
      swapinWritable: 'write-fault',
    });
  });

  it('Linux 6.12: no THP reuse, split huge zero page, per-page PMD bit, precise, PTEs and PMDs', () => {
    expect(profileFor('6.12').options).toEqual({
      reuse: true,
      thpPteReuse: 'never',
      faultAroundPages: 16,
      hugeZeroPage: true,
      pagemapExclusive: 'precise',
      pmdExclusive: 'per-page',
      hugeZeroWrite: 'split',
      mprotectUpgrade: 'pte-and-pmd',
      swap: 'none',
      swapinWritable: 'exclusive',
    });
  });

  it('Linux 6.18: per-page THP reuse, a huge page for the huge zero page, head-page PMD bit, precise, PTEs and PMDs', () => {
    expect(profileFor('6.18').options).toEqual({
      reuse: true,
      thpPteReuse: 'per-page',
      faultAroundPages: 16,
      hugeZeroPage: true,
      pagemapExclusive: 'precise',
      pmdExclusive: 'head-page',
      hugeZeroWrite: 'huge-page',
      mprotectUpgrade: 'pte-and-pmd',
      swap: 'none',
      swapinWritable: 'exclusive',
    });
  });

  [
    { kernel: '5.9', thp: 'sole-reference', zero: 'split', pmd: 'head-page', mprotect: 'none', swapin: 'write-fault' },
    { kernel: '5.10', thp: 'sole-reference', zero: 'split', pmd: 'head-page', mprotect: 'none', swapin: 'write-fault' },
    { kernel: '5.19.17', thp: 'sole-reference', zero: 'split', pmd: 'head-page', mprotect: 'none', swapin: 'write-fault' },
    { kernel: '6.0', thp: 'sole-reference', zero: 'split', pmd: 'head-page', mprotect: 'dirty-pte', swapin: 'write-fault' },
    { kernel: '6.2', thp: 'sole-reference', zero: 'split', pmd: 'head-page', mprotect: 'pte-and-pmd', swapin: 'write-fault' },
    { kernel: '6.8.12', thp: 'sole-reference', zero: 'split', pmd: 'head-page', mprotect: 'pte-and-pmd', swapin: 'write-fault' },
    { kernel: '6.9', thp: 'never', zero: 'split', pmd: 'head-page', mprotect: 'pte-and-pmd', swapin: 'write-fault' },
    { kernel: '6.10', thp: 'never', zero: 'split', pmd: 'head-page', mprotect: 'pte-and-pmd', swapin: 'write-fault' },
    { kernel: '6.11', thp: 'never', zero: 'split', pmd: 'per-page', mprotect: 'pte-and-pmd', swapin: 'exclusive' },
    { kernel: '6.13', thp: 'never', zero: 'huge-page', pmd: 'per-page', mprotect: 'pte-and-pmd', swapin: 'exclusive' },
    { kernel: '6.14', thp: 'never', zero: 'huge-page', pmd: 'per-page', mprotect: 'pte-and-pmd', swapin: 'exclusive' },
    { kernel: '6.15', thp: 'per-page', zero: 'huge-page', pmd: 'head-page', mprotect: 'pte-and-pmd', swapin: 'exclusive' },
  ].forEach(({ kernel, thp, zero, pmd, mprotect, swapin }) => {
    it(`Linux ${kernel}: thpPteReuse ${thp}, hugeZeroWrite ${zero}, pmdExclusive ${pmd}, pagemapExclusive precise, mprotectUpgrade ${mprotect}, swapinWritable ${swapin}`, () => {
      expect(versionSwitches(profileFor(kernel))).toEqual({
        reuse: true, thpPteReuse: thp, hugeZeroWrite: zero, pmdExclusive: pmd, pagemapExclusive: 'precise', mprotectUpgrade: mprotect,
        swapinWritable: swapin,
      });
    });
  });

  it('names the profile by x.y and keeps the full version', () => {
    const p = profileFor('6.12.117');
    expect(p.name).toBe('6.12');
    expect(p.version).toBe('6.12.117');
  });

  it('chooses by the upstream version in the facts, else by the release', () => {
    expect(profileFor(facts('6.1.192', pageMapcount(), true, '6.1.0-57-cloud-amd64')).version).toBe('6.1.192');
    expect(profileFor(facts(null, pageMapcount(), true, '6.12.0-test')).name).toBe('6.12');
  });

  it('rejects a string that is no kernel version', () => {
    expect(() => profileFor('latest')).toThrow(/not a kernel version/);
  });

  it(`gives a kernel older than ${OLDEST_MODELLED} (the oldest modelled) a caveat, and ${OLDEST_MODELLED} itself none`, () => {
    expect(profileFor('5.8').caveats.some((c) => c.includes(`older than ${OLDEST_MODELLED}`))).toBe(true);
    expect(profileFor('4.19.300').caveats.some((c) => c.includes(`older than ${OLDEST_MODELLED}`))).toBe(true);
    expect(profileFor(OLDEST_MODELLED).caveats).toEqual([]);
    expect(profileFor('6.1').caveats).toEqual([]);
  });

  it('gives every switch an entry: its flag, its value as the flag spells it, and why', () => {
    const p = profileFor('6.1');
    expect(p.entries.map((e) => e.option)).toEqual([...BEHAVIOURS.map((b) => b.option), ...KNOBS.map((k) => k.option)]);
    for (const e of p.entries) {
      expect(e.value).toBe(valueText(p.options[e.option]));
      expect(e.because).not.toBe('');
    }
    expect(p.entries.find((e) => e.option === 'mprotectUpgrade')!.because).toBe(
      'since 6.0: mm/mprotect: try avoiding write faults for exclusive anonymous pages when changing protection (64fe24a3e05e)',
    );
    expect(p.entries.find((e) => e.option === 'thpPteReuse')!.because).toBe('before any change listed');
  });

  it('models with its defaults Linux 6.18 as configured here (CONFIG_PAGE_MAPCOUNT, use_zero_page on)', () => {
    const { costModel: _cost, checkInvariants: _check, ...defaults } = DEFAULT_SIM_OPTIONS;
    expect(profileFor(facts('6.18.2', pageMapcount())).options).toEqual(defaults);
  });
});

describe('profileFor: rows the build configuration decides', () => {
  [
    { kernel: '6.15', what: 'CONFIG_NO_PAGE_MAPCOUNT=y', config: noPageMapcount, value: 'folio' },
    { kernel: '6.18.2', what: 'CONFIG_NO_PAGE_MAPCOUNT=y', config: noPageMapcount, value: 'folio' },
    { kernel: '6.15', what: 'CONFIG_NO_PAGE_MAPCOUNT not set', config: pageMapcount, value: 'precise' },
    { kernel: '6.18.2', what: 'CONFIG_NO_PAGE_MAPCOUNT not set', config: pageMapcount, value: 'precise' },
    { kernel: '6.14', what: 'CONFIG_NO_PAGE_MAPCOUNT=y (before the row)', config: noPageMapcount, value: 'precise' },
  ].forEach(({ kernel, what, config, value }) => {
    it(`Linux ${kernel} with ${what}: pagemapExclusive ${value}, no caveat`, () => {
      const p = profileFor(facts(kernel, config()));
      expect(p.options.pagemapExclusive).toBe(value);
      expect(p.caveats).toEqual([]);
    });
  });

  it('Linux 6.15+ with the configuration unknown: pagemapExclusive precise, and a caveat saying what was assumed', () => {
    for (const p of [profileFor(facts('6.15', unknownConfig())), profileFor('6.18')]) {
      expect(p.options.pagemapExclusive).toBe('precise');
      expect(p.caveats).toEqual(["the kernel's configuration is not known: CONFIG_NO_PAGE_MAPCOUNT is assumed not set"]);
    }
  });

  it('Linux before 6.15 with the configuration unknown: no caveat (no row there depends on it)', () => {
    expect(profileFor(facts('6.14', unknownConfig())).caveats).toEqual([]);
  });

  it('says why: the config row names the option it needed', () => {
    const e = profileFor(facts('6.18', noPageMapcount())).entries.find((x) => x.option === 'pagemapExclusive')!;
    expect(e.because).toMatch(/^since 6\.15 with CONFIG_NO_PAGE_MAPCOUNT=y: fs\/proc\/task_mmu: /);
  });
});

describe('profileFor: rows a knob of the kernel decides', () => {
  [
    { useZeroPage: false, value: false, because: /use_zero_page.*: read off on the kernel that ran/ },
    { useZeroPage: true, value: true, because: /use_zero_page.*: read on on the kernel that ran/ },
    { useZeroPage: null, value: true, because: /use_zero_page.*: the default/ },
  ].forEach(({ useZeroPage, value, because }) => {
    it(`use_zero_page ${useZeroPage === null ? 'unknown' : valueText(useZeroPage)}: hugeZeroPage ${valueText(value)}`, () => {
      const p = profileFor(facts('6.18', pageMapcount(), useZeroPage));
      expect(p.options.hugeZeroPage).toBe(value);
      expect(p.entries.find((e) => e.option === 'hugeZeroPage')!.because).toMatch(because);
    });
  });

  it('a version alone has no knobs: the defaults', () => {
    expect(profileFor('6.1').options.hugeZeroPage).toBe(DEFAULT_SIM_OPTIONS.hugeZeroPage);
    expect(profileFor('6.1').options.faultAroundPages).toBe(DEFAULT_SIM_OPTIONS.faultAroundPages);
  });
});

describe('the table and profileFor agree', () => {
  for (const b of BEHAVIOURS) {
    it(`${b.option}: changes are listed oldest first; only the first may have no release`, () => {
      b.changes.slice(1).forEach((c) => expect(c.since).not.toBeNull());
      const versions = b.changes.filter((c) => c.since !== null).map((c) => parseVersion(c.since!));
      versions.forEach((v) => expect(v).not.toBeNull());
      for (let i = 1; i < versions.length; i++) expect(compareVersions(versions[i - 1]!, versions[i]!)).toBeLessThanOrEqual(0);
    });
  }

  // At the release a change names (with the config it needs), profileFor gives its value.
  const atRelease = BEHAVIOURS.flatMap((b) =>
    (b.changes as Change<unknown>[]).map((c, i) => ({ option: b.option, value: valueText(c.value), since: c.since, c, later: b.changes.slice(i + 1) })),
  ).filter(({ since, later }) => since !== null && !later.some((x) => x.since === since && !x.config));
  for (const { option, value, since, c } of atRelease) {
    const cfg = c.config ? ` with ${c.config.option}${c.config.set ? '=y' : ' not set'}` : '';
    it(`${option} ${value} from Linux ${since}${cfg}`, () => {
      const config = c.config ? (c.config.set ? noPageMapcount() : pageMapcount()) : pageMapcount();
      expect(profileFor(facts(since, config)).options[option]).toBe(c.value);
    });
  }

  it(`at ${OLDEST_MODELLED} every switch has its first value`, () => {
    const p = profileFor(facts(OLDEST_MODELLED, pageMapcount()));
    for (const b of BEHAVIOURS) expect(p.options[b.option]).toBe(b.changes[0]!.value);
  });
});

// ---------------------------------------------------------------------------------------------
// profileTable

describe('profileTable: the table in words', () => {
  const rows = profileTable();
  const changes = BEHAVIOURS.flatMap((b) => (b.changes as Change<unknown>[]).map((c) => ({ b, c })));

  it('has one row per change, in the order of the table: switch, flag, value', () => {
    expect(rows.length).toBe(changes.length);
    rows.forEach((r, i) => {
      const { b, c } = changes[i]!;
      expect(r.length).toBe(6);
      expect(r.slice(0, 3)).toEqual([b.option, b.flag, valueText(c.value)]);
      expect(r[5]).toBe(b.where);
    });
  });

  changes.forEach(({ b, c }, i) => {
    const row = rows[i]!;
    it(`${b.option} ${valueText(c.value)} (${c.since === null ? 'the behaviour before' : `since ${c.since}`}) names its range and its kernel change`, () => {
      const [range, source] = [row[3]!, row[4]!];
      if (c.since === null) {
        expect(range).toMatch(/^(< \d+\.\d+|all)( \(not with CONFIG_[A-Z_]+=[yn] from \d+\.\d+\))?$/);
        expect(source).toBe('(the behaviour before)');
      } else {
        expect(range).toMatch(new RegExp(`^>= ${c.since.replace('.', '\\.')}(, < \\d+\\.\\d+)?`));
        expect(c.subject).toMatch(/\S/);
        expect(source.startsWith(c.subject!)).toBe(true);
        if (c.commit) expect(source).toBe(`${c.subject} (${c.commit})`);
      }
      if (c.config) expect(range.endsWith(`, ${c.config.option}=${c.config.set ? 'y' : 'n'}`)).toBe(true);
    });
  });

  [
    { option: 'thpPteReuse', ranges: ['< 6.9', '>= 6.9, < 6.15', '>= 6.15'] },
    { option: 'hugeZeroWrite', ranges: ['< 6.13', '>= 6.13'] },
    { option: 'pmdExclusive', ranges: ['< 6.11', '>= 6.11, < 6.15', '>= 6.15'] },
    // A config row does not end the row before it: 'precise' holds on every kernel without the option.
    { option: 'pagemapExclusive', ranges: ['all (not with CONFIG_NO_PAGE_MAPCOUNT=y from 6.15)', '>= 6.15, CONFIG_NO_PAGE_MAPCOUNT=y'] },
    { option: 'mprotectUpgrade', ranges: ['< 6.0', '>= 6.0, < 6.2', '>= 6.2'] },
    { option: 'reuse', ranges: ['>= 5.9'] },
  ].forEach(({ option, ranges }) => {
    it(`${option}: its rows hold for ${ranges.join('; ')}`, () => {
      expect(rows.filter((r) => r[0] === option).map((r) => r[3])).toEqual(ranges);
    });
  });
});

describe('docs/kernels.md', () => {
  it('holds the profile table as it is', () => {
    const doc = readFileSync(join(packageRoot(), 'docs', 'kernels.md'), 'utf8');
    expect(doc).toContain(markdownTable(PROFILE_TABLE_HEAD, profileTable()));
  });
});
