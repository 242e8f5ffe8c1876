/**
 * Swap (mm/madvise.c madvise_cold_or_pageout_pte_range, mm/vmscan.c shrink_folio_list,
 * mm/rmap.c try_to_unmap_one, mm/memory.c do_swap_page, mm/swapfile.c), for 4 KiB pages of
 * private anonymous memory: what MADV_PAGEOUT does, and what a fault on a swapped-out page does.
 *
 *   slot        a swap entry (an offset on the device). Its count is the page table entries
 *               that hold it (the swap map count); it is free again when none does and no
 *               folio of the swap cache stands for it.
 *   swap cache  a folio that stands for a slot while both exist (it holds one reference on the
 *               folio). Reclaim puts a folio there before it unmaps it; a swap-in reads into one,
 *               unless the device is synchronous and only one entry holds the slot.
 *   entry       a swapped-out PTE holds its slot (Vma pt.pfn) with PTE_SWAP, and PTE_SWP_EXCLUSIVE
 *               when the page was PageAnonExclusive as it was unmapped: then its swap-in needs no
 *               reference count to know nobody else can have it.
 *
 * Reclaim skips a page mapped by any other process (its mapcount is not 1), so pages still
 * shared after fork stay resident; once the sharer has gone, the same call swaps them out.
 */
import { FAULT_SWAP_IN, type Machine } from './machine.js';
import { doWpPage } from './fault.js';
import {
  PTE_DIRTY,
  PTE_PRESENT,
  PTE_SPECIAL,
  PTE_SWAP,
  PTE_SWP_EXCLUSIVE,
  PTE_WRITE,
  vmaWritable,
  type Mm,
  type Vma,
} from './vm.js';

export class SwapSpace {
  /** Per slot: the page table entries that hold it. Slot 0 is never handed out. */
  count = new Int32Array(64);
  /** Per slot: the pfn of its swap-cache folio, 0 when none. */
  cache = new Int32Array(64);
  /** pfn -> slot, for folios in the swap cache (folio_test_swapcache). */
  readonly slotOfPfn = new Map<number, number>();
  /** Freed slots, reused as the kernel's allocator would (which slot does not matter). */
  private readonly free: number[] = [];
  private top = 0;

  constructor(readonly synchronous: boolean) {}

  /** A free slot (get_swap_page / folio_alloc_swap). */
  alloc(): number {
    const slot = this.free.pop() ?? ++this.top;
    if (slot >= this.count.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.count = grow(this.count);
      this.cache = grow(this.cache);
    }
    return slot;
  }

  /** The slot is free again when no entry holds it and no folio stands for it. */
  maybeFree(slot: number): void {
    if (this.count[slot] === 0 && this.cache[slot] === 0) this.free.push(slot);
  }

  /** Slots in use (held by an entry or by the swap cache). */
  get used(): number {
    return this.top - this.free.length;
  }
}

/** add_to_swap: the folio at `pfn` enters the swap cache for a new slot (one more reference). */
function addToSwapCache(m: Machine, swap: SwapSpace, pfn: number): number {
  const slot = swap.alloc();
  swap.cache[slot] = pfn;
  swap.slotOfPfn.set(pfn, slot);
  m.mem.folioGet(pfn);
  return slot;
}

/** The folio leaves the swap cache (__remove_mapping, folio_free_swap): its reference goes. */
export function deleteFromSwapCache(m: Machine, swap: SwapSpace, slot: number): void {
  const pfn = swap.cache[slot]!;
  swap.cache[slot] = 0;
  swap.slotOfPfn.delete(pfn);
  swap.maybeFree(slot);
  m.mem.folioPut(pfn);
}

/**
 * MADV_PAGEOUT on pages `pages` of `vma` (4 KiB pages of private anonymous memory: the trace
 * parser allows no other). Per page that maps a frame (not the zero page, which is no folio on
 * the LRU) and that no other process maps: without swap, nothing (reclaim keeps an anonymous
 * folio it has nowhere to put); with swap, the folio enters the swap cache (unless it is there
 * already), the entry becomes a swap entry, and the folio is freed once written: at once on a
 * synchronous device, or for a folio already in the swap cache (it is clean); on a block
 * device a newly written folio stays in the swap cache (still under writeback when reclaim
 * looks again). Returns the pages swapped out.
 */
export function madvisePageout(m: Machine, mm: Mm, vma: Vma, pages: Iterable<number>): number {
  const swap = m.swap;
  let out = 0;
  for (const i of pages) {
    const flags = vma.pt.flags[i]!;
    if ((flags & PTE_PRESENT) === 0 || (flags & PTE_SPECIAL) !== 0) continue;
    const pfn = vma.pt.pfn[i]!;
    // madvise_cold_or_pageout_pte_range: a folio mapped more than once is left alone.
    if (m.mem.mapcount[pfn] !== 1 || swap === null) continue;
    const cached = swap.slotOfPfn.get(pfn);
    const slot = cached ?? addToSwapCache(m, swap, pfn);
    // try_to_unmap_one: the entry keeps PageAnonExclusive in the swap PTE.
    const exclusive = m.mem.anonExclusive[pfn] === 1;
    m.mem.anonExclusive[pfn] = 0;
    m.mem.unmapAndPutPte(pfn, mm.id);
    vma.pt.pfn[i] = slot;
    vma.pt.flags[i] = PTE_SWAP | (exclusive ? PTE_SWP_EXCLUSIVE : 0);
    swap.count[slot] = swap.count[slot]! + 1;
    if (cached !== undefined || swap.synchronous) deleteFromSwapCache(m, swap, slot);
    out++;
  }
  return out;
}

/**
 * do_swap_page: a load or store at page `i`, which holds a swap entry. The page comes back:
 * from the swap cache when a folio stands for the slot; else read into a fresh folio, which
 * skips the swap cache on a synchronous device when this is the only entry holding the slot
 * (then nobody else can have the page: exclusive). Otherwise exclusive comes from the entry's
 * bit, or from the reference count. The entry lets go of its slot; on a store the swap cache
 * is dropped too when this folio is likely ours alone (should_try_to_free_swap), and freed if
 * no other entry holds the slot. An exclusive page is mapped writable on a store, and (since
 * 6.11: swapinWritable 'exclusive') on a load too; a store to a page mapped read-only goes on
 * into do_wp_page in the same fault (a copy when the slot is still held elsewhere). One fault,
 * counted as a swap-in.
 */
export function doSwapPage(m: Machine, mm: Mm, vma: Vma, i: number, write: boolean): number {
  const swap = m.swap;
  const mem = m.mem;
  if (swap === null) throw new Error(`sim bug: swap entry at page ${i} without swap`);
  const slot = vma.pt.pfn[i]!;
  let exclusive = (vma.pt.flags[i]! & PTE_SWP_EXCLUSIVE) !== 0;
  let pfn = swap.cache[slot]!;
  if (pfn !== 0) {
    mem.folioGet(pfn); // the fault's own reference, which becomes the mapping's
  } else if (swap.synchronous && swap.count[slot] === 1) {
    pfn = mem.allocPage(true); // skip the swap cache: a fresh folio nobody else can see
    exclusive = true;
  } else {
    pfn = mem.allocPage(true); // the swap cache's reference
    swap.cache[slot] = pfn;
    swap.slotOfPfn.set(pfn, slot);
    mem.folioGet(pfn);
  }
  swap.count[slot] = swap.count[slot]! - 1; // swap_free
  const inCache = swap.cache[slot] === pfn;
  // should_try_to_free_swap: on a store, when the swap cache's and ours are the only references.
  if (inCache && write && mem.refcount[pfn] === 2 && swap.count[slot] === 0) deleteFromSwapCache(m, swap, slot);
  else swap.maybeFree(slot);
  if (!exclusive && mem.refcount[pfn] === 1) exclusive = true;
  mem.mapcount[pfn] = mem.mapcount[pfn]! + 1;
  mem.anonExclusive[pfn] = exclusive ? 1 : 0;
  const writable = exclusive && vmaWritable(vma, i) && (write || m.opts.swapinWritable === 'exclusive');
  vma.pt.pfn[i] = pfn;
  vma.pt.flags[i] = PTE_PRESENT | (writable ? PTE_WRITE : 0) | (write && writable ? PTE_DIRTY : 0);
  if (write && !writable) doWpPage(m, mm, vma, i);
  return FAULT_SWAP_IN;
}

/** copy_nonpresent_pte: the child's entry holds the same slot; neither is exclusive any more. */
export function copySwapPte(m: Machine, src: Vma, dst: Vma, i: number): void {
  const slot = src.pt.pfn[i]!;
  m.swap!.count[slot] = m.swap!.count[slot]! + 1;
  const flags = src.pt.flags[i]! & ~PTE_SWP_EXCLUSIVE;
  src.pt.flags[i] = flags;
  dst.pt.pfn[i] = slot;
  dst.pt.flags[i] = flags;
}

/**
 * free_swap_and_cache: an entry holding `slot` is zapped (exit, exec). When it was the last,
 * a swap-cache folio nobody maps is freed with it (__try_to_reclaim_swap, TTRS_UNMAPPED).
 */
export function freeSwapEntry(m: Machine, slot: number): void {
  const swap = m.swap!;
  swap.count[slot] = swap.count[slot]! - 1;
  if (swap.count[slot]! > 0) return;
  const pfn = swap.cache[slot]!;
  if (pfn !== 0 && m.mem.mapcount[pfn] === 0) deleteFromSwapCache(m, swap, slot);
  else swap.maybeFree(slot);
}

/**
 * wp_can_reuse_anon_folio for a small folio in the swap cache: the writer may keep it when the
 * swap cache's is the only other reference and no entry holds its slot any more; the swap
 * cache is dropped first (folio_free_swap). True when the folio's only reference is now ours.
 */
export function reuseFromSwapCache(m: Machine, pfn: number): boolean {
  const swap = m.swap;
  const slot = swap?.slotOfPfn.get(pfn);
  if (swap === null || slot === undefined) return false;
  if (m.mem.refcount[pfn] !== 2 || swap.count[slot] !== 0) return false;
  deleteFromSwapCache(m, swap, slot);
  return true;
}
