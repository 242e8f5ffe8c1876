/**
 * Device-mapper snapshots (dm-snapshot, classic LVM snapshots): the copy-on-first-write
 * contrast to the redirect-on-write file systems. Set up as LVM does, on scratch loop devices:
 *
 *   origin image -> /dev/loopA -> <name>-origin  (snapshot-origin target: what is written to)
 *   COW image    -> /dev/loopB -> <name>-snap    (snapshot target over loopA + loopB, P 8:
 *                                                 a persistent exception store, 4 KiB chunks)
 *
 * A first write of a chunk through the origin makes dm-snapshot read the old chunk from loopA,
 * write it to loopB (with the exception's metadata), then write the new data in place on loopA.
 * The tables are named after the scratch directory (Scratch.dmName), so teardown (and the sweep
 * of a dead run) removes them before it detaches the loop devices.
 */
import { CowlabError } from '../errors.js';
import { findTool } from '../util/tools.js';
import { sample } from '../util/prng.js';
import { readSmallFile } from '../util/sysfs.js';
import { BLOCK_BYTES, checkContent, overwriteBlocks, writePatternFile } from './files.js';
import type { OverwriteMeasurement, OverwriteObservation } from './overwrite.js';
import type { Scratch, ScratchLoop } from './scratch.js';
import { accounted } from './session.js';

const SECTOR = 512;
/** Chunk size of the exception store, sectors: one 4 KiB block. */
const CHUNK_SECTORS = BLOCK_BYTES / SECTOR;

/** Why device-mapper snapshots cannot be made here (null: they can). */
export function deviceMapperMissing(searchPath?: string): string | null {
  // /proc/misc, not /dev/mapper/control: dmsetup makes that node itself wherever it runs.
  const misc = readSmallFile('/proc/misc') ?? '';
  if (!/\bdevice-mapper\b/.test(misc)) {
    return 'this kernel has no device-mapper (no device-mapper in /proc/misc; dm-mod is neither built in nor loaded)';
  }
  if (findTool('dmsetup', searchPath) === null) return 'dmsetup is not installed: install it with `apt-get install dmsetup`';
  return null;
}

/** An origin and its snapshot, each a device-mapper table over scratch loop devices. */
export interface DmSnapshotPair {
  origin: ScratchLoop;
  cow: ScratchLoop;
  /** /dev/mapper/<name>-origin: writes here are copied on first write. */
  originDevice: string;
  /** /dev/mapper/<name>-snap: the snapshot, read-only by use. */
  snapshotDevice: string;
  originTable: string;
  snapshotTable: string;
  bytes: number;
}

/** The exception store's use: `dmsetup status` "<allocated>/<total> <metadata>" (sectors). */
export interface SnapshotStatus {
  allocatedSectors: number;
  totalSectors: number;
  metadataSectors: number;
}

export function parseSnapshotStatus(line: string): SnapshotStatus {
  const m = /\bsnapshot\s+(\d+)\/(\d+)\s+(\d+)/.exec(line);
  if (!m) throw new CowlabError('ERR_VERIFY', `dmsetup status of a snapshot printed '${line.trim()}', not "<allocated>/<total> <metadata>" (an invalid or full snapshot?)`);
  return { allocatedSectors: Number(m[1]), totalSectors: Number(m[2]), metadataSectors: Number(m[3]) };
}

/** Chunks copied into the snapshot so far (one per block first written through the origin). */
export function exceptions(st: SnapshotStatus): number {
  return (st.allocatedSectors - st.metadataSectors) / CHUNK_SECTORS;
}

/**
 * An origin of `bytes` (its content written by `fill` into the image first) and a snapshot of
 * it, with a COW store big enough for every block and its metadata.
 */
export function createDmSnapshot(s: Scratch, name: string, bytes: number, fill: (image: string) => void): DmSnapshotPair {
  const origin = s.loopDevice(`${name}-origin`, bytes, fill);
  // Each 4 KiB metadata chunk records 256 exceptions; a header chunk; slack.
  const cow = s.loopDevice(`${name}-cow`, bytes + Math.ceil(bytes / BLOCK_BYTES / 256 + 16) * BLOCK_BYTES);
  const sectors = bytes / SECTOR;
  const originTable = s.dmName(`${name}-origin`);
  const snapshotTable = s.dmName(`${name}-snap`);
  s.dmsetup(['create', originTable, '--table', `0 ${sectors} snapshot-origin ${origin.device}`], 'a device-mapper snapshot-origin table');
  s.dmsetup(['create', snapshotTable, '--table', `0 ${sectors} snapshot ${origin.device} ${cow.device} P ${CHUNK_SECTORS}`], 'a device-mapper snapshot table');
  return { origin, cow, originDevice: `/dev/mapper/${originTable}`, snapshotDevice: `/dev/mapper/${snapshotTable}`, originTable, snapshotTable, bytes };
}

export function snapshotStatus(s: Scratch, pair: DmSnapshotPair): SnapshotStatus {
  return parseSnapshotStatus(s.dmsetup(['status', pair.snapshotTable], 'reading the snapshot\'s exception store'));
}

/** Removes the snapshot, then the origin table, then detaches both loop devices. */
export function removeDmSnapshot(s: Scratch, pair: DmSnapshotPair): void {
  s.dmsetup(['remove', pair.snapshotTable], 'removing the snapshot table');
  s.dmsetup(['remove', pair.originTable], 'removing the snapshot-origin table');
  s.detach(pair.cow);
  s.detach(pair.origin);
}

/** An overwrite of `order` with generation `gen` on `device`, counted on the loops under it. */
function overwrite(loops: readonly ScratchLoop[], device: string, order: readonly number[], gen: number) {
  // overwriteBlocks fsyncs the device; dm-snapshot completes a chunk's copy before the write
  // it guards, so nothing is pending after it. The blockdev's cache is written back by then.
  return accounted(loops.map((l) => l.deviceName), () => {}, () => 0, () => overwriteBlocks(device, order, gen));
}

/**
 * The dm-snapshot form of measureOverwrite (overwrite.ts): `count` random distinct blocks
 * (seeded) of a `fileBytes` origin overwritten on a plain loop device (twice: the reference),
 * then through the origin of a snapshot (the first write, then the second). The sharing
 * checks come from the exception store (a written block copied to it is no longer shared; a
 * block not written must not be), "relocated" from the origin's image (new data found
 * anywhere but at its own offset), content from reading the origin and the snapshot devices.
 */
export function measureDmOverwrite(s: Scratch, fileBytes: number, count: number, seed: number): OverwriteMeasurement {
  const blocks = fileBytes / BLOCK_BYTES;
  const order = [...sample(blocks, count, seed)];
  const written = new Set(order);
  const fill = (image: string) => writePatternFile(image, fileBytes, 1, true);

  const plainLoop = s.loopDevice(`plain-${seed}`, fileBytes, fill);
  const plainObs = (gen: number, op: ReturnType<typeof overwrite>): OverwriteObservation => ({
    ...op.result, io: op.io, writtenStillShared: 0, othersNotShared: 0,
    relocated: checkContent(plainLoop.image, (b) => (written.has(b) ? gen : 1)).mismatched,
    liveMismatches: checkContent(plainLoop.device, (b) => (written.has(b) ? gen : 1), fileBytes).mismatched,
    cloneMismatches: 0,
  });
  const plain = plainObs(2, overwrite([plainLoop], plainLoop.device, order, 2));
  const plainSecond = plainObs(3, overwrite([plainLoop], plainLoop.device, order, 3));
  s.detach(plainLoop);

  const pair = createDmSnapshot(s, `snap-${seed}`, fileBytes, fill);
  try {
    const copied0 = exceptions(snapshotStatus(s, pair));
    const observe = (gen: number): OverwriteObservation => {
      const before = exceptions(snapshotStatus(s, pair));
      const op = overwrite([pair.origin, pair.cow], pair.originDevice, order, gen);
      const now = exceptions(snapshotStatus(s, pair));
      const copied = now - copied0;
      return {
        // The space this write took: the chunks it copied into the COW store.
        ...op.result, io: { ...op.io, freeDeltaBytes: -(now - before) * BLOCK_BYTES },
        writtenStillShared: Math.max(0, written.size - copied),
        othersNotShared: Math.max(0, copied - written.size),
        relocated: checkContent(pair.origin.image, (b) => (written.has(b) ? gen : 1)).mismatched,
        liveMismatches: checkContent(pair.originDevice, (b) => (written.has(b) ? gen : 1), fileBytes).mismatched,
        cloneMismatches: checkContent(pair.snapshotDevice, () => 1, fileBytes).mismatched,
      };
    };
    const first = observe(2);
    const second = observe(3);
    const shared = (blocks - exceptions(snapshotStatus(s, pair))) / blocks;
    return { fileBytes, blocks, written: order.length, plain, plainSecond, first, second, cloneSharedAfterFirst: shared };
  } finally {
    removeDmSnapshot(s, pair);
  }
}
