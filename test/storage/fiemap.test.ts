/**
 * FIEMAP on real file systems (scratch Btrfs and XFS on loop devices): a reflink clone shares
 * every extent, an overwrite unshares exactly the blocks written, a plain copy shares none.
 * Checked by content as well as by flags.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { blockSharing, readFiemap, summarizeSharing } from '../../src/storage/fiemap.js';
import { BLOCK_BYTES, checkContent, overwriteBlocks, plainCopy, reflinkClone, writePatternFile } from '../../src/storage/files.js';
import { Scratch, type FsKind, type ScratchFs } from '../../src/storage/scratch.js';
import { findTool } from '../../src/util/tools.js';

const root = process.geteuid?.() === 0;
const tools = findTool('losetup') !== null && findTool('mkfs.btrfs') !== null && findTool('mkfs.xfs') !== null;
const MiB = 2 ** 20;
const FILE = 8 * MiB;
const BLOCKS = FILE / BLOCK_BYTES;

describe.skipIf(!root || !tools)('FIEMAP on scratch file systems (needs root, btrfs-progs and xfsprogs)', () => {
  let s: Scratch;
  const fss = new Map<FsKind, ScratchFs>();
  beforeAll(() => {
    s = Scratch.open();
    for (const kind of ['btrfs', 'xfs'] as const) fss.set(kind, s.filesystem(kind, 1024 * MiB));
  });
  afterAll(() => {
    expect(s.close().left).toEqual([]);
  });

  describe.each(['btrfs', 'xfs'] as const)('%s', (kind) => {
    it('a file written once has private extents covering it, with the last one flagged LAST', () => {
      const p = `${fss.get(kind)!.mountpoint}/single`;
      writePatternFile(p, FILE, 1);
      const ex = readFiemap(p);
      expect(summarizeSharing(ex, 0, FILE)).toMatchObject({ sharedBytes: 0, privateBytes: FILE, holeBytes: 0 });
      expect(ex.at(-1)!.flags.last).toBe(true);
      expect(ex.every((e) => e.physical > 0 && !e.flags.delalloc)).toBe(true);
    });

    it('a reflinked file shows every extent FIEMAP_EXTENT_SHARED, at the source\'s physical addresses, with the source\'s bytes', () => {
      const dir = fss.get(kind)!.mountpoint;
      writePatternFile(`${dir}/src`, FILE, 1);
      reflinkClone(`${dir}/src`, `${dir}/clone`);
      const src = readFiemap(`${dir}/src`);
      const clone = readFiemap(`${dir}/clone`);
      expect(clone.every((e) => e.flags.shared)).toBe(true);
      expect(src.every((e) => e.flags.shared)).toBe(true);
      expect(summarizeSharing(clone, 0, FILE).sharedBytes).toBe(FILE);
      expect(clone.map((e) => [e.logical, e.physical, e.length])).toEqual(src.map((e) => [e.logical, e.physical, e.length]));
      expect(checkContent(`${dir}/clone`, () => 1)).toEqual({ blocks: BLOCKS, mismatched: 0, first: null });
    });

    it('after an overwrite exactly the written blocks are no longer shared; the clone keeps the old bytes', () => {
      const dir = fss.get(kind)!.mountpoint;
      writePatternFile(`${dir}/live`, FILE, 1);
      reflinkClone(`${dir}/live`, `${dir}/snap`);
      const written = [0, 7, 8, 9, 1000, BLOCKS - 1];
      overwriteBlocks(`${dir}/live`, written, 2);
      const sharing = blockSharing(readFiemap(`${dir}/live`), FILE, BLOCK_BYTES);
      const unshared = [...sharing.keys()].filter((b) => sharing[b] !== 1);
      expect(unshared).toEqual(written);
      expect(written.every((b) => sharing[b] === 0)).toBe(true);
      expect(checkContent(`${dir}/live`, (b) => (written.includes(b) ? 2 : 1)).mismatched).toBe(0);
      expect(checkContent(`${dir}/snap`, () => 1).mismatched).toBe(0);
    });

    it('a plain copy (read + write) shares nothing', () => {
      const dir = fss.get(kind)!.mountpoint;
      writePatternFile(`${dir}/orig`, FILE, 1);
      plainCopy(`${dir}/orig`, `${dir}/copy`);
      expect(summarizeSharing(readFiemap(`${dir}/copy`), 0, FILE).sharedBytes).toBe(0);
      expect(checkContent(`${dir}/copy`, () => 1).mismatched).toBe(0);
    });
  });

  it('reads a file of many extents in several batches of a small buffer, the same as in one', () => {
    const dir = fss.get('xfs')!.mountpoint;
    writePatternFile(`${dir}/many`, FILE, 1);
    reflinkClone(`${dir}/many`, `${dir}/many-clone`);
    overwriteBlocks(`${dir}/many`, Array.from({ length: 64 }, (_, i) => i * 16), 2); // 129 extents
    const one = readFiemap(`${dir}/many`);
    const batched = readFiemap(`${dir}/many`, { capacity: 5 });
    expect(one.length).toBeGreaterThan(100);
    expect(batched).toEqual(one);
  });

  it('rejects a bad range before the ioctl, naming the field', () => {
    expect(() => readFiemap('/nonexistent', { start: -1 })).toThrow(/start: must be a non-negative integer, got -1/);
    expect(() => readFiemap('/nonexistent', { capacity: 0 })).toThrow(/capacity: must be a positive integer/);
  });

  it('a missing file is ERR_SYSCALL with ENOENT and the path', () => {
    expect(() => readFiemap(`${s.dir}/nope`)).toThrow(expect.objectContaining({ code: 'ERR_SYSCALL', errno: 'ENOENT' }));
  });
});
