/**
 * Eager copy timing: what a fork without copy-on-write would pay up front, one memcpy of the
 * whole region (native/eagercopy.cc). The destination is mapped by the probe for the call and
 * unmapped after it; the copy alone is timed, with clock_gettime around the memcpy.
 *
 *   const m = Mapping.create({ pages: 16384, thp: 'never' });
 *   m.touch('write');
 *   const { ns } = timeEagerCopy({ source: m, destination: 'fresh' });
 */
import { readFileSync } from 'node:fs';

import { CowlabError, invalidOption } from '../errors.js';
import { describeLimit, memoryLimit } from '../memory/budget.js';
import { Mapping } from '../memory/mapping.js';
import { native } from '../native.js';
import { choiceOption } from '../options.js';
import { formatBytes } from '../report/format.js';

/**
 * 'fresh': the destination is newly mapped and untouched, so the time includes the first-touch
 * fault that allocates and zeroes each destination page (what an eager fork must pay);
 * 'populated': the destination is written beforehand, so only the copy is timed.
 */
export const COPY_DESTINATIONS = ['fresh', 'populated'] as const;
export type CopyDestination = (typeof COPY_DESTINATIONS)[number];

export interface EagerCopyOptions {
  /** The memory copied, all of it: a live Mapping (not unmapped, not in use by a measurement). */
  source: Mapping;
  destination: CopyDestination;
}

export interface EagerCopyTiming {
  destination: CopyDestination;
  bytes: number;
  /** ns of the memcpy (destination faults included for 'fresh'). */
  ns: number;
}

/** Parts of [start, end) not covered by a readable mapping of this process, from
 *  /proc/self/maps; empty when every byte can be read. */
function unreadable(start: bigint, end: bigint): string[] {
  const gaps: string[] = [];
  let at = start;
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/.exec(line);
    if (!m) continue;
    const lo = BigInt(`0x${m[1]}`);
    const hi = BigInt(`0x${m[2]}`);
    if (hi <= at || lo >= end) continue;
    if (lo > at) gaps.push(`0x${at.toString(16)}-0x${lo.toString(16)} unmapped`);
    if (!m[3]!.startsWith('r')) gaps.push(`0x${lo.toString(16)}-0x${hi.toString(16)} is ${m[3]}`);
    at = hi;
    if (at >= end) break;
  }
  if (at < end) gaps.push(`0x${at.toString(16)}-0x${end.toString(16)} unmapped`);
  return gaps;
}

/** The destination is as large as the source and exists next to it for the call. */
function checkDestinationFits(bytes: number): void {
  const limit = memoryLimit();
  if (bytes <= limit.limitBytes) return;
  throw new CowlabError('ERR_TOO_LARGE', `source: its copy (${formatBytes(bytes)}) would take ${describeLimit(limit)}`, { field: 'source' });
}

/**
 * Copies every byte of `source` into a destination of the same size that the probe maps
 * (4 KiB pages, MADV_NOHUGEPAGE, like the regions cowlab measures) and unmaps again, and
 * returns how long the memcpy took. Synchronous: one memcpy on this thread. Checked first:
 * ERR_INVALID_OPTION for a source that is not a Mapping or has a page that cannot be read
 * (the copy would crash the process), ERR_RELEASED / ERR_BUSY for an unmapped or busy one,
 * ERR_TOO_LARGE when the destination would exceed half of MemAvailable.
 */
export function timeEagerCopy(options: EagerCopyOptions): EagerCopyTiming {
  const { source } = options;
  if (!(source instanceof Mapping)) throw invalidOption('source', 'must be a Mapping (Mapping.create)');
  const destination = choiceOption('destination', options.destination, COPY_DESTINATIONS);
  const release = source.acquire('timeEagerCopy');
  try {
    const gaps = unreadable(source.address, source.address + BigInt(source.bytes));
    if (gaps.length > 0) throw invalidOption('source', `must be readable throughout: ${gaps.join(', ')}`);
    checkDestinationFits(source.bytes);
    const { ns } = native().copyMemory({ source: source.address, bytes: source.bytes, fresh: destination === 'fresh' });
    return { destination, bytes: source.bytes, ns };
  } finally {
    release();
  }
}
