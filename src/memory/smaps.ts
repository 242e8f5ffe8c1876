/**
 * /proc/<pid>/smaps: how much of a range is resident, dirty, shared, or backed by huge pages.
 * Private_Dirty is the figure COW literature quotes: memory a process has written and owns.
 */
import { readFileSync } from 'node:fs';

export interface SmapsTotals {
  rssBytes: number;
  privateDirtyBytes: number;
  privateCleanBytes: number;
  sharedDirtyBytes: number;
  sharedCleanBytes: number;
  anonymousBytes: number;
  anonHugePagesBytes: number;
  /** Mappings (VMAs) overlapping the range: per-page remaps split them. */
  vmas: number;
}

const FIELDS: Record<string, Exclude<keyof SmapsTotals, 'vmas'>> = {
  Rss: 'rssBytes',
  Private_Dirty: 'privateDirtyBytes',
  Private_Clean: 'privateCleanBytes',
  Shared_Dirty: 'sharedDirtyBytes',
  Shared_Clean: 'sharedCleanBytes',
  Anonymous: 'anonymousBytes',
  AnonHugePages: 'anonHugePagesBytes',
};

function empty(): SmapsTotals {
  return {
    rssBytes: 0, privateDirtyBytes: 0, privateCleanBytes: 0, sharedDirtyBytes: 0,
    sharedCleanBytes: 0, anonymousBytes: 0, anonHugePagesBytes: 0, vmas: 0,
  };
}

/**
 * Sums smaps fields over the VMAs of `pid` that overlap [start, end). A VMA that only
 * partly overlaps counts whole (smaps has no finer grain); cowlab maps its regions alone.
 */
export function smapsFor(pid: number | 'self', start: bigint, end: bigint): SmapsTotals {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out = empty();
  let inRange = false;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (head) {
      const lo = BigInt(`0x${head[1]}`);
      const hi = BigInt(`0x${head[2]}`);
      inRange = lo < end && hi > start;
      if (inRange) out.vmas++;
      continue;
    }
    if (!inRange) continue;
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    const key = m ? FIELDS[m[1]!] : undefined;
    if (key) out[key] += Number(m![2]) * 1024;
  }
  return out;
}

/**
 * Sums the "Name:   N kB" lines of an smaps or smaps_rollup text into `out`, in bytes, for the
 * names `fields` maps to a key of `out`.
 */
export function sumSmapsFields<K extends string>(text: string, fields: Readonly<Record<string, K>>, out: Record<K, number>): Record<K, number> {
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    const key = m ? fields[m[1]!] : undefined;
    if (key !== undefined) out[key] += Number(m![2]) * 1024;
  }
  return out;
}

/** /proc/<pid>/smaps_rollup: the same totals for the whole process. */
export function smapsRollup(pid: number | 'self'): SmapsTotals {
  const out = empty();
  sumSmapsFields(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), FIELDS, out);
  return out;
}

/**
 * Bytes a fork of `pid` adds to the commit charge (Committed_AS): dup_mmap charges every VMA
 * flagged VM_ACCOUNT ("ac" in smaps VmFlags: private writable, not MAP_NORESERVE) except those
 * not copied at all (VM_DONTCOPY, "dc"). Read just before the fork, it is the charge the
 * kernel should add, Node's own heap included; that part differs from run to run.
 */
export function forkChargeBytes(pid: number | 'self'): number {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  let total = 0;
  let size = 0;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (head) {
      size = Number(BigInt(`0x${head[2]}`) - BigInt(`0x${head[1]}`));
      continue;
    }
    if (!line.startsWith('VmFlags:')) continue;
    const flags = line.slice('VmFlags:'.length).trim().split(/\s+/);
    if (flags.includes('ac') && !flags.includes('dc')) total += size;
  }
  return total;
}
