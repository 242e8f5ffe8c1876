/**
 * Scratch file systems for the storage experiments: a temporary directory owned by the run
 * (`<tmpdir>/cowlab-storage-<pid>-XXXXXX`), sparse image files in it, loop devices over them
 * (`losetup --find --show`), real Btrfs and XFS made with mkfs.btrfs / mkfs.xfs, mounted under
 * the directory, overlayfs mounts over directories of those, and device-mapper tables over its
 * loop devices (named after the directory: dmName).
 *
 * Teardown always runs: close() (call it in a `finally`) unmounts every mount the run made,
 * removes its device-mapper tables, detaches every loop device over one of its images and
 * deletes the directory. It is
 * synchronous, so a process 'exit' hook runs it too (a second Ctrl-C exits the CLI at once),
 * and a scratch directory whose owner process is gone (killed with SIGKILL) is swept by the
 * next open(). Nothing outside the run's directory is ever touched: a loop device is detached
 * only while its backing file is one of the run's images, a mount is unmounted only when its
 * mount point is inside the run's directory.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync, openSync, closeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve, sep } from 'node:path';

import { CowlabError } from '../errors.js';
import { processAlive } from '../util/process.js';
import { findTool, TOOL_PACKAGES, type ToolName } from '../util/tools.js';
import { readBlockCounters, type BlockCounters } from './blockdev.js';

export const SCRATCH_PREFIX = 'cowlab-storage-';

export type FsKind = 'btrfs' | 'xfs';

/** The smallest image each mkfs accepts (xfsprogs 6 refuses file systems under 300 MiB). */
export const MIN_IMAGE_BYTES: Readonly<Record<FsKind, number>> = { btrfs: 256 * 2 ** 20, xfs: 512 * 2 ** 20 };

const MKFS: Readonly<Record<FsKind, { tool: ToolName; args: (dev: string) => string[] }>> = {
  // -f: the image is ours and new; -q: quiet. Defaults otherwise (DUP metadata, no-holes).
  btrfs: { tool: 'mkfs.btrfs', args: (dev) => ['-q', '-f', dev] },
  // reflink=1 is xfsprogs' default since 5.1; said explicitly, since the experiments need it.
  xfs: { tool: 'mkfs.xfs', args: (dev) => ['-q', '-f', '-m', 'reflink=1', dev] },
};

export interface ScratchOptions {
  /** Where the run's directory is made (default: os.tmpdir()). */
  parent?: string;
  /** A PATH-like list the tools are looked up on (default $PATH). */
  searchPath?: string;
  /** Treated as root or not (default: the effective uid is 0). For tests of the refusal. */
  root?: boolean;
}

/** One scratch file system: its image, loop device and mount point. */
export interface ScratchFs {
  kind: FsKind;
  image: string;
  /** /dev/loopN */
  device: string;
  /** loopN: its counters are /sys/block/loopN/stat. */
  deviceName: string;
  mountpoint: string;
  bytes: number;
}

/** A loop device over one of the scratch space's images. */
export interface ScratchLoop {
  image: string;
  /** /dev/loopN */
  device: string;
  /** loopN: its counters are /sys/block/loopN/stat. */
  deviceName: string;
  bytes: number;
}

interface Mount {
  mountpoint: string;
}

const open = new Set<Scratch>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  // Synchronous teardown of whatever is still open when the process exits (process.exit
  // after a second Ctrl-C, an uncaught error): spawnSync works in an 'exit' listener.
  process.on('exit', () => {
    for (const s of [...open]) s.close();
  });
}

function notMeasurable(message: string): CowlabError {
  return new CowlabError('ERR_NOT_MEASURABLE', message);
}

/** Decodes the octal escapes of /proc/self/mountinfo (\040 for a space, ...). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Every mount point of this mount namespace, with its file system type and source. */
export function listMounts(): { mountpoint: string; fstype: string; source: string }[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const out: { mountpoint: string; fstype: string; source: string }[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = (pre ?? '').split(' ');
    const g = (post ?? '').split(' ');
    if (f[4] === undefined) continue;
    out.push({ mountpoint: unescapeMountPath(f[4]), fstype: g[0] ?? '', source: unescapeMountPath(g[1] ?? '') });
  }
  return out;
}

/** Every attached loop device with its backing file (from /sys/block/loop* /loop/backing_file). */
export function listLoopDevices(): { name: string; backingFile: string }[] {
  const out: { name: string; backingFile: string }[] = [];
  let names: string[];
  try {
    names = readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n));
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      const backingFile = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
      out.push({ name, backingFile: backingFile.replace(/ \(deleted\)$/, '') });
    } catch {
      // not attached
    }
  }
  return out;
}

function inside(dir: string, path: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** What a teardown did, and what it could not undo (empty `left` when all is gone). */
export interface TeardownReport {
  unmounted: string[];
  /** Device-mapper tables removed (dmsetup remove). */
  removed: string[];
  detached: string[];
  left: string[];
}

/** The prefix of the device-mapper tables a scratch space makes: its directory's name, so a
 *  sweep of a dead run's directory finds its tables too. */
export function dmPrefix(dir: string): string {
  return `${basename(dir)}-`;
}

/** Every device-mapper table (from /sys/block/dm-* /dm/name), with its dm-N device name. */
export function listDmTables(): { name: string; device: string }[] {
  let names: string[];
  try {
    names = readdirSync('/sys/block').filter((n) => /^dm-\d+$/.test(n));
  } catch {
    return [];
  }
  const out: { name: string; device: string }[] = [];
  for (const device of names) {
    try {
      out.push({ name: readFileSync(`/sys/block/${device}/dm/name`, 'utf8').trim(), device });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** dmsetup without udev: a guest has none, and the run waits for no udev event. */
export const DMSETUP_ENV = { DM_DISABLE_UDEV: '1' };

/**
 * Unmounts every mount inside `dir` (deepest first), detaches every loop device whose backing
 * file is inside it, then deletes it, unless something could not be undone (then it stays,
 * for the next sweep, and `left` says what). Synchronous.
 */
export function teardownDir(dir: string, tools: { umount: string | null; losetup: string | null; dmsetup?: string | null }): TeardownReport {
  const report: TeardownReport = { unmounted: [], removed: [], detached: [], left: [] };
  const mounted = () => listMounts().filter((m) => inside(dir, m.mountpoint)).map((m) => m.mountpoint).sort((a, b) => b.length - a.length);
  for (let attempt = 0; attempt < 5; attempt++) {
    const mps = mounted();
    if (mps.length === 0) break;
    for (const mp of mps) {
      if (tools.umount === null) break;
      // The last attempt detaches lazily: the mount is gone from the tree even if busy.
      const args = attempt === 4 ? ['-l', mp] : [mp];
      const r = spawnSync(tools.umount, args, { encoding: 'utf8', timeout: 60_000 });
      if (r.status === 0) report.unmounted.push(mp);
    }
    if (mounted().length > 0) sleepMs(100 * (attempt + 1));
  }
  for (const mp of mounted()) report.left.push(`mount ${mp}`);
  // Device-mapper tables before the loop devices under them. A snapshot holds its origin's
  // device open: what is busy now goes on the next attempt.
  const tables = () => listDmTables().filter((t) => t.name.startsWith(dmPrefix(dir)));
  for (let attempt = 0; attempt < 5 && tables().length > 0 && tools.dmsetup; attempt++) {
    for (const t of tables().sort((a, b) => b.name.localeCompare(a.name))) {
      const r = spawnSync(tools.dmsetup, ['remove', '--noudevsync', t.name], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...DMSETUP_ENV } });
      if (r.status === 0) report.removed.push(t.name);
    }
    if (tables().length > 0) sleepMs(100 * (attempt + 1));
  }
  for (const t of tables()) report.left.push(`device-mapper table ${t.name} (/dev/${t.device})`);
  for (let attempt = 0; attempt < 5; attempt++) {
    const loops = listLoopDevices().filter((l) => inside(dir, l.backingFile));
    if (loops.length === 0) break;
    for (const l of loops) {
      if (tools.losetup === null) break;
      const r = spawnSync(tools.losetup, ['-d', `/dev/${l.name}`], { encoding: 'utf8', timeout: 60_000 });
      if (r.status === 0) report.detached.push(`/dev/${l.name}`);
    }
    // A detached device with a reference left (a lazy unmount) goes once it is released.
    if (listLoopDevices().some((l) => inside(dir, l.backingFile))) sleepMs(100 * (attempt + 1));
  }
  for (const l of listLoopDevices().filter((x) => inside(dir, x.backingFile))) report.left.push(`loop device /dev/${l.name} (${l.backingFile})`);
  if (report.left.length === 0) rmSync(dir, { recursive: true, force: true });
  return report;
}

/** Scratch directories of cowlab processes that are gone (killed before they could tear down). */
export function staleScratchDirs(parent: string = tmpdir()): string[] {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return [];
  }
  return entries
    .map((d) => ({ d, m: new RegExp(`^${SCRATCH_PREFIX}(\\d+)-`).exec(d) }))
    .filter((x) => x.m !== null && Number(x.m[1]) !== process.pid && !processAlive(Number(x.m[1])))
    .map((x) => join(parent, x.d));
}

/**
 * The scratch space of one run. open() checks root and creates the directory; filesystem()
 * makes a file system; close() tears everything down (idempotent, never throws).
 */
export class Scratch {
  readonly dir: string;
  readonly #searchPath: string | undefined;
  readonly #mounts: Mount[] = [];
  readonly #filesystems: ScratchFs[] = [];
  #closed = false;
  /** What the last close() did. */
  lastTeardown: TeardownReport | null = null;

  private constructor(dir: string, searchPath: string | undefined) {
    this.dir = dir;
    this.#searchPath = searchPath;
  }

  /**
   * A new scratch space. ERR_NOT_MEASURABLE without root (loop devices and mounts need
   * CAP_SYS_ADMIN) or without losetup / mount. Sweeps the directories of dead cowlab runs first.
   */
  static open(opts: ScratchOptions = {}): Scratch {
    if (process.platform !== 'linux') throw new CowlabError('ERR_UNSUPPORTED_PLATFORM', `scratch file systems need Linux (loop devices); this is ${process.platform}`);
    const root = opts.root ?? process.geteuid?.() === 0;
    if (!root) {
      throw notMeasurable('needs root: attaching loop devices and mounting file systems needs CAP_SYS_ADMIN (run as root, e.g. with sudo)');
    }
    const parent = resolve(opts.parent ?? tmpdir());
    const probe = new Scratch(parent, opts.searchPath);
    probe.tool('losetup', 'a loop device over the scratch image');
    probe.tool('mount', 'mounting the scratch file system');
    probe.tool('umount', 'unmounting the scratch file system');
    const tools = { umount: probe.tool('umount', ''), losetup: probe.tool('losetup', ''), dmsetup: findTool('dmsetup', opts.searchPath) };
    for (const stale of staleScratchDirs(parent)) teardownDir(stale, tools);
    const dir = mkdtempSync(join(parent, `${SCRATCH_PREFIX}${process.pid}-`));
    const s = new Scratch(dir, opts.searchPath);
    open.add(s);
    installExitHook();
    return s;
  }

  /** The path of a tool; ERR_NOT_MEASURABLE naming its Debian package when it is missing. */
  tool(name: ToolName, why: string): string {
    const p = findTool(name, this.#searchPath);
    if (p !== null) return p;
    throw notMeasurable(`${name} is not installed${why ? `; ${why} needs it` : ''}: install it with \`apt-get install ${TOOL_PACKAGES[name]}\``);
  }

  /** Runs a tool; ERR_SYSCALL-like failure (code ERR_NOT_MEASURABLE when the kernel refuses). */
  run(name: ToolName, args: readonly string[], why: string, env: Record<string, string> = {}): string {
    const path = this.tool(name, why);
    const r = spawnSync(path, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, LC_ALL: 'C', ...env } });
    if (r.status !== 0) {
      const text = `${r.stderr ?? ''}\n${r.stdout ?? ''}${r.error ? `\n${r.error.message}` : ''}`.split('\n').map((l) => l.trim()).filter(Boolean);
      throw new CowlabError('ERR_NOT_MEASURABLE', `${why}: \`${name} ${args.join(' ')}\` failed: ${text.at(-1) ?? `exit status ${r.status}`}`);
    }
    return r.stdout;
  }

  /** Free bytes of the file system holding the scratch directory (sizes are clamped to it). */
  freeBytes(): number {
    const s = statfsSync(this.dir);
    return s.bavail * s.bsize;
  }

  #check(): void {
    if (this.#closed) throw new CowlabError('ERR_RELEASED', 'the scratch space was closed');
  }

  /** A directory inside the scratch space. */
  mkdir(name: string): string {
    this.#check();
    const p = join(this.dir, name);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /**
   * A new `kind` file system of `bytes` (a sparse image; at least MIN_IMAGE_BYTES), on a loop
   * device, mounted at <dir>/<name>. ERR_NOT_MEASURABLE when the tools or the kernel's support
   * are missing (the message names the Debian package).
   */
  filesystem(kind: FsKind, bytes: number, name: string = `${kind}${this.#filesystems.length}`): ScratchFs {
    this.#check();
    const mkfs = MKFS[kind];
    const mkfsPath = this.tool(mkfs.tool, `a ${kind} scratch file system`);
    const size = Math.max(bytes, MIN_IMAGE_BYTES[kind]);
    if (size > this.freeBytes() / 2) {
      throw notMeasurable(`a ${kind} scratch image of ${size} bytes needs more than half of the ${this.freeBytes()} bytes free under ${this.dir}`);
    }
    const { image, device, deviceName } = this.loopDevice(name, size);
    const r = spawnSync(mkfsPath, mkfs.args(device), { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw notMeasurable(`${mkfs.tool} failed on ${device}: ${(r.stderr || r.stdout).trim().split('\n').at(-1) ?? ''}`);
    const mountpoint = this.mkdir(name);
    this.mount(['-t', kind, device, mountpoint], `mounting the ${kind} scratch file system (does the kernel have ${kind}? see /proc/filesystems)`, mountpoint);
    const fs: ScratchFs = { kind, image, device, deviceName, mountpoint, bytes: size };
    this.#filesystems.push(fs);
    return fs;
  }

  /**
   * A loop device over a new sparse image <dir>/<name>.img of `bytes`; `fill` may write the
   * image's content first (the device then reads it). Detached at close.
   */
  loopDevice(name: string, bytes: number, fill?: (image: string) => void): ScratchLoop {
    this.#check();
    const image = join(this.dir, `${name}.img`);
    const fd = openSync(image, 'wx', 0o600);
    try {
      ftruncateSync(fd, bytes);
    } finally {
      closeSync(fd);
    }
    fill?.(image);
    const device = this.run('losetup', ['--find', '--show', image], `attaching a loop device to ${image}`).trim();
    const deviceName = device.replace(/^\/dev\//, '');
    if (!/^loop\d+$/.test(deviceName)) throw new CowlabError('ERR_VERIFY', `losetup --find --show printed '${device}', not a loop device`);
    return { image, device, deviceName, bytes };
  }

  /** Detaches a loop device made by loopDevice (before close, to free its image's space). */
  detach(loop: ScratchLoop): void {
    this.run('losetup', ['-d', loop.device], `detaching ${loop.device}`);
    rmSync(loop.image, { force: true });
  }

  /** `dmsetup <args>` without udev (see DMSETUP_ENV); ERR_NOT_MEASURABLE when it fails. */
  dmsetup(args: readonly string[], why: string): string {
    this.#check();
    return this.run('dmsetup', ['--noudevsync', ...args], why, DMSETUP_ENV);
  }

  /** The name of a device-mapper table of this scratch space (removed at close). */
  dmName(name: string): string {
    return `${dmPrefix(this.dir)}${name}`;
  }

  /** mount(8) with `args`; the mount point (inside the scratch directory) is unmounted at close. */
  mount(args: readonly string[], why: string, mountpoint: string): void {
    this.#check();
    if (!inside(this.dir, resolve(mountpoint))) throw new CowlabError('ERR_INVALID_ARGUMENT', `mount point ${mountpoint} is outside the scratch directory ${this.dir}`);
    this.run('mount', args, why);
    this.#mounts.push({ mountpoint: resolve(mountpoint) });
  }

  /** An overlayfs over `lower` with `upper` and `work` (on one file system), mounted at <dir>/<name>. */
  overlay(lower: string, upper: string, work: string, name: string): string {
    const mp = this.mkdir(name);
    this.mount(['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, mp], 'mounting an overlayfs (does the kernel have overlay? see /proc/filesystems)', mp);
    return mp;
  }

  /** Unmounts one mount made by this scratch space (before close, e.g. to delete a snapshot's fs). */
  unmount(mountpoint: string): void {
    this.#check();
    this.run('umount', [mountpoint], `unmounting ${mountpoint}`);
  }

  /** syncfs(2) of the file system holding `path` (`sync -f`): every dirty page and the journal or transaction written. */
  syncfs(path: string): void {
    this.run('sync', ['-f', path], `syncing the file system of ${path}`);
  }

  /** The I/O counters of a scratch file system's loop device. */
  counters(fs: ScratchFs): BlockCounters {
    return readBlockCounters(fs.deviceName);
  }

  /** Writes a marker file (the scratch space's owner), for whoever finds the directory. */
  label(text: string): void {
    writeFileSync(join(this.dir, 'OWNER'), `${text}\npid ${process.pid}\n`);
  }

  /**
   * Unmounts everything, detaches the loop devices, deletes the directory. Idempotent, never
   * throws; `lastTeardown` says what was done and what (if anything) is left.
   */
  close(): TeardownReport {
    if (this.#closed) return this.lastTeardown ?? { unmounted: [], removed: [], detached: [], left: [] };
    this.#closed = true;
    open.delete(this);
    const report = teardownDir(this.dir, {
      umount: findTool('umount', this.#searchPath) ?? findTool('umount'),
      losetup: findTool('losetup', this.#searchPath) ?? findTool('losetup'),
      dmsetup: findTool('dmsetup', this.#searchPath) ?? findTool('dmsetup'),
    });
    this.lastTeardown = report;
    return report;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The scratch spaces still open in this process. */
  static openCount(): number {
    return open.size;
  }
}

/**
 * Runs `body` with a new scratch space and always closes it (success, failure, abort). A
 * teardown that leaves something behind after a success is an error (ERR_VERIFY).
 */
export async function withScratch<T>(opts: ScratchOptions, body: (s: Scratch) => Promise<T>): Promise<T> {
  const s = Scratch.open(opts);
  let ok = false;
  try {
    const out = await body(s);
    ok = true;
    return out;
  } finally {
    const r = s.close();
    if (ok && r.left.length > 0) {
      // eslint-disable-next-line no-unsafe-finally
      throw new CowlabError('ERR_VERIFY', `the scratch space ${s.dir} could not be torn down: ${r.left.join('; ')}`);
    }
  }
}
