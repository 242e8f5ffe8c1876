/**
 * What cowlab reads of a process it did not start: its children, its start time, its
 * smaps_rollup (with Pss), its writable private anonymous VMAs. Plain /proc reads; no ptrace,
 * no change to the process. Readers return null when the process is gone.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

import { CowlabError } from '../errors.js';
import { sumSmapsFields } from '../memory/smaps.js';
import { readProcStat } from '../util/procStat.js';

/** USER_HZ: /proc/<pid>/stat counts times in these ticks; 100 on every Linux architecture cowlab runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;
export const PAGE_BYTES = 4096;

/** smaps_rollup of a whole process, bytes. */
export interface Rollup {
  rss: number;
  pss: number;
  privateDirty: number;
  sharedDirty: number;
  anonymous: number;
}

const ROLLUP_FIELDS: Record<string, keyof Rollup> = {
  Rss: 'rss',
  Pss: 'pss',
  Private_Dirty: 'privateDirty',
  Shared_Dirty: 'sharedDirty',
  Anonymous: 'anonymous',
};

/** Parses a smaps_rollup text (the kB lines). */
export function parseRollup(text: string): Rollup {
  return sumSmapsFields(text, ROLLUP_FIELDS, { rss: 0, pss: 0, privateDirty: 0, sharedDirty: 0, anonymous: 0 });
}

/** /proc/<pid>/smaps_rollup, or null when the process (or its address space) is gone. */
export function readRollup(pid: number): Rollup | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return null;
  }
  // A zombie's smaps_rollup is empty: no address space any more.
  return text.trim() === '' ? null : parseRollup(text);
}

/** True when the kernel lists children in /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN). */
export function hasChildrenFiles(pid: number): boolean {
  return existsSync(`/proc/${pid}/task/${pid}/children`);
}

/**
 * The children of `pid`: from /proc/<pid>/task/<tid>/children of each thread (a child belongs to
 * the thread that forked it), or, where the kernel has no such file, by scanning /proc/<n>/stat
 * for the parent pid. Empty when the process is gone.
 */
export function childrenOf(pid: number, useChildrenFiles = hasChildrenFiles(pid)): number[] {
  if (useChildrenFiles) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      return [];
    }
    const out: number[] = [];
    for (const tid of tids) {
      try {
        for (const w of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (w.trim() !== '') out.push(Number(w));
      } catch {
        // the thread ended meanwhile
      }
    }
    return out;
  }
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name));
    if (stat !== null && stat.ppid === pid) out.push(stat.pid);
  }
  return out;
}

/** Field 22 of /proc/<pid>/stat (starttime, clock ticks since boot) in ms since boot; null when gone. */
export function startTimeMs(pid: number): number | null {
  const st = readProcStat(pid);
  return st === null ? null : (st.startTicks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Field 23 of /proc/<pid>/stat: the size of its address space; 0 once the process released it (exiting). */
export function vsizeBytes(pid: number): number {
  return readProcStat(pid)?.vsizeBytes ?? 0;
}

/** Now, in ms since boot (CLOCK_MONOTONIC, which differs from boot time only by time suspended). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A process that is alive and has an address space: neither gone, nor a zombie. */
export function isLive(pid: number): boolean {
  const st = readProcStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

/** The process to watch or record must exist and have an address space; `field` names the input. */
export function checkTarget(pid: number, field = '--pid'): { comm: string } {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new CowlabError('ERR_INVALID_OPTION', `${field}: must be a positive integer pid, got ${String(pid)}`, { field });
  }
  const st = readProcStat(pid);
  if (st === null) throw new CowlabError('ERR_NO_SUCH_PROCESS', `${field}: no process with pid ${pid}`, { field });
  if (st.kernelThread) throw new CowlabError('ERR_INVALID_OPTION', `${field}: pid ${pid} (${st.comm}) is a kernel thread: it has no user memory to watch`, { field });
  if (st.state === 'Z' || st.state === 'X') throw new CowlabError('ERR_NO_SUCH_PROCESS', `${field}: pid ${pid} (${st.comm}) has exited (a zombie): its memory is gone`, { field });
  if (pid === process.pid) throw new CowlabError('ERR_INVALID_OPTION', `${field}: pid ${pid} is cowlab itself`, { field });
  try {
    readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CowlabError('ERR_INVALID_OPTION', `${field}: cannot read the memory of pid ${pid} (${st.comm}): ${code ?? String(err)} (run as the process's user or as root)`, { field });
  }
  return { comm: st.comm };
}

/** One line of /proc/<pid>/maps. */
export interface Vma {
  start: bigint;
  end: bigint;
  pages: number;
  perms: string;
  /** The path, [heap], [stack], [anon:name] or '' for anonymous memory. */
  name: string;
}

/** Parses /proc/<pid>/maps. */
export function parseMaps(text: string): Vma[] {
  const out: Vma[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ [0-9a-f]+:[0-9a-f]+ (\d+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const start = BigInt(`0x${m[1]}`);
    const end = BigInt(`0x${m[2]}`);
    out.push({ start, end, pages: Number((end - start) / BigInt(PAGE_BYTES)), perms: m[3]!, name: m[4] === '0' ? m[5]!.trim() : m[5]!.trim() || `inode ${m[4]}` });
  }
  return out;
}

/**
 * The VMAs fork shares copy-on-write and a program writes: private, writable, anonymous
 * (no file: the heap, anonymous mmaps, the stack, named anonymous memory). Null when gone.
 */
export function writableAnonVmas(pid: number): Vma[] | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch {
    return null;
  }
  return parseMaps(text).filter((v) => v.perms.startsWith('rw') && v.perms[3] === 'p' && (v.name === '' || v.name.startsWith('[heap]') || v.name.startsWith('[stack') || v.name.startsWith('[anon:')));
}

/** Waits `ms` (a timer: the loop stays free). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', done);
      clearTimeout(t);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
