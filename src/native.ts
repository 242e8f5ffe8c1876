/**
 * The only loader of the native addon, and its typed contract. Everything else imports
 * `native()` from here. Loading is lazy, so `cowlab --help` and option errors work even where
 * the addon cannot load; every failure is collected into one clear message.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

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
  MADV_POPULATE_READ: number;
  MADV_POPULATE_WRITE: number;
  BACKING_ANON_PRIVATE: number;
  BACKING_ANON_SHARED: number;
  BACKING_MEMFD_PRIVATE: number;
  BACKING_MEMFD_SHARED: number;
}

/** Input of the native fork probe (see native/forkprobe.cc for the protocol). */
export interface ForkProbeInput {
  address: bigint;
  /** Pages of the region; pagemap snapshots cover all of them. */
  pages: number;
  /** Pages the child writes, in order. */
  childOrder: Uint32Array;
  /** Pages the parent writes, in order. */
  parentOrder: Uint32Array;
  /** 0: the parent does not write; 1: while the child is alive; 2: after the child exited. */
  parentWhen: 0 | 1 | 2;
  /** Each store writes `tag + page` (u64) at offset 0 of the page. */
  childTag: bigint;
  parentTag: bigint;
  /** The child is killed and the promise rejects (ERR_CHILD_DEADLINE) after this long. */
  deadlineMs: number;
  /** The child sleeps this long before it exits (it holds its snapshot). */
  holdMs: number;
  /** Read /proc/kpagecount of every present page right after the fork (root only). */
  kpagecount: boolean;
}

export interface ForkProbeSideRaw {
  written: number;
  latencyNs: Float64Array;
  minorFaults: number;
  majorFaults: number;
  vmstatBefore: string | null;
  vmstatAfter: string | null;
  /** Child only: the u64 read back from each written page after the writes. */
  readback?: ArrayBuffer;
  /** Raw pagemap entries of the whole region at three moments. */
  pagemap: { afterFork: ArrayBuffer; afterChildWrites: ArrayBuffer; end: ArrayBuffer };
}

export interface ForkProbeRaw {
  forkNs: number;
  childPid: number;
  timerOverheadNs: number;
  /** Mapcount of each page's frame right after the fork; 0 for pages not present. */
  kpagecountAfterFork: Float64Array | null;
  child: ForkProbeSideRaw;
  parent: ForkProbeSideRaw;
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

export interface NativeAddon {
  setErrorClass(cls: typeof CowlabError): void;
  constants: NativeConstants;
  mapMemory(bytes: number, backing: number, align: number): { address: bigint; buffer: ArrayBuffer };
  unmapMemory(address: bigint, bytes: number): void;
  detachBuffer(buffer: ArrayBuffer): void;
  protectMemory(address: bigint, bytes: number, prot: number): void;
  adviseMemory(address: bigint, bytes: number, advice: number): void;
  touchPages(address: bigint, pages: number, write: boolean): number;
  readPagemap(pid: number, address: bigint, pages: number): ArrayBuffer;
  readKpage(file: 'count' | 'flags', pfns: Float64Array): ArrayBuffer;
  forkProbe(input: ForkProbeInput): Promise<ForkProbeRaw>;
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
  const explicit = opts.path ?? process.env.COWLAB_ADDON;
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
