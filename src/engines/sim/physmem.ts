/**
 * Physical memory: 4 KiB frames (the kernel's struct page) grouped in folios (one frame, or
 * 512 for a PMD-sized THP), with the counts the kernel keeps on them:
 *
 *   refcount        per folio: one reference per mapping (a PTE or a PMD) plus one held by
 *                   the page cache for shmem/memfd pages. The folio is freed when it drops to 0.
 *   mapcount        per frame: how many PTEs map this 4 KiB page.
 *   entireMapcount  per folio: how many PMDs map the whole folio.
 *   largeMapcount   per large folio: all its mappings (PTEs of any of its pages plus PMDs).
 *   anonExclusive   per frame: PageAnonExclusive. Set when a process got the page for itself
 *                   (a fresh page, a copy, a reuse); cleared when fork shares it. For a
 *                   PMD-mapped THP only the head frame's flag counts.
 *   mm ids          per large folio: which two processes hold its mappings and how many, and a
 *                   "maybe mapped shared" bit (CONFIG_MM_ID, include/linux/rmap.h): how the
 *                   kernel decides whether a large folio is exclusive to one process.
 *
 * Frame numbers (pfns) start at 1 and are never reused, so "no PTE points to a freed frame"
 * stays checkable. Everything is in typed arrays indexed by pfn: no per-page objects. A trace
 * without huge pages keeps no table of heads and folio sizes (every folio is one page, its own
 * head): 11 bytes per frame instead of 17, which is 200 MiB less for a 64 GiB fork-and-write.
 */

export const HPAGE_PMD_NR = 512;

/** A frame's life: never handed out, in use, or freed (its refcount reached zero). */
export const FRAME_UNUSED = 0;
export const FRAME_USED = 1;
export const FRAME_FREED = 2;

/** folioFlags: an anonymous folio (folio_test_anon); page-cache folios have 0. */
export const FOLIO_ANON = 1;

/** mm id 0 is the kernel's MM_ID_DUMMY: a free slot. Processes get ids from 1. */
const MM_ID_DUMMY = 0;

function grown<T extends Int32Array | Uint16Array | Uint8Array>(a: T, size: number): T {
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}

export class PhysMem {
  /** Highest pfn handed out so far (pfns are 1..top). */
  top = 0;
  /** Frames in use (allocated and not freed). */
  inUse = 0;

  // Per frame.
  mapcount = new Int32Array(0);
  anonExclusive = new Uint8Array(0);
  frameState = new Uint8Array(0);

  // Per folio, at the head pfn.
  refcount = new Int32Array(0);
  folioFlags = new Uint8Array(0);
  // Only while largeFolios (empty otherwise: a small folio is its own head, of one page).
  /** Per frame: the head pfn of its folio (headOf). */
  head = new Int32Array(0);
  /** Per folio: 1 for a small folio, 512 for a huge one, 0 at a tail page (nrPagesOf). */
  nrPages = new Uint16Array(0);
  // Per large folio only.
  entireMapcount = new Int32Array(0);
  largeMapcount = new Int32Array(0);
  mmId0 = new Int32Array(0);
  mmCount0 = new Int32Array(0);
  mmId1 = new Int32Array(0);
  mmCount1 = new Int32Array(0);
  mappedShared = new Uint8Array(0);

  /**
   * `frames`: a first guess of how many frames the run needs (the tables grow past it).
   * `largeFolios`: whether any huge page may be allocated; without, the tables kept for large
   * folios only (entire and large mapcounts, mm ids) are left empty.
   */
  constructor(
    frames = 1024,
    readonly largeFolios = true,
  ) {
    this.ensure(Math.max(frames, 1024));
  }

  /** Frames the tables hold before they must grow (pfns 1..capacity - 1). */
  get capacity(): number {
    return this.frameState.length;
  }

  /** True when these tables can serve a run of `frames` frames as they are (after clear()). */
  canServe(frames: number, largeFolios: boolean): boolean {
    return this.largeFolios === largeFolios && this.capacity > frames;
  }

  /** Bytes held by the tables. */
  get bytes(): number {
    let n = 0;
    for (const a of this.tables()) n += a.byteLength;
    return n;
  }

  private tables(): (Int32Array | Uint16Array | Uint8Array)[] {
    return [this.mapcount, this.anonExclusive, this.frameState, this.refcount, this.folioFlags, this.head, this.nrPages,
      this.entireMapcount, this.largeMapcount, this.mmId0, this.mmCount0, this.mmId1, this.mmCount1, this.mappedShared];
  }

  /** Back to no frame at all, keeping the tables: only entries up to `top` were ever written. */
  clear(): void {
    // The large-folio tables are empty without large folios: fill() on them is a no-op.
    for (const a of this.tables()) a.fill(0, 0, this.top + 1);
    this.top = 0;
    this.inUse = 0;
  }

  /** Makes pfn `pfnMax` addressable: the first call sizes the tables, later ones double them. */
  private ensure(pfnMax: number): void {
    const size = this.capacity;
    if (pfnMax < size) return;
    this.resize(size === 0 ? pfnMax + 1 : Math.max(pfnMax + 1, size * 2));
  }

  private resize(size: number): void {
    this.mapcount = grown(this.mapcount, size);
    this.anonExclusive = grown(this.anonExclusive, size);
    this.frameState = grown(this.frameState, size);
    this.refcount = grown(this.refcount, size);
    this.folioFlags = grown(this.folioFlags, size);
    if (!this.largeFolios) return;
    this.head = grown(this.head, size);
    this.nrPages = grown(this.nrPages, size);
    this.entireMapcount = grown(this.entireMapcount, size);
    this.largeMapcount = grown(this.largeMapcount, size);
    this.mmId0 = grown(this.mmId0, size);
    this.mmCount0 = grown(this.mmCount0, size);
    this.mmId1 = grown(this.mmId1, size);
    this.mmCount1 = grown(this.mmCount1, size);
    this.mappedShared = grown(this.mappedShared, size);
  }

  /** Allocates a folio of `nr` frames (1 or 512) with one reference; returns its head pfn. */
  allocFolio(nr: number, anon: boolean): number {
    if (nr > 1 && !this.largeFolios) throw new Error('sim bug: a huge page in a trace without huge pages');
    if (nr === 1) return this.allocPage(anon);
    const headPfn = this.top + 1;
    if (headPfn + nr >= this.capacity) this.ensure(headPfn + nr);
    for (let i = 0; i < nr; i++) {
      this.head[headPfn + i] = headPfn;
      this.frameState[headPfn + i] = FRAME_USED;
    }
    this.refcount[headPfn] = 1;
    this.nrPages[headPfn] = nr;
    this.folioFlags[headPfn] = anon ? FOLIO_ANON : 0;
    this.top += nr;
    this.inUse += nr;
    return headPfn;
  }

  /** allocFolio(1, anon), the common case, without the loop. */
  allocPage(anon: boolean): number {
    const pfn = ++this.top;
    if (pfn >= this.capacity) this.ensure(pfn);
    if (this.largeFolios) {
      this.head[pfn] = pfn;
      this.nrPages[pfn] = 1;
    }
    this.frameState[pfn] = FRAME_USED;
    this.refcount[pfn] = 1;
    this.folioFlags[pfn] = anon ? FOLIO_ANON : 0;
    this.inUse++;
    return pfn;
  }

  /**
   * Bulk allocation for the fast paths (alloc_pages_bulk): `n` fresh anonymous small folios at
   * pfns top+1 .. top+n, each as allocPage(true) makes it and as mapNewAnonPage then maps it
   * (one reference, one mapping, PageAnonExclusive). A fast path that maps page after page
   * hands out their pfns in order (top+1, top+2, ...) and accounts for them here when done.
   */
  allocMappedAnonPages(n: number): void {
    const first = this.top + 1;
    const end = first + n;
    if (end > this.capacity) this.ensure(end - 1);
    if (this.largeFolios) {
      const head = this.head;
      for (let pfn = first; pfn < end; pfn++) head[pfn] = pfn;
      this.nrPages.fill(1, first, end);
    }
    this.frameState.fill(FRAME_USED, first, end);
    this.refcount.fill(1, first, end);
    this.folioFlags.fill(FOLIO_ANON, first, end);
    this.mapcount.fill(1, first, end);
    this.anonExclusive.fill(1, first, end);
    this.top += n;
    this.inUse += n;
  }

  isAnon(headPfn: number): boolean {
    return (this.folioFlags[headPfn]! & FOLIO_ANON) !== 0;
  }

  isLarge(headPfn: number): boolean {
    return this.largeFolios && this.nrPages[headPfn]! > 1;
  }

  /** The head pfn of the folio `pfn` belongs to (page_folio). */
  headOf(pfn: number): number {
    return this.largeFolios ? this.head[pfn]! : pfn;
  }

  /** The frames of the folio at `headPfn`: 1 or 512, and 0 at a tail page or a pfn never handed out. */
  nrPagesOf(headPfn: number): number {
    if (this.largeFolios) return this.nrPages[headPfn]!;
    return headPfn >= 1 && headPfn <= this.top ? 1 : 0;
  }

  /** folio_get: one more reference. */
  folioGet(headPfn: number, n = 1): void {
    this.refcount[headPfn] = this.refcount[headPfn]! + n;
  }

  /** folio_put: one reference less; the folio is freed when none is left. */
  folioPut(headPfn: number, n = 1): void {
    const left = (this.refcount[headPfn] = this.refcount[headPfn]! - n);
    if (left < 0) throw new Error(`sim bug: folio ${headPfn} refcount went negative`);
    if (left === 0) this.freeFolio(headPfn);
  }

  private freeFolio(headPfn: number): void {
    const nr = this.nrPagesOf(headPfn);
    if (this.entireMapcountOf(headPfn) !== 0) throw new Error(`sim bug: freeing folio ${headPfn} while a PMD maps it`);
    for (let i = 0; i < nr; i++) {
      if (this.mapcount[headPfn + i] !== 0) throw new Error(`sim bug: freeing frame ${headPfn + i} while a PTE maps it`);
      this.frameState[headPfn + i] = FRAME_FREED;
      this.anonExclusive[headPfn + i] = 0;
    }
    this.inUse -= nr;
  }

  // --- rmap (mm/rmap.c): mapcounts, and for large folios the per-process bookkeeping ---

  /**
   * folio_add_return_large_mapcount: `diff` more mappings by process `mmId`. Two slots
   * remember which processes map the folio; a folio mapped by a second process, or with
   * mappings from before a slot was taken, is marked "maybe mapped shared".
   */
  addLargeMapcount(headPfn: number, diff: number, mmId: number): void {
    const total = (this.largeMapcount[headPfn] = this.largeMapcount[headPfn]! + diff);
    if (this.mmId0[headPfn] === mmId) this.mmCount0[headPfn] = this.mmCount0[headPfn]! + diff;
    else if (this.mmId1[headPfn] === mmId) this.mmCount1[headPfn] = this.mmCount1[headPfn]! + diff;
    else if (this.mmId0[headPfn] === MM_ID_DUMMY) {
      this.mmId0[headPfn] = mmId;
      this.mmCount0[headPfn] = diff;
      if (total !== diff) this.mappedShared[headPfn] = 1;
    } else if (this.mmId1[headPfn] === MM_ID_DUMMY) {
      this.mmId1[headPfn] = mmId;
      this.mmCount1[headPfn] = diff;
      this.mappedShared[headPfn] = 1;
    }
    // A third process finds no free slot: the folio is already marked shared.
  }

  /**
   * folio_sub_return_large_mapcount: `diff` mappings of process `mmId` are gone. When a
   * process's last mapping goes its slot is freed, and if one slot now holds every mapping
   * the folio counts as exclusive again.
   */
  subLargeMapcount(headPfn: number, diff: number, mmId: number): void {
    const total = (this.largeMapcount[headPfn] = this.largeMapcount[headPfn]! - diff);
    if (this.mmId0[headPfn] === mmId) {
      if ((this.mmCount0[headPfn] = this.mmCount0[headPfn]! - diff) > 0) return;
      this.mmCount0[headPfn] = 0;
      this.mmId0[headPfn] = MM_ID_DUMMY;
    } else if (this.mmId1[headPfn] === mmId) {
      if ((this.mmCount1[headPfn] = this.mmCount1[headPfn]! - diff) > 0) return;
      this.mmCount1[headPfn] = 0;
      this.mmId1[headPfn] = MM_ID_DUMMY;
    }
    if (this.mmCount0[headPfn] === total || this.mmCount1[headPfn] === total) this.mappedShared[headPfn] = 0;
  }

  /**
   * One more PTE of process `mmId` maps `pfn`, with its reference (folio_get plus any
   * folio_add_*_rmap_pte / folio_dup_*_rmap_ptes: what fork and page-cache faults do).
   */
  getAndMapPte(pfn: number, mmId: number): void {
    const h = this.headOf(pfn);
    this.refcount[h] = this.refcount[h]! + 1;
    this.mapcount[pfn] = this.mapcount[pfn]! + 1;
    if (this.isLarge(h)) this.addLargeMapcount(h, 1, mmId);
  }

  /**
   * A PTE of process `mmId` no longer maps `pfn`, and its reference goes (zap_present_pte:
   * folio_remove_rmap_pte, then folio_put, which frees the folio with its last reference).
   */
  unmapAndPutPte(pfn: number, mmId: number): void {
    const h = this.headOf(pfn);
    const left = (this.mapcount[pfn] = this.mapcount[pfn]! - 1);
    if (left < 0) throw new Error(`sim bug: frame ${pfn} mapcount went negative`);
    if (this.isLarge(h)) this.subLargeMapcount(h, 1, mmId);
    this.folioPut(h);
  }

  /** A PMD of process `mmId` now maps the whole large folio. */
  addRmapPmd(headPfn: number, mmId: number): void {
    this.entireMapcount[headPfn] = this.entireMapcount[headPfn]! + 1;
    this.addLargeMapcount(headPfn, 1, mmId);
  }

  /** folio_remove_rmap_pmd. */
  removeRmapPmd(headPfn: number, mmId: number): void {
    if ((this.entireMapcount[headPfn] = this.entireMapcount[headPfn]! - 1) < 0) throw new Error(`sim bug: folio ${headPfn} entire mapcount went negative`);
    this.subLargeMapcount(headPfn, 1, mmId);
  }

  /** All mappings of a folio (folio_mapcount). */
  folioMapcount(headPfn: number): number {
    return this.isLarge(headPfn) ? this.largeMapcount[headPfn]! : this.mapcount[headPfn]!;
  }

  /** folio_maybe_mapped_shared: small folios by their mapcount, large ones by the mm-id bit. */
  maybeMappedShared(headPfn: number): boolean {
    return this.isLarge(headPfn) ? this.mappedShared[headPfn] === 1 : this.mapcount[headPfn]! > 1;
  }

  /** folio_entire_mapcount: PMDs mapping the whole folio (none for a small one). */
  entireMapcountOf(headPfn: number): number {
    return this.largeFolios ? this.entireMapcount[headPfn]! : 0;
  }

  /** folio_precise_page_mapcount: PTEs mapping this page plus PMDs mapping its folio. */
  precisePageMapcount(pfn: number): number {
    return this.mapcount[pfn]! + this.entireMapcountOf(this.headOf(pfn));
  }
}

/**
 * One set of frame tables kept between simulator runs. A 65,536-page trace needs about
 * 2 MiB of them, and fresh memory costs a page fault per 4 KiB on first touch (microseconds
 * each on a VM): zeroing the used part of the old tables is much cheaper. A run takes the
 * spare set for itself (a nested run meanwhile gets fresh tables), and tables larger than
 * `maxBytes` are not kept, so a huge trace's memory goes back to the garbage collector.
 */
export class PhysMemPool {
  private spare: PhysMem | null = null;

  constructor(readonly maxBytes = 64 * 1024 * 1024) {}

  take(frames: number, largeFolios: boolean): PhysMem {
    const m = this.spare;
    this.spare = null;
    if (m !== null && m.canServe(frames, largeFolios)) {
      m.clear();
      return m;
    }
    return new PhysMem(frames, largeFolios);
  }

  give(m: PhysMem): void {
    this.spare = m.bytes <= this.maxBytes ? m : null;
  }
}
