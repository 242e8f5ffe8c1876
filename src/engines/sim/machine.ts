/**
 * The machine every handler works on (physical memory and the kernel's configuration), and
 * what a fault did: the kind decides which event it counts as and what it costs.
 */
import type { PhysMem } from './physmem.js';
import type { ResolvedSimOptions } from './options.js';
import type { SwapSpace } from './swap.js';

export interface Machine {
  readonly mem: PhysMem;
  readonly opts: ResolvedSimOptions;
  /** Take the fast paths (fastpath.ts) where they apply; false: every fault per page. */
  readonly fastPaths: boolean;
  /** The swap reclaim writes to (options.swap); null without swap. */
  readonly swap: SwapSpace | null;
}

/** The access needed no fault: the entry was present (and writable, for a store). */
export const FAULT_NONE = 0;
/** Mapped a page that already existed: the zero page, or a page-cache page (with fault-around). */
export const FAULT_MAP = 1;
/** A read fault that had to allocate the page it maps (a shmem page-cache page). */
export const FAULT_MAP_NEW = 2;
/** A write fault put a fresh zeroed 4 KiB page where none, or the zero page, was mapped. */
export const FAULT_ZERO_FILL = 3;
/** The same for a whole 2 MiB huge page (one fault, one event). */
export const FAULT_HUGE_ZERO_FILL = 4;
/** A read fault that allocated a huge page (no huge zero page). */
export const FAULT_HUGE_MAP_NEW = 5;
/** do_cow_fault: a write to an unmapped page of a private memfd mapping: a fresh anonymous
 *  page filled from the page cache. Counts as a zero-fill (nothing was mapped), costs a copy. */
export const FAULT_COW_FILL = 6;
/** wp_page_copy: a write gave a present page a new frame. */
export const FAULT_COPY = 7;
/** wp_page_reuse: a write made a read-only page writable in place. */
export const FAULT_REUSE = 8;
/** A write fault on a shared mapping's read-only entry: made writable, nothing copied. */
export const FAULT_WP_SHARED = 9;
/** do_swap_page: a swapped-out page read back (and, on a store, made writable or copied). */
export const FAULT_SWAP_IN = 10;
/** Internal: the PMD was split; handle the fault on the PTE (same fault). */
export const FAULT_FALLBACK = -1;

export const FAULT_KINDS = 11;
