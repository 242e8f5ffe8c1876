/** `cowlab run-trace`: run a trace in real processes (the kernel engine) and show what happened. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { KernelEngine } from '../../engines/kernel/engine.js';
import { observationsToJson } from '../../engines/observations.js';
import { integerOption } from '../../options.js';
import { observationsTable, traceHeader } from '../../report/observationsTable.js';
import { resolveTraceArg } from '../../trace/scenarios.js';
import { CowlabError } from '../../errors.js';
import { checkKernelFeatures, observeInGuest } from '../../guest/commands.js';
import type { TraceObservations } from '../../engines/types.js';
import type { Environment } from '../../env/environment.js';
import { action } from '../run.js';
import { addKernelFlags, guestHooks, targetsFromFlags, type KernelFlags } from '../kernelFlags.js';
import { print, printJson } from '../output.js';
import { progress } from '../progress.js';

export function registerRunTrace(program: Command): void {
  const cmd = program
    .command('run-trace')
    .description('run a trace in real processes (fork, stores, exec...) and show pagemap-derived results per step, here or in a guest kernel')
    .argument('<trace>', 'a built-in scenario name (see `cowlab scenarios`) or a trace JSON file (docs/trace.md)')
    .option('--step-deadline-ms <ms>', 'a step that takes longer fails the run (every process is killed and reaped)', '60000')
    .option('--json', 'print one JSON document: environment, then observations with page counts and page lists');
  addKernelFlags(cmd, { multiple: false, commandDeadlineMs: 10 * 60_000 })
    .addHelpText(
      'after',
      `
What it does:
  p0 is a process forked from Node; it maps every region and populates it. Each fork step
  forks a real process from its trace parent; each process runs a small native command loop
  and times every access alone. After each step cowlab reads /proc/<pid>/pagemap of every
  live process and classifies each faulting access: a copy (new frame for a page that was
  present), a reuse (same frame, made writable), a zero-fill (a fresh frame where nothing or
  the zero page was mapped). Every process is reaped, also when a step fails.

  PFNs need root: without it, frames are not observable and the output says so.
  With --kernel other than host, all of this happens inside a QEMU guest of that kernel.

Examples:
  cowlab run-trace fork-child-writes-all
  cowlab run-trace thp-fork-write --kernel debian:6.1
  cowlab run-trace my-trace.json --json`,
    )
    .action(
      action(async (arg: string, flags: KernelFlags & { json?: boolean; stepDeadlineMs: string }) => {
        const stepDeadlineMs = integerOption('--step-deadline-ms', flags.stepDeadlineMs, { min: 1 });
        const trace = resolveTraceArg(arg);
        const { targets, guest } = await targetsFromFlags(flags, { multiple: false, commandDeadlineMs: 10 * 60_000 });
        const t = targets[0]!;
        let obs: TraceObservations;
        let env: Environment;
        let note: string | null = null;
        if (t.kernel === null) {
          const engine = new KernelEngine();
          const why = engine.supports(trace);
          if (why !== null) throw new CowlabError('ERR_NOT_MEASURABLE', `${trace.name} cannot run on this machine: ${why}`);
          const bar = progress('run-trace');
          try {
            obs = await engine.run(trace, { stepDeadlineMs, onStep: (d, total) => bar.update(d, total) });
          } finally {
            bar.stop();
          }
          env = environment();
        } else {
          if (trace.regions.some((r) => r.thp)) checkKernelFeatures(t.kernel, ['thp'], `trace ${trace.name}`);
          const r = await observeInGuest({ kernel: t.kernel, options: guest!, hooks: guestHooks(t.label) }, [trace], ['kernel'], stepDeadlineMs);
          const o = r.outcomes.get('kernel')!.get(trace)!;
          if (!o.observations) throw new CowlabError('ERR_NOT_MEASURABLE', `${trace.name} cannot run on kernel ${t.kernel.release}: ${o.notApplicable}`);
          obs = o.observations;
          env = r.env;
          note = `in a QEMU guest (${r.accel.toUpperCase()}${r.accel === 'tcg' ? ': an emulated CPU, so the times below are not meaningful' : ''})${r.accelNote ? `; ${r.accelNote}` : ''}`;
        }
        if (flags.json) return printJson({ env, ...observationsToJson(obs, { pages: true }) });
        for (const line of traceHeader(trace, 'run-trace')) print(line);
        print(`kernel ${env.kernel}${note ? ` ${note}` : ''}; every figure below was observed in real processes`);
        print();
        for (const line of observationsTable(obs, 'measured (the sum of the individually timed accesses; fork: the fork() call)')) print(line);
      }),
    );
}
