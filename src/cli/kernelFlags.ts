/**
 * `--kernel` and the guest options, shared by validate, run-trace, run and env. A command that
 * takes several kernels accepts the flag repeated or a comma list; one boot per kernel.
 */
import type { Command } from 'commander';

import { parseAccel } from '../guest/accel.js';
import { DEFAULT_GUEST_OPTIONS, guestOptions, type GuestHooks, type GuestOptions } from '../guest/runner.js';
import { parseKernelList } from '../kernels/spec.js';
import { resolveTargets, type KernelTarget } from '../kernels/targets.js';
import { invalidOption } from '../errors.js';

export interface KernelFlags {
  kernel?: string[];
  accel: string;
  guestMemory?: string;
  guestCpus?: string;
  bootDeadlineMs?: string;
  guestDeadlineMs?: string;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

export function addKernelFlags(cmd: Command, opts: { multiple: boolean; commandDeadlineMs?: number }): Command {
  const d = DEFAULT_GUEST_OPTIONS;
  return cmd
    .option(
      '--kernel <spec>',
      `the kernel to run on${opts.multiple ? ' (repeat, or a comma list, for several: one boot each)' : ''}: host, debian:6.1, debian:6.12, ` +
        'debian:<package version>, a .deb, a bzImage or a kernel build tree (`cowlab kernels`) (default: host)',
      collect,
    )
    .option('--accel <mode>', 'guest CPU: auto (KVM when it works, else TCG, said in the output), kvm, tcg', 'auto')
    .option('--guest-memory <MiB>', `guest RAM (default: ${d.memoryMiB})`)
    .option('--guest-cpus <n>', `guest CPUs (default: ${d.cpus})`)
    .option('--boot-deadline-ms <ms>', `a guest that is not up by then is killed (default: ${d.bootDeadlineMs})`)
    .option('--guest-deadline-ms <ms>', `a guest command that has not finished by then is killed (default: ${opts.commandDeadlineMs ?? d.commandDeadlineMs})`);
}

const FLAGS: Record<string, string> = {
  memoryMiB: '--guest-memory', cpus: '--guest-cpus', bootDeadlineMs: '--boot-deadline-ms', commandDeadlineMs: '--guest-deadline-ms',
};

/** The guest options the flags ask for (checked: exit 2). */
export function guestOptionsFromFlags(f: KernelFlags, commandDeadlineMs?: number): GuestOptions {
  return guestOptions(
    {
      memoryMiB: f.guestMemory,
      cpus: f.guestCpus,
      accel: parseAccel(f.accel),
      bootDeadlineMs: f.bootDeadlineMs,
      commandDeadlineMs: f.guestDeadlineMs ?? commandDeadlineMs,
    },
    (k) => FLAGS[k] ?? k,
  );
}

/** Parses and obtains every kernel first; guest options are checked only when a guest will run. */
export async function targetsFromFlags(f: KernelFlags, opts: { multiple: boolean; commandDeadlineMs?: number }): Promise<{ targets: KernelTarget[]; guest: GuestOptions | null }> {
  const values = f.kernel ?? [];
  if (!opts.multiple && values.flatMap((v) => v.split(',').filter((s) => s.trim())).length > 1) {
    throw invalidOption('--kernel', 'this command runs on one kernel; give --kernel once');
  }
  parseAccel(f.accel);
  // Every check that needs no download comes first: a typo fails before anything is fetched.
  const needsGuest = parseKernelList(values).some((s) => s.kind !== 'host');
  const guest = needsGuest ? guestOptionsFromFlags(f, opts.commandDeadlineMs) : null;
  const targets = await resolveTargets(values, (l) => process.stderr.write(`cowlab: ${l}\n`));
  return { targets, guest };
}

/** Guest progress on stderr, each line named by its kernel. */
export function guestHooks(label: string, signal?: AbortSignal): GuestHooks {
  return {
    say: (l) => process.stderr.write(`cowlab: ${label}: ${l}\n`),
    onLine: (l) => process.stderr.write(`  [${label}] ${l}\n`),
    ...(signal ? { signal } : {}),
  };
}
