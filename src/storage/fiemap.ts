/**
 * A file's extent map (ioctl FS_IOC_FIEMAP): which byte ranges of the file live where on the
 * device, and whether the file system says each is shared with another file (a reflink clone
 * or a snapshot). The storage counterpart of pagemap: native/fiemap.cc reads the raw extents
 * in one batch call; this module decodes the flags and words the errors.
 */
import { CowlabError } from '../errors.js';
import { native } from '../native.js';

/** FIEMAP_EXTENT_* flags (include/uapi/linux/fiemap.h), decoded. */
export interface ExtentFlags {
  /** The last extent of the file. */
  last: boolean;
  /** Location not known (also set with delalloc). */
  unknown: boolean;
  /** Delayed allocation: data not yet on the device (use `sync`). */
  delalloc: boolean;
  /** Compressed or encrypted: the physical length differs from the logical one. */
  encoded: boolean;
  notAligned: boolean;
  inline: boolean;
  /** Allocated but never written (reads as zeros). */
  unwritten: boolean;
  /** Merged from several file system blocks the file system does not track apart. */
  merged: boolean;
  /** The blocks are shared with another file or a snapshot (a reflink or a snapshot). */
  shared: boolean;
}

export interface Extent {
  /** Byte offset in the file. */
  logical: number;
  /** Byte offset on the device (0 when unknown). */
  physical: number;
  /** Bytes. */
  length: number;
  /** The raw fe_flags word. */
  rawFlags: number;
  flags: ExtentFlags;
}

export interface FiemapOptions {
  /** First byte of the range (default 0). */
  start?: number;
  /** Bytes of the range (default: to the end of the file). */
  length?: number;
  /** Write dirty pages back first (FIEMAP_FLAG_SYNC), so no extent is delalloc. Default true. */
  sync?: boolean;
  /** Extents per ioctl buffer (default 4096; the reader continues when it is filled). */
  capacity?: number;
}

/** Decodes a raw fe_flags word. */
export function decodeExtentFlags(raw: number): ExtentFlags {
  const c = native().fiemapConstants;
  const has = (bit: number) => (raw & bit) !== 0;
  return {
    last: has(c.FIEMAP_EXTENT_LAST),
    unknown: has(c.FIEMAP_EXTENT_UNKNOWN),
    delalloc: has(c.FIEMAP_EXTENT_DELALLOC),
    encoded: has(c.FIEMAP_EXTENT_ENCODED),
    notAligned: has(c.FIEMAP_EXTENT_NOT_ALIGNED),
    inline: has(c.FIEMAP_EXTENT_DATA_INLINE),
    unwritten: has(c.FIEMAP_EXTENT_UNWRITTEN),
    merged: has(c.FIEMAP_EXTENT_MERGED),
    shared: has(c.FIEMAP_EXTENT_SHARED),
  };
}

function checkByteCount(field: string, v: number | undefined, positive = false): void {
  if (v === undefined) return;
  if (!Number.isSafeInteger(v) || v < 0 || (positive && v === 0)) {
    throw new CowlabError('ERR_INVALID_OPTION', `${field}: must be a ${positive ? 'positive' : 'non-negative'} integer, got ${v}`, { field });
  }
}

/**
 * The extents of `path` (a regular file), in file order. One FS_IOC_FIEMAP call per buffer of
 * `capacity` extents. Errors: ERR_NOT_MEASURABLE when the file system has no FIEMAP
 * (EOPNOTSUPP), ERR_SYSCALL otherwise (with errno and what was being read).
 */
export function readFiemap(path: string, opts: FiemapOptions = {}): Extent[] {
  checkByteCount('start', opts.start);
  checkByteCount('length', opts.length);
  checkByteCount('capacity', opts.capacity, true);
  const n = native();
  let buf: ArrayBuffer;
  try {
    buf = n.readFiemap(path, opts.start ?? 0, opts.length ?? 0, opts.capacity ?? 4096, opts.sync === false ? 0 : n.fiemapConstants.FIEMAP_FLAG_SYNC);
  } catch (err) {
    if (err instanceof CowlabError && (err.errno === 'EOPNOTSUPP' || err.errno === 'ENOTTY')) {
      throw new CowlabError('ERR_NOT_MEASURABLE', `${path}: its file system does not support FIEMAP (${err.errno}): extent sharing cannot be read`, { cause: err });
    }
    throw err;
  }
  const words = new BigUint64Array(buf);
  const out: Extent[] = [];
  for (let i = 0; i + 3 < words.length; i += 4) {
    const rawFlags = Number(words[i + 3]!);
    out.push({ logical: Number(words[i]!), physical: Number(words[i + 1]!), length: Number(words[i + 2]!), rawFlags, flags: decodeExtentFlags(rawFlags) });
  }
  return out;
}

/** Bytes of a file's range [start, end) by sharing: shared with another file, private, and
 *  holes (no extent). Extents are clipped to the range. */
export interface SharingSummary {
  sharedBytes: number;
  privateBytes: number;
  holeBytes: number;
  extents: number;
  sharedExtents: number;
}

export function summarizeSharing(extents: readonly Extent[], start: number, end: number): SharingSummary {
  let shared = 0;
  let priv = 0;
  let sharedExtents = 0;
  let n = 0;
  for (const e of extents) {
    const a = Math.max(start, e.logical);
    const b = Math.min(end, e.logical + e.length);
    if (b <= a) continue;
    n++;
    if (e.flags.shared) {
      shared += b - a;
      sharedExtents++;
    } else priv += b - a;
  }
  return { sharedBytes: shared, privateBytes: priv, holeBytes: end - start - shared - priv, extents: n, sharedExtents };
}

/**
 * Per block of `blockSize` bytes of [0, bytes): 1 when every byte of it is in a shared extent,
 * 0 when every byte is in a private one, 2 when it is mixed or a hole. For checking which
 * blocks a write unshared, block by block.
 */
export function blockSharing(extents: readonly Extent[], bytes: number, blockSize: number): Uint8Array {
  const blocks = Math.ceil(bytes / blockSize);
  const shared = new Float64Array(blocks);
  const priv = new Float64Array(blocks);
  for (const e of extents) {
    const from = Math.max(0, e.logical);
    const to = Math.min(bytes, e.logical + e.length);
    for (let b = Math.floor(from / blockSize); b * blockSize < to; b++) {
      const a = Math.max(from, b * blockSize);
      const z = Math.min(to, (b + 1) * blockSize);
      if (e.flags.shared) shared[b]! += z - a;
      else priv[b]! += z - a;
    }
  }
  const out = new Uint8Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const size = Math.min(blockSize, bytes - b * blockSize);
    out[b] = shared[b] === size ? 1 : priv[b] === size ? 0 : 2;
  }
  return out;
}
