/**
 * What every storage experiment does around its measurements: a scratch space that is always
 * torn down, sizes clamped to free disk space, a turn of the event loop between measurements
 * (so Ctrl-C, delivered as a signal event, is seen), and the durable, fully accounted form of
 * an operation: run it, syncfs, and read the loop device's counters around both.
 */
import { rmSync, statfsSync } from 'node:fs';

import { CowlabError } from '../errors.js';
import { formatBytes } from '../util/units.js';
import { counterDelta, counterSum, readBlockCounters, type BlockCounters } from './blockdev.js';
import { Scratch, type ScratchFs, type ScratchOptions } from './scratch.js';

/** What the experiments' run context gives a storage session (a subset of RunContext). */
export interface SessionContext {
  signal: AbortSignal;
  note(text: string): void;
}

/** `bytes`, clamped to `limit` on an emulated CPU (a TCG guest: every block write is a slow
 *  syscall there), with a note; `emulated` says whether it is one. */
export function clampForEmulatedCpu(ctx: SessionContext & { env: { guest?: { accel: string } | null } }, bytes: number, limit: number, what: string): { bytes: number; emulated: boolean } {
  const emulated = ctx.env.guest?.accel === 'tcg';
  if (!emulated || bytes <= limit) return { bytes, emulated };
  ctx.note(`${what}: clamped from ${formatBytes(bytes)} to ${formatBytes(limit)} on this emulated CPU (a TCG guest)`);
  return { bytes: limit, emulated };
}

/** What `make` returns, or its message when it is not measurable here (ERR_NOT_MEASURABLE):
 *  one row of an experiment then says why, and the others are measured. */
export function unlessNotMeasurable<T>(make: () => T): T | string {
  try {
    return make();
  } catch (err) {
    if (err instanceof CowlabError && err.code === 'ERR_NOT_MEASURABLE') return err.message;
    throw err;
  }
}

/** Lets pending events run (a SIGINT's handler aborts the signal), then stops if aborted. */
export async function checkpointTurn(signal: AbortSignal): Promise<void> {
  await new Promise((r) => setImmediate(r));
  signal.throwIfAborted();
}

/**
 * Runs `body` with a fresh scratch space, closing it on every path (success, failure, abort).
 * A teardown that left something behind is noted.
 */
export async function withStorage<T>(ctx: SessionContext, body: (s: Scratch) => Promise<T>, opts: ScratchOptions = {}): Promise<T> {
  const s = Scratch.open(opts);
  try {
    return await body(s);
  } finally {
    const r = s.close();
    if (r.left.length > 0) ctx.note(`teardown could not undo: ${r.left.join('; ')} (the next run sweeps it)`);
  }
}

/** Bytes free on the file system holding `path` (statfs f_bavail). */
export function freeBytesAt(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

/** `bytes`, clamped to `share` of the disk space free under the scratch directory, with a note. */
export function clampToDisk(ctx: SessionContext, s: Scratch, bytes: number, share: number, what: string): number {
  const limit = Math.floor((s.freeBytes() * share) / (1 << 20)) * (1 << 20);
  if (bytes <= limit) return bytes;
  ctx.note(`${what}: clamped from ${formatBytes(bytes)} to ${formatBytes(limit)} (free disk space under ${s.dir})`);
  return limit;
}

/** Device I/O of an operation made durable: until it returned (its own fsync), and in all once
 *  the whole file system was synced (journal, transaction commit, metadata written back). */
export interface DurableIo {
  /** Sectors read and written while the operation ran (including its fsync). */
  untilReturn: BlockCounters;
  /** ... and until syncfs of the file system returned. */
  total: BlockCounters;
  /** Free bytes of the file system (statfs) after minus before, after the syncfs. */
  freeDeltaBytes: number;
}

/**
 * Runs `op` between `sync()` before (so earlier work is not counted) and after, summing the
 * counters of the block devices `devices` (loopN, ...) around it, and `free()` (bytes) around both.
 */
export function accounted<T>(devices: readonly string[], sync: () => void, free: () => number, op: () => T): { result: T; io: DurableIo } {
  const read = () => devices.map(readBlockCounters).reduce((a, c) => counterSum(a, c));
  sync();
  const free0 = free();
  const c0 = read();
  const result = op();
  const c1 = read();
  sync();
  const c2 = read();
  return { result, io: { untilReturn: counterDelta(c0, c1), total: counterDelta(c0, c2), freeDeltaBytes: free() - free0 } };
}

/**
 * Runs `op` on `fs` between a syncfs before (so earlier work is not counted) and one after,
 * reading the device counters and free space around it.
 */
export function durable<T>(s: Scratch, fs: ScratchFs, op: () => T): { result: T; io: DurableIo } {
  return accounted([fs.deviceName], () => s.syncfs(fs.mountpoint), () => freeBytesAt(fs.mountpoint), op);
}

/** Deletes files made by a measurement (to free the space for the next point). */
export function removeFiles(...paths: string[]): void {
  for (const p of paths) rmSync(p, { force: true, recursive: true });
}
