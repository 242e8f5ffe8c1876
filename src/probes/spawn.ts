/**
 * Spawn timing: what the parent pays to start a process running a program, by fork()+exec,
 * vfork()+exec or posix_spawn (native/spawnprobe.cc). fork() copies the parent's page tables,
 * so its cost grows with the parent's memory; the other two share the parent's memory until
 * the exec, so theirs should not.
 *
 *   const t = await timeSpawn({ kind: 'vfork', program: '/bin/true' });
 *   console.log(t.callNs, t.totalNs);
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';

import { invalidOption } from '../errors.js';
import { native, wordNativeError } from '../native.js';
import { decodeWaitStatus, describeWaitStatus } from '../util/procStat.js';
import { choiceOption, integerOption } from '../options.js';

/** How the process is created; the order is the native probe's kind code. */
export const SPAWN_KINDS = ['fork', 'vfork', 'posix_spawn'] as const;
export type SpawnKind = (typeof SPAWN_KINDS)[number];

export interface SpawnTimingOptions {
  kind: SpawnKind;
  /** Absolute path of an executable file: execve does not search PATH. */
  program: string;
  /** Arguments after argv[0] (the program's path). Default none. */
  args?: readonly string[];
  /** A child still running after this long is killed and reaped, and the call rejects with
   *  ERR_CHILD_DEADLINE. Default 10 s. */
  deadlineMs?: number;
  /** Run the call with the calling thread at real-time priority (SCHED_FIFO; the child starts
   *  as a normal task). Without it a vfork()+exec or posix_spawn parent, woken by the exec onto
   *  the child's CPU, may wait there until the program has exited: the time then includes the
   *  program's run (about 110 µs against 550 µs for /bin/true, at random). Needs CAP_SYS_NICE
   *  (or an RLIMIT_RTPRIO): else it rejects with ERR_SYSCALL, errno EPERM. Default false. */
  realtime?: boolean;
}

export interface SpawnTiming {
  kind: SpawnKind;
  /** ns the parent spent in the call: fork() until it returned; vfork() until the child had
   *  exec'd (the parent is suspended until then); posix_spawn until it returned. */
  callNs: number;
  /** ns from the call until the child exited (status 0) and was reaped. */
  totalNs: number;
}

const MAX_DEADLINE_MS = 24 * 3_600_000;

/** The program must be runnable before anything is started: a bad path would otherwise fail
 *  differently per kind (posix_spawn with ERR_SYSCALL, the forks with exit status 127). */
function checkProgram(program: unknown): string {
  if (typeof program !== 'string' || program === '') throw invalidOption('program', `must be a path, got ${typeof program === 'string' ? "''" : String(program)}`);
  if (program.includes('\0')) throw invalidOption('program', 'must not contain a NUL byte');
  if (!isAbsolute(program)) throw invalidOption('program', `must be an absolute path (execve does not search PATH), got '${program}'`);
  try {
    if (!statSync(program).isFile()) throw new Error('not a regular file');
    accessSync(program, fsConstants.X_OK);
  } catch (err) {
    throw invalidOption('program', `'${program}' is not an executable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return program;
}

function checkArgs(args: unknown): string[] {
  if (args === undefined) return [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw invalidOption('args', 'must be an array of strings');
  // A NUL would silently cut the argument short on its way into execve's argv.
  if (args.some((a: string) => a.includes('\0'))) throw invalidOption('args', 'must not contain a NUL byte');
  return [...(args as string[])];
}

/**
 * Starts `program` once by `kind`, waits for it to exit and reaps it; resolves with the time
 * of the call in the parent and of the whole life. Options are checked first
 * (ERR_INVALID_OPTION naming the field). A child that exits non-zero or is killed rejects
 * with ERR_CHILD_FAILED (status or signal in the message); one past the deadline is killed
 * and rejects with ERR_CHILD_DEADLINE; a failed posix_spawn rejects with ERR_SYSCALL. The
 * child is reaped on every path, and Ctrl-C (killAllChildren) kills it too.
 */
export async function timeSpawn(options: SpawnTimingOptions): Promise<SpawnTiming> {
  const kind = choiceOption('kind', options.kind, SPAWN_KINDS);
  const path = checkProgram(options.program);
  const args = checkArgs(options.args);
  const deadlineMs = integerOption('deadlineMs', options.deadlineMs ?? 10_000, { min: 1, max: MAX_DEADLINE_MS });
  const code = SPAWN_KINDS.indexOf(kind) as 0 | 1 | 2;
  const realtime = options.realtime ?? false;
  if (typeof realtime !== 'boolean') throw invalidOption('realtime', `must be a boolean, got ${String(realtime)}`);
  try {
    const t = await native().spawnProbe({ kind: code, path, args, deadlineMs, realtime });
    return { kind, callNs: t.callNs, totalNs: t.totalNs };
  } catch (err) {
    throw wordNativeError(err, (facts, message) => (typeof facts.status === 'number' ? `the ${kind} child running ${path} ${childEnd(facts.status)}` : message));
  }
}

/** How a spawned child that did not exit 0 ended; 127 is the shell's and our children's
 *  "exec failed". */
function childEnd(status: number): string {
  const { exitCode } = decodeWaitStatus(status);
  return `${describeWaitStatus(status)}${exitCode === 127 ? ' (exec failed)' : ''}`;
}

/** What the child of forkAndStore reads first: `bytes` (at most 4096) from the inherited `fd`. */
export interface ForkReadFirst {
  fd: number;
  bytes: number;
}

/**
 * Forks this process once; the child (with `read`, after reading that many bytes from the fd it
 * inherited, which moves the offset of the open file description it shares with this process)
 * stores `value` (8 bytes) at each of `addresses` in its copy of this process's memory and exits.
 * Resolves when it exited 0: a fork reaches that memory. Rejects with ERR_CHILD_FAILED saying
 * how it ended otherwise (a mapping the fork does not copy, MADV_DONTFORK, is absent in the
 * child: "was killed by signal 11 (SIGSEGV)"; a short read: "exited with status 3"); the child is
 * reaped on every path. This process's private memory is never written.
 */
export async function forkAndStore(addresses: readonly bigint[], value = 0xc0ffeen, deadlineMs = 10_000, read?: ForkReadFirst): Promise<void> {
  if (read !== undefined) {
    integerOption('read.fd', read.fd, { min: 0, max: 1 << 20 });
    integerOption('read.bytes', read.bytes, { min: 1, max: 4096 });
  }
  try {
    const first = read === undefined ? {} : { readFd: read.fd, readBytes: read.bytes };
    await native().spawnProbe({ kind: 3, addresses: BigUint64Array.from(addresses), value, deadlineMs, ...first });
  } catch (err) {
    throw wordNativeError(err, (facts, message) => (typeof facts.status === 'number' ? `the forked child ${describeWaitStatus(facts.status)}` : message));
  }
}
