/**
 * Simulator options: kernel behaviours that differ between versions or configurations, made
 * explicit so validation can decide which setting matches the running kernel. The defaults
 * model Linux 6.18 as configured here (THP madvise, huge zero page on, CONFIG_PAGE_MAPCOUNT);
 * profiles.ts says which values hold on which kernel, and why.
 */
import { choiceOption, integerOption } from '../../options.js';
import { invalidOption } from '../../errors.js';
import { DEFAULT_COST_MODEL, type CostModel } from './cost.js';

import type { PhysMemPool } from './physmem.js';

export const THP_PTE_REUSE = ['per-page', 'never', 'sole-reference'] as const;
export type ThpPteReuse = (typeof THP_PTE_REUSE)[number];
export const PAGEMAP_EXCLUSIVE = ['precise', 'folio'] as const;
export type PagemapExclusive = (typeof PAGEMAP_EXCLUSIVE)[number];
export const PMD_EXCLUSIVE = ['head-page', 'per-page'] as const;
export type PmdExclusive = (typeof PMD_EXCLUSIVE)[number];
export const HUGE_ZERO_WRITE = ['huge-page', 'split'] as const;
export type HugeZeroWrite = (typeof HUGE_ZERO_WRITE)[number];
export const MPROTECT_UPGRADE = ['pte-and-pmd', 'dirty-pte', 'none'] as const;
export type MprotectUpgrade = (typeof MPROTECT_UPGRADE)[number];
export const SWAP_DEVICES = ['none', 'sync-io', 'block'] as const;
export type SwapDevice = (typeof SWAP_DEVICES)[number];
export const SWAPIN_WRITABLE = ['exclusive', 'write-fault'] as const;
export type SwapinWritable = (typeof SWAPIN_WRITABLE)[number];

export interface SimOptions {
  /**
   * Reuse on write fault (do_wp_page, do_huge_pmd_wp_page): a COW page nobody else
   * references any more is made writable in place instead of copied. Default true (every
   * kernel since 5.9 reuses by refcount; 5.19+ also by PageAnonExclusive). false copies on
   * every write fault to a read-only page, which no kernel does: it exists to make
   * validation fail on purpose.
   */
  reuse?: boolean;
  /**
   * Reuse of a page of a PTE-mapped THP (a huge page split by an earlier COW).
   *   'per-page' (default, 6.15+, __wp_can_reuse_large_anon_folio): reused when every mapping
   *              and every reference of the huge folio belongs to the writer and more than one
   *              of its pages is still mapped.
   *   'never'    (6.9 to 6.14): always copied.
   *   'sole-reference' (before 6.9): the small-page rule applied to the whole folio: reused
   *              only when this page's mapping is the folio's last reference.
   */
  thpPteReuse?: ThpPteReuse;
  /**
   * fault_around_bytes / 4096: a read fault on a shmem/memfd mapping also maps the
   * neighbouring pages the page cache already holds, in an aligned window of this many
   * pages clipped to the VMA. Default 16 (64 KiB, the kernel default); 1 turns it off.
   * A power of two, at most 512.
   */
  faultAroundPages?: number;
  /**
   * transparent_hugepage/use_zero_page: a read of an untouched huge-page-able chunk maps the
   * huge zero page. Default true (as here). false allocates a real huge page on read.
   */
  hugeZeroPage?: boolean;
  /**
   * How pagemap's exclusive bit (56) is computed. 'precise' (default, CONFIG_PAGE_MAPCOUNT):
   * the page's own mapcount (PTEs of this page plus PMDs of its folio) is 1; for an entry of a
   * PMD mapping, the head page's (pagemap_pmd_range_thp judges all 512 entries by it). 'folio'
   * (CONFIG_NO_PAGE_MAPCOUNT, and kernels after 6.18 that drop per-page mapcounts): not
   * "maybe mapped shared" as a whole folio. The two differ only for huge pages.
   */
  pagemapExclusive?: PagemapExclusive;
  /**
   * With pagemapExclusive 'precise', how the exclusive bit of a PMD-mapped huge page's 512
   * entries is computed. 'head-page' (default; 6.1, and 6.18): once, from the head page's
   * mapcount, for all of them. 'per-page' (6.12): each entry from its own page's precise
   * mapcount, so pages another process still maps through its own PTEs read shared.
   */
  pmdExclusive?: PmdExclusive;
  /**
   * A write fault on the huge zero page. 'huge-page' (default, 6.13+, do_huge_zero_wp_pmd): a
   * new zeroed huge page replaces it, one fault. 'split' (before): the PMD is split into 512
   * zero-page PTEs and the store zero-fills one 4 KiB page.
   */
  hugeZeroWrite?: HugeZeroWrite;
  /**
   * mprotect(PROT_READ|PROT_WRITE) on a private mapping makes an entry writable without a
   * fault when the page is anonymous and exclusive. 'pte-and-pmd' (default, 6.2+): PTEs and
   * huge PMDs. 'dirty-pte' (6.0, 6.1): PTEs only, and only dirty ones. 'none' (before 6.0):
   * never; the next store takes a write fault (a reuse).
   */
  mprotectUpgrade?: MprotectUpgrade;
  /**
   * The swap the kernel under test has (swap.ts): what reclaim (MADV_PAGEOUT) can do with an
   * anonymous page. 'none' (default, as here: no swap): nothing, the page stays resident.
   * 'sync-io': a device that completes I/O synchronously (zram, brd, pmem; SWP_SYNCHRONOUS_IO):
   * the page is written at once and its frame freed, and a swap-in of an entry only one page
   * table holds skips the swap cache. 'block': any other device: the written folio stays in
   * the swap cache, and every swap-in goes through it.
   */
  swap?: SwapDevice;
  /**
   * What a swap-in maps when the page is exclusive to the faulting process. 'exclusive'
   * (default, 6.11+, c18160dba5ff): writable, even on a read fault, so a later store takes no
   * fault. 'write-fault' (before): writable only on a write fault; after a read the next store
   * takes a write fault that reuses the page.
   */
  swapinWritable?: SwapinWritable;
  /** Time prediction constants. Default: DEFAULT_COST_MODEL (uncalibrated). */
  costModel?: CostModel;
  /** Check the model's invariants after every step and throw on a violation (slow). Default false. */
  checkInvariants?: boolean;
}

export type ResolvedSimOptions = Required<SimOptions>;

/**
 * How the simulator computes, not what it models: no result depends on these, so they are
 * kept out of SimOptions (which are kernel behaviours, one CLI flag each). For tests.
 */
export interface SimDebugOptions {
  /**
   * Take the fast paths (fastpath.ts) for runs of pages in a common state. Default true.
   * false sends every fault through the per-page reference path (handleMmFault); the
   * observations and the model's state are the same either way (test/sim/fastpaths.test.ts).
   */
  fastPaths?: boolean;
  /** Take the frame tables from this pool (SimEngine keeps one between its runs). */
  pool?: PhysMemPool;
}

export const DEFAULT_SIM_OPTIONS: Readonly<ResolvedSimOptions> = Object.freeze({
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
  costModel: DEFAULT_COST_MODEL,
  checkInvariants: false,
});

function booleanOption(field: string, value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  throw invalidOption(field, `must be true or false, got ${String(value)}`);
}

/** Applies defaults and checks values; `flag` names a field in errors (a CLI flag, say). */
export function resolveSimOptions(o: SimOptions = {}, flag: (k: keyof SimOptions) => string = (k) => k): ResolvedSimOptions {
  const d = DEFAULT_SIM_OPTIONS;
  const faultAroundPages = o.faultAroundPages === undefined ? d.faultAroundPages : integerOption(flag('faultAroundPages'), o.faultAroundPages, { min: 1, max: 512 });
  if ((faultAroundPages & (faultAroundPages - 1)) !== 0) {
    throw invalidOption(flag('faultAroundPages'), `must be a power of two, got ${faultAroundPages}`);
  }
  return {
    reuse: o.reuse === undefined ? d.reuse : booleanOption(flag('reuse'), o.reuse),
    thpPteReuse: o.thpPteReuse === undefined ? d.thpPteReuse : choiceOption(flag('thpPteReuse'), o.thpPteReuse, THP_PTE_REUSE),
    faultAroundPages,
    hugeZeroPage: o.hugeZeroPage === undefined ? d.hugeZeroPage : booleanOption(flag('hugeZeroPage'), o.hugeZeroPage),
    pagemapExclusive:
      o.pagemapExclusive === undefined ? d.pagemapExclusive : choiceOption(flag('pagemapExclusive'), o.pagemapExclusive, PAGEMAP_EXCLUSIVE),
    pmdExclusive: o.pmdExclusive === undefined ? d.pmdExclusive : choiceOption(flag('pmdExclusive'), o.pmdExclusive, PMD_EXCLUSIVE),
    hugeZeroWrite: o.hugeZeroWrite === undefined ? d.hugeZeroWrite : choiceOption(flag('hugeZeroWrite'), o.hugeZeroWrite, HUGE_ZERO_WRITE),
    mprotectUpgrade:
      o.mprotectUpgrade === undefined ? d.mprotectUpgrade : choiceOption(flag('mprotectUpgrade'), o.mprotectUpgrade, MPROTECT_UPGRADE),
    swap: o.swap === undefined ? d.swap : choiceOption(flag('swap'), o.swap, SWAP_DEVICES),
    swapinWritable: o.swapinWritable === undefined ? d.swapinWritable : choiceOption(flag('swapinWritable'), o.swapinWritable, SWAPIN_WRITABLE),
    costModel: o.costModel ?? d.costModel,
    checkInvariants: o.checkInvariants === undefined ? d.checkInvariants : booleanOption(flag('checkInvariants'), o.checkInvariants),
  };
}
