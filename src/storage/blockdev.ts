/**
 * A block device's own I/O counters (/sys/block/<dev>/stat, Documentation/block/stat.rst):
 * sectors of 512 bytes read and written, whatever the file system above did (data, metadata,
 * journal). Read them around an operation to measure its write amplification.
 */
import { readFileSync } from 'node:fs';

import { CowlabError } from '../errors.js';

/** Bytes per sector in /sys/block/<dev>/stat, whatever the device's logical block size. */
export const SECTOR_BYTES = 512;

export interface BlockCounters {
  readIos: number;
  readSectors: number;
  writeIos: number;
  writtenSectors: number;
  discardSectors: number;
  flushIos: number;
}

/** The counters of device `name` (e.g. "loop3"). */
export function readBlockCounters(name: string): BlockCounters {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new CowlabError('ERR_INVALID_OPTION', `device: not a block device name: '${name}'`, { field: 'device' });
  const path = `/sys/block/${name}/stat`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CowlabError('ERR_NOT_MEASURABLE', `${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): the device's I/O counters are not available`);
  }
  const f = text.trim().split(/\s+/).map(Number);
  // Fields 1-11 since 2.6, 12-15 (discard) since 4.18, 16-17 (flush) since 5.5.
  return {
    readIos: f[0] ?? 0,
    readSectors: f[2] ?? 0,
    writeIos: f[4] ?? 0,
    writtenSectors: f[6] ?? 0,
    discardSectors: f[13] ?? 0,
    flushIos: f[15] ?? 0,
  };
}

/** b - a, field by field. */
export function counterDelta(a: BlockCounters, b: BlockCounters): BlockCounters {
  return {
    readIos: b.readIos - a.readIos,
    readSectors: b.readSectors - a.readSectors,
    writeIos: b.writeIos - a.writeIos,
    writtenSectors: b.writtenSectors - a.writtenSectors,
    discardSectors: b.discardSectors - a.discardSectors,
    flushIos: b.flushIos - a.flushIos,
  };
}

/** a + b, field by field (the I/O of several devices together). */
export function counterSum(a: BlockCounters, b: BlockCounters): BlockCounters {
  return {
    readIos: a.readIos + b.readIos,
    readSectors: a.readSectors + b.readSectors,
    writeIos: a.writeIos + b.writeIos,
    writtenSectors: a.writtenSectors + b.writtenSectors,
    discardSectors: a.discardSectors + b.discardSectors,
    flushIos: a.flushIos + b.flushIos,
  };
}
