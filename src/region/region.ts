/**
 * The userspace COW region: the kernel's copy-on-write algorithm done by cowlab with memfd
 * frames, reference counts, mprotect/mmap and a SIGSEGV handler (native/region*.cc), exposed
 * as ArrayBuffers that can be snapshotted in O(pages) table work and no copying.
 *
 *   const region = CowRegion.create({ pages: 1024 });
 *   const live = new Uint8Array(region.root.buffer);
 *   live[0] = 1;
 *   const snap = region.root.fork();          // shares every frame, copy-on-write
 *   live[0] = 2;                              // the write fault copies page 0 for `live` only
 *   new Uint8Array(snap.buffer)[0] === 1;     // true
 *
 * docs/region.md explains the algorithm, the guarantees and the failure modes.
 */
import { constants as bufferConstants } from 'node:buffer';
import { readSync } from 'node:fs';

import { CowlabError, invalidOption } from '../errors.js';
import { checkFitsHalfAvailable } from '../memory/budget.js';
import { mapCount } from '../memory/mapCount.js';
import { pageSize } from '../memory/mapping.js';
import { native, wordNativeError, type RegionCountersRaw, type RegionStatsRaw } from '../native.js';
import { choiceOption, integerOption } from '../options.js';
import { formatPolicy, parsePolicy, type CowPolicy, type CowPolicyInput } from './policy.js';

export type RegionPopulate = 'none' | 'read' | 'write';
const POPULATE = ['none', 'read', 'write'] as const;

/** The most pages a region may have: each view is one ArrayBuffer (at most
 *  buffer.constants.MAX_LENGTH bytes), and page indices travel as 32-bit integers. */
export function maxRegionPages(): number {
  return Math.min(Math.floor(bufferConstants.MAX_LENGTH / pageSize()), 0xffff_fffe);
}

const CREATE_OPTIONS = ['pages', 'policy', 'populate', 'maxFrames', 'batchFrames'] as const;
const NUMERIC_OPTIONS = ['pages', 'maxFrames', 'batchFrames'] as const;

/** The API takes options as typed: an object of known keys, numbers as numbers ('4' is the
 *  CLI's job to parse). A misspelt key would otherwise be a silent default. */
function checkCreateOptions(options: unknown): asserts options is CowRegionOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalidOption('options', `must be an object such as { pages: 1024 }, got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(CREATE_OPTIONS as readonly string[]).includes(key)) {
      throw invalidOption(key, `is not an option of CowRegion.create (its options: ${CREATE_OPTIONS.join(', ')})`);
    }
  }
  for (const key of NUMERIC_OPTIONS) {
    const v = o[key];
    if (v !== undefined && typeof v !== 'number') {
      throw invalidOption(key, `must be a number, got ${typeof v === 'string' ? `the string '${v}'` : v === null ? 'null' : typeof v}`);
    }
  }
}

export interface CowRegionOptions {
  /** Pages (4 KiB) in the region; every view has this many. */
  pages: number;
  /** lazy (default), eager, or faultAround:K (see policy.ts). */
  policy?: CowPolicyInput;
  /**
   * How the root view starts, as private anonymous memory would after `populate`:
   * 'write' (default): every page has a zeroed frame and is writable;
   * 'read': every page maps the kernel's zero page (the first write allocates);
   * 'none': untouched (a read maps the zero page, a write allocates).
   */
  populate?: RegionPopulate;
  /** Most frames the pool may hold (all views together). Default: 64 x pages + 65,536. A
   *  copy beyond it fails: prepareWrite and fork throw ERR_TOO_LARGE, a plain store aborts. */
  maxFrames?: number;
  /** Frames the pool grows by (and keeps free when it shrinks). Default 512 (2 MiB). */
  batchFrames?: number;
}

/** Page states of a view, as a page table entry would say them. */
export const PAGE_STATE = { untouched: 0, zeroPage: 1, cow: 2, writable: 3 } as const;
export type PageStateName = keyof typeof PAGE_STATE;

export interface RegionCounters {
  /** Pages given a new frame holding a copy of the one they shared. */
  copies: number;
  /** COW pages made writable in place because no other view mapped their frame any more. */
  reuses: number;
  /** Pages given a fresh zeroed frame (untouched or zero page before). */
  zeroFills: number;
  /** Untouched pages mapped to the zero page by a read. */
  zeroMaps: number;
  /** SIGSEGV faults the handler resolved (prepareWrite and fork take none). */
  faults: number;
}

export interface CowViewStats extends RegionCounters {
  handle: number;
  /** Pages that map something (a frame or the zero page). */
  present: number;
  /** Present pages whose frame another view maps too, or that map the zero page. */
  shared: number;
  /** Pages whose frame only this view maps (reference count 1). */
  exclusive: number;
  zeroPage: number;
  /** Threads that have the view attached (CowView.attach). */
  attached: number;
}

export interface CowRegionStats extends RegionCounters {
  pages: number;
  policy: string;
  /** Frames mapped by at least one live view (reference count > 0; the zero page excluded). */
  framesInUse: number;
  /** Populated frames ready for a copy. */
  freeFrames: number;
  /** Frames given back with fallocate(PUNCH_HOLE), populated again before reuse. */
  holeFrames: number;
  /** Size of the memfd, in frames. */
  poolFrames: number;
  maxFrames: number;
  /** Live views, oldest first. */
  views: CowViewStats[];
}

/** A view's page table, one entry per page. */
export interface CowViewPages {
  state: Uint8Array;
  /** Frame number (memfd offset / page size); 0xffffffff for none. */
  frame: Uint32Array;
  /** Reference count of the page's frame; 0 for none. */
  refcount: Uint32Array;
  /** Made read-only with view.protect(). */
  readOnly: Uint8Array;
  present: Uint8Array;
  /** The frame is mapped by this view only. */
  exclusive: Uint8Array;
  zeroPage: Uint8Array;
}

export const NO_FRAME = 0xffff_ffff;

const COPYOUT_HINT =
  'the page is copy-on-write in a cowlab region: call view.prepareWrite(start, end) before handing it to a ' +
  'syscall (the xv6 copyout case): the kernel writes user memory without raising SIGSEGV, so cowlab ' +
  'cannot break copy-on-write for it';

/**
 * Runs a call into the region manager; a failure it reports (native/region.cc: StatusError and
 * the busy release, with facts) is worded: what the call was `doing`, what failed, and what to
 * do about it.
 */
function regionCall<T>(doing: () => string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw wordNativeError(err, (f, nativeMessage) => {
      switch (f.cause) {
        case 'read-only':
          return `${doing()}: page ${f.page} was made read-only with view.protect(); make it writable with view.protect(start, end, 'rw') first`;
        case 'pool-full':
          return `${doing()}: the region's frame pool is full (maxFrames ${f.maxFrames}); create the region with a larger maxFrames`;
        case 'syscall':
          return `${doing()}${(err as CowlabError).errno === 'ENOMEM' ? mapCountNote() : ''}: ${nativeMessage}`;
        case 'attached':
          return `cannot release the view: ${f.borrows} other thread(s) still have it attached (CowView.attach); release those first`;
        default:
          return nativeMessage;
      }
    });
  }
}

/** " (vm.max_map_count reached: 65530 of 65530 mappings; ...)" when the process is at the limit. */
function mapCountNote(): string {
  const m = mapCount();
  if (m === null || m.count < m.max - 16) return '';
  return ` (vm.max_map_count reached: ${m.count} of ${m.max} mappings; every copied page that cannot merge with its neighbours is one more)`;
}

function counters(c: RegionCountersRaw): RegionCounters {
  return { copies: c.copies, reuses: c.reuses, zeroFills: c.zeroFills, zeroMaps: c.zeroMaps, faults: c.faults };
}

function pagesOf(raw: { state: Uint8Array; frame: Uint32Array; refcount: Uint32Array; readOnly: Uint8Array }): CowViewPages {
  const n = raw.state.length;
  const present = new Uint8Array(n);
  const exclusive = new Uint8Array(n);
  const zeroPage = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const s = raw.state[p]!;
    present[p] = s === PAGE_STATE.untouched ? 0 : 1;
    zeroPage[p] = s === PAGE_STATE.zeroPage ? 1 : 0;
    exclusive[p] = raw.refcount[p] === 1 ? 1 : 0;
  }
  return { ...raw, present, exclusive, zeroPage };
}

/** regionPrepareWrite, for CowView and AttachedView. */
function prepareWrite(handle: number, start: number, end: number): void {
  regionCall(() => `breaking copy-on-write for pages ${start}..${end}`, () => native().regionPrepareWrite(handle, start, end));
}

/**
 * A known write set as runs of adjacent pages: [start, end) pairs, ascending, covering every
 * listed page once (any order, repeats allowed). Each run is one copy-on-write break, mapped
 * with one mmap per run of adjacent free frames, where a store per page would take a fault each.
 */
export function pageRuns(pages: Uint32Array): [number, number][] {
  const sorted = Uint32Array.from(pages).sort();
  const runs: [number, number][] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i + 1;
    while (j < sorted.length && sorted[j]! <= sorted[j - 1]! + 1) j++;
    runs.push([sorted[i]!, sorted[j - 1]! + 1]);
    i = j;
  }
  return runs;
}

function prepareWritePages(handle: number, list: Uint32Array): void {
  for (const [s, e] of pageRuns(list)) prepareWrite(handle, s, e);
}

/** Page range check shared by prepareWrite and readSync. */
function pageRange(startPage: unknown, endPage: unknown, pages: number): [number, number] {
  const start = integerOption('startPage', startPage, { min: 0, max: pages });
  const end = integerOption('endPage', endPage, { min: 0, max: pages });
  if (end < start) throw new CowlabError('ERR_INVALID_OPTION', `endPage: must not be below startPage (${start}), got ${end}`, { field: 'endPage' });
  return [start, end];
}

/** A page list for a timed access: a Uint32Array of page indices below the view's pages.
 *  Checked here so a bad list names the field instead of failing inside native code. */
function checkPageList(field: string, pages: unknown, viewPages: number): Uint32Array {
  if (!(pages instanceof Uint32Array)) throw invalidOption(field, 'must be a Uint32Array of page indices');
  for (let i = 0; i < pages.length; i++) {
    if (pages[i]! >= viewPages) throw invalidOption(field, `page ${pages[i]} (entry ${i}) is outside the view (pages: ${viewPages})`);
  }
  return pages;
}

const U64_LIMIT = 1n << 64n;

function checkTag(tag: unknown): bigint {
  if (typeof tag !== 'bigint' || tag < 0n || tag >= U64_LIMIT) throw invalidOption('tag', `must be a bigint in [0, 2^64), got ${String(tag)}`);
  return tag;
}

/** Reads from fd into bytes [offset, offset+length) of `buffer` after breaking COW there. */
function readIntoView(
  view: { prepareWrite(s: number, e: number): void; buffer: ArrayBuffer },
  fd: number,
  offset: number,
  length: number,
  position: number | bigint | null,
): number {
  const ps = pageSize();
  view.prepareWrite(Math.floor(offset / ps), Math.ceil((offset + length) / ps));
  try {
    return readSync(fd, new Uint8Array(view.buffer, offset, length), 0, length, position);
  } catch (err) {
    throw copyoutError(err);
  }
}

/**
 * Turns the EFAULT a syscall returns for a copy-on-write region page into a CowlabError
 * (ERR_COW_EFAULT) that says what happened and what to do; other errors pass unchanged.
 */
export function copyoutError(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e?.code !== 'EFAULT') return err;
  return new CowlabError('ERR_COW_EFAULT', `${e.syscall ?? 'the syscall'} failed with EFAULT: ${COPYOUT_HINT}`, {
    errno: 'EFAULT',
    errnoNumber: 14,
    ...(e.syscall !== undefined ? { syscall: e.syscall } : {}),
    cause: err,
  });
}

const regions = new FinalizationRegistry<number>((handle) => {
  // The region object is gone; views whose buffers are still reachable keep their memory, and
  // the native region goes with the last of them.
  native().regionClose(handle);
});

/**
 * A region of `pages` pages managed with userspace copy-on-write. Its views share frames;
 * a write into a shared page takes a SIGSEGV that cowlab resolves by copying (or reusing) the
 * page, exactly as the kernel does after fork(). Create with CowRegion.create().
 */
export class CowRegion {
  readonly pages: number;
  readonly policy: CowPolicy;
  readonly populate: RegionPopulate;
  /** The first view: the region's pages as created. */
  readonly root: CowView;
  readonly #handle: number;
  readonly #views = new Set<CowView>();
  #closed = false;

  private constructor(handle: number, pages: number, policy: CowPolicy, populate: RegionPopulate, root: { view: number; address: bigint; buffer: ArrayBuffer }) {
    this.#handle = handle;
    this.pages = pages;
    this.policy = policy;
    this.populate = populate;
    this.root = new CowView(this, root.view, root.address, root.buffer, null, CREATE);
    this.#views.add(this.root);
    regions.register(this, handle, this);
  }

  /**
   * Creates a region and its root view. Options are checked before anything is allocated
   * (ERR_INVALID_OPTION naming the field; ERR_TOO_LARGE when `populate: 'write'` would take
   * more than half of MemAvailable). Installs cowlab's SIGSEGV handler on first use, after
   * Node's, which it chains to for every fault it does not own.
   */
  static create(options: CowRegionOptions): CowRegion {
    checkCreateOptions(options);
    const ps = pageSize();
    const pages = integerOption('pages', options.pages, { min: 1, max: maxRegionPages() });
    const policy = parsePolicy(options.policy);
    const populate = choiceOption('populate', options.populate ?? 'write', POPULATE);
    const maxFrames = integerOption('maxFrames', options.maxFrames ?? Math.min(pages * 64 + 65_536, 0xffff_fffe), {
      min: pages,
      max: 0xffff_fffe,
    });
    const batchFrames = integerOption('batchFrames', options.batchFrames ?? 512, { min: 1, max: 1 << 20 });
    if (populate === 'write') checkFitsHalfAvailable('pages', pages * ps, `${pages} pages`);
    const raw = regionCall(
      () => `creating a region of ${pages} pages`,
      () =>
        native().regionCreate({
          pages,
          policy: policy.kind === 'lazy' ? 0 : policy.kind === 'eager' ? 1 : 2,
          faultAround: policy.kind === 'faultAround' ? policy.pages : 0,
          populate: populate === 'none' ? 0 : populate === 'read' ? 1 : 2,
          maxFrames,
          batchFrames,
        }),
    );
    return new CowRegion(raw.region, pages, policy, populate, raw);
  }

  /** True once close() ran. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Live views of this region owned by this thread (the root first, if not released). */
  get views(): CowView[] {
    return [...this.#views];
  }

  /**
   * Frames in use, the pool, the counters (copies, reuses, zero fills, faults) and, per live
   * view, how many pages are present, shared and exclusive. Throws ERR_RELEASED once closed.
   */
  stats(): CowRegionStats {
    if (this.#closed) throw new CowlabError('ERR_RELEASED', 'the region was closed');
    const s: RegionStatsRaw = native().regionStats(this.#handle);
    return {
      pages: this.pages,
      policy: formatPolicy(this.policy),
      framesInUse: s.framesInUse,
      freeFrames: s.freeFrames,
      holeFrames: s.holeFrames,
      poolFrames: s.poolFrames,
      maxFrames: s.maxFrames,
      ...counters(s.counters),
      views: s.views.map((v) => ({
        handle: v.view,
        present: v.present,
        shared: v.shared,
        exclusive: v.exclusive,
        zeroPage: v.zeroPage,
        attached: v.borrows,
        ...counters(v.counters),
      })),
    };
  }

  /**
   * Gives the memory of free frames back to the kernel (fallocate PUNCH_HOLE), keeping one
   * batch warm. Releasing views does this by itself once the free frames exceed twice the
   * frames in use; until then they stay populated, so later copies skip the allocation.
   */
  trim(): void {
    if (this.#closed) throw new CowlabError('ERR_RELEASED', 'the region was closed');
    native().regionTrim(this.#handle);
  }

  /** Address of the staging mapping (every frame, read-write): for tests and inspection. */
  stagingAddress(): bigint {
    if (this.#closed) throw new CowlabError('ERR_RELEASED', 'the region was closed');
    return native().regionStats(this.#handle).stagingAddress;
  }

  /**
   * Releases every view and frees the region (the memfd and its frames). Throws ERR_BUSY,
   * releasing nothing, while another thread has one of its views attached. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    const attached = native().regionStats(this.#handle).views.filter((v) => v.borrows > 0);
    if (attached.length > 0) {
      throw new CowlabError('ERR_BUSY', `cannot close the region: ${attached.length} of its views are attached in other threads (CowView.attach)`);
    }
    for (const v of [...this.#views]) v.release();
    this.#closed = true;
    regions.unregister(this);
    native().regionClose(this.#handle);
  }

  /** @internal */
  _adopt(view: CowView): void {
    this.#views.add(view);
  }

  /** @internal */
  _forget(view: CowView): void {
    this.#views.delete(view);
  }
}

/** Guards the constructor: views come from CowRegion.create and fork(). */
const CREATE = Symbol('CowView');

/**
 * One view of a region: `pages` pages at `address`, readable and writable through `buffer`.
 * Views of one region share frames copy-on-write.
 */
export class CowView {
  readonly region: CowRegion;
  readonly pages: number;
  /** Where the view is mapped (for pagemap reads and native calls). */
  readonly address: bigint;
  /** Identifies the view across threads (CowView.attach). */
  readonly handle: number;
  /** How long the fork() that made this view took (ns, measured natively); null for the root. */
  readonly forkNs: number | null;
  #buffer: ArrayBuffer | undefined;

  /** @internal */
  constructor(region: CowRegion, handle: number, address: bigint, buffer: ArrayBuffer, forkNs: number | null, key: symbol) {
    if (key !== CREATE) throw new TypeError('CowView cannot be constructed directly: use CowRegion.create() and view.fork()');
    this.region = region;
    this.handle = handle;
    this.address = address;
    this.#buffer = buffer;
    this.pages = region.pages;
    this.forkNs = forkNs;
  }

  /**
   * Opens, in this thread (a worker), a view created in another thread of the same process,
   * by its `handle`. The attached view's buffer, prepareWrite() and readSync() work as the
   * owner's do; release() detaches it here. The owner cannot release the view (ERR_BUSY)
   * until every attached copy is released (or garbage collected).
   */
  static attach(handle: number): AttachedView {
    const h = integerOption('handle', handle, { min: 1 });
    const raw = native().regionAttach(h);
    return new AttachedView(h, raw.borrow, raw.address, raw.pages, raw.buffer);
  }

  /** True once release() ran (or the region was closed). */
  get released(): boolean {
    return this.#buffer === undefined;
  }

  /** Bytes of the view. Throws ERR_RELEASED after release(); a buffer obtained before is
   *  detached (zero length) by then, so it can never reach freed memory. */
  get buffer(): ArrayBuffer {
    return this.#live('read the buffer of');
  }

  /** Size of the view in bytes (pages x page size). */
  get bytes(): number {
    return this.pages * pageSize();
  }

  /**
   * A snapshot: a new view sharing every frame of this one, copy-on-write (lazy and
   * faultAround), or with a copy of every page (eager). The snapshot equals this view's
   * content at one instant during the call, even while other threads store into it: the
   * view is made read-only first, so a concurrent store either completed before (and is in
   * the snapshot) or faults and waits, and lands in this view's own copy after the call.
   * Throws ERR_TOO_LARGE when vm.max_map_count or maxFrames is reached (nothing changes).
   *
   * `wipe: true` mirrors MADV_WIPEONFORK instead: the new view starts with every page
   * untouched (reads see zeros, writes zero-fill) and this view is left as it is.
   */
  fork(options: { wipe?: boolean } = {}): CowView {
    this.#live('fork');
    const raw = regionCall(() => 'forking a view', () => native().regionFork(this.handle, options.wipe === true));
    const v = new CowView(this.region, raw.view, raw.address, raw.buffer, raw.ns, CREATE);
    this.region._adopt(v);
    return v;
  }

  /**
   * Breaks copy-on-write for pages [startPage, endPage) now, as the write faults would:
   * copies shared pages, reuses pages no longer shared, zero-fills untouched ones. Needed
   * before a syscall writes into the view (fs.readSync into a COW page fails with EFAULT:
   * the kernel does not raise SIGSEGV for its own writes; see readSync()). Takes no fault;
   * failures (vm.max_map_count, maxFrames) throw ERR_TOO_LARGE, with the pages before the
   * failing one already writable and every other view unchanged.
   */
  prepareWrite(startPage = 0, endPage = this.pages): void {
    this.#live('prepareWrite on');
    const [s, e] = pageRange(startPage, endPage, this.pages);
    prepareWrite(this.handle, s, e);
  }

  /**
   * prepareWrite for a known write set: the listed pages (a Uint32Array of page indices, any
   * order, repeats allowed) get their copy-on-write break now, run by run of adjacent pages
   * (pageRuns), instead of a SIGSEGV per page at the first store. Same breaks, counters and
   * failures as prepareWrite (runs before a failing one stay broken); no fault is taken.
   */
  prepareWritePages(pages: Uint32Array): void {
    this.#live('prepareWritePages on');
    prepareWritePages(this.handle, checkPageList('pages', pages, this.pages));
  }

  /**
   * mprotect for a view: 'r' makes pages [startPage, endPage) read-only (a store there then
   * kills the process with SIGSEGV, as it would without cowlab: the handler leaves it alone);
   * 'rw' makes them writable again where this view alone maps the frame, exactly as Linux
   * (>= 6.0) does for private memory: pages still shared, or not yet written, stay read-only
   * and take their COW (or zero-fill) fault on the next store. A fork inherits the
   * protection. Use this, not a raw mprotect, on region pages: the manager owns their
   * protection (read-only is how it marks COW).
   */
  protect(startPage: number, endPage: number, prot: 'r' | 'rw'): void {
    this.#live('protect');
    const [s, e] = pageRange(startPage, endPage, this.pages);
    const p = choiceOption('prot', prot, ['r', 'rw'] as const);
    regionCall(
      () => `making ${p === 'r' ? 'read-only' : 'writable'} pages ${s}..${e}`,
      () => native().regionProtect(this.handle, s, e, p === 'r'),
    );
  }

  /**
   * fs.readSync into bytes [offset, offset+length) of the view, breaking copy-on-write there
   * first. Returns the bytes read. An EFAULT (another thread forked the view in between)
   * becomes ERR_COW_EFAULT with an explanation.
   */
  readSync(fd: number, offset = 0, length = this.bytes - offset, position: number | bigint | null = null): number {
    this.#live('readSync into');
    const off = integerOption('offset', offset, { min: 0, max: this.bytes });
    const len = integerOption('length', length, { min: 0, max: this.bytes - off });
    return readIntoView(this, fd, off, len, position);
  }

  /**
   * Stores 8 bytes into each listed page (in list order, repeats allowed), each store timed
   * alone in native code (clock_gettime around it, no JS in between), and returns the ns of
   * each. Store i writes `tag + pages[i]` as a u64 at offset 0 of its page, so the content
   * says which store landed. A store into a shared page takes the region's COW fault (counted
   * in stats()), so this is how a write fault's latency is measured.
   */
  timedStores(pages: Uint32Array, tag = 0n): Float64Array {
    this.#live('time stores into');
    const list = checkPageList('pages', pages, this.pages);
    return native().regionTimedAccess(this.handle, list, true, checkTag(tag));
  }

  /** Loads 8 bytes at offset 0 of each listed page, each load timed alone in native code;
   *  returns the ns of each (an untouched page's first load maps the zero page). */
  timedLoads(pages: Uint32Array): Float64Array {
    this.#live('time loads from');
    const list = checkPageList('pages', pages, this.pages);
    return native().regionTimedAccess(this.handle, list, false, 0n);
  }

  /** The view's page table: state, frame and reference count per page, and the present /
   *  exclusive / zeroPage bits derived from them. */
  pageTable(): CowViewPages {
    this.#live('read the page table of');
    return pagesOf(native().regionViewPages(this.handle));
  }

  /**
   * Unmaps the view and drops its frames' reference counts (a frame nobody maps any more
   * returns to the pool). The buffer is detached. Throws ERR_BUSY while another thread has
   * the view attached; ERR_RELEASED when already released.
   */
  release(): void {
    const buf = this.#live('release');
    regionCall(() => 'releasing the view', () => native().regionRelease(this.handle));
    this.#buffer = undefined;
    native().detachBuffer(buf);
    this.region._forget(this);
  }

  #live(what: string): ArrayBuffer {
    if (this.#buffer === undefined) throw new CowlabError('ERR_RELEASED', `cannot ${what} the view: it was released`);
    return this.#buffer;
  }
}

/** A view opened in another thread with CowView.attach(handle). */
export class AttachedView {
  readonly handle: number;
  readonly pages: number;
  readonly address: bigint;
  readonly #borrow: number;
  #buffer: ArrayBuffer | undefined;

  /** @internal */
  constructor(handle: number, borrow: number, address: bigint, pages: number, buffer: ArrayBuffer) {
    this.handle = handle;
    this.#borrow = borrow;
    this.address = address;
    this.pages = pages;
    this.#buffer = buffer;
  }

  /** True once release() ran in this thread. */
  get released(): boolean {
    return this.#buffer === undefined;
  }

  /** Bytes of the view. Throws ERR_RELEASED after release(). */
  get buffer(): ArrayBuffer {
    return this.#live('read the buffer of');
  }

  /** See CowView.prepareWrite. */
  prepareWrite(startPage = 0, endPage = this.pages): void {
    this.#live('prepareWrite on');
    const [s, e] = pageRange(startPage, endPage, this.pages);
    prepareWrite(this.handle, s, e);
  }

  /** See CowView.prepareWritePages. */
  prepareWritePages(pages: Uint32Array): void {
    this.#live('prepareWritePages on');
    prepareWritePages(this.handle, checkPageList('pages', pages, this.pages));
  }

  /** See CowView.readSync. */
  readSync(fd: number, offset = 0, length = this.pages * pageSize() - offset, position: number | bigint | null = null): number {
    this.#live('readSync into');
    const bytes = this.pages * pageSize();
    const off = integerOption('offset', offset, { min: 0, max: bytes });
    const len = integerOption('length', length, { min: 0, max: bytes - off });
    return readIntoView(this, fd, off, len, position);
  }

  /** Detaches this thread's buffer; the view itself stays with its owner. */
  release(): void {
    const buf = this.#live('release');
    this.#buffer = undefined;
    native().detachBuffer(buf);
    native().regionDetach(this.#borrow);
  }

  #live(what: string): ArrayBuffer {
    if (this.#buffer === undefined) throw new CowlabError('ERR_RELEASED', `cannot ${what} the attached view: it was released`);
    return this.#buffer;
  }
}
