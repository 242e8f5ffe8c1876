/**
 * The initramfs writer: an archive made by CpioWriter is read back by the real busybox cpio
 * (listing and extracting) and GNU cpio (device numbers), and walked header by header to check
 * the newc layout the kernel needs (every header and every data block 4-byte aligned).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CpioWriter } from '../../src/guest/cpio.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-cpio-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Files by name (as archived, without the leading slash) and what they hold. */
const files: Record<string, { data: Buffer; mode: number }> = {
  'etc/empty': { data: Buffer.alloc(0), mode: 0o644 },
  'etc/one': { data: Buffer.from('1'), mode: 0o644 },
  'etc/two': { data: Buffer.from('22'), mode: 0o600 },
  'etc/three': { data: Buffer.from('333'), mode: 0o644 },
  'etc/four': { data: Buffer.from('4444'), mode: 0o644 },
  // Names of 1 to 4 bytes put the name's padding through every remainder.
  x: { data: Buffer.from('a'), mode: 0o644 },
  xy: { data: Buffer.from('ab'), mode: 0o644 },
  xyz: { data: Buffer.from('abc'), mode: 0o644 },
  wxyz: { data: Buffer.from('abcde'), mode: 0o644 },
  init: { data: Buffer.from('#!/bin/sh\necho hello from init\n'), mode: 0o755 },
};
const copied = { name: 'bin/tool', from: join(dir, 'tool.bin'), data: randomBytes(300_001), mode: 0o755 };
const dirs: [string, number][] = [['bin', 0o755], ['dev', 0o755], ['etc', 0o755], ['etc/deep', 0o700], ['tmp', 0o1777]];
const devices = [
  { name: 'dev/console', major: 5, minor: 1, mode: 0o600 },
  { name: 'dev/null', major: 1, minor: 3, mode: 0o666 },
];
const symlinks = [{ name: 'bin/sh', target: 'tool' }, { name: 'etc/deep/link', target: '/etc/one' }];

const archive = join(dir, 'initramfs.cpio.gz');
const plain = join(dir, 'initramfs.cpio');

beforeAll(async () => {
  writeFileSync(copied.from, copied.data);
  const w = new CpioWriter(archive);
  for (const [d, mode] of dirs) await w.dir(`/${d}`, mode);
  for (const dev of devices) await w.charDevice(`/${dev.name}`, dev.major, dev.minor, dev.mode);
  await w.copy(`/${copied.name}`, copied.from, copied.data.length, copied.mode);
  for (const s of symlinks) await w.symlink(`/${s.name}`, s.target);
  for (const [name, f] of Object.entries(files)) await w.file(`/${name}`, f.data, f.mode);
  await w.finish();
  writeFileSync(plain, gunzipSync(readFileSync(archive)));
});

/** Every name in the order it was written. */
const order = () => [...dirs.map(([d]) => d), ...devices.map((d) => d.name), copied.name, ...symlinks.map((s) => s.name), ...Object.keys(files)];

function run(cmd: string, args: string[], cwd?: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (r.error) throw new Error(`${cmd} could not run (${(r.error as Error).message}): install it (apt-get install ${cmd === 'cpio' ? 'cpio' : 'busybox-static'}) to check the archive`);
  return r;
}

interface Entry {
  offset: number;
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  name: string;
  data: Buffer;
}

/** Walks a newc archive as the kernel's init/initramfs.c does, insisting on 4-byte alignment. */
function walk(buf: Buffer): { entries: Entry[]; end: number } {
  const entries: Entry[] = [];
  const align = (n: number) => (n + 3) & ~3;
  let off = 0;
  for (;;) {
    if (off % 4 !== 0) throw new Error(`header at ${off} is not 4-byte aligned`);
    const magic = buf.toString('latin1', off, off + 6);
    if (magic !== '070701') throw new Error(`bad magic ${JSON.stringify(magic)} at ${off}`);
    const field = (i: number) => parseInt(buf.toString('latin1', off + 6 + i * 8, off + 14 + i * 8), 16);
    const namesize = field(11);
    const nameStart = off + 110;
    const name = buf.toString('utf8', nameStart, nameStart + namesize - 1);
    if (buf[nameStart + namesize - 1] !== 0) throw new Error(`name of ${name} is not NUL-terminated`);
    const dataStart = align(nameStart + namesize);
    for (let i = nameStart + namesize; i < dataStart; i++) if (buf[i] !== 0) throw new Error(`name padding of ${name} is not zero`);
    const size = field(6);
    const e: Entry = { offset: off, ino: field(0), mode: field(1), nlink: field(4), size, rdevMajor: field(9), rdevMinor: field(10), name, data: buf.subarray(dataStart, dataStart + size) };
    if (field(12) !== 0) throw new Error(`${name}: c_check must be 0 for 070701`);
    off = align(dataStart + size);
    for (let i = dataStart + size; i < off; i++) if (buf[i] !== 0) throw new Error(`data padding of ${name} is not zero`);
    if (name === 'TRAILER!!!') return { entries, end: off };
    entries.push(e);
  }
}

describe('CpioWriter writes a newc archive', () => {
  it('whose every header and data block is 4-byte aligned, ending at the trailer', () => {
    const buf = readFileSync(plain);
    const { entries, end } = walk(buf);
    expect(end).toBe(buf.length);
    expect(entries.map((e) => e.name)).toEqual(order());
    expect(new Set(entries.map((e) => e.ino)).size).toBe(entries.length);
  });

  it('with the mode, size and device numbers of each entry', () => {
    const byName = new Map(walk(readFileSync(plain)).entries.map((e) => [e.name, e]));
    for (const [d, mode] of dirs) expect(byName.get(d)).toMatchObject({ mode: 0o040000 | mode, size: 0 });
    for (const dev of devices) expect(byName.get(dev.name)).toMatchObject({ mode: 0o020000 | dev.mode, size: 0, rdevMajor: dev.major, rdevMinor: dev.minor });
    for (const s of symlinks) {
      const e = byName.get(s.name)!;
      expect(e.mode).toBe(0o120777);
      expect(e.data.toString()).toBe(s.target);
    }
    for (const [name, f] of Object.entries(files)) {
      const e = byName.get(name)!;
      expect(e.mode).toBe(0o100000 | f.mode);
      expect(e.data.equals(f.data)).toBe(true);
    }
    expect(byName.get(copied.name)!.data.equals(copied.data)).toBe(true);
  });

  it('that busybox cpio lists with the same names, types, modes and sizes', () => {
    const r = run('busybox', ['cpio', '-t', '-v', '-F', plain]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => l.split(/\s+/));
    // mode, uid/gid, size, date, time, name[, ->, target]
    expect(lines.map((l) => l[5])).toEqual(order());
    const row = (name: string) => lines.find((l) => l[5] === name)!;
    expect(row('tmp')[0]).toBe('drwxrwxrwt');
    expect(row('etc/deep')[0]).toBe('drwx------');
    expect(row('dev/console')[0]).toBe('crw-------');
    expect(row('dev/null')[0]).toBe('crw-rw-rw-');
    expect(row('bin/tool').slice(0, 3)).toEqual(['-rwxr-xr-x', '0/0', String(copied.data.length)]);
    expect(row('etc/two').slice(0, 3)).toEqual(['-rw-------', '0/0', '2']);
    expect(row('bin/sh').slice(0, 1).concat(row('bin/sh').slice(6))).toEqual(['lrwxrwxrwx', '->', 'tool']);
  });

  it('that GNU cpio reads with the device numbers', () => {
    const r = run('cpio', ['-t', '-v', '--numeric-uid-gid', '-F', plain]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^crw------- +1 0 +0 +5, +1 .* dev\/console$/m);
    expect(r.stdout).toMatch(/^crw-rw-rw- +1 0 +0 +1, +3 .* dev\/null$/m);
  });

  it('that busybox cpio -i -d extracts to the same contents and symlink targets', () => {
    const out = join(dir, 'extracted');
    mkdirSync(out);
    // Device nodes need root to create: extract everything else.
    const names = order().filter((n) => !n.startsWith('dev/'));
    const r = run('busybox', ['cpio', '-i', '-d', '-F', plain, ...names], out);
    expect(r.status, r.stderr).toBe(0);
    for (const [name, f] of Object.entries(files)) expect(readFileSync(join(out, name)).equals(f.data)).toBe(true);
    expect(readFileSync(join(out, copied.name)).equals(copied.data)).toBe(true);
    for (const s of symlinks) expect(readlinkSync(join(out, s.name))).toBe(s.target);
    for (const [d] of dirs.filter(([d]) => d !== 'dev')) expect(statSync(join(out, d)).isDirectory()).toBe(true);
  });
});

describe('CpioWriter refuses', () => {
  it('a name added twice, with or without its leading slash', async () => {
    const path = join(dir, 'twice.cpio.gz');
    const w = new CpioWriter(path);
    try {
      await w.dir('/etc');
      expect(w.has('etc')).toBe(true);
      expect(w.has('/etc')).toBe(true);
      expect(w.has('/bin')).toBe(false);
      await expect(w.dir('/etc')).rejects.toThrow('cpio: etc added twice');
      await expect(w.file('etc', Buffer.from('x'))).rejects.toThrow('cpio: etc added twice');
      await expect(w.symlink('//etc', 'x')).rejects.toThrow('cpio: etc added twice');
      await w.file('/etc/passwd', Buffer.from('root:x:0:0::/root:/bin/sh\n'));
      await expect(w.copy('/etc/passwd', copied.from, copied.data.length)).rejects.toThrow('cpio: etc/passwd added twice');
    } finally {
      w.abort();
    }
  });

  it('a copied file whose size is not what the caller said', async () => {
    const w = new CpioWriter(join(dir, 'changed.cpio.gz'));
    try {
      await expect(w.copy('/bin/tool', copied.from, copied.data.length - 1)).rejects.toThrow(
        `cpio: ${copied.from} changed while it was archived (${copied.data.length} bytes, expected ${copied.data.length - 1})`,
      );
    } finally {
      w.abort();
    }
  });

  it('an archive it cannot write: the write fails with the error, without hanging', async () => {
    const w = new CpioWriter(join(dir, 'no-such-dir', 'x.cpio.gz'));
    // Enough data to fill the gzip stream's buffer: a writer that waited for 'drain' would hang.
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    await expect(w.file('/big', big).then(() => w.finish())).rejects.toThrow(/ENOENT/);
    w.abort();
  });

  it('nothing more once aborted, and the file is closed', async () => {
    const path = join(dir, 'aborted.cpio.gz');
    const w = new CpioWriter(path);
    await w.dir('/bin');
    w.abort();
    await new Promise((r) => setTimeout(r, 100));
    const open = readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === path;
      } catch {
        return false;
      }
    });
    expect(open).toEqual([]);
  });
});
