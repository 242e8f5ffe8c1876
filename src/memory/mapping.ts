/**
 * A region of memory mapped by the addon: its address (for native calls and pagemap reads)
 * and an ArrayBuffer over the same bytes (for JS reads and writes). Owns the lifetime: after
 * `unmap()` the buffer is detached first, so no JS view can reach the freed memory.
 */
import { CowlabError } from '../errors.js';
import { native } from '../native.js';

export type Backing = 'anon-private' | 'anon-shared' | 'memfd-private' | 'memfd-shared';
export type ThpMode = 'always' | 'never' | 'default';
export type Advice = 'hugepage' | 'nohugepage' | 'dontfork' | 'dofork' | 'wipeonfork' | 'keeponfork' | 'dontneed' | 'mergeable' | 'unmergeable';

/** Huge page size on x86-64 and arm64 (4 KiB base pages); regions for THP align to it. */
export const HUGE_PAGE_BYTES = 2 * 1024 * 1024;

export interface MappingOptions {
  pages: number;
  backing?: Backing;
  /** 'always': 2 MiB aligned and MADV_HUGEPAGE; 'never': MADV_NOHUGEPAGE; 'default': no advice. */
  thp?: ThpMode;
}

export function pageSize(): number {
  return native().constants.PAGE_SIZE;
}

function backingCode(b: Backing): number {
  const c = native().constants;
  switch (b) {
    case 'anon-private': return c.BACKING_ANON_PRIVATE;
    case 'anon-shared': return c.BACKING_ANON_SHARED;
    case 'memfd-private': return c.BACKING_MEMFD_PRIVATE;
    case 'memfd-shared': return c.BACKING_MEMFD_SHARED;
  }
}

function adviceCode(a: Advice): number {
  const c = native().constants;
  switch (a) {
    case 'hugepage': return c.MADV_HUGEPAGE;
    case 'nohugepage': return c.MADV_NOHUGEPAGE;
    case 'dontfork': return c.MADV_DONTFORK;
    case 'dofork': return c.MADV_DOFORK;
    case 'wipeonfork': return c.MADV_WIPEONFORK;
    case 'keeponfork': return c.MADV_KEEPONFORK;
    case 'dontneed': return c.MADV_DONTNEED;
    case 'mergeable': return c.MADV_MERGEABLE;
    case 'unmergeable': return c.MADV_UNMERGEABLE;
  }
}

export class Mapping {
  readonly address: bigint;
  readonly pages: number;
  readonly bytes: number;
  readonly backing: Backing;
  readonly thp: ThpMode;
  #buffer: ArrayBuffer | undefined;
  #busy: string | undefined;

  private constructor(address: bigint, buffer: ArrayBuffer, opts: Required<MappingOptions>) {
    this.address = address;
    this.#buffer = buffer;
    this.pages = opts.pages;
    this.bytes = buffer.byteLength;
    this.backing = opts.backing;
    this.thp = opts.thp;
  }

  static create(opts: MappingOptions): Mapping {
    const full: Required<MappingOptions> = { backing: 'anon-private', thp: 'default', ...opts };
    const ps = pageSize();
    const align = full.thp === 'always' ? HUGE_PAGE_BYTES : ps;
    const { address, buffer } = native().mapMemory(full.pages * ps, backingCode(full.backing), align);
    const m = new Mapping(address, buffer, full);
    try {
      if (full.thp === 'always') m.advise('hugepage');
      if (full.thp === 'never') m.advise('nohugepage');
    } catch (err) {
      m.unmap();
      throw err;
    }
    return m;
  }

  get released(): boolean {
    return this.#buffer === undefined;
  }

  /** The bytes of the mapping. Throws once unmapped. */
  get buffer(): ArrayBuffer {
    return this.#live();
  }

  /** Address of page `i`. */
  pageAddress(i: number): bigint {
    return this.address + BigInt(i * pageSize());
  }

  advise(...advice: Advice[]): void {
    this.#live();
    for (const a of advice) native().adviseMemory(this.address, this.bytes, adviceCode(a));
  }

  protect(prot: 'none' | 'r' | 'rw', fromPage = 0, toPage = this.pages): void {
    this.#live();
    const c = native().constants;
    const bits = prot === 'none' ? c.PROT_NONE : prot === 'r' ? c.PROT_READ : c.PROT_READ | c.PROT_WRITE;
    const ps = pageSize();
    native().protectMemory(this.pageAddress(fromPage), (toPage - fromPage) * ps, bits);
  }

  /** Faults every page in: 'read' maps untouched anonymous pages to the zero page; 'write' allocates. */
  touch(mode: 'read' | 'write', fromPage = 0, toPage = this.pages): void {
    this.#live();
    native().touchPages(this.pageAddress(fromPage), toPage - fromPage, mode === 'write');
  }

  /** Marks the mapping as used by a running measurement; other uses throw ERR_BUSY meanwhile. */
  acquire(what: string): () => void {
    this.#live();
    this.#busy = what;
    return () => {
      this.#busy = undefined;
    };
  }

  unmap(): void {
    const buf = this.#buffer;
    if (buf === undefined) return;
    if (this.#busy) throw new CowlabError('ERR_BUSY', `cannot unmap: the mapping is in use by ${this.#busy}`);
    native().detachBuffer(buf);
    this.#buffer = undefined;
    native().unmapMemory(this.address, this.bytes);
  }

  #live(): ArrayBuffer {
    if (this.#buffer === undefined) throw new CowlabError('ERR_RELEASED', 'the mapping was unmapped');
    if (this.#busy) throw new CowlabError('ERR_BUSY', `the mapping is in use by ${this.#busy}`);
    return this.#buffer;
  }
}
