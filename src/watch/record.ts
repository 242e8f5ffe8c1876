/**
 * recordWrites: turn a running program's writes into a trace (docs/trace.md), without changing
 * the program. Two ways to see which pages a process wrote, from outside:
 *
 * - 'soft-dirty' (kernels built with CONFIG_MEM_SOFT_DIRTY): write 4 to /proc/P/clear_refs,
 *   which clears the soft-dirty bit of every page and write-protects it; the next write to a
 *   page takes a fault that sets the bit (pagemap bit 55). Each interval cowlab reads the bits
 *   and clears them again. Cost on the process: one extra minor fault per page per interval it
 *   writes, and the clear walks its page tables with the mmap lock held. A VMA created or
 *   expanded since the last clear is soft-dirty as a whole (VM_SOFTDIRTY): every page of it reads
 *   written; cowlab notices by its bounds, keeps the pages and says so (wholeVma).
 * - 'fork' (any kernel; the only way where soft-dirty is not configured): the process's own
 *   snapshot. While a forked child shares the parent's pages, they read as not exclusive
 *   (pagemap bit 56); the first write to one (by either process) gives it a copy, and the
 *   parent's page becomes exclusive. cowlab waits for the process to fork, then each interval
 *   reads the bits: pages that turned exclusive were written. This records exactly the write
 *   set of a snapshot (what COW costs), but only the first write per page, and only while the
 *   child lives. Cost on the process: the pagemap reads take its mmap lock for reading.
 *
 * Either way the trace has a region per writable private anonymous VMA of /proc/P/maps at the
 * start (a VMA over the trace limit of 2^24 pages is split into several regions), p0 writes the
 * pages resident at the start, then forks c1, then writes per interval the pages written in
 * it, then c1 exits. Pages written in VMAs mapped after the start are not recorded (counted).
 */
import { closeSync, openSync, writeSync } from 'node:fs';

import { CowlabError } from '../errors.js';
import { native } from '../native.js';
import { integerOption, choiceOption } from '../options.js';
import { PagemapEntries } from '../pagemap/pagemap.js';
import { MAX_REGION_PAGES } from '../trace/schema.js';
import { parseTrace } from '../trace/parse.js';
import type { PageSelector, RegionSpec, Step, Trace } from '../trace/types.js';
import { childrenOf, checkTarget, hasChildrenFiles, isLive, nowMs, sleep, vsizeBytes, writableAnonVmas, PAGE_BYTES, type Vma } from './proc.js';
import { readProcStat } from '../util/procStat.js';

export const RECORD_METHODS = ['auto', 'soft-dirty', 'fork'] as const;
export type RecordMethod = (typeof RECORD_METHODS)[number];

/** The marker before the JSON of a recorded trace's metadata, on the last line of its description. */
export const RECORD_META_MARKER = 'cowlab-record ';

/** What `cowlab record` keeps in the trace's description (the trace format has no other place). */
export interface RecordMeta {
  version: 1;
  pid: number;
  comm: string;
  method: 'soft-dirty' | 'fork';
  intervalMs: number;
  intervals: number;
  /** For each trace step after the fork: the interval (0-based) it was written in; -1 for the exit. */
  stepInterval: number[];
  /** Each region's first address in the process (hex). */
  regionStart: Record<string, string>;
}

export interface RecordOptions {
  pid: number;
  /** How long to record, s. */
  seconds: number;
  /** ms per interval (one write step each). Default 100. */
  intervalMs?: number;
  /** Default 'auto': soft-dirty where the kernel has it, else fork. */
  method?: RecordMethod;
  /** fork method: how long to wait for the process to fork, s. Default 60. */
  waitForkS?: number;
  /**
   * fork method: the process already forked this child (watchFork saw it): record its snapshot
   * at once, without waiting. With no picture from before the fork, a page already exclusive at
   * the first read counts as resident at the fork and written in interval 0.
   */
  child?: number;
  onFork?: (child: number) => void;
  /**
   * After each interval's read (and clear): interval 0 is the first picture (fork) or the first
   * clear (soft-dirty). A returned promise is awaited before the next interval's wait, so a
   * driver that makes the process write (tests, the record-writes experiment) knows which
   * interval its writes fall in.
   */
  onInterval?: (i: number, pagesWritten: number) => void | Promise<void>;
  signal?: AbortSignal;
  fields?: { pid?: string; seconds?: string; intervalMs?: string; method?: string };
}

export interface RecordedRegion {
  id: string;
  /** First address (hex) and pages: a VMA, or a part of one over 2^24 pages. */
  start: string;
  pages: number;
  vma: string;
  /** Pages present at the start (p0 writes them before the fork). */
  resident: number;
}

export interface RecordInterval {
  tMs: number;
  /** Pages written in the interval (in the recorded regions). */
  pages: number;
  /** ms the pagemap reads took. */
  readMs: number;
  /** ms the clear_refs write took (soft-dirty), 0 for fork. */
  clearMs: number;
}

export interface RecordResult {
  pid: number;
  comm: string;
  method: 'soft-dirty' | 'fork';
  /** fork method: the child whose snapshot was recorded. */
  child: number | null;
  intervalMs: number;
  trace: Trace;
  regions: RecordedRegion[];
  intervals: RecordInterval[];
  /** Distinct pages written over the whole recording. */
  distinctPages: number;
  /** Page writes over all intervals (a page written in two intervals counts twice). */
  pageWrites: number;
  residentPages: number;
  /** Pages written in VMAs that appeared after the start: not in the trace. */
  unrecordedBytes: number;
  /**
   * soft-dirty: regions whose VMA grew or merged with a new mapping in an interval. The kernel
   * marks such a VMA soft-dirty as a whole, so every present page read written: `pages` of the
   * interval's write set there may not have been written (the trace keeps them).
   */
  wholeVma: { interval: number; region: string; vma: string; pages: number }[];
  stoppedBy: 'seconds' | 'child-exited' | 'abort';
  cost: {
    readMsMedian: number;
    readMsMax: number;
    clearMsMedian: number;
    clearMsMax: number;
    /** The recorded process's minor faults per second while recorded. */
    minorFaultsPerS: number;
    /** What the cost means for the recorded process. */
    note: string;
  };
  notes: string[];
}

/** True when this kernel keeps soft-dirty bits: a page cowlab maps and writes has pagemap bit 55 set. */
export function softDirtyAvailable(): boolean {
  const e = new PagemapEntries(native().probeOwnPfn());
  return e.softDirty[0] === 1;
}

/** The VMA holding `addr`, or null. */
function vmaAt(vmas: readonly Vma[], addr: bigint): Vma | null {
  return vmas.find((v) => v.start <= addr && addr < v.end) ?? null;
}

/** Region ids from a VMA's name: heap, stack, anon, anon-<name>, numbered. */
function regionIds(vmas: Vma[]): { vma: Vma; id: string; start: bigint; pages: number }[] {
  const out: { vma: Vma; id: string; start: bigint; pages: number }[] = [];
  const used = new Map<string, number>();
  for (const v of vmas) {
    const base = v.name === '' ? 'anon' : v.name.startsWith('[heap') ? 'heap' : v.name.startsWith('[stack') ? 'stack' : `anon-${v.name.slice(6, -1).replace(/[^a-z0-9_-]/gi, '_').slice(0, 40)}`;
    for (let first = 0; first < v.pages; first += MAX_REGION_PAGES) {
      const n = used.get(base) ?? 0;
      used.set(base, n + 1);
      out.push({ vma: v, id: `${base}${n}`, start: v.start + BigInt(first) * BigInt(PAGE_BYTES), pages: Math.min(MAX_REGION_PAGES, v.pages - first) });
    }
  }
  return out;
}

/** Reads the pagemap of `pages` pages from `start` in chunks; calls `each(i, hiWord)` per page (flags live in the high word). */
const CHUNK = 1 << 18;
function scanPagemap(pid: number, start: bigint, pages: number, each: (i: number, hi: number) => void): boolean {
  for (let first = 0; first < pages; first += CHUNK) {
    const n = Math.min(CHUNK, pages - first);
    let raw: ArrayBuffer;
    try {
      raw = native().readPagemap(pid, start + BigInt(first) * BigInt(PAGE_BYTES), n);
    } catch {
      return false; // the VMA (or the process) went away meanwhile
    }
    const w = new Uint32Array(raw);
    const got = w.length / 2;
    for (let i = 0; i < got; i++) each(first + i, w[2 * i + 1]!);
  }
  return true;
}

const PRESENT = 0x80000000;
const EXCLUSIVE = 1 << 24;
const SOFT_DIRTY = 1 << 23;
const SEEN = 1;
const RESIDENT = 8;
const SHARED = 2;

/** Page lists as selectors: runs as ranges when there are few, else one list. */
function selectors(pages: number[]): PageSelector[] {
  const runs: [number, number][] = [];
  for (const p of pages) {
    const last = runs.at(-1);
    if (last && last[1] === p) last[1] = p + 1;
    else runs.push([p, p + 1]);
  }
  if (runs.length <= 8) return runs.map(([start, end]) => ({ start, end }));
  return [{ pages }];
}

function minorFaults(pid: number): number {
  return readProcStat(pid)?.minorFaults ?? 0;
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** clear_refs 4: clear the soft-dirty bits of every page of `pid`; returns ms. */
function clearSoftDirty(pid: number): number {
  const t0 = nowMs();
  const fd = openSync(`/proc/${pid}/clear_refs`, 'w');
  try {
    writeSync(fd, '4');
  } finally {
    closeSync(fd);
  }
  return nowMs() - t0;
}

export async function recordWrites(options: RecordOptions): Promise<RecordResult> {
  const f = { pid: 'pid', seconds: 'seconds', intervalMs: 'intervalMs', method: 'method', ...options.fields };
  const pid = integerOption(f.pid, options.pid, { min: 1 });
  const seconds = integerOption(f.seconds, options.seconds, { min: 1, max: 3600 });
  const intervalMs = integerOption(f.intervalMs, options.intervalMs ?? 100, { min: 10, max: 60_000 });
  const waitForkS = integerOption('waitForkS', options.waitForkS ?? 60, { min: 1, max: 86_400 });
  const asked = choiceOption(f.method, options.method ?? 'auto', RECORD_METHODS);
  const { comm } = checkTarget(pid, f.pid);
  const soft = softDirtyAvailable();
  if (asked === 'soft-dirty' && !soft) {
    throw new CowlabError('ERR_KERNEL_FEATURE', `${f.method}: this kernel keeps no soft-dirty bits (built without CONFIG_MEM_SOFT_DIRTY: a page cowlab wrote has pagemap bit 55 clear); use --method fork to record the write set of the process's next snapshot`, { field: f.method });
  }
  const method: 'soft-dirty' | 'fork' = asked === 'auto' ? (soft ? 'soft-dirty' : 'fork') : asked;
  const notes: string[] = [];
  if (asked === 'auto' && !soft) notes.push('this kernel keeps no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY is off): recorded the write set of the process\'s next snapshot (method fork)');
  notes.push('PAGEMAP_SCAN is not used: without soft-dirty its only write tracking (PAGE_IS_WRITTEN) needs a userfaultfd registered by the process itself');

  const vmas = writableAnonVmas(pid);
  if (vmas === null) throw new CowlabError('ERR_PROCESS_EXITED', `pid ${pid} (${comm}) exited before recording began`);
  if (vmas.length === 0) throw new CowlabError('ERR_NOT_MEASURABLE', `pid ${pid} (${comm}) has no writable private anonymous memory to record`);
  const parts = regionIds(vmas);
  const split = vmas.filter((v) => v.pages > MAX_REGION_PAGES);
  for (const v of split) notes.push(`the VMA at 0x${v.start.toString(16)} (${v.pages} pages) is larger than a trace region (2^24 pages, 64 GiB): split into ${Math.ceil(v.pages / MAX_REGION_PAGES)} regions`);
  // Per region, per page: SEEN (present in the last picture, or written since), RESIDENT
  // (present at the fork: p0 populates it), SHARED (fork method: still shared with the child).
  const state = parts.map((p) => new Uint8Array(p.pages));
  const readAll = (each: (r: number, i: number, hi: number) => void): number => {
    const t0 = nowMs();
    parts.forEach((p, r) => scanPagemap(pid, p.start, p.pages, (i, hi) => each(r, i, hi)));
    return nowMs() - t0;
  };

  let child: number | null = null;
  const intervals: RecordInterval[] = [];
  const written: number[][][] = []; // interval -> region -> pages
  let stoppedBy: RecordResult['stoppedBy'] = 'seconds';

  const takeResident = () => {
    for (const s of state) s.fill(0);
    return readAll((r, i, hi) => {
      if (hi & PRESENT) state[r]![i] = SEEN;
    });
  };

  let faults0 = 0;
  let t0 = 0;
  if (method === 'fork') {
    // Wait for the fork, keeping a recent picture of the resident pages.
    const viaFiles = hasChildrenFiles(pid);
    const existing = new Set(childrenOf(pid, viaFiles));
    const deadline = nowMs() + waitForkS * 1000;
    let pictureAt = -Infinity;
    if (options.child !== undefined) {
      child = integerOption('child', options.child, { min: 1 });
      if (!isLive(child)) throw new CowlabError('ERR_PROCESS_EXITED', `the child ${child} of pid ${pid} exited before recording began`);
      // No picture before the fork: take every page present now as resident at the fork.
      takeResident();
    }
    for (; child === null; ) {
      if (options.signal?.aborted) throw new CowlabError('ERR_INTERRUPTED', `stopped before pid ${pid} (${comm}) forked`);
      if (nowMs() - pictureAt > 500) {
        takeResident();
        pictureAt = nowMs();
      }
      const kids = childrenOf(pid, viaFiles).filter((c) => !existing.has(c));
      if (kids.length > 0) {
        child = kids[0]!;
        break;
      }
      if (!isLive(pid)) throw new CowlabError('ERR_PROCESS_EXITED', `pid ${pid} (${comm}) exited while cowlab waited for it to fork`);
      if (nowMs() > deadline) throw new CowlabError('ERR_NO_FORK', `pid ${pid} (${comm}) did not fork within ${waitForkS} s: method fork records the write set of a snapshot, so the process must fork (start its snapshot, e.g. redis-cli BGSAVE, while cowlab waits)`);
      await sleep(1, options.signal);
    }
    options.onFork?.(child);
    t0 = nowMs();
    faults0 = minorFaults(pid);
    // First picture after the fork: shared pages; pages resident before and exclusive now were written since.
    const first: number[][] = parts.map(() => []);
    const readMs = readAll((r, i, hi) => {
      const s = state[r]!;
      if (!(hi & PRESENT)) {
        s[i] = 0;
        return;
      }
      if (!(hi & EXCLUSIVE)) s[i] = RESIDENT | SEEN | SHARED; // present at the fork, shared
      else {
        // Resident before the fork and exclusive now: copied since the fork. Not resident
        // before: new since the last picture (a write, zero-filled).
        s[i] = s[i]! & SEEN ? RESIDENT | SEEN : SEEN;
        first[r]!.push(i);
      }
    });
    if (vsizeBytes(child) === 0 || !isLive(child)) throw new CowlabError('ERR_PROCESS_EXITED', `the child ${child} of pid ${pid} exited before cowlab could read the shared pages`);
    // Pages written before the first read are all taken as written in interval 0.
    written.push(first);
    intervals.push({ tMs: nowMs() - t0, pages: first.reduce((n, l) => n + l.length, 0), readMs, clearMs: 0 });
    await options.onInterval?.(0, intervals[0]!.pages);
  } else {
    takeResident();
    for (const st of state) for (let i = 0; i < st.length; i++) if (st[i]! & SEEN) st[i] = SEEN | RESIDENT;
    faults0 = minorFaults(pid);
    const clearMs = clearSoftDirty(pid);
    t0 = nowMs();
    intervals.push({ tMs: 0, pages: 0, readMs: 0, clearMs });
    written.push(parts.map(() => []));
    await options.onInterval?.(0, 0);
  }

  let unrecordedBytes = 0;
  let vmasAtClear = vmas;
  const wholeVma: RecordResult['wholeVma'] = [];
  const n = Math.max(1, Math.round((seconds * 1000) / intervalMs));
  for (let k = 1; k <= n; k++) {
    const due = t0 + k * intervalMs;
    await sleep(Math.max(0, due - nowMs()), options.signal);
    if (options.signal?.aborted) {
      stoppedBy = 'abort';
      break;
    }
    if (method === 'fork' && (vsizeBytes(child!) === 0 || !isLive(child!))) {
      stoppedBy = 'child-exited';
      break;
    }
    const now: number[][] = parts.map(() => []);
    let readMs: number;
    let clearMs = 0;
    if (method === 'fork') {
      readMs = readAll((r, i, hi) => {
        const s = state[r]!;
        if (!(hi & PRESENT)) return;
        if (s[i]! & SHARED) {
          if (hi & EXCLUSIVE) {
            now[r]!.push(i);
            s[i] = s[i]! & ~SHARED;
          }
        } else if (!(s[i]! & SEEN) && hi & EXCLUSIVE) {
          now[r]!.push(i); // a page new since the fork
          s[i] = SEEN;
        }
      });
      // A child that released its memory during the read makes every page look exclusive:
      // that reading is not a write set.
      if (vsizeBytes(child!) === 0 || !isLive(child!)) {
        stoppedBy = 'child-exited';
        break;
      }
    } else {
      // The kernel marks a VMA created or expanded since the last clear soft-dirty as a whole
      // (VM_SOFTDIRTY), and pagemap then shows every page of it soft-dirty, written or not. Such
      // a VMA is seen by its bounds having changed (read after the bits: a VMA that grows
      // after that read did not colour it); its pages are kept (an over-count) and said.
      readMs = readAll((r, i, hi) => {
        if (hi & PRESENT && hi & SOFT_DIRTY) now[r]!.push(i);
      });
      const vmasNow = writableAnonVmas(pid) ?? [];
      const grown = parts.map((p) => {
        const was = vmaAt(vmasAtClear, p.start);
        const is = vmaAt(vmasNow, p.start);
        return is !== null && (was === null || was.start !== is.start || was.end !== is.end) ? is : null;
      });
      clearMs = clearSoftDirty(pid);
      vmasAtClear = vmasNow;
      parts.forEach((p, r) => {
        const v = grown[r];
        if (v) wholeVma.push({ interval: k, region: p.id, vma: `0x${v.start.toString(16)}-0x${v.end.toString(16)}`, pages: now[r]!.length });
      });
    }
    written.push(now);
    const pages = now.reduce((m, l) => m + l.length, 0);
    intervals.push({ tMs: nowMs() - t0, pages, readMs, clearMs });
    await options.onInterval?.(k, pages);
    if (!isLive(pid)) throw new CowlabError('ERR_PROCESS_EXITED', `pid ${pid} (${comm}) exited while it was recorded`);
  }
  const elapsedS = Math.max(1e-3, (nowMs() - t0) / 1000);
  const minorFaultsPerS = (minorFaults(pid) - faults0) / elapsedS;
  // Memory mapped since the start is not in the trace: say how much of it is written. In a
  // fork recording that is only known while the child lives (after, every page is exclusive).
  if (method === 'soft-dirty' || (child !== null && isLive(child) && vsizeBytes(child) > 0)) {
    const covered = parts.map((p) => [p.start, p.start + BigInt(p.pages) * BigInt(PAGE_BYTES)] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1));
    for (const v of writableAnonVmas(pid) ?? []) {
      // The parts of v no recorded region covers.
      let at = v.start;
      const gaps: [bigint, bigint][] = [];
      for (const [lo, hi] of covered) {
        if (hi <= at || lo >= v.end) continue;
        if (lo > at) gaps.push([at, lo]);
        at = hi > at ? hi : at;
      }
      if (at < v.end) gaps.push([at, v.end]);
      for (const [lo, hi] of gaps) {
        scanPagemap(pid, lo, Number((hi - lo) / BigInt(PAGE_BYTES)), (_i, hi2) => {
          if (hi2 & PRESENT && (method === 'soft-dirty' ? hi2 & SOFT_DIRTY : hi2 & EXCLUSIVE)) unrecordedBytes += PAGE_BYTES;
        });
      }
    }
    if (unrecordedBytes > 0) notes.push(`${(unrecordedBytes / 2 ** 20).toFixed(1)} MiB written in memory mapped after the start are not in the trace`);
  } else notes.push('memory mapped after the start is not in the trace; how much of it was written is not known (the child had exited: every page reads exclusive)');

  if (wholeVma.length > 0) {
    const pages = wholeVma.reduce((m, w) => m + w.pages, 0);
    notes.push(`${wholeVma.length} time${wholeVma.length === 1 ? '' : 's'} a recorded VMA grew or merged with a new mapping (${[...new Set(wholeVma.map((w) => w.vma))].slice(0, 3).join(', ')}): the kernel then marks the whole VMA soft-dirty (VM_SOFTDIRTY), so its ${pages} present pages of those intervals read written whether they were or not; the trace keeps them (an over-count of at most ${(pages * PAGE_BYTES / 2 ** 20).toFixed(1)} MiB)`);
  }

  // The trace.
  const regions: RegionSpec[] = parts.map((p) => ({ id: p.id, pages: p.pages, map: 'private', backing: 'anon', thp: false, advice: [], populate: 'none' }));
  const steps: Step[] = [];
  const resident = state.map((st) => {
    const out: number[] = [];
    for (let i = 0; i < st.length; i++) if (st[i]! & RESIDENT) out.push(i);
    return out;
  });
  let residentPages = 0;
  parts.forEach((p, r) => {
    const pages = resident[r]!;
    residentPages += pages.length;
    if (pages.length === 0) return;
    if (pages.length === p.pages) regions[r]!.populate = 'write';
    else for (const sel of selectors(pages)) steps.push({ op: 'write', proc: 'p0', region: p.id, pages: sel });
  });
  steps.push({ op: 'fork', proc: 'p0', child: 'c1' });
  const stepInterval: number[] = [];
  const distinct = parts.map(() => new Set<number>());
  let pageWrites = 0;
  written.forEach((w, k) => {
    parts.forEach((p, r) => {
      const pages = w[r]!;
      if (pages.length === 0) return;
      pages.sort((a, b) => a - b);
      pageWrites += pages.length;
      for (const i of pages) distinct[r]!.add(i);
      steps.push({ op: 'write', proc: 'p0', region: p.id, pages: { pages } });
      stepInterval.push(k);
    });
  });
  steps.push({ op: 'exit', proc: 'c1' });
  stepInterval.push(-1);
  const meta: RecordMeta = {
    version: 1,
    pid,
    comm,
    method,
    intervalMs,
    intervals: intervals.length,
    stepInterval,
    regionStart: Object.fromEntries(parts.map((p) => [p.id, `0x${p.start.toString(16)}`])),
  };
  const description = `The writes of pid ${pid} (${comm}) recorded by cowlab record (${method}) over ${intervals.length} intervals of ${intervalMs} ms: p0 writes the ${residentPages} pages resident at the start, forks c1, then writes per interval the pages written in it.\n${RECORD_META_MARKER}${JSON.stringify(meta)}`;
  const trace = parseTrace({ name: `record-${comm.replace(/[^a-z0-9_-]/gi, '_')}-${pid}`, description, regions, steps });

  const reads = intervals.map((i) => i.readMs).filter((x) => x > 0);
  const clears = intervals.map((i) => i.clearMs).filter((x) => x > 0);
  const costNote =
    method === 'soft-dirty'
      ? `each clear_refs write-protects every page: the process takes one extra minor fault per page per interval it writes (${pageWrites} over the recording, against ${Math.round(minorFaultsPerS * elapsedS)} minor faults in all); clears and reads hold its mmap lock for ${median(clears).toFixed(2)} + ${median(reads).toFixed(2)} ms per ${intervalMs} ms interval`
      : `no extra faults: the reads of its pagemap hold its mmap lock for reading ${median(reads).toFixed(2)} ms (median; max ${Math.max(0, ...reads).toFixed(2)} ms) per ${intervalMs} ms interval, which delays its mmap/munmap (not its page faults, which take per-VMA locks)`;
  return {
    pid,
    comm,
    method,
    child,
    intervalMs,
    trace,
    regions: parts.map((p, r) => ({ id: p.id, start: `0x${p.start.toString(16)}`, pages: p.pages, vma: `0x${p.vma.start.toString(16)}-0x${p.vma.end.toString(16)} ${p.vma.name || '(anonymous)'}`, resident: resident[r]!.length })),
    intervals,
    distinctPages: distinct.reduce((m, s) => m + s.size, 0),
    pageWrites,
    residentPages,
    unrecordedBytes,
    wholeVma,
    stoppedBy,
    cost: { readMsMedian: median(reads), readMsMax: Math.max(0, ...reads), clearMsMedian: median(clears), clearMsMax: Math.max(0, ...clears), minorFaultsPerS, note: costNote },
    notes,
  };
}

/** The metadata `cowlab record` put in a trace's description, or null for another trace. */
export function recordMeta(trace: Trace): RecordMeta | null {
  const line = trace.description?.split('\n').find((l) => l.startsWith(RECORD_META_MARKER));
  if (!line) return null;
  try {
    const m = JSON.parse(line.slice(RECORD_META_MARKER.length)) as RecordMeta;
    return m.version === 1 && Array.isArray(m.stepInterval) ? m : null;
  } catch {
    return null;
  }
}
