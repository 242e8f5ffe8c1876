/** `cowlab simulate`: run a trace through the COW simulator and show what it predicts, step by step. */
import type { Command } from 'commander';

import { observationsToJson } from '../../engines/observations.js';
import { describeCostModel, isCalibrated } from '../../engines/sim/cost.js';
import { simulateTrace } from '../../engines/sim/engine.js';
import type { TraceObservations } from '../../engines/types.js';
import { escapeControls } from '../../report/format.js';
import { observationsTable, traceHeader } from '../../report/observationsTable.js';
import { resolveTraceArg } from '../../trace/scenarios.js';
import { action } from '../run.js';
import { environment } from '../../env/environment.js';
import { invalidOption } from '../../errors.js';
import { runningKernelFacts, type KernelFacts } from '../../kernels/facts.js';
import { parseVersion } from '../../kernels/version.js';
import { addSimFlags, describeChosenCostModel, describeSimConfig, simConfigFor, simConfigJson, type SimConfig, type SimFlags } from '../simFlags.js';
import { print, printJson } from '../output.js';

/**
 * simulate --kernel: which kernel to model, without running anything: a release or version
 * (6.1, 6.12.117, 6.1.0-57-cloud-amd64), debian:<series>, or host (the default).
 */
function modelledKernel(value: string | undefined): KernelFacts | string {
  if (value === undefined || value === 'host') return runningKernelFacts(environment());
  const text = value.startsWith('debian:') ? value.slice('debian:'.length) : value;
  if (parseVersion(text) === null) {
    throw invalidOption('--kernel', `simulate models a kernel release (6.1, 6.12.117, debian:6.12) or host, got '${value}'; to run on a kernel use validate or run-trace`);
  }
  return text;
}

function printTable(obs: TraceObservations, config: SimConfig): void {
  const { options, costModel } = config;
  const [title, ...rest] = traceHeader(obs.trace, 'simulate');
  print(title);
  for (const line of rest.filter((l) => l.startsWith('  '))) print(line);
  print(`model: Linux ${config.profile.name} COW paths; ${describeSimConfig(config)}`);
  for (const c of config.profile.caveats) print(`note: ${c}`);
  print(`cost model: ${escapeControls(describeChosenCostModel(costModel))}`);
  for (const line of rest.filter((l) => !l.startsWith('  '))) print(line);
  print();
  for (const line of observationsTable(obs, 'predicted by the cost model')) print(line);
  if (!isCalibrated(options.costModel)) print('note: the cost model is uncalibrated: times are rough estimates, not measurements.');
}

export function registerSimulate(program: Command): void {
  const cmd = program
    .command('simulate')
    .description('run a trace through the COW simulator: per step copies, reuses, zero-fills, faults, page states')
    .argument('<trace>', 'a built-in scenario name (see `cowlab scenarios`) or a trace JSON file (docs/trace.md)')
    .option('--kernel <release>', 'model this kernel: a release (6.1, 6.12.117), debian:<series>, or host (default: host, the running kernel); nothing is booted')
    .option('--json', 'print one JSON document: model, then observations with page counts and page lists');
  addSimFlags(cmd)
    .addHelpText(
      'after',
      `
What it does:
  Replays the trace on a model of the Linux memory manager, no real memory involved:
  frames with reference and map counts, per-process page tables, the zero page, a page cache
  for memfd/shared memory. fork copies page table entries only for private memory that was
  ever written (it has an anon_vma) and makes them read-only in both processes; a store to a
  read-only page then copies it, or reuses it in place when nobody else references it; a
  store over nothing or the zero page zero-fills. Shared mappings are never copied. THP:
  a COW store splits the 2 MiB mapping and copies 4 KiB.

  After every step it prints what pagemap would show (present, shared, exclusive, zero page
  per process), the acting process's faults by kind, the region's distinct frames, and the
  step's predicted time. \`cowlab validate\` compares exactly these against real processes.

The model follows the profile of a kernel (\`cowlab kernels profiles\`): the running one, or
the release --kernel names. A switch flag overrides its one behaviour:
  --kernel 6.1            model Linux 6.1 (split huge pages are copied after the sharer left,
                          pagemap judges a PMD by its head page, ...)
  --reuse off             copy on every write fault (no kernel does this: it exists to show
                          validation failing)
  --thp-pte-reuse never   Linux 6.9 to 6.14: every page of a split huge page is copied
  --fault-around 1        no fault-around (fault_around_bytes = 4096)

Examples:
  cowlab scenarios
  cowlab simulate fork-child-writes-all
  cowlab simulate thp-fork-write --kernel 6.1
  cowlab simulate thp-fork-write --thp-pte-reuse never
  cowlab simulate my-trace.json --json`,
    )
    .action(
      action((arg: string, flags: SimFlags & { json?: boolean; kernel?: string }) => {
        const config = simConfigFor(flags, modelledKernel(flags.kernel));
        const trace = resolveTraceArg(arg);
        const obs = simulateTrace(trace, config.options);
        if (flags.json) {
          const { costModel, checkInvariants: _, ...model } = config.options;
          const { profile, overrides } = simConfigJson(config);
          printJson({
            model: {
              ...model,
              profile,
              overrides,
              costModel: { calibrated: isCalibrated(costModel), description: describeCostModel(costModel), path: config.costModel.path, ...costModel },
            },
            ...observationsToJson(obs, { pages: true }),
          });
        } else {
          printTable(obs, config);
        }
      }),
    );
}
