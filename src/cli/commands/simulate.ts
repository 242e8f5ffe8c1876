/** `cowlab simulate`: run a trace through the COW simulator and show what it predicts, step by step. */
import type { Command } from 'commander';

import { observationsToJson } from '../../engines/observations.js';
import { describeCostModel, isCalibrated } from '../../engines/sim/cost.js';
import { simulateTrace } from '../../engines/sim/engine.js';
import type { TraceObservations } from '../../engines/types.js';
import { observationsTable, traceHeader } from '../../report/observationsTable.js';
import { resolveTraceArg } from '../../trace/scenarios.js';
import { action } from '../run.js';
import { addSimFlags, describeChosenCostModel, describeSimOptions, simOptionsFromFlags, type SimConfig, type SimFlags } from '../simFlags.js';
import { print, printJson } from '../output.js';

function printTable(obs: TraceObservations, { options, costModel }: SimConfig): void {
  const [title, ...rest] = traceHeader(obs.trace, 'simulate');
  print(title);
  for (const line of rest.filter((l) => l.startsWith('  '))) print(line);
  print(`model: Linux 6.18 COW paths; ${describeSimOptions(options)}`);
  print(`cost model: ${describeChosenCostModel(costModel)}`);
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
    .option('--json', 'print one JSON document: model, then observations with page counts and page lists');
  addSimFlags(cmd)
    .addHelpText(
      'after',
      `
What it does:
  Replays the trace on a model of the Linux 6.18 memory manager, no real memory involved:
  frames with reference and map counts, per-process page tables, the zero page, a page cache
  for memfd/shared memory. fork copies page table entries only for private memory that was
  ever written (it has an anon_vma) and makes them read-only in both processes; a store to a
  read-only page then copies it, or reuses it in place when nobody else references it; a
  store over nothing or the zero page zero-fills. Shared mappings are never copied. THP:
  a COW store splits the 2 MiB mapping and copies 4 KiB.

  After every step it prints what pagemap would show (present, shared, exclusive, zero page
  per process), the acting process's faults by kind, the region's distinct frames, and the
  step's predicted time. \`cowlab validate\` compares exactly these against real processes.

Model options (defaults match this kernel; change them to model another):
  --reuse off             copy on every write fault (no kernel does this: it exists to show
                          validation failing)
  --thp-pte-reuse never   kernels before 6.15 copy every page of a split huge page
  --fault-around 1        no fault-around (fault_around_bytes = 4096)

Examples:
  cowlab scenarios
  cowlab simulate fork-child-writes-all
  cowlab simulate thp-fork-write --thp-pte-reuse never
  cowlab simulate my-trace.json --json`,
    )
    .action(
      action((arg: string, flags: SimFlags & { json?: boolean }) => {
        const config = simOptionsFromFlags(flags);
        const trace = resolveTraceArg(arg);
        const obs = simulateTrace(trace, config.options);
        if (flags.json) {
          const { costModel, checkInvariants: _, ...model } = config.options;
          printJson({
            model: {
              ...model,
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
