/**
 * Result and request disks: a frame written to a real file reads back as it was, and every way
 * a disk can be wrong (empty, foreign, malformed, cut short, damaged, too large) is reported as
 * a problem rather than parsed.
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { encodeFrame, FRAME_HEADER_BYTES, frameHeader, parseHeader, readFrame, writeFrame, type GuestResultMeta } from '../../src/guest/disk.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-disk-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A disk image file holding `bytes`, and `fn` run with it open for reading and writing. */
function withDisk<T>(bytes: Buffer, fn: (fd: number, path: string) => T): T {
  const path = join(dir, `disk${n++}.img`);
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r+');
  try {
    return fn(fd, path);
  } finally {
    closeSync(fd);
  }
}

const MB = 1 << 20;
const meta: GuestResultMeta = { exitCode: 0, signal: null, stdoutBytes: 5, startedAt: 1.25, endedAt: 3.5 };

describe('a frame reads back as written', () => {
  it.each([
    { name: 'an empty payload', payload: Buffer.alloc(0) },
    { name: 'a small payload', payload: Buffer.from('hello{"json":true}\nstderr line\n') },
    { name: 'a payload of exactly one sector', payload: randomBytes(512) },
    { name: 'a few MB of random bytes', payload: randomBytes(3 * MB + 123) },
  ])('$name', ({ payload }) => {
    const disk = encodeFrame(meta, payload);
    expect(disk.length % 512).toBe(0);
    expect(disk.length).toBeGreaterThanOrEqual(FRAME_HEADER_BYTES + payload.length);
    const got = withDisk(disk, (fd) => readFrame<GuestResultMeta>(fd, 8 * MB));
    if ('problem' in got) throw new Error(got.problem);
    expect(got.meta).toEqual(meta);
    expect(got.payload.equals(payload)).toBe(true);
  });

  it('writeFrame over a larger, dirty disk (a virtio disk is bigger than its frame)', () => {
    const payload = randomBytes(2 * MB + 7);
    const got = withDisk(Buffer.alloc(4 * MB, 0xee), (fd, path) => {
      writeFrame(fd, { exitCode: 3, signal: 'SIGKILL', note: 'ünïcode ✓' }, payload);
      expect(readFileSync(path).length).toBe(4 * MB);
      return readFrame<{ exitCode: number; signal: string; note: string }>(fd, 8 * MB);
    });
    if ('problem' in got) throw new Error(got.problem);
    expect(got.meta).toEqual({ exitCode: 3, signal: 'SIGKILL', note: 'ünïcode ✓' });
    expect(got.payload.equals(payload)).toBe(true);
  });

  it('the header is one text line, NUL-padded to 4 KiB', () => {
    const h = frameHeader({ a: 1 }, Buffer.from('xyz'));
    expect(h.length).toBe(FRAME_HEADER_BYTES);
    const line = h.toString('latin1', 0, h.indexOf(0x0a));
    expect(line).toMatch(/^COWLAB-DISK 1 3 [0-9a-f]{64} [A-Za-z0-9+/=]+$/);
    expect(h.subarray(line.length + 1).every((b) => b === 0)).toBe(true);
    expect(parseHeader(h)).toEqual({ length: 3, sha256: line.split(' ')[3], meta: { a: 1 } });
  });

  it('meta too large for the header is refused when writing', () => {
    expect(() => frameHeader({ big: 'x'.repeat(4000) }, Buffer.alloc(0))).toThrow('frame meta too large');
  });
});

describe('a bad disk is a problem, never a result', () => {
  const payload = randomBytes(64 * 1024);
  const good = encodeFrame(meta, payload);

  const header = (line: string) => {
    const h = Buffer.alloc(FRAME_HEADER_BYTES);
    h.write(line, 'latin1');
    return Buffer.concat([h, Buffer.alloc(512)]);
  };
  const sha = good.toString('latin1', 0, 200).split(' ')[3]!;

  it.each([
    { name: 'an empty (all-zero) disk', disk: () => Buffer.alloc(1 * MB), problem: /^the disk holds no result \(nothing was written\)$/ },
    { name: 'a disk shorter than a header', disk: () => Buffer.alloc(100), problem: /^the disk is shorter than a frame header$/ },
    { name: 'a zero-length disk', disk: () => Buffer.alloc(0), problem: /^the disk is shorter than a frame header$/ },
    { name: 'another magic', disk: () => header(`COWLAB-DISK 2 0 ${sha} e30=\n`), problem: /^the disk does not start with a cowlab frame$/ },
    { name: 'a file system instead of a frame', disk: () => Buffer.concat([Buffer.from('\x7fELF some binary'), Buffer.alloc(8192)]), problem: /does not start with a cowlab frame/ },
    { name: 'a length that is not a number', disk: () => header(`COWLAB-DISK 1 many ${sha} e30=\n`), problem: /^the frame header is malformed$/ },
    { name: 'a short digest', disk: () => header('COWLAB-DISK 1 0 abc e30=\n'), problem: /^the frame header is malformed$/ },
    { name: 'no newline after the header', disk: () => header(`COWLAB-DISK 1 0 ${sha} e30=`), problem: /^the frame header is malformed$/ },
    { name: 'meta that is not JSON', disk: () => header(`COWLAB-DISK 1 0 ${sha} ${Buffer.from('{nope').toString('base64')}\n`), problem: /^the frame header is malformed \(meta\)$/ },
    {
      name: 'a payload cut short',
      disk: () => good.subarray(0, FRAME_HEADER_BYTES + 1000),
      problem: new RegExp(`^the payload is cut short: 1000 of ${payload.length} bytes$`),
    },
    {
      name: 'a damaged payload (one byte flipped)',
      disk: () => {
        const d = Buffer.from(good);
        const at = FRAME_HEADER_BYTES + 12345;
        d.writeUInt8(d.readUInt8(at) ^ 0x01, at);
        return d;
      },
      problem: /^the payload does not match its checksum \(damaged\)$/,
    },
  ])('$name', ({ disk, problem }) => {
    const got = withDisk(disk(), (fd) => readFrame(fd, 8 * MB));
    expect(got).toEqual({ problem: expect.stringMatching(problem) });
  });

  it('a file truncated after it was written (the guest died mid-write)', () => {
    const got = withDisk(good, (fd) => {
      ftruncateSync(fd, FRAME_HEADER_BYTES + payload.length - 1);
      return readFrame(fd, 8 * MB);
    });
    expect(got).toEqual({ problem: `the payload is cut short: ${payload.length - 1} of ${payload.length} bytes` });
  });

  it('a frame longer than maxBytes is refused before its payload is read', () => {
    expect(withDisk(good, (fd) => readFrame(fd, payload.length - 1))).toEqual({
      problem: `the frame says ${payload.length} bytes, more than the ${payload.length - 1} allowed`,
    });
    // A huge length on a small disk: refused by maxBytes, no huge allocation.
    expect(withDisk(header(`COWLAB-DISK 1 999999999999 ${sha} e30=\n`), (fd) => readFrame(fd, 8 * MB))).toEqual({
      problem: 'the frame says 999999999999 bytes, more than the 8388608 allowed',
    });
    // Exactly maxBytes is allowed.
    const ok = withDisk(good, (fd) => readFrame(fd, payload.length));
    expect('problem' in ok).toBe(false);
  });
});
