/**
 * The guest runner: boots a kernel in QEMU and runs one cowlab command in it.
 *
 *   host                                         guest
 *   request disk (argv, files) ---------------> /dev/vda   agent reads it
 *   console (ttyS0) <---------------------------- boot messages, the command's stderr
 *   result disk <------------------------------- /dev/vdb   the command's stdout, framed
 *
 * The command's JSON comes back on its own disk, checked by length and digest (disk.ts), so
 * console noise never mixes into it and a large document arrives whole. Two deadlines: boot
 * (until /init says it is up) and command (until QEMU exits); on either, on a panic, or on
 * Ctrl-C, QEMU is killed (SIGKILL), and the error names the phase with the console's last
 * lines. QEMU runs under `setpriv --pdeathsig KILL`, so it dies with cowlab even when cowlab is
 * killed; its temporary directory is removed on every path (and swept if a killed cowlab left
 * one).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CowlabError, isErrorCode, type CowlabErrorCode } from '../errors.js';
import { meminfo } from '../env/environment.js';
import type { CachedKernel } from '../kernels/store.js';
import { integerOption } from '../options.js';
import { processAlive } from '../util/process.js';
import { requireTool, type ToolName } from '../util/tools.js';
import { chooseAccel, type Accel, type AccelChoice } from './accel.js';
import { encodeFrame, MARK, readFrame, type GuestRequest, type GuestResultMeta } from './disk.js';
import { guestInitramfs } from './initramfs.js';

export interface GuestOptions {
  /** Guest RAM in MiB. */
  memoryMiB: number;
  cpus: number;
  accel: AccelChoice;
  /** From QEMU's start until /init says the kernel is up. */
  bootDeadlineMs: number;
  /** From then until the command's result is written and QEMU has exited. */
  commandDeadlineMs: number;
}

export const DEFAULT_GUEST_OPTIONS: Readonly<GuestOptions> = Object.freeze({
  memoryMiB: 2048,
  cpus: 2,
  accel: 'auto',
  bootDeadlineMs: 120_000,
  commandDeadlineMs: 30 * 60_000,
});

/** Checks guest options given as flags or API fields. */
export function guestOptions(o: { memoryMiB?: unknown; cpus?: unknown; bootDeadlineMs?: unknown; commandDeadlineMs?: unknown; accel?: AccelChoice }, flag: (k: string) => string = (k) => k): GuestOptions {
  const d = DEFAULT_GUEST_OPTIONS;
  const memoryMiB = o.memoryMiB === undefined ? d.memoryMiB : integerOption(flag('memoryMiB'), o.memoryMiB, { min: 256, max: 1 << 20 });
  const availMiB = Math.floor(meminfo().availableBytes / (1 << 20));
  if (memoryMiB > availMiB - 256) {
    throw new CowlabError('ERR_TOO_LARGE', `${flag('memoryMiB')}: a ${memoryMiB} MiB guest does not fit: this host has ${availMiB} MiB available`, { field: flag('memoryMiB') });
  }
  return {
    memoryMiB,
    cpus: o.cpus === undefined ? d.cpus : integerOption(flag('cpus'), o.cpus, { min: 1, max: 64 }),
    accel: o.accel ?? d.accel,
    bootDeadlineMs: o.bootDeadlineMs === undefined ? d.bootDeadlineMs : integerOption(flag('bootDeadlineMs'), o.bootDeadlineMs, { min: 1000 }),
    commandDeadlineMs: o.commandDeadlineMs === undefined ? d.commandDeadlineMs : integerOption(flag('commandDeadlineMs'), o.commandDeadlineMs, { min: 1000 }),
  };
}

export interface GuestCommand {
  /** cowlab's arguments in the guest. */
  argv: string[];
  /** Files the command reads, by name under disk.ts REQUEST_DIR. */
  files?: Record<string, string>;
  /** Kernel features checked in the guest before the command starts ('pagemap', 'thp'). */
  needs?: string[];
  /** Kernel modules to load besides the guest's own (virtio). */
  modules?: readonly string[];
  /** Host tools the command runs, copied into the guest with their libraries. */
  tools?: readonly ToolName[];
}

export interface GuestResult {
  exitCode: number;
  /** The command's stdout, byte for byte. */
  stdout: Buffer;
  stderr: string;
  accel: Accel;
  /** Why this accelerator, when it is not the obvious one (TCG under auto). */
  accelNote: string | null;
  bootMs: number;
  commandMs: number;
}

export interface GuestHooks {
  /** A line the command wrote to stderr (its progress). */
  onLine?: (line: string) => void;
  /** What the runner is doing (building the initramfs, probing KVM). */
  say?: (line: string) => void;
  signal?: AbortSignal;
}

/** The result disk: sparse, so its size costs nothing until the guest writes. */
const RESULT_DISK_BYTES = 1 << 30;
const CONSOLE_TAIL = 30;
const TEMP_PREFIX = 'cowlab-guest-';

/** Temporary directories of cowlab processes that were killed before they could clean up. */
function sweepTemp(): void {
  for (const d of readdirSync(tmpdir())) {
    const m = new RegExp(`^${TEMP_PREFIX}(\\d+)-`).exec(d);
    if (m && !processAlive(Number(m[1]))) rmSync(join(tmpdir(), d), { recursive: true, force: true });
  }
}

function qemuArgs(kernel: CachedKernel, initrd: string, dir: string, accel: Accel, o: GuestOptions): string[] {
  return [
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-chardev', 'stdio,id=console,signal=off', '-serial', 'chardev:console',
    '-accel', accel, ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', String(o.memoryMiB), '-smp', String(o.cpus),
    '-kernel', kernel.image, '-initrd', initrd,
    '-append', 'console=ttyS0 panic=-1 oops=panic loglevel=6',
    '-drive', `if=none,id=request,file=${join(dir, 'request.img')},format=raw,readonly=on`, '-device', 'virtio-blk-pci,drive=request',
    '-drive', `if=none,id=result,file=${join(dir, 'result.img')},format=raw`, '-device', 'virtio-blk-pci,drive=result',
  ];
}


function phaseError(code: CowlabErrorCode, what: string, tail: readonly string[]): CowlabError {
  const lines = tail.length ? `; last console lines:\n  ${tail.join('\n  ')}` : '; the console printed nothing';
  return new CowlabError(code, `${what}${lines}`);
}

/** A code the guest reported, if it is one of cowlab's (else a guest failure). */
function guestCode(code: string | undefined): CowlabErrorCode {
  return code !== undefined && isErrorCode(code) ? code : 'ERR_GUEST_FAILED';
}

/**
 * The guest's console, line by line: the markers /init and the agent print (disk.ts MARK), a
 * kernel panic, the last lines (for error messages), and the command's own stderr lines.
 */
class GuestConsole {
  readonly tail: string[] = [];
  panic: string | null = null;
  error: { code: string; message: string } | null = null;
  private pending = '';

  constructor(
    private readonly onBooted: () => void,
    private readonly hooks: GuestHooks,
    private readonly booted: () => boolean,
  ) {}

  feed(chunk: string): void {
    this.pending += chunk;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      this.line(this.pending.slice(0, nl));
      this.pending = this.pending.slice(nl + 1);
    }
  }

  end(): void {
    if (this.pending) this.line(this.pending);
    this.pending = '';
  }

  private line(raw: string): void {
    const line = raw.replace(/\r/g, '');
    if (process.env.COWLAB_DEBUG === '1') process.stderr.write(`cowlab: guest console: ${line}\n`);
    // A marker may share its line with a kernel message printed at the same moment.
    const at = line.indexOf(`${MARK} `);
    if (at >= 0) {
      const [word, ...rest] = line.slice(at + MARK.length + 1).split(' ');
      if (word === 'booted' && !this.booted()) this.onBooted();
      else if (word === 'error') this.error = { code: rest[0] ?? 'ERR_GUEST_FAILED', message: rest.slice(1).join(' ') };
      else if (word === 'warning') this.hooks.say?.(rest.join(' '));
      return;
    }
    this.tail.push(line);
    if (this.tail.length > CONSOLE_TAIL) this.tail.shift();
    if (/Kernel panic - not syncing/.test(line)) this.panic ??= line.replace(/^\[[\s\d.]+\]\s*/, '');
    // After boot, lines without a kernel timestamp are the command's stderr: its progress.
    if (this.booted() && line.trim() !== '' && !/^\[\s*\d+\.\d+\]/.test(line)) this.hooks.onLine?.(line);
  }
}

/** The result frame on the result disk, or the error that explains why there is none. */
function readResult(dir: string, kernel: CachedKernel, tail: readonly string[]): { meta: GuestResultMeta; payload: Buffer } {
  const fd = openSync(join(dir, 'result.img'), 'r');
  let frame;
  try {
    frame = readFrame<GuestResultMeta>(fd, RESULT_DISK_BYTES);
  } finally {
    closeSync(fd);
  }
  if ('problem' in frame) throw phaseError('ERR_GUEST_FAILED', `the ${kernel.release} guest ended without a complete result (phase: command): ${frame.problem}`, tail);
  if (frame.meta.error) throw new CowlabError(guestCode(frame.meta.error.code), `in the ${kernel.release} guest: ${frame.meta.error.message}`);
  return frame;
}

/** The two disks: the request, framed, and an empty (sparse) result disk. */
function writeDisks(dir: string, request: GuestRequest): void {
  writeFileSync(join(dir, 'request.img'), encodeFrame({ kind: 'request' }, Buffer.from(JSON.stringify(request))));
  writeFileSync(join(dir, 'result.img'), '');
  truncateSync(join(dir, 'result.img'), RESULT_DISK_BYTES);
}

/**
 * Boots `kernel`, runs `cmd` in it and returns its exit code and stdout. Throws ERR_GUEST_BOOT,
 * ERR_GUEST_DEADLINE, ERR_GUEST_FAILED or ERR_INTERRUPTED, or the error the guest reported
 * before the command could start (ERR_KERNEL_FEATURE, ...).
 */
export async function runInGuest(kernel: CachedKernel, cmd: GuestCommand, options: GuestOptions, hooks: GuestHooks = {}): Promise<GuestResult> {
  const qemu = requireTool('qemu-system-x86_64', 'booting a kernel in a guest');
  const setpriv = requireTool('setpriv', 'running QEMU');
  const say = hooks.say ?? (() => {});
  const { accel, note } = await chooseAccel(options.accel, kernel.image, say);
  if (note) say(note);
  const initrd = await guestInitramfs(kernel, cmd.modules ?? [], say, cmd.tools ?? []);
  hooks.signal?.throwIfAborted();

  sweepTemp();
  const dir = mkdtempSync(join(tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
  try {
    writeDisks(dir, { argv: cmd.argv, files: cmd.files ?? {}, accel, kernelSpec: kernel.spec, needs: cmd.needs ?? [] });
    const t0 = performance.now();
    let bootedAt: number | null = null;
    const child = spawn(setpriv, ['--pdeathsig', 'KILL', '--', qemu, ...qemuArgs(kernel, initrd.path, dir, accel, options)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let failure: CowlabError | null = null;
    const kill = (err: CowlabError) => {
      failure ??= err;
      child.kill('SIGKILL');
    };
    let commandTimer: NodeJS.Timeout | null = null;
    const guestConsole = new GuestConsole(
      () => {
        bootedAt = performance.now();
        clearTimeout(bootTimer);
        commandTimer = setTimeout(
          () => kill(phaseError('ERR_GUEST_DEADLINE', `the command in the ${kernel.release} guest did not finish within ${options.commandDeadlineMs / 1000} s (phase: command); QEMU was killed`, guestConsole.tail)),
          options.commandDeadlineMs,
        );
      },
      hooks,
      () => bootedAt !== null,
    );
    const bootTimer = setTimeout(
      () => kill(phaseError('ERR_GUEST_BOOT', `kernel ${kernel.release} did not boot within ${options.bootDeadlineMs / 1000} s (phase: boot); QEMU was killed`, guestConsole.tail)),
      options.bootDeadlineMs,
    );
    const phase = () => (bootedAt === null ? 'boot' : 'command');
    let qemuStderr = '';
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (s: string) => guestConsole.feed(s));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => (qemuStderr = (qemuStderr + s).slice(-4096)));
    const onAbort = () => kill(new CowlabError('ERR_INTERRUPTED', `interrupted: the ${kernel.release} guest was killed (phase: ${phase()})`));
    hooks.signal?.addEventListener('abort', onAbort);
    process.on('SIGINT', onAbort);
    process.on('SIGTERM', onAbort);
    try {
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      guestConsole.end();
      const ended = performance.now();
      if (failure) throw failure;
      const g = guestConsole.error;
      if (g) throw new CowlabError(guestCode(g.code), `in the ${kernel.release} guest: ${g.message}`);
      if (guestConsole.panic) {
        throw phaseError(bootedAt === null ? 'ERR_GUEST_BOOT' : 'ERR_GUEST_FAILED', `the ${kernel.release} guest kernel panicked (phase: ${phase()}): ${guestConsole.panic}`, guestConsole.tail);
      }
      if (bootedAt === null) {
        const why = code !== 0 && qemuStderr.trim() ? `QEMU failed: ${qemuStderr.trim().split('\n').pop()}` : `QEMU exited with status ${code} before the guest was up`;
        throw phaseError('ERR_GUEST_BOOT', `kernel ${kernel.release} did not boot (phase: boot): ${why}`, guestConsole.tail);
      }
      const { meta, payload } = readResult(dir, kernel, guestConsole.tail);
      return {
        exitCode: meta.exitCode,
        stdout: payload.subarray(0, meta.stdoutBytes),
        stderr: payload.subarray(meta.stdoutBytes).toString('utf8'),
        accel,
        accelNote: note,
        bootMs: Math.round(bootedAt - t0),
        commandMs: Math.round(ended - bootedAt),
      };
    } finally {
      clearTimeout(bootTimer);
      if (commandTimer) clearTimeout(commandTimer);
      hooks.signal?.removeEventListener('abort', onAbort);
      process.off('SIGINT', onAbort);
      process.off('SIGTERM', onAbort);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child.once('close', r));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** True when QEMU can be run here at all (for messages and tests). */
export function guestsPossible(): string | null {
  try {
    requireTool('qemu-system-x86_64', 'booting a kernel in a guest');
    requireTool('busybox', 'building a guest initramfs');
    requireTool('setpriv', 'running QEMU');
  } catch (err) {
    return (err as Error).message;
  }
  if (process.arch !== 'x64') return `guests boot x86-64 kernels with this host's Node; this host is ${process.arch}`;
  return existsSync('/proc/self/exe') ? null : 'no /proc/self/exe';
}
