/**
 * A gzip-compressed cpio archive in the "newc" format, which is what the kernel unpacks as an
 * initramfs (Documentation/driver-api/early-userspace/buffer-format.rst): per entry a
 * 110-byte ASCII header, the name, the data, each padded to 4 bytes; "TRAILER!!!" ends it.
 * Entries are written as they come, so a 100 MB Node binary is streamed, never held twice.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { createGzip, type Gzip } from 'node:zlib';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export class CpioWriter {
  private readonly gzip: Gzip;
  private readonly out: WriteStream;
  /** Settles when the file is complete, or with the first error of either stream. */
  private readonly done: Promise<void>;
  private failure: Error | null = null;
  private ino = 1;
  private readonly names = new Set<string>();

  constructor(path: string, level = 1) {
    this.gzip = createGzip({ level });
    this.out = createWriteStream(path);
    this.done = pipeline(this.gzip, this.out);
    // Seen by write() and finish(); without this a failed open (ENOENT, EACCES, ENOSPC) would
    // be an unhandled rejection, and write() would wait forever for a drain.
    this.done.catch((err: Error) => (this.failure = err));
  }

  private async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.gzip.write(chunk)) await Promise.race([once(this.gzip, 'drain'), this.done]);
    if (this.failure) throw this.failure;
  }

  private header(name: string, mode: number, size: number, rdev: [number, number] = [0, 0]): Buffer {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const nameBytes = Buffer.from(`${name}\0`, 'utf8');
    const fields = [this.ino++, mode, 0, 0, 1, 0, size, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
    const head = Buffer.from(`070701${fields.map(hex).join('')}`, 'latin1');
    return Buffer.concat([head, nameBytes, pad(head.length + nameBytes.length)]);
  }

  /** Each name once, without a leading slash (the kernel unpacks relative to /). */
  private claim(path: string): string {
    const name = path.replace(/^\/+/, '');
    if (this.names.has(name)) throw new Error(`cpio: ${name} added twice`);
    this.names.add(name);
    return name;
  }

  has(path: string): boolean {
    return this.names.has(path.replace(/^\/+/, ''));
  }

  async dir(path: string, mode = 0o755): Promise<void> {
    await this.write(this.header(this.claim(path), S_IFDIR | mode, 0));
  }

  async file(path: string, data: Buffer, mode = 0o644): Promise<void> {
    await this.write(this.header(this.claim(path), S_IFREG | mode, data.length));
    await this.write(data);
    await this.write(pad(data.length));
  }

  /** A file copied from the host file system, streamed. */
  async copy(path: string, from: string, size: number, mode = 0o755): Promise<void> {
    await this.write(this.header(this.claim(path), S_IFREG | mode, size));
    let n = 0;
    for await (const chunk of createReadStream(from)) {
      n += (chunk as Buffer).length;
      await this.write(chunk as Buffer);
    }
    if (n !== size) throw new Error(`cpio: ${from} changed while it was archived (${n} bytes, expected ${size})`);
    await this.write(pad(size));
  }

  async symlink(path: string, target: string): Promise<void> {
    const data = Buffer.from(target, 'utf8');
    await this.write(this.header(this.claim(path), S_IFLNK | 0o777, data.length));
    await this.write(data);
    await this.write(pad(data.length));
  }

  async charDevice(path: string, major: number, minor: number, mode = 0o600): Promise<void> {
    await this.write(this.header(this.claim(path), S_IFCHR | mode, 0, [major, minor]));
  }

  /** Writes the trailer and waits until the file is complete. */
  async finish(): Promise<void> {
    await this.write(this.header('TRAILER!!!', 0, 0));
    this.gzip.end();
    await this.done;
  }

  /** Stops writing (on an error) and closes the file; the caller removes it. */
  abort(): void {
    this.gzip.destroy();
    this.out.destroy();
  }
}

function pad(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}
