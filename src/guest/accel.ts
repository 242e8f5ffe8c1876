/**
 * Which accelerator a guest runs under. KVM runs the guest's CPU natively (times mean
 * something); TCG emulates it (every figure about COW state still holds, times do not).
 *
 * `auto` uses KVM when it works, and working is more than /dev/kvm opening: under nested
 * virtualization (this project's CI machine) a KVM guest can hang at boot with no output. So
 * `auto` boots a tiny probe guest under KVM with a short deadline of its own, falls back to TCG
 * when it says nothing, and says so. The answer is kept per host boot (boot_id) and QEMU.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { invalidOption } from '../errors.js';
import { choiceOption } from '../options.js';
import { cacheRoot } from '../kernels/store.js';
import { requireTool, runTool } from '../util/tools.js';
import { CpioWriter } from './cpio.js';

export const ACCEL_CHOICES = ['auto', 'kvm', 'tcg'] as const;
export type AccelChoice = (typeof ACCEL_CHOICES)[number];
export type Accel = 'kvm' | 'tcg';

/** How long the KVM probe may take to print its line (a working KVM boot takes about 1 s). */
export const KVM_PROBE_DEADLINE_MS = 8_000;

export interface AccelDecision {
  accel: Accel;
  /** Why, when it is not what a user would assume (TCG under auto): printed with the results. */
  note: string | null;
}

export function parseAccel(text: string, field = '--accel'): AccelChoice {
  return choiceOption(field, text, ACCEL_CHOICES);
}

function kvmUsable(): string | null {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return null;
  } catch (err) {
    return existsSync('/dev/kvm') ? `/dev/kvm is not accessible (${(err as NodeJS.ErrnoException).code})` : 'there is no /dev/kvm';
  }
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

interface ProbeRecord {
  bootId: string;
  qemu: string;
  kvm: boolean;
  why: string | null;
}

const PROBE_LINE = 'COWLAB-KVM-PROBE-OK';

async function probeInitramfs(path: string): Promise<void> {
  const busybox = requireTool('busybox', 'the KVM probe');
  const cpio = new CpioWriter(path);
  for (const d of ['/bin', '/dev', '/proc']) await cpio.dir(d);
  await cpio.charDevice('/dev/console', 5, 1);
  await cpio.copy('/bin/busybox', busybox, statSync(busybox).size, 0o755);
  await cpio.symlink('/bin/sh', 'busybox');
  await cpio.file('/init', Buffer.from(`#!/bin/sh\n/bin/busybox echo ${PROBE_LINE}\n/bin/busybox poweroff -f\n`), 0o755);
  await cpio.finish();
}

/** Boots `kernelImage` under KVM with a tiny initramfs; true when it printed its line in time. */
async function probeKvm(qemu: string, kernelImage: string): Promise<string | null> {
  const dir = join(cacheRoot(), `.kvm-probe-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const initrd = join(dir, 'probe.cpio.gz');
  try {
    await probeInitramfs(initrd);
    const child = spawn(
      requireTool('setpriv', 'running QEMU'),
      ['--pdeathsig', 'KILL', '--', qemu, '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-no-reboot',
        '-accel', 'kvm', '-cpu', 'host', '-m', '256', '-smp', '1', '-kernel', kernelImage, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 quiet'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString('latin1')));
    child.stderr.on('data', (b: Buffer) => (err += b.toString('latin1')));
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), KVM_PROBE_DEADLINE_MS);
      child.stdout.on('data', () => {
        if (out.includes(PROBE_LINE)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.on('exit', () => {
        clearTimeout(timer);
        resolve(out.includes(PROBE_LINE));
      });
    });
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    if (ok) return null;
    const qemuSaid = err.split('\n').map((l) => l.trim()).filter((l) => l && !l.includes('terminating on signal')).pop();
    return qemuSaid ? `a KVM guest failed to start: ${qemuSaid}` : `a KVM guest printed nothing within ${KVM_PROBE_DEADLINE_MS / 1000} s (nested virtualization?)`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Decides the accelerator; `auto` probes KVM once per host boot (the result is cached). */
export async function chooseAccel(choice: AccelChoice, kernelImage: string, say: (s: string) => void = () => {}): Promise<AccelDecision> {
  if (choice === 'tcg') return { accel: 'tcg', note: null };
  const unusable = kvmUsable();
  if (choice === 'kvm') {
    if (unusable) throw invalidOption('--accel', `kvm: ${unusable}`);
    return { accel: 'kvm', note: null };
  }
  if (unusable) return { accel: 'tcg', note: `KVM is not available (${unusable}): using TCG, an emulated CPU` };
  const qemu = requireTool('qemu-system-x86_64', 'booting a kernel in a guest');
  const version = runTool(qemu, ['--version']).stdout.split('\n')[0] ?? '';
  const file = join(cacheRoot(), 'kvm-probe.json');
  let record: ProbeRecord | null = null;
  try {
    record = JSON.parse(readFileSync(file, 'utf8')) as ProbeRecord;
  } catch {
    record = null;
  }
  if (!record || record.bootId !== bootId() || record.qemu !== version) {
    say(`probing KVM (a tiny guest, at most ${KVM_PROBE_DEADLINE_MS / 1000} s; once per host boot)`);
    const why = await probeKvm(qemu, kernelImage);
    record = { bootId: bootId(), qemu: version, kvm: why === null, why };
    mkdirSync(cacheRoot(), { recursive: true });
    writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  }
  if (record.kvm) return { accel: 'kvm', note: null };
  return { accel: 'tcg', note: `KVM does not work here (${record.why}): using TCG, an emulated CPU` };
}
