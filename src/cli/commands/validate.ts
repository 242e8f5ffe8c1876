/** `cowlab validate`: run traces on two or three engines and diff them step by step. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { createEngine, ENGINE_NAMES, parseEngineList } from '../../engines/registry.js';
import type { TraceObservations } from '../../engines/types.js';
import { invalidOption } from '../../errors.js';
import { integerOption } from '../../options.js';
import { traceHeader } from '../../report/observationsTable.js';
import { listScenarios, loadScenario, resolveTraceArg } from '../../trace/scenarios.js';
import type { Trace } from '../../trace/types.js';
import { LEGEND, stepTable, summaryTable, validationToJson } from '../../validate/report.js';
import { validateTrace, type TraceValidation } from '../../validate/validate.js';
import { EXIT_FAILED, EXIT_OK, action } from '../run.js';
import { print, printJson } from '../output.js';
import { progress } from '../progress.js';
import { addSimFlags, describeChosenCostModel, describeSimOptions, simOptionsFromFlags, type SimFlags } from '../simFlags.js';

interface Flags extends SimFlags {
  all?: boolean;
  engines: string;
  json?: boolean;
  verbose?: boolean;
  stepDeadlineMs: string;
}

function tracesFrom(args: string[], all: boolean): Trace[] {
  if (all && args.length > 0) throw invalidOption('--all', 'give trace names or --all, not both');
  if (all) return listScenarios().map((s) => loadScenario(s.name));
  if (args.length === 0) throw invalidOption('<trace>', 'name a trace or scenario, or use --all (see `cowlab scenarios`)');
  return args.map((a) => resolveTraceArg(a));
}

export function registerValidate(program: Command): void {
  const cmd = program
    .command('validate')
    .description('run traces on the simulator and real processes (and the region) and diff them step by step')
    .argument('[traces...]', 'built-in scenario names or trace JSON files')
    .option('--all', 'every built-in scenario (`cowlab scenarios`)')
    .option('--engines <list>', `engines to compare, comma-separated: ${ENGINE_NAMES.join(', ')}`, 'sim,kernel')
    .option('--verbose', 'the step table of every trace, not only of those that mismatch')
    .option('--step-deadline-ms <ms>', 'a kernel step that takes longer fails the trace (every process is killed)', '60000')
    .option('--json', 'print one JSON document: environment, model, and every comparison with its diffs');
  addSimFlags(cmd)
    .addHelpText(
      'after',
      `
How it decides:
  Each trace runs on every engine; the kernel (real processes, real pagemap) is the reference.
  After every step, per process and region, present / shared / exclusive / zeroPage pages,
  the acting process's copies / reuses / zeroFills, and the distinct frames must match
  exactly. faults may exceed the prediction by 2 + 1 % per step: the measuring loop's own
  incidental faults. Fields the machine cannot show (PFNs without root: frames) are listed,
  not counted. Write-step times are compared as a relative error (reported, not judged): the
  simulator's are predictions from the cost model, the region's are its own measurements.

Exit status: 0 when every trace matched (traces the reference cannot run here are listed as
not measurable), 1 when any differed, 2 on bad input.

Examples:
  cowlab validate --all
  cowlab validate fork-parent-writes-after-exit --reuse off     # a wrong model: fails, names the step
  cowlab validate my-trace.json --verbose --json`,
    )
    .action(
      action(async (args: string[], flags: Flags) => {
        const names = parseEngineList(flags.engines, '--engines');
        const sim = simOptionsFromFlags(flags);
        const stepDeadlineMs = integerOption('--step-deadline-ms', flags.stepDeadlineMs, { min: 1 });
        const traces = tracesFrom(args, flags.all === true);
        const engines = names.map((n) => createEngine(n, { sim: sim.options }));
        const bar = progress('validate');
        const results: TraceValidation[] = [];
        try {
          for (const [i, t] of traces.entries()) {
            bar.update(i, traces.length, t.name);
            results.push(await validateTrace(t, engines, { stepDeadlineMs }));
          }
          bar.update(traces.length, traces.length);
        } finally {
          bar.stop();
        }
        const failed = results.some((r) => r.status === 'mismatch');
        const summary = {
          matched: results.filter((r) => r.status === 'matched').length,
          mismatched: results.filter((r) => r.status === 'mismatch').length,
          notMeasurable: results.filter((r) => r.status === 'not-measurable').length,
        };
        if (flags.json) {
          const { costModel: _, checkInvariants: __, ...model } = sim.options;
          printJson({
            env: environment(),
            engines: names,
            reference: results[0]?.reference ?? null,
            simOptions: model,
            costModel: { description: describeChosenCostModel(sim.costModel), path: sim.costModel.path, ...sim.costModel.model },
            summary,
            traces: results.map(validationToJson),
          });
          return failed ? EXIT_FAILED : EXIT_OK;
        }
        const observed = new Map<string, TraceObservations>();
        for (const r of results) {
          const ref = r.engines.find((e) => e.engine === r.reference)?.observations;
          if (ref) observed.set(r.trace, ref);
        }
        print(`validate: ${traces.length} trace${traces.length === 1 ? '' : 's'}, engines ${names.join(', ')} (reference: ${results[0]?.reference ?? '-'})`);
        print(`simulator: ${describeSimOptions(sim.options)}`);
        print(`cost model: ${describeChosenCostModel(sim.costModel)}`);
        print();
        print(summaryTable(results, observed));
        const detailed = results.filter((r) => flags.verbose || traces.length === 1 || r.status === 'mismatch');
        for (const r of detailed) {
          for (const c of r.comparisons) {
            const obs = r.engines.find((e) => e.engine === c.observed)!.observations!;
            const pred = r.engines.find((e) => e.engine === c.predicted)!.observations!;
            print();
            for (const line of traceHeader(obs.trace, `${c.predicted} vs ${c.observed}`)) print(line);
            print(stepTable(c, pred, obs));
            for (const [field, why] of Object.entries(c.unavailable)) print(`not compared: ${field}: ${why}`);
          }
        }
        if (detailed.length > 0) print(`\n${LEGEND}`);
        print();
        print(`${summary.matched} matched, ${summary.mismatched} mismatched, ${summary.notMeasurable} not measurable here`);
        return failed ? EXIT_FAILED : EXIT_OK;
      }),
    );
}
