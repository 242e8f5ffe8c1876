/**
 * The scratch space tears down what it made, on every path: success, a failure inside the
 * body, an AbortSignal mid-experiment, SIGINT to a CLI run mid-experiment, and (swept by the
 * next run) SIGKILL. Checked against the kernel's own lists: /proc/self/mountinfo and the loop
 * devices' backing files (and `losetup -a`). A missing tool or no root is not measurable,
 * with the package to install.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { runSuite } from '../../src/suite/runner.js';
import { listLoopDevices, listMounts, Scratch, SCRATCH_PREFIX } from '../../src/storage/scratch.js';
import { withStorage } from '../../src/storage/session.js';
import { findTool } from '../../src/util/tools.js';
import { CLI } from '../helpers/cli.js';

const root = process.geteuid?.() === 0;
const tools = findTool('losetup') !== null && findTool('mkfs.btrfs') !== null && findTool('mkfs.xfs') !== null;
const MiB = 2 ** 20;

/** Mounts and loop devices of scratch spaces whose directory name starts with `prefix`. */
function leftovers(prefix: string): string[] {
  const at = join(tmpdir(), prefix);
  const losetup = spawnSync(findTool('losetup') ?? 'losetup', ['-a'], { encoding: 'utf8' }).stdout;
  return [
    ...listMounts().filter((m) => m.mountpoint.startsWith(at)).map((m) => `mount ${m.mountpoint}`),
    ...listLoopDevices().filter((l) => l.backingFile.startsWith(at)).map((l) => `loop ${l.name}`),
    ...losetup.split('\n').filter((l) => l.includes(at)).map((l) => `losetup -a: ${l}`),
  ];
}

describe.skipIf(!root || !tools)('scratch teardown (needs root, btrfs-progs and xfsprogs)', () => {
  it('close() unmounts, detaches and deletes everything it made, and nothing else', () => {
    const mountsBefore = listMounts().filter((m) => !m.mountpoint.includes(SCRATCH_PREFIX));
    const s = Scratch.open();
    const b = s.filesystem('btrfs', 256 * MiB);
    const x = s.filesystem('xfs', 512 * MiB);
    const merged = s.overlay(s.mkdir(`${b.mountpoint.slice(s.dir.length + 1)}/lower`), s.mkdir(`${x.mountpoint.slice(s.dir.length + 1)}/u`), s.mkdir(`${x.mountpoint.slice(s.dir.length + 1)}/w`), 'merged');
    expect(listMounts().map((m) => m.mountpoint)).toEqual(expect.arrayContaining([b.mountpoint, x.mountpoint, merged]));
    expect(listLoopDevices().map((l) => l.backingFile)).toEqual(expect.arrayContaining([b.image, x.image]));
    const r = s.close();
    expect(r.left).toEqual([]);
    expect(r.unmounted).toHaveLength(3);
    expect(r.detached.sort()).toEqual([b.device, x.device].sort());
    expect(leftovers(s.dir.slice(tmpdir().length + 1))).toEqual([]);
    expect(existsSync(s.dir)).toBe(false);
    expect(listMounts().filter((m) => !m.mountpoint.includes(SCRATCH_PREFIX))).toEqual(mountsBefore);
    expect(s.close()).toEqual(r); // idempotent
  });

  it('withStorage tears down when the body throws', async () => {
    let dir = '';
    await expect(withStorage({ signal: new AbortController().signal, note: () => {} }, async (s) => {
      dir = s.dir;
      s.filesystem('xfs', 512 * MiB);
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(leftovers(dir.slice(tmpdir().length + 1))).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('an AbortSignal mid-experiment stops it and leaves no mount or loop device behind', async () => {
    const controller = new AbortController();
    const exp = EXPERIMENTS.find((e) => e.name === 'snapshot-instant')!;
    const doc = await runSuite([exp], {
      quick: true,
      signal: controller.signal,
      onProgress: (p) => {
        // The first btrfs size: a later one may never come (the quick budget ends the sweep
        // early on a loaded machine), and then nothing would be aborted.
        if (p.detail.startsWith('btrfs, ')) controller.abort();
      },
    });
    expect(doc.experiments[0]!.status).toBe('interrupted');
    expect(leftovers(`${SCRATCH_PREFIX}${process.pid}-`)).toEqual([]);
    expect(Scratch.openCount()).toBe(0);
  });

  it('SIGINT to a CLI run mid-experiment tears down, keeps the results and exits 130', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cowlab-storage-test-out-'));
    try {
      const child = spawn(process.execPath, [CLI, 'run', '--quick', 'snapshot-instant', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      // Once the child has a scratch file system mounted (it is measuring on it).
      let sent = false;
      const poll = setInterval(() => {
        if (!sent && listMounts().some((m) => m.mountpoint.startsWith(join(tmpdir(), `${SCRATCH_PREFIX}${child.pid}-`)))) {
          sent = true;
          setTimeout(() => child.kill('SIGINT'), 300);
        }
      }, 20);
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      clearInterval(poll);
      expect(sent).toBe(true);
      expect(stderr).toMatch(/interrupted/);
      expect(code).toBe(130);
      expect(leftovers(`${SCRATCH_PREFIX}${child.pid}-`)).toEqual([]);
      expect(existsSync(join(out, 'results.json'))).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('a run killed with SIGKILL leaves its scratch space, and the next open() sweeps it', async () => {
    const script = `
      import { Scratch } from ${JSON.stringify(join(process.cwd(), 'dist/src/storage/scratch.js'))};
      const s = Scratch.open();
      s.filesystem('xfs', 512 * 2 ** 20);
      console.log(s.dir);
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const dir = await new Promise<string>((r) => child.stdout.once('data', (d: Buffer) => r(d.toString().trim())));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const prefix = `${SCRATCH_PREFIX}${child.pid}-`;
    expect(leftovers(prefix).length).toBeGreaterThan(0); // SIGKILL runs no teardown
    Scratch.open().close();
    expect(leftovers(prefix)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('not measurable without the tools or root', () => {
  it.skipIf(!root || !tools)('a missing mkfs names the Debian package to install', () => {
    // A PATH with the loop and mount tools but neither mkfs.
    const bin = mkdtempSync(join(tmpdir(), 'cowlab-storage-test-bin-'));
    try {
      for (const t of ['losetup', 'mount', 'umount', 'sync'] as const) symlinkSync(findTool(t)!, join(bin, t));
      const s = Scratch.open({ searchPath: bin });
      try {
        expect(() => s.filesystem('btrfs', 256 * MiB)).toThrow(expect.objectContaining({ code: 'ERR_NOT_MEASURABLE', message: expect.stringContaining('`apt-get install btrfs-progs`') }));
        expect(() => s.filesystem('xfs', 512 * MiB)).toThrow(expect.objectContaining({ code: 'ERR_NOT_MEASURABLE', message: expect.stringContaining('`apt-get install xfsprogs`') }));
      } finally {
        expect(s.close().left).toEqual([]);
      }
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('without root, opening a scratch space is not measurable and says why', () => {
    expect(() => Scratch.open({ root: false })).toThrow(expect.objectContaining({ code: 'ERR_NOT_MEASURABLE', message: expect.stringMatching(/needs root: .*CAP_SYS_ADMIN/) }));
  });

  it.skipIf(!root)('a CLI run with a PATH lacking /usr/sbin says not measurable, naming the package, and exits 0', () => {
    const out = mkdtempSync(join(tmpdir(), 'cowlab-storage-test-out-'));
    try {
      const r = spawnSync(process.execPath, [CLI, 'run', '--quick', 'first-write-cost', '--out', out, '--json'], {
        encoding: 'utf8', timeout: 60_000, env: { ...process.env, PATH: '/usr/bin:/bin' },
      });
      expect(r.status).toBe(0);
      const e = (JSON.parse(r.stdout) as { experiments: { status: string; verdict: { reason: string } }[] }).experiments[0]!;
      expect(e.status).toBe('not-measurable');
      expect(e.verdict.reason).toMatch(/losetup is not installed.*`apt-get install mount`/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
