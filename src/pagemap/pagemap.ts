/**
 * /proc/<pid>/pagemap, /proc/kpagecount and /proc/kpageflags, decoded.
 * Bit layout: Documentation/admin-guide/mm/pagemap.rst. The native layer does the reads (one
 * pread per range); this file turns raw 8-byte entries into typed arrays, one per field.
 */
import { closeSync, openSync, readSync } from 'node:fs';

import { CowlabError, invalidOption } from '../errors.js';
import { native } from '../native.js';
import { readProcStat } from '../util/procStat.js';

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

/** The names a caller's input goes by in error messages (the CLI passes its flags). */
export interface PagemapFields {
  pid: string;
  address: string;
  pages: string;
}

const API_FIELDS: PagemapFields = { pid: 'pid', address: 'address', pages: 'pages' };

const hex = (a: bigint) => `0x${a.toString(16)}`;

/**
 * Throws ERR_INVALID_OPTION (naming `field`) unless `pid` is a process with a user address
 * space: not a kernel thread (it has none: opening its pagemap fails with ESRCH), not a zombie
 * (its address space is gone), not missing.
 */
export function checkHasAddressSpace(pid: number, field = API_FIELDS.pid): void {
  if (pid === 0 || pid === process.pid) return;
  const stat = readProcStat(pid);
  if (stat === null) throw invalidOption(field, `no process with pid ${pid}`);
  if (stat.kernelThread) throw invalidOption(field, `pid ${pid} (${stat.comm}) is a kernel thread: it has no user address space, so no pagemap`);
  if (stat.state === 'Z' || stat.state === 'X') {
    throw invalidOption(field, `pid ${pid} (${stat.comm}) has exited (a zombie): its address space is gone, so no pagemap`);
  }
}

/**
 * Where the user address space of `pid` (0: this process) ends, as its pagemap covers it:
 * the kernel's per-process task size (0x7ffffffff000 on x86-64 with 4-level page tables).
 * A pagemap read at or past it returns nothing, so a binary search over page numbers with
 * 8-byte reads finds it (about 50 reads). Null when even page 0 reads nothing (the process
 * lost its address space meanwhile) or the pagemap cannot be opened.
 */
export function userAddressEnd(pid: number): bigint | null {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid === 0 ? 'self' : pid}/pagemap`, 'r');
  } catch {
    return null;
  }
  try {
    const entry = Buffer.alloc(8);
    const readable = (page: bigint) => readSync(fd, entry, 0, 8, page * 8n) === 8;
    if (!readable(0n)) return null;
    const ps = BigInt(native().constants.PAGE_SIZE);
    let lo = 0n; // readable
    let hi = (1n << 64n) / ps; // past every address: never readable
    while (hi - lo > 1n) {
      const mid = (lo + hi) / 2n;
      if (readable(mid)) lo = mid;
      else hi = mid;
    }
    return hi * ps;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Throws ERR_INVALID_OPTION when `pages` pages from `address` do not lie inside the user
 * address space of `pid` (or pid has none); returns quietly when they do.
 */
export function checkPagemapRange(pid: number, address: bigint, pages: number, fields: PagemapFields = API_FIELDS): void {
  checkHasAddressSpace(pid, fields.pid);
  const end = userAddressEnd(pid);
  if (end === null) return; // nothing to say about the range: the caller's error stands
  const who = pid === 0 || pid === process.pid ? 'this process' : `pid ${pid}`;
  if (address < 0n || address >= end) {
    throw invalidOption(fields.address, `${address < 0n ? address : hex(address)} is outside the user address space of ${who}, which is 0x0-${hex(end)} (the kernel's limit for user addresses)`);
  }
  const ps = BigInt(native().constants.PAGE_SIZE);
  if (address + BigInt(pages) * ps > end) {
    const room = (end - address) / ps;
    throw invalidOption(fields.pages, `${pages} pages from ${hex(address)} go past the end of the user address space of ${who} at ${hex(end)}: at most ${room} ${room === 1n ? 'page' : 'pages'} from there, got ${pages}`);
  }
}

/**
 * Reads and decodes the pagemap entries of `pages` pages from `address` in process `pid`
 * (0 or process.pid for this process). Needs ptrace-read access to the process (same user).
 * A range outside the process's user address space, or a process without one (a kernel
 * thread, a zombie), is bad input: ERR_INVALID_OPTION naming `fields` (default: the
 * parameter names).
 */
export function readPagemap(pid: number, address: bigint, pages: number, fields: PagemapFields = API_FIELDS): PagemapEntries {
  const self = pid === process.pid ? 0 : pid;
  if (typeof address !== 'bigint') throw invalidOption(fields.address, `must be a bigint address, got ${typeof address}`);
  if (address < 0n || address >= 1n << 64n) {
    checkPagemapRange(self, address, pages, fields);
    throw invalidOption(fields.address, `must be a 64-bit address, got ${address}`);
  }
  try {
    return new PagemapEntries(native().readPagemap(self, address, pages));
  } catch (err) {
    // The kernel answers a range past the address space with a short read, and a process
    // without an address space with ESRCH: say which input was wrong, if one was.
    if (err instanceof CowlabError && (err.code === 'ERR_SHORT_READ' || err.errno === 'ESRCH')) {
      checkPagemapRange(self, address, pages, fields);
    }
    throw err;
  }
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
