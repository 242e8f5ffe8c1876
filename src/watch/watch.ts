/**
 * watchFork: attach to a running process (no ptrace, no change to it), wait for it to fork, and
 * follow the snapshot's copy-on-write cost from outside until the child exits.
 *
 *   const r = await watchFork({ pid: 1234, intervalMs: 50 });
 *   console.log(r.fork.blockedMs, r.peak.cowBytes, r.durationMs);
 *
 * How fork time is seen from outside. fork() copies the parent's page tables in dup_mmap with
 * the parent's mmap lock held for writing, and the child appears in /proc/<pid>/task/<tid>/children
 * only once that copy is done. While waiting, cowlab polls about every `pollMs` ms: it reads one
 * pagemap entry of the parent (a read takes the mmap lock for reading, a few microseconds
 * normally) and then lists its children. A probe read that overlaps the fork blocks until the
 * page tables are copied: its duration is a lower bound of the fork's page-table copy, and the time
 * from the previous poll's end to the child's appearance an upper bound of the whole fork. The
 * child's start time (/proc/<child>/stat, 10 ms ticks) gives a third, coarse figure.
 *
 * COW bytes are the child's Private_Dirty (smaps_rollup): pages only the child maps, because
 * one of the two wrote its copy. That is the figure Redis reports as rdb_last_cow_size.
 */
import { closeSync, openSync, readSync } from 'node:fs';

import { CowlabError, invalidOption } from '../errors.js';
import { integerOption } from '../options.js';
import { checkTarget, childrenOf, hasChildrenFiles, isLive, nowMs, readRollup, sleep, startTimeMs, vsizeBytes, writableAnonVmas, PAGE_BYTES, type Rollup } from './proc.js';

export interface WatchOptions {
  pid: number;
  /** ms between smaps_rollup samples of parent and child while the child lives. Default 50. */
  intervalMs?: number;
  /** ms between polls for the fork while waiting. Default 1. */
  pollMs?: number;
  /** Give up (ERR_NO_FORK) when the process has not forked within this many seconds. Default 60. */
  timeoutS?: number;
  /** Stop sampling a child that lives longer than this (the result says so). Default 600. */
  maxSnapshotS?: number;
  /** Called once the fork is seen (the child's pid), and after every sample. */
  onFork?: (child: number) => void;
  onSample?: (s: WatchSample) => void;
  signal?: AbortSignal;
  /** Field names for messages (the CLI passes its flags). */
  fields?: { pid?: string; intervalMs?: string; timeoutS?: string };
}

export interface WatchSample {
  /** ms since the fork was seen. */
  tMs: number;
  parent: Rollup;
  child: Rollup;
  /** The child's Private_Dirty: memory the snapshot costs beyond the parent's own. */
  cowBytes: number;
  /** ms the two smaps_rollup reads took (they walk the page tables with the mmap lock held). */
  readMs: number;
}

export interface WatchResult {
  pid: number;
  comm: string;
  child: number;
  /** How the child was found: the children files, or a scan of /proc/<n>/stat for its ppid. */
  childrenVia: 'task-children' | 'proc-scan';
  /** The parent's smaps_rollup in the last poll before the fork. */
  before: Rollup;
  /** Writable private anonymous memory of the parent before the fork (bytes in those VMAs, mapped or not). */
  anonVmaBytes: number;
  fork: {
    /** Duration of the probe read that the fork blocked (lower bound of the page-table copy); null when no probe overlapped it. */
    blockedMs: number | null;
    /** From the end of the last poll that saw no child to the poll that saw it: the fork took at most this. */
    upperBoundMs: number;
    /** A normal probe read (median), ms, for comparison. */
    probeMedianMs: number;
    /** The child's start time (10 ms ticks) minus the last poll before the fork, ms: coarse. */
    startTimeDeltaMs: number | null;
    /** The figure to quote: blockedMs when known, else upperBoundMs. */
    ms: number;
    how: string;
  };
  samples: WatchSample[];
  peak: { cowBytes: number; tMs: number };
  /** COW bytes in the last sample before the child exited. */
  finalCowBytes: number;
  /** From the fork seen to the last sample with the child alive, ms (the snapshot lasted at least this). */
  durationMs: number;
  /** The child exited (true) or watching stopped at maxSnapshotS / an abort. */
  childExited: boolean;
  notes: string[];
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Opens the parent's pagemap and picks one page to probe (the first writable anonymous VMA's). */
function openProbe(pid: number): { fd: number; offset: number } | null {
  const vmas = writableAnonVmas(pid);
  if (!vmas || vmas.length === 0) return null;
  try {
    return { fd: openSync(`/proc/${pid}/pagemap`, 'r'), offset: Number(vmas[0]!.start / BigInt(PAGE_BYTES)) * 8 };
  } catch {
    return null;
  }
}

export async function watchFork(options: WatchOptions): Promise<WatchResult> {
  const f = { pid: 'pid', intervalMs: 'intervalMs', timeoutS: 'timeoutS', ...options.fields };
  const pid = integerOption(f.pid, options.pid, { min: 1 });
  const intervalMs = integerOption(f.intervalMs, options.intervalMs ?? 50, { min: 1, max: 60_000 });
  const timeoutS = integerOption(f.timeoutS, options.timeoutS ?? 60, { min: 1, max: 86_400 });
  const pollMs = integerOption('pollMs', options.pollMs ?? 1, { min: 1, max: 1000 });
  const maxSnapshotS = integerOption('maxSnapshotS', options.maxSnapshotS ?? 600, { min: 1 });
  const { comm } = checkTarget(pid, f.pid);
  const viaFiles = hasChildrenFiles(pid);
  const notes: string[] = [];
  if (!viaFiles) notes.push('this kernel has no /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN): children found by scanning /proc/<n>/stat, slower polls');
  const existing = new Set(childrenOf(pid, viaFiles));
  const anonVmaBytes = (writableAnonVmas(pid) ?? []).reduce((n, v) => n + v.pages * PAGE_BYTES, 0);
  let before = readRollup(pid);
  if (before === null) throw new CowlabError('ERR_PROCESS_EXITED', `pid ${pid} (${comm}) exited before watching began`);

  // Wait for the fork.
  const probe = openProbe(pid);
  if (probe === null) notes.push('no writable anonymous VMA to probe: fork time comes from the polls only (upper bound)');
  const entry = Buffer.alloc(8);
  const probeMs: number[] = [];
  const deadline = nowMs() + timeoutS * 1000;
  let lastPollEnd = nowMs();
  let lastRollupAt = 0;
  let child = 0;
  let prevProbe = 0;
  let lastProbe = 0;
  let seenAt = 0;
  try {
    for (;;) {
      if (options.signal?.aborted) throw new CowlabError('ERR_INTERRUPTED', `stopped before pid ${pid} (${comm}) forked`);
      const t0 = nowMs();
      if (probe) {
        try {
          readSync(probe.fd, entry, 0, 8, probe.offset);
        } catch {
          // the process is exiting; the liveness check below says so
        }
      }
      const t1 = nowMs();
      prevProbe = lastProbe;
      lastProbe = t1 - t0;
      const kids = childrenOf(pid, viaFiles).filter((c) => !existing.has(c));
      const t2 = nowMs();
      if (kids.length > 0) {
        child = kids[0]!;
        seenAt = t2;
        if (kids.length > 1) notes.push(`pid ${pid} forked ${kids.length} children at once; watching the first, ${child}`);
        break;
      }
      if (probeMs.length < 10_000) probeMs.push(lastProbe);
      if (!isLive(pid)) throw new CowlabError('ERR_PROCESS_EXITED', `pid ${pid} (${comm}) exited while cowlab waited for it to fork`);
      if (t2 > deadline) throw new CowlabError('ERR_NO_FORK', `pid ${pid} (${comm}) did not fork within ${timeoutS} s (--timeout-s)`);
      // The baseline for the report: the parent's rollup shortly before the fork.
      if (t2 - lastRollupAt > 200) {
        before = readRollup(pid) ?? before;
        lastRollupAt = nowMs();
      }
      lastPollEnd = nowMs();
      await sleep(Math.max(0, pollMs - (lastPollEnd - t0)), options.signal);
    }
  } finally {
    if (probe) closeSync(probe.fd);
  }
  options.onFork?.(child);
  const probeMedianMs = median(probeMs);
  const blocked = Math.max(lastProbe, prevProbe);
  // A probe 20x its usual duration (and 0.1 ms longer) was held up by something: the fork.
  const blockedMs = probe && blocked > Math.max(20 * probeMedianMs, probeMedianMs + 0.1) ? blocked : null;
  const upperBoundMs = seenAt - lastPollEnd;
  const start = startTimeMs(child);
  const startTimeDeltaMs = start === null ? null : Math.max(0, start - lastPollEnd);
  const fork = {
    blockedMs,
    upperBoundMs,
    probeMedianMs,
    startTimeDeltaMs,
    ms: blockedMs ?? upperBoundMs,
    how:
      blockedMs !== null
        ? `a read of the parent's pagemap was blocked ${blockedMs.toFixed(2)} ms by fork's page-table copy (mmap lock held for writing; a normal read takes ${(probeMedianMs * 1000).toFixed(0)} us); the child appeared at most ${upperBoundMs.toFixed(2)} ms after the previous poll`
        : `no probe read overlapped the fork: the child appeared at most ${upperBoundMs.toFixed(2)} ms after the previous poll (polls every ${pollMs} ms)`,
  };

  // Follow the snapshot.
  const samples: WatchSample[] = [];
  let childExited = false;
  let lastAlive = seenAt;
  for (;;) {
    if (options.signal?.aborted) {
      notes.push('stopped by an abort before the child exited');
      break;
    }
    const t0 = nowMs();
    const c = readRollup(child);
    const p = readRollup(pid);
    const t1 = nowMs();
    // A child that released its address space (exiting) reads as empty: the snapshot is over.
    if (c === null || vsizeBytes(child) === 0 || !isLive(child)) {
      childExited = true;
      break;
    }
    if (p === null) throw new CowlabError('ERR_PROCESS_EXITED', `pid ${pid} (${comm}) exited while its child ${child} was still running`);
    lastAlive = t1;
    const s: WatchSample = { tMs: t1 - seenAt, parent: p, child: c, cowBytes: c.privateDirty, readMs: t1 - t0 };
    samples.push(s);
    options.onSample?.(s);
    if (t1 - seenAt > maxSnapshotS * 1000) {
      notes.push(`stopped after ${maxSnapshotS} s with the child ${child} still running`);
      break;
    }
    await sleep(Math.max(0, intervalMs - (nowMs() - t0)), options.signal);
  }
  const peak = samples.reduce((best, s) => (s.cowBytes > best.cowBytes ? { cowBytes: s.cowBytes, tMs: s.tMs } : best), { cowBytes: 0, tMs: 0 });
  if (samples.length === 0) notes.push(`the child ${child} exited before the first sample (the snapshot lasted less than one read)`);
  return {
    pid,
    comm,
    child,
    childrenVia: viaFiles ? 'task-children' : 'proc-scan',
    before,
    anonVmaBytes,
    fork,
    samples,
    peak,
    finalCowBytes: samples.at(-1)?.cowBytes ?? 0,
    durationMs: lastAlive - seenAt,
    childExited,
    notes,
  };
}

/** Parses `--pid` text for the CLI (a number; anything else is a usage error). */
export function pidOption(field: string, value: unknown): number {
  if (typeof value === 'string' && !/^\d+$/.test(value.trim())) throw invalidOption(field, `must be a process id (a positive integer), got '${value}'`);
  return integerOption(field, value, { min: 1, max: 2 ** 22 });
}
