/**
 * Files with checkable content, and the timed operations the storage experiments measure on
 * them: writing, a plain (byte-by-byte) copy, a reflink clone (FICLONE), overwriting blocks,
 * each made durable with a real fsync. Every block's bytes say which block and which
 * generation of writes they are, so a read-back proves what a snapshot or a live file holds.
 */
import { closeSync, constants, copyFileSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';

import { CowlabError } from '../errors.js';

/** The block size the experiments write in (the file systems' block size here). */
export const BLOCK_BYTES = 4096;
const MAGIC = 0xc0ffee42;
const CHUNK_BLOCKS = 256; // 1 MiB per write(2)

/** Fills `buf` (a whole number of blocks) with the content of blocks `first`.. of generation `gen`. */
export function fillBlocks(buf: Buffer, first: number, gen: number): void {
  const fill = (gen * 37 + 11) & 0xff;
  buf.fill(fill);
  for (let off = 0, b = first; off + BLOCK_BYTES <= buf.length; off += BLOCK_BYTES, b++) {
    buf.writeUInt32LE(MAGIC, off);
    buf.writeUInt32LE(gen >>> 0, off + 4);
    buf.writeDoubleLE(b, off + 8);
  }
}

function nowNs(): bigint {
  return process.hrtime.bigint();
}

function elapsed(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0);
}

/** Creates `path` with `bytes` (a multiple of BLOCK_BYTES) of generation `gen`, fsync'd
 *  (`existing`: writes into a file that is already there, e.g. a loop device's image). */
export function writePatternFile(path: string, bytes: number, gen: number, existing = false): { ns: number } {
  if (bytes % BLOCK_BYTES !== 0 || bytes <= 0) throw new CowlabError('ERR_INVALID_ARGUMENT', `writePatternFile: ${bytes} is not a positive multiple of ${BLOCK_BYTES}`);
  const buf = Buffer.allocUnsafe(CHUNK_BLOCKS * BLOCK_BYTES);
  const fd = openSync(path, existing ? 'r+' : 'wx', 0o600);
  try {
    const t0 = nowNs();
    for (let off = 0; off < bytes; off += buf.length) {
      const n = Math.min(buf.length, bytes - off);
      fillBlocks(buf, off / BLOCK_BYTES, gen);
      writeSync(fd, buf, 0, n, off);
    }
    fsyncSync(fd);
    return { ns: elapsed(t0) };
  } finally {
    closeSync(fd);
  }
}

/** A plain copy: read(2) and write(2) of every byte (never copy_file_range, which may
 *  reflink), then fsync. Timed whole. */
export function plainCopy(src: string, dst: string): { ns: number } {
  const buf = Buffer.allocUnsafe(CHUNK_BLOCKS * BLOCK_BYTES);
  const i = openSync(src, 'r');
  try {
    const o = openSync(dst, 'wx', 0o600);
    try {
      const t0 = nowNs();
      for (let off = 0; ; ) {
        const n = readSync(i, buf, 0, buf.length, off);
        if (n === 0) break;
        writeSync(o, buf, 0, n, off);
        off += n;
      }
      fsyncSync(o);
      return { ns: elapsed(t0) };
    } finally {
      closeSync(o);
    }
  } finally {
    closeSync(i);
  }
}

/**
 * A reflink clone: ioctl(FICLONE) (libuv's copyfile with COPYFILE_FICLONE_FORCE, which never
 * falls back to copying), then fsync of the clone. ERR_NOT_MEASURABLE when the file system
 * cannot clone (EOPNOTSUPP, EXDEV, EINVAL).
 */
export function reflinkClone(src: string, dst: string): { cloneNs: number; fsyncNs: number } {
  const t0 = nowNs();
  try {
    copyFileSync(src, dst, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (['EOPNOTSUPP', 'ENOTSUP', 'ENOSYS', 'EXDEV', 'EINVAL', 'ENOTTY'].includes(code)) {
      throw new CowlabError('ERR_NOT_MEASURABLE', `reflink (FICLONE) of ${src} is not supported here (${code})`, { cause: err });
    }
    throw new CowlabError('ERR_SYSCALL', `reflink (FICLONE) of ${src} to ${dst} failed: ${code}`, { errno: code, syscall: 'ioctl', cause: err });
  }
  const cloneNs = elapsed(t0);
  const fd = openSync(dst, 'r+');
  try {
    const t1 = nowNs();
    fsyncSync(fd);
    return { cloneNs, fsyncNs: elapsed(t1) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Overwrites the listed blocks (pwrite of one block each, in the order given) with
 * generation `gen`, then fsyncs. Returns the writes' time and the fsync's apart.
 */
export function overwriteBlocks(path: string, blocks: readonly number[], gen: number): { writeNs: number; fsyncNs: number } {
  const buf = Buffer.allocUnsafe(BLOCK_BYTES);
  const fd = openSync(path, 'r+');
  try {
    const t0 = nowNs();
    for (const b of blocks) {
      fillBlocks(buf, b, gen);
      writeSync(fd, buf, 0, BLOCK_BYTES, b * BLOCK_BYTES);
    }
    const writeNs = elapsed(t0);
    const t1 = nowNs();
    fsyncSync(fd);
    return { writeNs, fsyncNs: elapsed(t1) };
  } finally {
    closeSync(fd);
  }
}

/** What a read-back found: blocks whose bytes are not those of the expected generation. */
export interface ContentCheck {
  blocks: number;
  mismatched: number;
  /** The first mismatching block and the generation its header claims (-1: not a block of ours). */
  first: { block: number; foundGen: number } | null;
}

/** Reads `path` back and compares every byte of every block with generation `genOf(block)`;
 *  `size` bytes of it (default: the file's size; a block device has to say). */
export function checkContent(path: string, genOf: (block: number) => number, size?: number): ContentCheck {
  const buf = Buffer.allocUnsafe(CHUNK_BLOCKS * BLOCK_BYTES);
  const want = Buffer.allocUnsafe(BLOCK_BYTES);
  const fd = openSync(path, 'r');
  try {
    const bytes = size ?? fstatSync(fd).size;
    const blocks = Math.ceil(bytes / BLOCK_BYTES);
    let mismatched = 0;
    let first: ContentCheck['first'] = null;
    for (let off = 0; off < bytes; off += buf.length) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, bytes - off), off);
      for (let at = 0; at < n; at += BLOCK_BYTES) {
        const b = (off + at) / BLOCK_BYTES;
        fillBlocks(want, b, genOf(b));
        const len = Math.min(BLOCK_BYTES, n - at);
        if (buf.compare(want, 0, len, at, at + len) !== 0) {
          mismatched++;
          if (first === null) first = { block: b, foundGen: buf.readUInt32LE(at) === MAGIC ? buf.readUInt32LE(at + 4) : -1 };
        }
      }
    }
    return { blocks, mismatched, first };
  } finally {
    closeSync(fd);
  }
}

/** The byte at `offset` of `path`, and the file's size (for overlay's one-byte writes). */
export function readByte(path: string, offset: number): { byte: number; size: number } {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    return { byte: b[0]!, size: fstatSync(fd).size };
  } finally {
    closeSync(fd);
  }
}

/** Writes one byte at `offset` of an existing file and fsyncs: open + write + fsync timed whole
 *  (on overlayfs, the open for writing is what copies the file up). */
export function writeOneByte(path: string, offset: number, value: number): { ns: number } {
  const t0 = nowNs();
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, Buffer.from([value & 0xff]), 0, 1, offset);
    fsyncSync(fd);
    return { ns: elapsed(t0) };
  } finally {
    closeSync(fd);
  }
}
