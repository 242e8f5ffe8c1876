/**
 * A snapshot's space on real scratch file systems, by their own counters: XFS holds (and frees
 * on deletion) exactly the distinct blocks overwritten, counted per block; Btrfs holds whole
 * extents, by its qgroup exclusive bytes; the extent model predicts both. An aborted
 * snapshot-lifetime run leaves no mount or loop device. Needs root, btrfs-progs and xfsprogs.
 */
import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { runSuite } from '../../src/suite/runner.js';
import { BLOCK_BYTES } from '../../src/storage/files.js';
import { enableQuota, parseQgroupExclusive, predictHeldBytes, snapshotLifetime } from '../../src/storage/lifetime.js';
import { listLoopDevices, listMounts, Scratch, SCRATCH_PREFIX } from '../../src/storage/scratch.js';
import type { Extent } from '../../src/storage/fiemap.js';
import { findTool } from '../../src/util/tools.js';

const root = process.geteuid?.() === 0;
const tools = ['losetup', 'mkfs.btrfs', 'mkfs.xfs', 'btrfs', 'fsfreeze'].every((t) => findTool(t as 'losetup') !== null);
const MiB = 2 ** 20;
const FILE = 16 * MiB;
const BLOCKS = FILE / BLOCK_BYTES;

const extent = (logical: number, length: number): Extent => ({ logical, physical: 0, length, rawFlags: 0, flags: {} as Extent['flags'] });

describe('the extent model', () => {
  const extents = [extent(0, 8 * BLOCK_BYTES), extent(8 * BLOCK_BYTES, 8 * BLOCK_BYTES)];
  const written = new Set([0, 1, 2, 3, 4, 5, 6, 7, 9]); // all of the first extent, one block of the second

  it('per block (XFS): every overwritten block is held', () => {
    expect(predictHeldBytes(extents, 16 * BLOCK_BYTES, written, BLOCK_BYTES)).toBe(9 * BLOCK_BYTES);
  });

  it('per extent (Btrfs): only an extent overwritten whole is held', () => {
    expect(predictHeldBytes(extents, 16 * BLOCK_BYTES, written, null)).toBe(8 * BLOCK_BYTES);
  });

  it('reads the exclusive bytes of one qgroup from `btrfs qgroup show --raw`', () => {
    const text = 'Qgroupid    Referenced    Exclusive   Path\n--------    ----------    ---------   ----\n0/5              16384        16384   <toplevel>\n0/256         68583424     68583424   vol\n0/257         67125248     67125248   snap\n';
    expect(parseQgroupExclusive(text, 257)).toBe(67125248);
    expect(parseQgroupExclusive(text, 256)).toBe(68583424);
    expect(parseQgroupExclusive(text, 300)).toBeNull();
  });
});

describe.skipIf(!root || !tools)('snapshot lifetime on real file systems (needs root, btrfs-progs, xfsprogs)', () => {
  it('XFS: the clone holds exactly the distinct blocks overwritten (once or twice) and deleting it frees them', () => {
    const s = Scratch.open();
    try {
      const fs = s.filesystem('xfs', 512 * MiB);
      const quarter = BLOCKS / 4;
      const once = snapshotLifetime(s, fs, FILE, quarter, 1, 7, 'once');
      const twice = snapshotLifetime(s, fs, FILE, quarter, 2, 7, 'twice');
      const none = snapshotLifetime(s, fs, FILE, 0, 1, 7, 'none');
      for (const o of [once, twice]) {
        expect(o.heldBytes).toBe(quarter * BLOCK_BYTES); // per-block refcounts: exact
        expect(o.predictedBytes).toBe(quarter * BLOCK_BYTES);
        expect(Math.abs(o.freedBytes - o.heldBytes)).toBeLessThanOrEqual(MiB);
        expect(o.snapshotMismatches + o.liveMismatches).toBe(0);
      }
      expect(twice.writes).toBe(2 * once.writes);
      expect(none.heldBytes).toBe(0);
      expect(Math.abs(none.freedBytes)).toBeLessThanOrEqual(MiB);
    } finally {
      expect(s.close().left).toEqual([]);
    }
  });

  it('Btrfs: the snapshot\'s qgroup holds the extents overwritten whole, as the model says, and deleting it frees them', () => {
    const s = Scratch.open();
    try {
      const fs = s.filesystem('btrfs', 512 * MiB);
      enableQuota(s, fs);
      const all = snapshotLifetime(s, fs, FILE, BLOCKS, 1, 8, 'all');
      expect(all.predictedBytes).toBe(FILE);
      expect(all.heldBytes).toBeGreaterThanOrEqual(FILE); // the data plus the snapshot's own tree
      expect(all.heldBytes - FILE).toBeLessThanOrEqual(MiB);
      expect(Math.abs(all.freedBytes - FILE)).toBeLessThanOrEqual(MiB);
      const half = snapshotLifetime(s, fs, FILE, BLOCKS / 2, 1, 8, 'half');
      expect(Math.abs(half.heldBytes - half.predictedBytes)).toBeLessThanOrEqual(MiB);
      expect(Math.abs(half.freedBytes - half.heldBytes)).toBeLessThanOrEqual(MiB);
      for (const o of [all, half]) expect(o.snapshotMismatches + o.liveMismatches).toBe(0);
      // Nothing of the measurements is left: no subvolume but the top level.
      expect(s.run('btrfs', ['subvolume', 'list', fs.mountpoint], 'listing').trim()).toBe('');
    } finally {
      expect(s.close().left).toEqual([]);
    }
  });

  it('an AbortSignal mid-run stops snapshot-lifetime and leaves no mount or loop device behind', async () => {
    const controller = new AbortController();
    const exp = EXPERIMENTS.find((e) => e.name === 'snapshot-lifetime')!;
    const doc = await runSuite([exp], {
      quick: true,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.detail.startsWith('btrfs-snapshot, 10 %')) controller.abort();
      },
    });
    expect(doc.experiments[0]!.status).toBe('interrupted');
    const at = `${SCRATCH_PREFIX}${process.pid}-`;
    expect(listMounts().filter((m) => m.mountpoint.includes(at))).toEqual([]);
    expect(listLoopDevices().filter((l) => l.backingFile.includes(at))).toEqual([]);
    expect(spawnSync(findTool('losetup')!, ['-a'], { encoding: 'utf8' }).stdout).not.toContain(at);
    expect(Scratch.openCount()).toBe(0);
  });
});
