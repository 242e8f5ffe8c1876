/** `cowlab env`: the machine facts every result is recorded with. */
import type { Command } from 'commander';

import { environment, type Environment } from '../../env/environment.js';
import { envInGuest, type GuestRunInfo } from '../../guest/commands.js';
import { formatBytes } from '../../report/format.js';
import { action } from '../run.js';
import { addKernelFlags, guestHooks, targetsFromFlags, type KernelFlags } from '../kernelFlags.js';
import { print, printJson } from '../output.js';

function printEnvironment(e: Environment, guest: GuestRunInfo | null): void {
  const p = e.privileges;
  const lines: [string, string][] = [
    ['kernel', `${e.kernel} (${e.arch})`],
    ...(guest
      ? ([['guest', `QEMU, ${guest.accel.toUpperCase()}${guest.accel === 'tcg' ? ' (an emulated CPU: times are not meaningful)' : ''}; booted in ${(guest.bootMs / 1000).toFixed(1)} s`]] as [string, string][])
      : []),
    ['page size', `${e.pageSize} B${e.hugePageSize ? `, PMD huge page ${formatBytes(e.hugePageSize)}` : ''}`],
    ['THP', e.thp.enabled === null ? 'not available' : `enabled=${e.thp.enabled}, defrag=${e.thp.defrag}, huge zero page ${e.thp.useZeroPage ? 'on' : 'off'}`],
    ['KSM', e.ksmRun === null ? 'not available' : e.ksmRun === 1 ? 'running' : e.ksmRun === 0 ? 'stopped' : `run=${e.ksmRun}`],
    ['CPU', `${e.cpu.model} x ${e.cpu.count}`],
    ['hypervisor', e.hypervisor.present ? `yes${e.hypervisor.vendor ? ` (${e.hypervisor.vendor})` : ''}` : 'none detected'],
    ['memory', `${formatBytes(e.memory.availableBytes)} available of ${formatBytes(e.memory.totalBytes)}`],
    ['overcommit', `vm.overcommit_memory=${e.overcommitMemory}`],
    ['max_map_count', String(e.maxMapCount)],
    ['clocksource', String(e.clocksource)],
    ['DAMON', e.noise.damon.length ? e.noise.damon.join('; ') : 'not running'],
    ['balloon', e.noise.freePageReporting === null ? 'none' : `free page reporting ${e.noise.freePageReporting ? 'on (new frames may be cold)' : 'off'}`],
    ['user', `uid ${p.uid}${p.root ? ' (root)' : ''}, CAP_SYS_ADMIN ${p.capSysAdmin ? 'yes' : 'no'}`],
    ['PFNs', p.pfnVisible ? 'visible' : `hidden: ${p.pfnReason}`],
    ['kpagecount', p.kpagecount ? 'readable' : `not readable: ${p.kpagecountReason}`],
    ['kpageflags', p.kpageflags ? 'readable' : `not readable: ${p.kpageflagsReason}`],
    ['node', e.node],
    ['cowlab', `${e.cowlab} (addon ${e.addon})`],
  ];
  for (const [k, v] of lines) print(`${k.padEnd(14)} ${v}`);
}

export function registerEnv(program: Command): void {
  const cmd = program
    .command('env')
    .description('print the environment results are recorded with (kernel, THP, KSM, privileges, ...), here or in a guest')
    .option('--json', 'print JSON');
  addKernelFlags(cmd, { multiple: false, commandDeadlineMs: 120_000 })
    .addHelpText('after', `
Examples:
  cowlab env
  cowlab env --kernel debian:6.12 --json`)
    .action(
      action(async (flags: KernelFlags & { json?: boolean }) => {
        const { targets, guest } = await targetsFromFlags(flags, { multiple: false, commandDeadlineMs: 120_000 });
        const t = targets[0]!;
        if (t.kernel === null) {
          const e = environment();
          if (flags.json) return printJson(e);
          return printEnvironment(e, null);
        }
        const r = await envInGuest({ kernel: t.kernel, options: guest!, hooks: guestHooks(t.label) });
        const { env, ...run } = r;
        if (flags.json) return printJson({ ...env, guestRun: run });
        printEnvironment(env, run);
        if (run.accelNote) print(`note: ${run.accelNote}`);
      }),
    );
}
