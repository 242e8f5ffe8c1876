/**
 * The agent: the program the guest's /init starts once the kernel is up. It reads the request
 * from the first virtio disk, runs the one cowlab command it names (in this process, with
 * stdout to a file and stderr both kept and shown on the console as progress), and writes the
 * command's stdout as a framed result to the second disk. Then /init powers the guest off.
 *
 * Until the command starts it loads only disk.ts and Node's own modules, so a request it cannot
 * read or a kernel that lacks a feature still yields a result saying so.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { MARK, REQUEST_DIR, readFrame, writeFrame, type GuestRequest, type GuestResultMeta } from './disk.js';

const REQUEST_DISK = '/dev/vda';
const RESULT_DISK = '/dev/vdb';
/** /init starts the agent with its stdout here (initramfs.ts). */
export const STDOUT_FILE = '/tmp/cowlab-stdout';
const STDERR_KEPT = 64 * 1024;

function uptime(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

function say(text: string): void {
  process.stderr.write(`${MARK} ${text}\n`);
}

async function waitFor(paths: string[], ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (paths.every((p) => existsSync(p))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return paths.every((p) => existsSync(p));
}

function writeResult(meta: Omit<GuestResultMeta, 'stdoutBytes'>, stdout: Buffer, stderr: string): void {
  const fd = openSync(RESULT_DISK, 'r+');
  try {
    writeFrame(fd, { ...meta, stdoutBytes: stdout.length }, Buffer.concat([stdout, Buffer.from(stderr)]));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  say(`result ${stdout.length}`);
}

/** A failure before the command could start: reported as the command's own would be. */
function failEarly(code: string, message: string, exitCode: number): void {
  const t = uptime();
  if (existsSync(RESULT_DISK)) writeResult({ exitCode, signal: null, startedAt: t, endedAt: t, error: { code, message } }, Buffer.alloc(0), `cowlab: ${message}\n`);
  else say(`error ${code} ${message}`);
}

/** Kernel features a request may need, checked before the command runs (exit 2 when missing). */
const FEATURES: Record<string, { present: () => boolean; missing: string }> = {
  pagemap: { present: () => existsSync('/proc/self/pagemap'), missing: 'no /proc/<pid>/pagemap (the kernel is built without CONFIG_PROC_PAGE_MONITOR)' },
  thp: { present: () => existsSync('/sys/kernel/mm/transparent_hugepage/enabled'), missing: 'no transparent huge pages (the kernel is built without CONFIG_TRANSPARENT_HUGEPAGE)' },
};

async function main(): Promise<void> {
  say(`agent ${uptime()}`);
  if (!(await waitFor([REQUEST_DISK, RESULT_DISK], 10_000))) {
    say('error ERR_KERNEL_FEATURE the guest found no virtio block devices (/dev/vda, /dev/vdb): the kernel has no virtio-blk or virtio-pci driver, built in or as a module');
    return;
  }
  const fd = openSync(REQUEST_DISK, 'r');
  const frame = readFrame<unknown>(fd, 512 * 1024 * 1024);
  closeSync(fd);
  if ('problem' in frame) return failEarly('ERR_GUEST_FAILED', `the request disk is unreadable: ${frame.problem}`, 1);
  const req = JSON.parse(frame.payload.toString('utf8')) as GuestRequest;
  for (const need of req.needs) {
    const f = FEATURES[need];
    if (f && !f.present()) return failEarly('ERR_KERNEL_FEATURE', f.missing, 2);
  }
  for (const [name, content] of Object.entries(req.files)) {
    const p = join(REQUEST_DIR, name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
  // The command runs in this process (a second Node would cost seconds under TCG). /init
  // started the agent with stdout on STDOUT_FILE, so the command's stdout lands there as it
  // would on a terminal; its stderr goes to the console (progress) and is kept for the result.
  let kept = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    kept = (kept + (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'))).slice(-STDERR_KEPT);
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  Object.assign(process.env, {
    HOME: '/root',
    COWLAB_ADDON: '/cowlab/addon/cowlab.node',
    COWLAB_GUEST_ACCEL: req.accel,
    COWLAB_KERNEL_SPEC: req.kernelSpec,
  });
  process.chdir('/tmp');
  const startedAt = uptime();
  say(`running ${startedAt}`);
  const { main: cowlab } = (await import('../cli/main.js')) as { main: (argv: string[]) => Promise<number> };
  const exitCode = await cowlab(['node', 'cowlab', ...req.argv]);
  process.stderr.write = write;
  fsyncSync(1);
  writeResult({ exitCode, signal: null, startedAt, endedAt: uptime() }, readFileSync(STDOUT_FILE), kept);
  // Whatever the command left running (timers, handles) must not keep the guest up.
  process.exit(0);
}

main().catch((err: unknown) => {
  failEarly('ERR_GUEST_FAILED', `the guest agent failed: ${(err as Error)?.stack ?? String(err)}`, 1);
});
