/**
 * `cowlab observe` (internal, not in --help): run traces on the engines that touch real
 * memory (kernel, region) and print every observation as one JSON document. It is what a
 * QEMU guest runs for `validate`, `run-trace` and `simulate`'s guests (src/guest/commands.ts):
 * the simulator then runs on the host, with the profile of the kernel that actually ran.
 */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { observationsToJson, type TraceObservationsJson } from '../../engines/observations.js';
import { createEngine } from '../../engines/registry.js';
import type { EngineName } from '../../engines/types.js';
import type { Environment } from '../../env/environment.js';
import { invalidOption } from '../../errors.js';
import { runningKernelConfig, type KernelConfig } from '../../kernels/config.js';
import { integerOption } from '../../options.js';
import { resolveTraceArg } from '../../trace/scenarios.js';
import { action } from '../run.js';
import { printJson } from '../output.js';
import { progress } from '../progress.js';

export const OBSERVE_ENGINES: readonly EngineName[] = ['kernel', 'region'];

export interface ObservedEngine {
  engine: EngineName;
  notApplicable: string | null;
  wallNs: number | null;
  observations: TraceObservationsJson | null;
}

export interface ObserveDocument {
  env: Environment;
  /** The configuration of the kernel that ran (/proc/config.gz, /boot/config-*), when it has one. */
  config: KernelConfig;
  traces: { trace: string; engines: ObservedEngine[] }[];
}

export function registerObserve(program: Command): void {
  program
    .command('observe', { hidden: true })
    .description('(internal) run traces on the kernel and region engines and print every observation as JSON')
    .argument('<traces...>', 'scenario names or trace files')
    .option('--engines <list>', 'kernel, region, or both', 'kernel')
    .option('--step-deadline-ms <ms>', 'a kernel step that takes longer fails the trace', '60000')
    .action(
      action(async (args: string[], flags: { engines: string; stepDeadlineMs: string }) => {
        const names = flags.engines.split(',').map((s) => s.trim()) as EngineName[];
        for (const n of names) if (!OBSERVE_ENGINES.includes(n)) throw invalidOption('--engines', `observe runs ${OBSERVE_ENGINES.join(', ')}, not '${n}'`);
        const stepDeadlineMs = integerOption('--step-deadline-ms', flags.stepDeadlineMs, { min: 1 });
        const traces = args.map((a) => resolveTraceArg(a));
        const engines = names.map((n) => createEngine(n));
        const bar = progress('observe');
        const out: ObserveDocument['traces'] = [];
        try {
          for (const [i, trace] of traces.entries()) {
            bar.update(i, traces.length, trace.name);
            const results: ObservedEngine[] = [];
            for (const e of engines) {
              const why = e.supports(trace);
              if (why !== null) {
                results.push({ engine: e.name, notApplicable: why, wallNs: null, observations: null });
                continue;
              }
              const t0 = process.hrtime.bigint();
              const obs = await e.run(trace, { stepDeadlineMs });
              results.push({ engine: e.name, notApplicable: null, wallNs: Number(process.hrtime.bigint() - t0), observations: observationsToJson(obs, { pages: true }) });
            }
            out.push({ trace: trace.name, engines: results });
          }
          bar.update(traces.length, traces.length);
        } finally {
          bar.stop();
        }
        const env = environment();
        const doc: ObserveDocument = { env, config: runningKernelConfig(env.kernel), traces: out };
        printJson(doc);
      }),
    );
}
