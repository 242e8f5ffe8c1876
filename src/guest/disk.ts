/**
 * How a request goes into a guest and its result comes out: each is a raw virtio disk holding
 * one frame, never the console. A frame is a 4 KiB header line
 *
 *   COWLAB-DISK 1 <payload bytes> <sha256 of the payload> <meta as base64 JSON>\n
 *
 * (NUL-padded), then the payload. The reader checks length and digest, so a result that was
 * cut short or damaged is reported as such rather than parsed. Shared by the host runner and
 * the in-guest agent (which loads nothing else of cowlab before it starts the command).
 */
import { createHash } from 'node:crypto';
import { readSync, writeSync } from 'node:fs';

export const FRAME_HEADER_BYTES = 4096;
const MAGIC = 'COWLAB-DISK 1';

export interface Frame<M> {
  meta: M;
  payload: Buffer;
}

function digest(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function frameHeader(meta: unknown, payload: Buffer): Buffer {
  const line = `${MAGIC} ${payload.length} ${digest(payload)} ${Buffer.from(JSON.stringify(meta)).toString('base64')}\n`;
  if (line.length > FRAME_HEADER_BYTES) throw new Error('frame meta too large');
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.write(line, 'latin1');
  return header;
}

/** Header and payload in one buffer, padded to whole 512-byte sectors. */
export function encodeFrame(meta: unknown, payload: Buffer): Buffer {
  const total = FRAME_HEADER_BYTES + payload.length;
  const out = Buffer.alloc(Math.ceil(total / 512) * 512);
  frameHeader(meta, payload).copy(out, 0);
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** Writes a frame to an open file or block device at offset 0. */
export function writeFrame(fd: number, meta: unknown, payload: Buffer): void {
  const buf = encodeFrame(meta, payload);
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, Math.min(buf.length - off, 1 << 20), off);
}

export type FrameProblem = { problem: string };

/** Parses a header; a problem when there is no frame or it is malformed. */
export function parseHeader(header: Buffer): { length: number; sha256: string; meta: unknown } | FrameProblem {
  const end = header.indexOf(0x0a);
  const line = header.toString('latin1', 0, end < 0 ? Math.min(header.length, 200) : end);
  if (!line.startsWith(MAGIC)) return { problem: line.replace(/\0/g, '') === '' ? 'the disk holds no result (nothing was written)' : 'the disk does not start with a cowlab frame' };
  const m = /^COWLAB-DISK 1 (\d+) ([0-9a-f]{64}) ([A-Za-z0-9+/=]*)$/.exec(line);
  if (!m) return { problem: 'the frame header is malformed' };
  try {
    return { length: Number(m[1]), sha256: m[2]!, meta: JSON.parse(Buffer.from(m[3]!, 'base64').toString('utf8')) };
  } catch {
    return { problem: 'the frame header is malformed (meta)' };
  }
}

/** Reads and checks the frame on an open file or device. */
export function readFrame<M>(fd: number, maxBytes: number): Frame<M> | FrameProblem {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  const got = readSync(fd, header, 0, FRAME_HEADER_BYTES, 0);
  if (got < FRAME_HEADER_BYTES) return { problem: 'the disk is shorter than a frame header' };
  const h = parseHeader(header);
  if ('problem' in h) return h;
  if (h.length > maxBytes) return { problem: `the frame says ${h.length} bytes, more than the ${maxBytes} allowed` };
  const payload = Buffer.alloc(h.length);
  let off = 0;
  while (off < h.length) {
    const n = readSync(fd, payload, off, Math.min(h.length - off, 1 << 20), FRAME_HEADER_BYTES + off);
    if (n === 0) return { problem: `the payload is cut short: ${off} of ${h.length} bytes` };
    off += n;
  }
  if (digest(payload) !== h.sha256) return { problem: 'the payload does not match its checksum (damaged)' };
  return { meta: h.meta as M, payload };
}

/** What the host asks the agent to run. */
export interface GuestRequest {
  /** cowlab's arguments, as on its command line (`validate ... --json`). */
  argv: string[];
  /** Files the command reads, written under REQUEST_DIR before it starts (relative names). */
  files: Record<string, string>;
  /** The accelerator the guest runs under: tcg means an emulated CPU (times not meaningful). */
  accel: 'kvm' | 'tcg';
  /** The spec the host named the kernel by, for the guest's environment record. */
  kernelSpec: string;
  /** Kernel features checked before the command starts (agent.ts FEATURES): 'pagemap', 'thp'. */
  needs: string[];
}

/** Where request files are in the guest. */
export const REQUEST_DIR = '/tmp/cowlab-request';

/**
 * The result's meta. The payload is the command's stdout, byte for byte (its first
 * `stdoutBytes`), then its stderr (the last 64 KiB of it, also shown on the console as it ran).
 */
export interface GuestResultMeta {
  exitCode: number;
  signal: string | null;
  stdoutBytes: number;
  /** Seconds since the guest kernel booted, when the command started and ended. */
  startedAt: number;
  endedAt: number;
  /** Set when the agent could not start the command (a missing kernel feature, a bad request). */
  error?: { code: string; message: string };
}

/** Console lines the guest prints for the host (anything else is kernel or command output). */
export const MARK = 'COWLAB-GUEST';
