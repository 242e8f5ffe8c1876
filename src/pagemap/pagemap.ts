/**
 * /proc/<pid>/pagemap, /proc/kpagecount and /proc/kpageflags, decoded.
 * Bit layout: Documentation/admin-guide/mm/pagemap.rst. The native layer does the reads (one
 * pread per range); this file turns raw 8-byte entries into typed arrays, one per field.
 */
import { native } from '../native.js';

/** One decoded pagemap entry. */
export interface PagemapEntry {
  /** Page frame number; 0 when not present or when the reader lacks CAP_SYS_ADMIN. */
  pfn: number;
  present: boolean;
  /** Bit 56: the page is mapped by exactly one process (mapcount 1). */
  exclusive: boolean;
  /** Bit 61: a file page or shared anonymous (shmem) page. */
  file: boolean;
  swapped: boolean;
  softDirty: boolean;
  uffdWp: boolean;
  guard: boolean;
}

/** A range of decoded entries, one typed array per field (index = page in the range). */
export class PagemapEntries {
  readonly length: number;
  readonly pfn: Float64Array;
  readonly present: Uint8Array;
  readonly exclusive: Uint8Array;
  readonly file: Uint8Array;
  readonly swapped: Uint8Array;
  readonly softDirty: Uint8Array;
  readonly uffdWp: Uint8Array;
  readonly guard: Uint8Array;

  constructor(raw: ArrayBuffer) {
    // Two 32-bit halves per entry: flags all live in the high word, and 32-bit integer math
    // avoids a BigInt per entry (262,144 entries per GiB).
    const words = new Uint32Array(raw);
    const n = (this.length = words.length / 2);
    this.pfn = new Float64Array(n);
    this.present = new Uint8Array(n);
    this.exclusive = new Uint8Array(n);
    this.file = new Uint8Array(n);
    this.swapped = new Uint8Array(n);
    this.softDirty = new Uint8Array(n);
    this.uffdWp = new Uint8Array(n);
    this.guard = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      const present = hi >>> 31;
      this.present[i] = present;
      this.swapped[i] = (hi >>> 30) & 1;
      this.file[i] = (hi >>> 29) & 1;
      this.guard[i] = (hi >>> 26) & 1;
      this.uffdWp[i] = (hi >>> 25) & 1;
      this.exclusive[i] = (hi >>> 24) & 1;
      this.softDirty[i] = (hi >>> 23) & 1;
      // Bits 0-54 hold the PFN only when present (a swap entry otherwise).
      this.pfn[i] = present ? (hi & 0x7fffff) * 0x1_0000_0000 + lo : 0;
    }
  }

  at(i: number): PagemapEntry {
    return {
      pfn: this.pfn[i]!,
      present: this.present[i] === 1,
      exclusive: this.exclusive[i] === 1,
      file: this.file[i] === 1,
      swapped: this.swapped[i] === 1,
      softDirty: this.softDirty[i] === 1,
      uffdWp: this.uffdWp[i] === 1,
      guard: this.guard[i] === 1,
    };
  }

  /** Number of entries with the field set. */
  count(field: 'present' | 'exclusive' | 'file' | 'swapped' | 'softDirty' | 'uffdWp' | 'guard'): number {
    const a = this[field];
    let c = 0;
    for (let i = 0; i < a.length; i++) c += a[i]!;
    return c;
  }
}

/**
 * Reads and decodes the pagemap entries of `pages` pages from `address` in process `pid`
 * (0 or process.pid for this process). Needs ptrace-read access to the process (same user).
 */
export function readPagemap(pid: number, address: bigint, pages: number): PagemapEntries {
  return new PagemapEntries(native().readPagemap(pid === process.pid ? 0 : pid, address, pages));
}

/** /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
export const KPF = {
  LOCKED: 0, DIRTY: 4, LRU: 5, ACTIVE: 6, SLAB: 7, BUDDY: 10, MMAP: 11, ANON: 12, SWAPCACHE: 13,
  SWAPBACKED: 14, COMPOUND_HEAD: 15, COMPOUND_TAIL: 16, HUGE: 17, UNEVICTABLE: 18, NOPAGE: 20,
  KSM: 21, THP: 22, OFFLINE: 23, ZERO_PAGE: 24, IDLE: 25, PGTABLE: 26,
} as const;

export interface PageFlags {
  anon: boolean;
  thp: boolean;
  zeroPage: boolean;
  ksm: boolean;
  compoundHead: boolean;
  compoundTail: boolean;
  /** All 64 bits as a bigint, for flags not decoded above. */
  raw: bigint;
}

/** Decoded /proc/kpageflags for a list of PFNs (root only). Flags are in the low word. */
export class PageFlagsList {
  readonly length: number;
  readonly lo: Uint32Array;
  readonly hi: Uint32Array;

  constructor(raw: ArrayBuffer) {
    const words = new Uint32Array(raw);
    this.length = words.length / 2;
    this.lo = new Uint32Array(this.length);
    this.hi = new Uint32Array(this.length);
    for (let i = 0; i < this.length; i++) {
      this.lo[i] = words[2 * i]!;
      this.hi[i] = words[2 * i + 1]!;
    }
  }

  has(i: number, bit: number): boolean {
    return bit < 32 ? ((this.lo[i]! >>> bit) & 1) === 1 : ((this.hi[i]! >>> (bit - 32)) & 1) === 1;
  }

  at(i: number): PageFlags {
    return {
      anon: this.has(i, KPF.ANON),
      thp: this.has(i, KPF.THP),
      zeroPage: this.has(i, KPF.ZERO_PAGE),
      ksm: this.has(i, KPF.KSM),
      compoundHead: this.has(i, KPF.COMPOUND_HEAD),
      compoundTail: this.has(i, KPF.COMPOUND_TAIL),
      raw: (BigInt(this.hi[i]!) << 32n) | BigInt(this.lo[i]!),
    };
  }

  count(bit: number): number {
    let c = 0;
    for (let i = 0; i < this.length; i++) if (this.has(i, bit)) c++;
    return c;
  }
}

/** /proc/kpagecount for each PFN: how many page-table entries map the frame (root only). */
export function readKpageCounts(pfns: Float64Array): Float64Array {
  const words = new Uint32Array(native().readKpage('count', pfns));
  const out = new Float64Array(pfns.length);
  for (let i = 0; i < out.length; i++) out[i] = words[2 * i + 1]! * 0x1_0000_0000 + words[2 * i]!;
  return out;
}

/** /proc/kpageflags for each PFN (root only). */
export function readKpageFlags(pfns: Float64Array): PageFlagsList {
  return new PageFlagsList(native().readKpage('flags', pfns));
}

/** PAGEMAP_SCAN page categories (include/uapi/linux/fs.h, Linux >= 6.7). */
export const PAGE_IS = { FILE: 2, PRESENT: 3, SWAPPED: 4, PFNZERO: 5, HUGE: 6 } as const;

/** One byte per page: bit PAGE_IS.X set when the page is in that category. */
export class PageCategories {
  readonly length: number;
  constructor(readonly bits: Uint8Array) {
    this.length = bits.length;
  }

  has(i: number, category: number): boolean {
    return ((this.bits[i]! >>> category) & 1) === 1;
  }

  /** 1 where the page maps the (huge) zero page: no privilege needed, unlike kpageflags. */
  zeroPage(): Uint8Array {
    return this.only(PAGE_IS.PFNZERO);
  }

  /** 1 where the page is part of a PMD (huge page) mapping. */
  huge(): Uint8Array {
    return this.only(PAGE_IS.HUGE);
  }

  private only(category: number): Uint8Array {
    const out = new Uint8Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = (this.bits[i]! >>> category) & 1;
    return out;
  }
}

/**
 * Page categories of `pages` pages from `address` in process `pid`, by the PAGEMAP_SCAN ioctl
 * (Linux >= 6.7; same access rule as reading the pagemap, no CAP_SYS_ADMIN needed).
 */
export function readPageCategories(pid: number, address: bigint, pages: number): PageCategories {
  return new PageCategories(new Uint8Array(native().readPageCategories(pid === process.pid ? 0 : pid, address, pages)));
}
