/**
 * Files cowlab reads and writes on the user's behalf: bounded reads, and output paths checked
 * before anything is measured.
 *
 * Reading: a file is read up to a cap (a results file is never hundreds of MiB; `/dev/zero` must
 * not fill memory). Regular files are checked by size before a byte is read; pipes (`/dev/stdin`)
 * are read up to the cap; devices, sockets and directories are refused.
 *
 * Writing: an output path must lie outside /proc, /sys and /dev (a recursive mkdir loops on
 * procfs, and a write there reaches the kernel or a device), its directory must exist and be
 * writable, and the target must not be a directory or a special file. Files are replaced
 * atomically through a temporary file beside the target, which is removed on every path.
 * Directories are created only where a caller says so, one component at a time.
 *
 * Every problem is ERR_INVALID_OPTION (exit 2) naming the field (`--out`, `--report`, ...) and
 * the path, except a failure no check could have foreseen (ENOSPC, EIO: ERR_SYSCALL).
 */
import { accessSync, closeSync, constants, fstatSync, mkdirSync, openSync, readSync, realpathSync, renameSync, rmSync, statSync, statfsSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { CowlabError, invalidOption } from '../errors.js';

const MiB = 1 << 20;

/** The largest results file `report` and `compare` read (the suite writes a few MiB). */
export const MAX_RESULTS_BYTES = 256 * MiB;

/** Where cowlab never writes: kernel interfaces and device nodes, whatever the permissions. */
const FORBIDDEN_ROOTS = ['/proc', '/sys', '/dev'] as const;

/** statfs f_type of the kernel's pseudo filesystems (linux/magic.h), mounted wherever they are. */
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x6e736673, 'nsfs'],
]);

/** errno codes of a path the user gave (exit 2); anything else while writing is a runtime failure. */
const PATH_ERRNOS: ReadonlySet<string> = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST', 'EACCES', 'EPERM', 'EROFS', 'ELOOP', 'ENAMETOOLONG', 'ENOTEMPTY', 'EXDEV', 'EINVAL']);

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'it already exists',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
  ENOSPC: 'no space left on device',
};

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** "ENOENT (no such file or directory)" */
function describeErrno(err: unknown): string {
  const code = errnoOf(err);
  if (code === undefined) return (err as Error)?.message ?? String(err);
  return ERRNO_TEXT[code] ? `${code} (${ERRNO_TEXT[code]})` : code;
}

/** "256 MiB", "300.5 MiB", "64 KiB", "1000 bytes" */
function mib(bytes: number): string {
  if (bytes >= MiB) return `${Number.isInteger(bytes / MiB) ? bytes / MiB : (bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isFIFO()) return 'a pipe';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'a file';
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/** True when `path` names a directory (following symbolic links). */
export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function underRoot(path: string): string | null {
  for (const root of FORBIDDEN_ROOTS) if (path === root || path.startsWith(`${root}/`)) return root;
  return null;
}

/**
 * Why cowlab must not write at `path` (absolute), or null: it is in /proc, /sys or /dev, by
 * its name, by where its deepest existing directory really is (symbolic links followed), or by
 * that directory's filesystem (procfs or sysfs mounted elsewhere).
 */
export function forbiddenOutputReason(path: string): string | null {
  const lexical = underRoot(path);
  if (lexical) return `it is in ${lexical}: cowlab writes no files into /proc, /sys or /dev`;
  let existing = path;
  for (;;) {
    try {
      statSync(existing);
      break;
    } catch {
      const up = dirname(existing);
      if (up === existing) return null;
      existing = up;
    }
  }
  let real: string;
  try {
    real = realpathSync(existing);
  } catch {
    return null;
  }
  const viaLink = underRoot(real);
  if (viaLink) return `${existing} leads into ${viaLink} (${real}): cowlab writes no files into /proc, /sys or /dev`;
  try {
    const fs = PSEUDO_FS.get(Number(statfsSync(real).type));
    if (fs) return `${real} is on ${fs}, a kernel interface: cowlab writes no files there`;
  } catch {
    // statfs failing is no reason to refuse; the checks that follow say what is wrong
  }
  return null;
}

interface Reach {
  /** The deepest ancestor of the path that exists (maybe the path itself). */
  existing: string;
  st: Stats;
  /** Components below `existing` that do not exist yet, outermost first. */
  missing: string[];
}

function reach(path: string, field: string): Reach {
  const missing: string[] = [];
  let p = path;
  for (;;) {
    try {
      return { existing: p, st: statSync(p), missing };
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'EACCES') throw invalidOption(field, `${path}: cannot look inside ${dirname(p)}: permission denied`);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw invalidOption(field, `${path}: ${describeErrno(err)}`);
      const up = dirname(p);
      if (up === p) throw invalidOption(field, `${path}: ${describeErrno(err)}`);
      missing.unshift(basename(p));
      p = up;
    }
  }
}

function checkWritableDir(dir: string, field: string, what: string): void {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    const code = errnoOf(err);
    const why = code === 'EROFS' ? 'is on a read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'is not writable' : `cannot be written: ${describeErrno(err)}`;
    throw invalidOption(field, `${what}: ${dir} ${why}`);
  }
}

/** How much of a missing directory path a caller will create: nothing, the last component, or all. */
export type CreateDirs = 'none' | 'last' | 'all';

/**
 * Checks that `dir` is (or can become, per `create`) a writable directory cowlab may write in,
 * without creating anything. Returns the absolute path.
 */
export function checkOutputDir(dir: string, field: string, create: CreateDirs = 'none'): string {
  if (dir === '') throw invalidOption(field, 'an empty path');
  const abs = resolve(dir);
  const forbidden = forbiddenOutputReason(abs);
  if (forbidden) throw invalidOption(field, `${abs}: ${forbidden}`);
  const r = reach(abs, field);
  if (!r.st.isDirectory()) {
    throw invalidOption(field, r.missing.length === 0 ? `${abs} is not a directory (it is ${kindOf(r.st)})` : `${abs}: ${r.existing} is not a directory`);
  }
  if (r.missing.length > 0) {
    if (create === 'none') throw invalidOption(field, `directory ${abs} does not exist`);
    if (create === 'last' && r.missing.length > 1) {
      throw invalidOption(field, `${abs}: its parent ${dirname(abs)} does not exist (cowlab creates only ${basename(abs)} itself, not its parents)`);
    }
  }
  checkWritableDir(r.existing, field, abs);
  return abs;
}

export interface OutputFileOptions {
  /** Create missing parent directories (only for cowlab's own default locations). */
  createParents?: boolean;
  /** The file name to suggest when `path` is an existing directory. */
  suggest?: string;
}

/**
 * Checks an output file path before anything is measured: not in /proc, /sys, /dev; its
 * directory exists (or, with createParents, can be created) and is writable; the target is not
 * a directory, a device, a pipe or a socket, and is writable if it exists. Creates nothing.
 * Returns the absolute path. Throws ERR_INVALID_OPTION naming `field` and the reason.
 */
export function checkOutputFile(path: string, field: string, opts: OutputFileOptions = {}): string {
  if (path === '') throw invalidOption(field, 'an empty path');
  const abs = resolve(path);
  const forbidden = forbiddenOutputReason(abs);
  if (forbidden) throw invalidOption(field, `${abs}: ${forbidden}`);
  let st: Stats | null;
  try {
    st = statOrNull(abs);
  } catch (err) {
    const code = errnoOf(err);
    if (code !== 'ENOTDIR' && code !== 'EACCES') throw invalidOption(field, `${abs}: ${describeErrno(err)}`);
    st = null; // reach() below names the component that is not a directory or not searchable
  }
  if (st?.isDirectory()) {
    throw invalidOption(field, `${abs} is a directory; give a file name${opts.suggest ? ` (e.g. ${join(abs, opts.suggest)})` : ''}`);
  }
  if (st && !st.isFile()) throw invalidOption(field, `${abs} is ${kindOf(st)}, not a regular file: cowlab writes only regular files`);
  const parent = dirname(abs);
  const r = reach(parent, field);
  if (!r.st.isDirectory()) throw invalidOption(field, `${abs}: ${r.existing} is not a directory`);
  if (r.missing.length > 0 && !opts.createParents) throw invalidOption(field, `${abs}: directory ${parent} does not exist`);
  checkWritableDir(r.existing, field, abs);
  if (st) {
    try {
      accessSync(abs, constants.W_OK);
    } catch {
      throw invalidOption(field, `${abs} exists and is not writable`);
    }
  }
  return abs;
}

/** A failure while writing: the user's path (exit 2) or the machine (exit 1). */
function writeError(field: string, path: string, err: unknown): CowlabError {
  if (err instanceof CowlabError) return err;
  const code = errnoOf(err);
  if (code !== undefined && PATH_ERRNOS.has(code)) return invalidOption(field, `cannot write ${path}: ${describeErrno(err)}`);
  return new CowlabError('ERR_SYSCALL', `${field}: cannot write ${path}: ${describeErrno(err)}`, { field, ...(code ? { errno: code } : {}), cause: err });
}

/**
 * Makes `dir` a directory after checking it (checkOutputDir): creates the missing components
 * allowed by `create`, one at a time and never recursively (Node's recursive mkdir loops on
 * procfs). Returns the absolute path.
 */
export function ensureOutputDir(dir: string, field: string, create: Exclude<CreateDirs, 'none'> = 'last'): string {
  const abs = checkOutputDir(dir, field, create);
  const r = reach(abs, field);
  let p = r.existing;
  for (const part of r.missing) {
    p = join(p, part);
    try {
      mkdirSync(p);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST' || !isDirectory(p)) throw writeError(field, p, err);
    }
  }
  return abs;
}

/**
 * Replaces `path` with `data` atomically: a temporary file beside it (same directory, so the
 * rename stays on one filesystem), then rename. The temporary file is removed on every failure.
 * Checks the path first (checkOutputFile); with createParents, makes missing parents.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, field: string, opts: OutputFileOptions = {}): string {
  const abs = checkOutputFile(path, field, opts);
  if (opts.createParents) ensureOutputDir(dirname(abs), field, 'all');
  const tmp = join(dirname(abs), `.${basename(abs)}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`);
  try {
    writeFileSync(tmp, data, { flag: 'wx' });
    renameSync(tmp, abs);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw writeError(field, abs, err);
  }
  return abs;
}

/**
 * Reads a text file of at most `maxBytes` bytes. A regular file larger than that is refused
 * before a byte is read; a pipe (`/dev/stdin`, a FIFO) is read up to the cap; a directory,
 * device or socket is refused. Throws ERR_INVALID_OPTION with `field`: messages start with
 * `<path>: ` when field is the path itself, else with `<field>: <path>: `
 * (`trace: /tmp/t.json: is 300 MiB, more than the 64 MiB limit`).
 */
export function readBoundedText(path: string, maxBytes: number, field: string): string {
  const label = field === path ? path : `${field}: ${path}`;
  const fail = (why: string, cause?: unknown) => new CowlabError('ERR_INVALID_OPTION', `${label}: ${why}`, { field, ...(cause === undefined ? {} : { cause, ...(errnoOf(cause) ? { errno: errnoOf(cause)! } : {}) }) });
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    throw fail(`cannot read: ${describeErrno(err)}`, err);
  }
  if (st.isDirectory()) throw fail('cannot read: EISDIR (it is a directory)');
  if (!st.isFile() && !st.isFIFO()) throw fail(`cannot read: it is ${kindOf(st)}, not a file`);
  if (st.isFile() && st.size > maxBytes) throw fail(`is ${mib(st.size)}, more than the ${mib(maxBytes)} limit`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOCTTY);
  } catch (err) {
    throw fail(`cannot read: ${describeErrno(err)}`, err);
  }
  try {
    const now = fstatSync(fd); // the path may have changed between stat and open
    if (!now.isFile() && !now.isFIFO()) throw fail(`cannot read: it is ${kindOf(now)}, not a file`);
    const chunks: Buffer[] = [];
    let total = 0;
    // A regular file in one read of its size (plus one byte, to see it grew); a pipe, and
    // whatever a file holds beyond its stated size (/proc files say 0), in pieces of 1 MiB.
    let chunk = now.isFile() ? now.size + 1 : MiB;
    for (;;) {
      const want = Math.min(Math.max(chunk, 4096), maxBytes + 1 - total);
      chunk = MiB;
      if (want <= 0) break;
      const buf = Buffer.allocUnsafe(want);
      let n: number;
      try {
        n = readSync(fd, buf, 0, want, null);
      } catch (err) {
        throw fail(`cannot read: ${describeErrno(err)}`, err);
      }
      if (n === 0) break;
      chunks.push(n === want ? buf : buf.subarray(0, n));
      total += n;
    }
    if (total > maxBytes) throw fail(`more than the ${mib(maxBytes)} limit${now.isFIFO() ? ' (read from a pipe)' : ''}`);
    return Buffer.concat(chunks, total).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The same file: one path, or one inode (a hard link, another spelling of the path). False
 *  when either does not exist. */
export function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}
