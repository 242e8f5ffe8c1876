/** `cowlab run-trace`: run a trace in real processes (the kernel engine) and show what happened. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { KernelEngine } from '../../engines/kernel/engine.js';
import { observationsToJson } from '../../engines/observations.js';
import { integerOption } from '../../options.js';
import { observationsTable, traceHeader } from '../../report/observationsTable.js';
import { resolveTraceArg } from '../../trace/scenarios.js';
import { CowlabError } from '../../errors.js';
import { action } from '../run.js';
import { print, printJson } from '../output.js';
import { progress } from '../progress.js';

export function registerRunTrace(program: Command): void {
  program
    .command('run-trace')
    .description('run a trace in real processes (fork, stores, exec...) and show pagemap-derived results per step')
    .argument('<trace>', 'a built-in scenario name (see `cowlab scenarios`) or a trace JSON file (docs/trace.md)')
    .option('--step-deadline-ms <ms>', 'a step that takes longer fails the run (every process is killed and reaped)', '60000')
    .option('--json', 'print one JSON document: environment, then observations with page counts and page lists')
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

Examples:
  cowlab run-trace fork-child-writes-all
  cowlab run-trace my-trace.json --json`,
    )
    .action(
      action(async (arg: string, flags: { json?: boolean; stepDeadlineMs: string }) => {
        const stepDeadlineMs = integerOption('--step-deadline-ms', flags.stepDeadlineMs, { min: 1 });
        const trace = resolveTraceArg(arg);
        const engine = new KernelEngine();
        const why = engine.supports(trace);
        if (why !== null) throw new CowlabError('ERR_NOT_MEASURABLE', `${trace.name} cannot run on this machine: ${why}`);
        const bar = progress('run-trace');
        let obs;
        try {
          obs = await engine.run(trace, { stepDeadlineMs, onStep: (d, t) => bar.update(d, t) });
        } finally {
          bar.stop();
        }
        if (flags.json) return printJson({ env: environment(), ...observationsToJson(obs, { pages: true }) });
        for (const line of traceHeader(trace, 'run-trace')) print(line);
        print(`kernel ${environment().kernel}; every figure below was observed in real processes`);
        print();
        for (const line of observationsTable(obs, 'measured (the sum of the individually timed accesses; fork: the fork() call)')) print(line);
      }),
    );
}
