/** `cowlab env`: the machine facts every result is recorded with. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { formatBytes } from '../../report/format.js';
import { action } from '../run.js';
import { print, printJson } from '../output.js';

export function registerEnv(program: Command): void {
  program
    .command('env')
    .description('print the environment results are recorded with (kernel, THP, KSM, privileges, ...)')
    .option('--json', 'print JSON')
    .action(
      action((flags: { json?: boolean }) => {
        const e = environment();
        if (flags.json) return printJson(e);
        const p = e.privileges;
        const lines: [string, string][] = [
          ['kernel', `${e.kernel} (${e.arch})`],
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
      }),
    );
}
