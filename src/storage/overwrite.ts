/**
 * Overwriting blocks of a file after a reflink clone: the storage form of a write fault after
 * fork. One measurement writes a file, clones it (FICLONE), overwrites a set of its blocks
 * (the first write after the clone), then the same blocks again (the second write), and, as
 * the reference, the same blocks of a file that was never cloned (a plain overwrite, twice). Each
 * write is made durable (fsync) and accounted on the device (syncfs, /sys/block/loopN/stat);
 * FIEMAP after each says which blocks are shared and where they live; every block of the
 * live file and the clone is read back and compared.
 */
import { sample } from '../util/prng.js';
import { blockSharing, readFiemap, type Extent } from './fiemap.js';
import { BLOCK_BYTES, checkContent, overwriteBlocks, reflinkClone, writePatternFile } from './files.js';
import type { Scratch, ScratchFs } from './scratch.js';
import { durable, removeFiles, type DurableIo } from './session.js';

/** One overwrite of the listed blocks, as the device and FIEMAP saw it. */
export interface OverwriteObservation {
  /** pwrite of every block, then fsync, ns. */
  writeNs: number;
  fsyncNs: number;
  io: DurableIo;
  /** After the write: written blocks FIEMAP does not show private (should be 0). */
  writtenStillShared: number;
  /** ... and blocks not written that FIEMAP does not show shared (should be 0 after a clone). */
  othersNotShared: number;
  /** Written blocks whose physical address changed with this write (redirected), of those written. */
  relocated: number;
  /** Blocks of the live file that do not read back as expected. */
  liveMismatches: number;
  /** Blocks of the clone that do not read back as the original. */
  cloneMismatches: number;
}

export interface OverwriteMeasurement {
  fileBytes: number;
  blocks: number;
  written: number;
  /** Overwrite of a file that was never cloned (nothing to unshare). */
  plain: OverwriteObservation;
  /** The same blocks of that file overwritten again: what the second write after a clone
   *  compares with (on Btrfs it frees the first write's extents, as the second write does). */
  plainSecond: OverwriteObservation;
  /** First overwrite after the clone. */
  first: OverwriteObservation;
  /** Second overwrite of the same blocks. */
  second: OverwriteObservation;
  /** Clone bytes FIEMAP shows shared after the first write, over the file (btrfs keeps whole
   *  extents referenced: "bookends"). */
  cloneSharedAfterFirst: number;
}

/** Physical address of each block of [0, bytes) (-1 in a hole). */
function physicalOfBlocks(extents: readonly Extent[], blocks: number): Float64Array {
  const out = new Float64Array(blocks).fill(-1);
  for (const e of extents) {
    for (let off = 0; off < e.length; off += BLOCK_BYTES) {
      const b = (e.logical + off) / BLOCK_BYTES;
      if (Number.isInteger(b) && b < blocks) out[b] = e.physical + off;
    }
  }
  return out;
}

function observe(
  s: Scratch, fs: ScratchFs, live: string, clone: string | null, written: Set<number>, blocks: number, gen: number,
  before: Float64Array, op: () => { writeNs: number; fsyncNs: number },
): { obs: OverwriteObservation; physical: Float64Array } {
  const { result, io } = durable(s, fs, op);
  const extents = readFiemap(live);
  const sharing = blockSharing(extents, blocks * BLOCK_BYTES, BLOCK_BYTES);
  const physical = physicalOfBlocks(extents, blocks);
  let writtenStillShared = 0;
  let othersNotShared = 0;
  let relocated = 0;
  for (let b = 0; b < blocks; b++) {
    if (written.has(b)) {
      if (sharing[b] !== 0) writtenStillShared++;
      if (physical[b] !== before[b]) relocated++;
    } else if (clone !== null && sharing[b] !== 1) othersNotShared++;
  }
  const liveCheck = checkContent(live, (b) => (written.has(b) ? gen : 1));
  const cloneCheck = clone === null ? { mismatched: 0 } : checkContent(clone, () => 1);
  return {
    obs: { ...result, io, writtenStillShared, othersNotShared, relocated, liveMismatches: liveCheck.mismatched, cloneMismatches: cloneCheck.mismatched },
    physical,
  };
}

/**
 * Measures `count` random distinct blocks (seeded) of a `fileBytes` file on `fs`: plain
 * overwrite, first overwrite after a clone, second overwrite. Files are deleted afterwards.
 */
export function measureOverwrite(s: Scratch, fs: ScratchFs, fileBytes: number, count: number, seed: number): OverwriteMeasurement {
  const blocks = fileBytes / BLOCK_BYTES;
  const order = [...sample(blocks, count, seed)];
  const written = new Set(order);
  const dir = fs.mountpoint;
  const plainPath = `${dir}/plain-${seed}`;
  const live = `${dir}/live-${seed}`;
  const clone = `${dir}/clone-${seed}`;
  try {
    writePatternFile(plainPath, fileBytes, 1);
    const plainBefore = physicalOfBlocks(readFiemap(plainPath), blocks);
    const plain = observe(s, fs, plainPath, null, written, blocks, 2, plainBefore, () => overwriteBlocks(plainPath, order, 2));
    const plainSecond = observe(s, fs, plainPath, null, written, blocks, 3, plain.physical, () => overwriteBlocks(plainPath, order, 3)).obs;
    removeFiles(plainPath);

    writePatternFile(live, fileBytes, 1);
    reflinkClone(live, clone);
    const cloned = physicalOfBlocks(readFiemap(live), blocks);
    const first = observe(s, fs, live, clone, written, blocks, 2, cloned, () => overwriteBlocks(live, order, 2));
    const cloneShared = readFiemap(clone).filter((e) => e.flags.shared).reduce((a, e) => a + Math.min(e.length, fileBytes - e.logical), 0);
    const second = observe(s, fs, live, clone, written, blocks, 3, first.physical, () => overwriteBlocks(live, order, 3)).obs;
    return { fileBytes, blocks, written: order.length, plain: plain.obs, plainSecond, first: first.obs, second, cloneSharedAfterFirst: cloneShared / fileBytes };
  } finally {
    removeFiles(plainPath, live, clone);
  }
}
