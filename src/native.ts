/**
 * The only loader of the native addon, and its typed contract. Everything else imports
 * `native()` from here. Loading is lazy, so `cowlab --help` and option errors work even where
 * the addon cannot load; every failure is collected into one clear message.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

import { CowlabError } from './errors.js';
import { packageRoot } from './util/package.js';

export interface NativeConstants {
  PAGE_SIZE: number;
  PROT_NONE: number;
  PROT_READ: number;
  PROT_WRITE: number;
  MADV_NORMAL: number;
  MADV_DONTNEED: number;
  MADV_HUGEPAGE: number;
  MADV_NOHUGEPAGE: number;
  MADV_DONTFORK: number;
  MADV_DOFORK: number;
  MADV_WIPEONFORK: number;
  MADV_KEEPONFORK: number;
  MADV_MERGEABLE: number;
  MADV_UNMERGEABLE: number;
  MADV_POPULATE_READ: number;
  MADV_POPULATE_WRITE: number;
  BACKING_ANON_PRIVATE: number;
  BACKING_ANON_SHARED: number;
  BACKING_MEMFD_PRIVATE: number;
  BACKING_MEMFD_SHARED: number;
}

/** One region of a process tree (see native/proctree.h); p0 maps it with mmap. */
export interface ProcTreeRegionInput {
  pages: number;
  /** constants.BACKING_* */
  backing: number;
  /** MADV_HUGEPAGE; otherwise MADV_NOHUGEPAGE. */
  thp: boolean;
  dontfork: boolean;
  wipeonfork: boolean;
  /** Placed where mmap chooses; otherwise on a 2 MiB boundary (every region, THP or not). */
  anywhere: boolean;
}

/** What a process tree is made of. Slot 0 is p0 (forked from Node, or Node itself); every
 *  other slot is forked later by the process in its parent slot. */
export interface ProcTreeSpec {
  regions: ProcTreeRegionInput[];
  /** Parent slot of each slot: -1 for slot 0, an earlier slot for the others. At most 256. */
  parents: Int32Array;
  /** Longest page list each slot's process will be sent. */
  capacity: Uint32Array;
  /** What `exec` runs: a program that stays alive until its stdin closes (e.g. /bin/cat). */
  execPath: string;
  /** p0 marks Node's own anonymous memory MADV_DONTFORK, so trace forks copy only the
   *  regions' page tables (and a few of the loop's). Default true. */
  shedNodeMemory?: boolean;
  /** p0 is the Node process itself: its commands run on a worker thread of Node, its regions
   *  are Node's mappings, and its forks copy Node's whole address space. It cannot exit or
   *  exec. Default false. */
  p0InNode?: boolean;
}

/** Per-access results of a write or read command, in page-list order. */
export interface ProcTreeAccessRaw {
  /** ns of each single access (clock_gettime around one 8-byte load or store). */
  latencyNs: Float64Array;
  /** CLOCK_MONOTONIC ns (process.hrtime's clock) at which each access started. */
  startNs: Float64Array;
  /** Minor faults the process took during each access (getrusage before and after it). */
  faults: Uint32Array;
  /** Bit 0: shared mapping only, the page was in the page cache before the access (mincore). */
  flags: Uint8Array;
  /** Read only: the u64 at offset 0 of each page. */
  values: BigUint64Array | null;
  /** Minor / major faults across the whole command, and its duration. */
  opFaults: number;
  opMajorFaults: number;
  opNs: number;
}

export interface ProcTreeStartRaw {
  pid: number;
  addresses: bigint[];
  mapNs: number;
  /** The smallest back-to-back clock read in p0. */
  timerOverheadNs: number;
}

export interface ProcTreeForkRaw {
  pid: number;
  /** The clone() call in the parent. */
  forkNs: number;
  faults: number;
  /** CLOCK_MONOTONIC ns when clone() returned in the parent. */
  forkedAtNs: number;
  /** The smallest back-to-back clock read in the child, measured as it started. */
  timerOverheadNs: number;
}

export interface ProcTreeReapRaw {
  /** waitpid()'s status; src/engines/kernel/tree.ts decodes it. */
  status: number;
}

/**
 * The kernel engine's real processes (native/proctree*.cc). Every method sends one command
 * and resolves when the process replied; each has a deadline, after which every trace process
 * is killed and reaped and the promise rejects with ERR_CHILD_DEADLINE. One command at a time.
 * Failures carry facts (nativeFacts; native/proctree_node.h lists them), which
 * src/engines/kernel/tree.ts words: use it, not this.
 */
export interface NativeProcTree {
  /** Forks p0 from Node (or, p0InNode, takes Node as p0), which maps every region. */
  start(deadlineMs: number): Promise<ProcTreeStartRaw>;
  fork(slot: number, childSlot: number, deadlineMs: number): Promise<ProcTreeForkRaw>;
  /**
   * Stores `tag + page` (write) or loads (read) at offset 0 of each listed page. paceNs > 0:
   * access i starts no earlier than the loop's start plus i * paceNs. viaPread (write only):
   * the kernel writes the 8 bytes with pread(2) from a file instead of a CPU store.
   */
  access(
    slot: number,
    write: boolean,
    region: number,
    pages: Uint32Array,
    tag: bigint,
    deadlineMs: number,
    paceNs: number,
    viaPread: boolean,
  ): Promise<ProcTreeAccessRaw>;
  /** mprotect of the listed pages (empty list: the whole region). */
  protect(slot: number, region: number, prot: number, pages: Uint32Array, deadlineMs: number): Promise<{ opNs: number; opFaults: number }>;
  /** madvise(MADV_PAGEOUT) of the listed pages (empty list: the whole region). */
  pageout(slot: number, region: number, pages: Uint32Array, deadlineMs: number): Promise<{ opNs: number; opFaults: number }>;
  /** execve(execPath): the process keeps its pid, loses every mapping. */
  exec(slot: number, deadlineMs: number): Promise<{ opNs: number }>;
  /** The process exits (an exec'd one: its stdin closes); resolves once it has exited. */
  exit(slot: number, deadlineMs: number): Promise<{ opNs: number }>;
  /** waitpid(pid) in the process of reaperSlot, or in Node when reaperSlot is -1. */
  reap(reaperSlot: number, pid: number, deadlineMs: number): Promise<ProcTreeReapRaw>;
  /** Kills and reaps every trace process; releases the tree. Idempotent. */
  destroy(deadlineMs: number): Promise<void>;
  /** pid of each slot's process; 0 while not forked. */
  pids(): Int32Array;
}

/** Input of regionCreate (see native/region.cc); src/region/ checks user input first. */
export interface RegionCreateInput {
  pages: number;
  /** 0 lazy, 1 eager, 2 faultAround. */
  policy: 0 | 1 | 2;
  /** faultAround: following pages copied with a faulting one. */
  faultAround: number;
  /** 0 none (untouched), 1 read (zero page), 2 write (zeroed frames). */
  populate: 0 | 1 | 2;
  maxFrames: number;
  batchFrames: number;
}

export interface RegionViewRaw {
  view: number;
  address: bigint;
  buffer: ArrayBuffer;
}

export interface RegionCountersRaw {
  copies: number;
  reuses: number;
  zeroFills: number;
  zeroMaps: number;
  faults: number;
}

export interface RegionStatsRaw {
  framesInUse: number;
  freeFrames: number;
  holeFrames: number;
  poolFrames: number;
  maxFrames: number;
  batchFrames: number;
  stagingAddress: bigint;
  counters: RegionCountersRaw;
  views: {
    view: number;
    present: number;
    shared: number;
    exclusive: number;
    zeroPage: number;
    borrows: number;
    counters: RegionCountersRaw;
  }[];
}

export interface NativeAddon extends NativeTracking {
  setErrorClass(cls: typeof CowlabError): void;
  constants: NativeConstants;
  mapMemory(bytes: number, backing: number, align: number): { address: bigint; buffer: ArrayBuffer };
  unmapMemory(address: bigint, bytes: number): void;
  detachBuffer(buffer: ArrayBuffer): void;
  protectMemory(address: bigint, bytes: number, prot: number): void;
  adviseMemory(address: bigint, bytes: number, advice: number): void;
  touchPages(address: bigint, pages: number, write: boolean): number;
  readPagemap(pid: number, address: bigint, pages: number): ArrayBuffer;
  /** Maps, writes and unmaps one page of its own, and returns its raw pagemap entry (8 bytes, as readPagemap). */
  probeOwnPfn(): ArrayBuffer;
  readKpage(file: 'count' | 'flags', pfns: Float64Array): ArrayBuffer;
  /** PAGEMAP_SCAN categories (PAGE_IS_* bits 2-6), one byte per page; Linux >= 6.7. */
  readPageCategories(pid: number, address: bigint, pages: number): ArrayBuffer;
  ProcTree: new (spec: ProcTreeSpec) => NativeProcTree;
  /** prctl(PR_SET_CHILD_SUBREAPER); returns the previous setting. */
  setChildSubreaper(on: boolean): boolean;
  /** waitpid(pid, WNOHANG): the status, or null while the child runs. */
  reapChild(pid: number): number | null;
  /** Starts `path` by fork+exec (0), vfork+exec (1) or posix_spawn (2); times the call in the
   *  parent and the whole life until reaped (native/spawnprobe.cc); `realtime`: the call at
   *  SCHED_FIFO (children reset to normal), or ERR_SYSCALL EPERM without CAP_SYS_NICE. */
  spawnProbe(
    input:
      | { kind: 0 | 1 | 2; path: string; args?: string[]; deadlineMs: number; realtime?: boolean }
      | { kind: 3; addresses: BigUint64Array; value: bigint; deadlineMs: number; readFd?: number; readBytes?: number },
  ): Promise<{ callNs: number; totalNs: number }>;
  /** A vmsplice(2) pin case of the kernel's cow.c selftests on memory of its own, forking Node once
   *  (native/pins.cc): the bytes read back through the pipe. src/probes/pins.ts decides. */
  pinProbe(input: { case: 0 | 1 | 2; backing: 0 | 1 | 2 | 3; deadlineMs: number }): Promise<{ bytes: ArrayBuffer; size: number; lastPageEntry: bigint; childPid: number }>;
  /** memcpy of `bytes` from `source` into a destination mapped for it, timed (native/eagercopy.cc). */
  copyMemory(input: { source: bigint; bytes: number; fresh: boolean }): { ns: number };
  /** SIGKILLs every live child the addon forked or spawned; returns how many (native/children.cc). */
  killAllChildren(): number;
  /** Pids of the live children the addon forked or spawned. */
  liveChildren(): number[];
  regionCreate(input: RegionCreateInput): RegionViewRaw & { region: number };
  regionFork(view: number, wipe: boolean): RegionViewRaw & { ns: number };
  regionRelease(view: number): void;
  regionAttach(view: number): { borrow: number; address: bigint; pages: number; buffer: ArrayBuffer };
  regionDetach(borrow: number): void;
  regionPrepareWrite(view: number, start: number, end: number): void;
  regionProtect(view: number, start: number, end: number, readOnly: boolean): void;
  /** Per page: PageState (0 untouched, 1 zero page, 2 COW, 3 writable), frame (0xffffffff: none),
   *  and the frame's reference count (0: none). */
  regionViewPages(view: number): { state: Uint8Array; frame: Uint32Array; refcount: Uint32Array; readOnly: Uint8Array };
  regionStats(region: number): RegionStatsRaw;
  regionClose(region: number): void;
  /** Punches every free frame but one batch out of the memfd. */
  regionTrim(region: number): void;
  /** One timed 8-byte store (`tag + page` at offset 0) or load per listed page, ns each. */
  regionTimedAccess(view: number, order: Uint32Array, write: boolean, tag: bigint): Float64Array;
  regionHandlerInfo(): { installed: boolean; previous: 'none' | 'siginfo' | 'handler' | 'default' | 'ignore' };
  /** ioctl(FS_IOC_FIEMAP) of `path` over [start, start + length) (length 0: to the end), in
   *  batches of `capacity` extents: four raw u64 per extent (logical, physical, length, flags),
   *  in file order (native/fiemap.cc). src/storage/fiemap.ts decodes them: use it, not this. */
  readFiemap(path: string, start: number, length: number, capacity: number, flags: number): ArrayBuffer;
  /** FIEMAP_FLAG_* and FIEMAP_EXTENT_* from <linux/fiemap.h>. */
  fiemapConstants: Readonly<Record<'FIEMAP_FLAG_SYNC' | 'FIEMAP_EXTENT_LAST' | 'FIEMAP_EXTENT_UNKNOWN' | 'FIEMAP_EXTENT_DELALLOC' | 'FIEMAP_EXTENT_ENCODED' | 'FIEMAP_EXTENT_NOT_ALIGNED' | 'FIEMAP_EXTENT_DATA_INLINE' | 'FIEMAP_EXTENT_UNWRITTEN' | 'FIEMAP_EXTENT_MERGED' | 'FIEMAP_EXTENT_SHARED', number>>;
}

/**
 * What a native failure says happened, beyond its code: native code states the facts (a pid, a
 * wait status, the /proc text it read before a reap, the step that failed) and TypeScript
 * words the message. Which facts come with which failure: the native file of each mechanism.
 */
export type NativeFacts = Readonly<Record<string, number | string>>;

/** The facts of an error thrown by the addon; null for any other error. */
export function nativeFacts(err: unknown): NativeFacts | null {
  if (!(err instanceof CowlabError)) return null;
  const facts = (err as CowlabError & { facts?: unknown }).facts;
  return typeof facts === 'object' && facts !== null ? (facts as NativeFacts) : null;
}

/**
 * A native error with facts, worded: the same code, errno and syscall, with the message
 * `word(facts, nativeMessage)` gives. Any other error is returned as it is.
 */
export function wordNativeError(err: unknown, word: (facts: NativeFacts, nativeMessage: string) => string): unknown {
  const facts = nativeFacts(err);
  if (facts === null) return err;
  const e = err as CowlabError;
  return new CowlabError(e.code, word(facts, e.message), {
    ...(e.errno !== undefined ? { errno: e.errno } : {}),
    ...(e.errnoNumber !== undefined ? { errnoNumber: e.errnoNumber } : {}),
    ...(e.syscall !== undefined ? { syscall: e.syscall } : {}),
  });
}

export interface LoadOptions {
  platform?: NodeJS.Platform;
  /** Explicit addon path; defaults to $COWLAB_ADDON, then the node-gyp and cmake-js builds. */
  path?: string;
}

let loaded: { addon: NativeAddon; path: string } | undefined;

/**
 * Loads the addon (or throws one CowlabError saying why not and what to do). With
 * $COWLAB_ADDON set, only that file is tried: a build you asked for is never swapped for
 * another one silently.
 */
export function loadNative(opts: LoadOptions = {}): { addon: NativeAddon; path: string } {
  const platform = opts.platform ?? process.platform;
  if (platform !== 'linux') {
    throw new CowlabError(
      'ERR_UNSUPPORTED_PLATFORM',
      `cowlab measures Linux copy-on-write (fork, /proc/<pid>/pagemap, memfd) and runs only on Linux; this is ${platform}`,
    );
  }
  // A relative $COWLAB_ADDON is a file under the current directory, not a module name.
  const given = opts.path ?? process.env.COWLAB_ADDON;
  const explicit = given ? resolve(given) : undefined;
  const root = packageRoot();
  const candidates = explicit
    ? [explicit]
    : [join(root, 'build', 'Release', 'cowlab.node'), join(root, 'build-cmake', 'Release', 'cowlab.node')];
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const path of candidates) {
    if (!existsSync(path)) {
      failures.push(`${path}: not built`);
      continue;
    }
    try {
      const addon = require(path) as NativeAddon;
      addon.setErrorClass(CowlabError);
      return { addon, path };
    } catch (err) {
      failures.push(`${path}: ${(err as Error).message}`);
    }
  }
  throw new CowlabError(
    'ERR_ADDON_LOAD',
    `the cowlab native addon could not be loaded:\n  ${failures.join('\n  ')}\n` +
      'Build it with `npm install` (or `npm run build:addon`; `npm run build:cmake` for cmake-js).',
  );
}

/** The loaded addon (loaded on first use). */
export function native(): NativeAddon {
  loaded ??= loadNative();
  return loaded.addon;
}

/** Path of the addon file in use (after the first `native()` call). */
export function nativePath(): string {
  loaded ??= loadNative();
  return loaded.path;
}

/** Input of every native write-tracking run (native/tracking.h). */
export interface TrackInput {
  pages: number;
  /** Pages stored to, in order (each < pages); one timed 8-byte store of `tag + page` each. */
  order: Uint32Array;
  /** Every u32 of page p holds fill[p] before the stores. */
  fill: Uint32Array;
  tag: bigint;
  /** Return copies of the live pages and (mechanisms that copy) of the snapshot. */
  content: boolean;
}

/** What a native write-tracking run measured: raw numbers, checked and summarized in src/tracking/. */
export interface TrackRaw {
  /** Mapping, filling and registering the pages (not part of the three costs). */
  setupNs: number;
  /** Protecting the N pages (mprotect, UFFDIO_WRITEPROTECT, clear_refs). */
  armNs: number;
  /** ns of each store, in order. */
  latencyNs: Float64Array;
  /** Finding what was written (the handler's table, PAGEMAP_SCAN, pagemap). */
  collectNs: number;
  /** 1 per page the collection reports written. */
  reported: Uint8Array;
  live: ArrayBuffer | null;
  snapshot: ArrayBuffer | null;
  /** Faults a user handler resolved (signal, uffd sync). */
  faults?: number;
  /** A failure inside the handler (the stores still completed). */
  handlerErrno?: string;
  handlerCall?: string;
}

export interface NativeTracking {
  /** SIGSEGV tracking (native/track_signal.cc): mode 0 mprotect, 1 remap (memfd copy + mmap MAP_FIXED). */
  trackSignal(input: TrackInput & { mode: 0 | 1; around: number; dontfork: boolean }): TrackRaw;
  /** userfaultfd errnos ('' when it worked) and UFFDIO_API's feature bits (native/track_uffd.cc). */
  uffdProbe(): { openErrno: string; apiErrno: string; features: number };
  /** userfaultfd write-protect tracking: sync (handler thread) or async (WP_ASYNC + PAGEMAP_SCAN). */
  trackUffd(input: TrackInput & { async: boolean }): TrackRaw;
  /** Raw pagemap entries of an own page after clear_refs 4 and after a store (native/track_softdirty.cc). */
  softDirtyProbe(): { clearErrno: string; pagemapErrno: string; cleared: bigint; rewritten: bigint };
  trackSoftDirty(input: TrackInput): TrackRaw;
}
