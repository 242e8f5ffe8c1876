/**
 * What a snapshot costs to keep and frees when deleted, by the file system's own counters: the
 * storage form of the Redis BGSAVE question. One measurement writes a file, snapshots it (a
 * read-only Btrfs subvolume snapshot, or an XFS FICLONE reflink), overwrites a set of distinct
 * blocks of the live file (once, or twice), and reads:
 *
 *   held    what the snapshot alone keeps allocated. Btrfs: the snapshot's qgroup exclusive
 *           bytes (`btrfs qgroup show --raw` after `btrfs quota rescan -w`). XFS has no
 *           per-file counter: the bytes FIEMAP shows not shared in the clone (XFS reads the
 *           SHARED flag from its refcount btree).
 *   freed   the statfs free-space change when the snapshot is deleted, once the file system
 *           has really freed it (Btrfs: the cleaner has dropped the subvolume; XFS: a freeze,
 *           which drains the background inode inactivation that frees an unlinked file).
 *
 * and predicts `held` with a small extent model: the snapshot keeps exactly the sharing units
 * (XFS: each block has its own reference count; Btrfs: each extent is referenced whole, so a
 * partly overwritten extent stays referenced by the live file too) every block of which the
 * live file no longer references.
 */
import { spawnSync } from 'node:child_process';

import { CowlabError } from '../errors.js';
import { sample } from '../util/prng.js';
import { readFiemap, summarizeSharing, type Extent } from './fiemap.js';
import { BLOCK_BYTES, checkContent, overwriteBlocks, reflinkClone, writePatternFile } from './files.js';
import type { Scratch, ScratchFs } from './scratch.js';
import { freeBytesAt, removeFiles } from './session.js';

/** One snapshot's life: what it held after the overwrites and what deleting it freed. */
export interface LifetimeObservation {
  fileBytes: number;
  /** Distinct blocks overwritten in the live file. */
  distinct: number;
  /** Block writes made (distinct x times). */
  writes: number;
  /** Bytes the snapshot alone holds, by the file system's counter (see the module comment). */
  heldBytes: number;
  /** Bytes FIEMAP shows not shared in the snapshot's file (the cross-check on Btrfs). */
  fiemapExclusiveBytes: number;
  /** The extent model's prediction of heldBytes. */
  predictedBytes: number;
  /** Free bytes gained by deleting the snapshot (statfs, after the file system freed it). */
  freedBytes: number;
  /** Sharing units of the snapshot's file (extents on Btrfs, blocks on XFS) before the writes. */
  units: number;
  /** Blocks of the snapshot not reading back as the original, and of the live file not as written. */
  snapshotMismatches: number;
  liveMismatches: number;
}

/**
 * The extent model: bytes of `extents` (the snapshot's file, before the writes) in which every
 * block was overwritten in the live file, with `unitBytes` the sharing granularity (null: whole
 * extents, as on Btrfs; BLOCK_BYTES: per block, as on XFS).
 */
export function predictHeldBytes(extents: readonly Extent[], fileBytes: number, written: ReadonlySet<number>, unitBytes: number | null): number {
  let held = 0;
  for (const e of extents) {
    const end = Math.min(fileBytes, e.logical + e.length);
    const unit = unitBytes ?? end - e.logical;
    for (let a = e.logical; a < end; a += unit) {
      const z = Math.min(end, a + unit);
      let all = true;
      for (let b = Math.floor(a / BLOCK_BYTES); b * BLOCK_BYTES < z && all; b++) all = written.has(b);
      if (all) held += z - a;
    }
  }
  return held;
}

function units(extents: readonly Extent[], fileBytes: number, unitBytes: number | null): number {
  return unitBytes === null ? extents.length : Math.ceil(fileBytes / unitBytes);
}

/** The qgroup exclusive bytes of subvolume id `id` (level 0), from `btrfs qgroup show --raw`. */
export function parseQgroupExclusive(text: string, id: number): number | null {
  for (const line of text.split('\n')) {
    const m = /^\s*0\/(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (m && Number(m[1]) === id) return Number(m[3]);
  }
  return null;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Enables quotas on a scratch Btrfs (needed once before snapshotLifetime on it). */
export function enableQuota(s: Scratch, fs: ScratchFs): void {
  s.run('btrfs', ['quota', 'enable', fs.mountpoint], 'enabling btrfs quotas (qgroups) on the scratch file system');
}

/** Waits until the Btrfs cleaner has dropped every deleted subvolume. `btrfs filesystem sync`
 *  (BTRFS_IOC_SYNC) commits and wakes the transaction thread, which pokes the cleaner; a plain
 *  syncfs does not, and the cleaner would wait for the next 30 s commit. */
function waitCleaned(s: Scratch, fs: ScratchFs): void {
  for (let i = 0; i < 200; i++) {
    s.run('btrfs', ['filesystem', 'sync', fs.mountpoint], 'syncing the scratch btrfs');
    if (s.run('btrfs', ['subvolume', 'list', '-d', fs.mountpoint], 'listing deleted btrfs subvolumes').trim() === '') return;
    sleepMs(50);
  }
  throw new CowlabError('ERR_VERIFY', `the btrfs cleaner did not drop a deleted snapshot on ${fs.mountpoint} within 10 s`);
}

/** Freezes and thaws an XFS: the freeze drains inode inactivation, so unlinked files are freed. */
function drainXfs(s: Scratch, fs: ScratchFs): void {
  s.run('fsfreeze', ['--freeze', fs.mountpoint], 'freezing the scratch XFS (drains inode inactivation)');
  const r = spawnSync(s.tool('fsfreeze', ''), ['--unfreeze', fs.mountpoint], { timeout: 60_000 });
  if (r.status !== 0) throw new CowlabError('ERR_VERIFY', `fsfreeze --unfreeze ${fs.mountpoint} failed`);
}

/**
 * One snapshot lifetime on `fs`: a `fileBytes` file, snapshotted, `distinct` random blocks
 * (seeded: the same seed, the same blocks) overwritten `times` times (one fsync each), held and FIEMAP read, content checked,
 * the snapshot deleted and the space it freed read. Everything it made is deleted after.
 */
export function snapshotLifetime(s: Scratch, fs: ScratchFs, fileBytes: number, distinct: number, times: number, seed: number, id: string = String(seed)): LifetimeObservation {
  const blocks = fileBytes / BLOCK_BYTES;
  const order = [...sample(blocks, distinct, seed)];
  const written = new Set(order);
  const btrfs = fs.kind === 'btrfs';
  const home = btrfs ? `${fs.mountpoint}/vol-${id}` : fs.mountpoint;
  const live = `${home}/live-${id}`;
  const snapDir = `${fs.mountpoint}/snap-${id}`;
  const snap = btrfs ? `${snapDir}/live-${id}` : `${fs.mountpoint}/clone-${id}`;
  let snapLive = false;
  // What was deleted before (an earlier measurement's subvolume or files) is freed first, or
  // its space would be counted as what this snapshot's deletion freed.
  if (btrfs) waitCleaned(s, fs);
  else drainXfs(s, fs);
  try {
    if (btrfs) s.run('btrfs', ['subvolume', 'create', home], 'a btrfs subvolume');
    writePatternFile(live, fileBytes, 1);
    if (btrfs) s.run('btrfs', ['subvolume', 'snapshot', '-r', home, snapDir], 'a btrfs snapshot');
    else reflinkClone(live, snap);
    snapLive = true;
    const unitBytes = btrfs ? null : BLOCK_BYTES;
    const before = readFiemap(snap);
    for (let t = 0; t < times && order.length > 0; t++) overwriteBlocks(live, order, 2 + t);
    s.syncfs(fs.mountpoint);
    const fiemapExclusiveBytes = summarizeSharing(readFiemap(snap), 0, fileBytes).privateBytes;
    let heldBytes = fiemapExclusiveBytes;
    if (btrfs) {
      s.run('btrfs', ['quota', 'rescan', '-w', fs.mountpoint], 'a btrfs quota rescan');
      const id = Number(s.run('btrfs', ['inspect-internal', 'rootid', snapDir], 'the snapshot\'s subvolume id').trim());
      const held = parseQgroupExclusive(s.run('btrfs', ['qgroup', 'show', '--raw', fs.mountpoint], 'reading btrfs qgroups'), id);
      if (held === null) throw new CowlabError('ERR_VERIFY', `btrfs qgroup show lists no qgroup 0/${id} for the snapshot ${snapDir}`);
      heldBytes = held;
    }
    const snapshotMismatches = checkContent(snap, () => 1).mismatched;
    const liveMismatches = checkContent(live, (b) => (written.has(b) ? 1 + times : 1)).mismatched;
    const free0 = freeBytesAt(fs.mountpoint);
    if (btrfs) {
      s.run('btrfs', ['subvolume', 'delete', '--commit-after', snapDir], 'deleting the btrfs snapshot');
      snapLive = false;
      waitCleaned(s, fs);
    } else {
      removeFiles(snap);
      snapLive = false;
      s.syncfs(fs.mountpoint);
      drainXfs(s, fs);
    }
    const freedBytes = freeBytesAt(fs.mountpoint) - free0;
    return {
      fileBytes, distinct: order.length, writes: order.length * times, heldBytes, fiemapExclusiveBytes,
      predictedBytes: predictHeldBytes(before, fileBytes, written, unitBytes), freedBytes, units: units(before, fileBytes, unitBytes),
      snapshotMismatches, liveMismatches,
    };
  } finally {
    if (btrfs) {
      if (snapLive) s.run('btrfs', ['subvolume', 'delete', snapDir], 'deleting the btrfs snapshot');
      s.run('btrfs', ['subvolume', 'delete', home], 'deleting a btrfs subvolume');
    } else removeFiles(live, snap);
  }
}
