/**
 * The dm-snapshot row of first-write-cost, measured where device-mapper exists: a Debian 6.12
 * guest carrying dm-snapshot, loop and dmsetup (Experiment.guest). Copy-on-first-write, by the
 * loop devices' own counters: each block first written through the origin is read once from
 * it and written twice (to the exception store and in place), against one write for a plain
 * loop device; the exception store copied one chunk per block written; content read back
 * through the origin and the snapshot. The run's teardown in the guest removed every table and
 * loop device (it would say so otherwise), and nothing of it is left on the host.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { OverwriteRaw } from '../../experiments/storage-overwrite.js';
import { listLoopDevices, listMounts } from '../../src/storage/scratch.js';
import { runCli } from '../helpers/cli.js';

const SPEC = 'debian:6.12';
const GUEST_TIMEOUT = 300_000;
const out = mkdtempSync(join(tmpdir(), 'cowlab-guest-dm-test-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

beforeAll(() => {
  const r = runCli(['kernels', 'fetch', SPEC], { timeout: GUEST_TIMEOUT });
  expect(r.status, r.stderr).toBe(0);
}, GUEST_TIMEOUT);

const perBlock = (sectors: number, blocks: number) => sectors / 8 / blocks;

describe(`first-write-cost in a ${SPEC} guest`, () => {
  it('measures the dm-snapshot row as copy-on-first-write: 1 read and 2 writes per block first written, 1 write after, and leaves no table or loop device', () => {
    const r = runCli(['run', '--quick', 'first-write-cost', '--kernel', SPEC, '--json', '--out', out], { timeout: GUEST_TIMEOUT });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { environment: { guest: { accel: string } | null }; experiments: { name: string; notes: string[]; verdict: { verdict: string; rule: string }; rule: string; raw: OverwriteRaw }[] };
    const e = doc.experiments.find((x) => x.name === 'first-write-cost')!;
    expect(doc.environment.guest).not.toBeNull();
    const dm = e.raw.rows.find((row) => row.backing === 'dm-snapshot')!;
    expect(dm.notMeasured).toBeNull();
    expect(dm.points.length).toBeGreaterThan(0);
    for (const p of dm.points) {
      const at = `at ${p.written} of ${p.blocks} blocks`;
      // Copy-on-first-write: the old block read once and written to the COW store, the new one in place.
      expect(perBlock(p.first.io.total.readSectors, p.written), `${at}: reads per block`).toBeGreaterThanOrEqual(0.95);
      expect(perBlock(p.first.io.total.readSectors, p.written), `${at}: reads per block`).toBeLessThanOrEqual(1.3);
      expect(perBlock(p.first.io.total.writtenSectors, p.written), `${at}: writes per block`).toBeGreaterThanOrEqual(1.9);
      expect(perBlock(p.first.io.total.writtenSectors, p.written), `${at}: writes per block`).toBeLessThanOrEqual(2.5);
      // The block is the snapshot's now: the second write and a plain loop device write once, read nothing.
      for (const o of [p.second, p.plain]) {
        expect(perBlock(o.io.total.writtenSectors, p.written), at).toBeGreaterThanOrEqual(0.95);
        expect(perBlock(o.io.total.writtenSectors, p.written), at).toBeLessThanOrEqual(1.3);
        expect(o.io.total.readSectors, at).toBe(0);
      }
      // One chunk in the exception store per block written, none for the others; new data in place.
      expect([p.first.writtenStillShared, p.first.othersNotShared, p.first.relocated], at).toEqual([0, 0, 0]);
      expect(-p.first.io.freeDeltaBytes, at).toBe(p.written * 4096);
      expect(p.second.io.freeDeltaBytes, at).toBe(0);
      expect([p.first.liveMismatches, p.first.cloneMismatches, p.second.liveMismatches, p.second.cloneMismatches], at).toEqual([0, 0, 0, 0]);
    }
    // Reported as the contrast, not judged by the redirect-on-write rule.
    expect(e.rule).toMatch(/dm-snapshot row is the copy-on-first-write contrast/);
    expect(e.notes.join('\n')).not.toMatch(/teardown could not undo/);
    // Nothing of it on the host either: the guest's disks never became host loop devices or mounts.
    expect(listMounts().filter((m) => m.mountpoint.includes('cowlab-guest-'))).toEqual([]);
    expect(listLoopDevices().filter((l) => l.backingFile.includes('cowlab-guest-'))).toEqual([]);
    expect(spawnSync('losetup', ['-a'], { encoding: 'utf8' }).stdout).not.toContain('cowlab-guest-');
  }, GUEST_TIMEOUT);
});
