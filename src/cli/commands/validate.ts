/** `cowlab validate`: run traces on two or three engines and diff them step by step, on one kernel or many. */
import type { Command } from 'commander';

import { resolve } from 'node:path';

import { environment } from '../../env/environment.js';
import { renderValidationReport } from '../../report/html.js';
import type { KernelMatrix } from '../../report/kernels.js';
import { observationsToJson } from '../../engines/observations.js';
import { ENGINE_NAMES, parseEngineList } from '../../engines/registry.js';
import type { TraceObservations } from '../../engines/types.js';
import { invalidOption } from '../../errors.js';
import { runningKernelFacts, type KernelFacts } from '../../kernels/facts.js';
import { integerOption } from '../../options.js';
import { stepLabel, traceHeader } from '../../report/observationsTable.js';
import { listScenarios, loadScenario, resolveTraceArg } from '../../trace/scenarios.js';
import { checkOutputFile, writeFileAtomic } from '../../util/files.js';
import type { Trace } from '../../trace/types.js';
import { kernelDisagreements, type Disagreement } from '../../validate/disagreements.js';
import { validateOnKernels, type KernelValidation } from '../../validate/kernels.js';
import { describeOutcomes, disagreementTable, LEGEND, matrixCell, matrixTable, stepTable, summaryTable, validationToJson } from '../../validate/report.js';
import { EXIT_FAILED, EXIT_OK, action } from '../run.js';
import { addKernelFlags, guestHooks, targetsFromFlags, type KernelFlags } from '../kernelFlags.js';
import { print, printJson } from '../output.js';
import { addExportFlags, checkExportFlags, writeExports, type ExportFlags } from '../exportFlags.js';
import { validationCsv, validationMarkdown, validationTap, type KernelResults } from '../../validate/export.js';
import { progress } from '../progress.js';
import { addSimFlags, describeChosenCostModel, describeSimConfig, simConfigFor, simConfigJson, type SimConfig, type SimFlags } from '../simFlags.js';

interface Flags extends SimFlags, KernelFlags, ExportFlags {
  all?: boolean;
  tap?: boolean;
  report?: string;
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

function summaryOf(results: KernelValidation['results']) {
  return {
    matched: results.filter((r) => r.status === 'matched').length,
    mismatched: results.filter((r) => r.status === 'mismatch').length,
    notMeasurable: results.filter((r) => r.status === 'not-measurable').length,
  };
}

function kernelObservations(k: KernelValidation): Map<string, TraceObservations> {
  const m = new Map<string, TraceObservations>();
  for (const r of k.results) {
    const ref = r.engines.find((e) => e.engine === r.reference)?.observations;
    if (ref) m.set(r.trace, ref);
  }
  return m;
}

/** "6.1.0-57-cloud-amd64 (6.1.192) in a QEMU guest (TCG, boot 4.9 s, run 11.2 s)" */
function describeKernel(k: KernelValidation): string {
  const where = k.guest
    ? `in a QEMU guest (${k.guest.accel.toUpperCase()}${k.guest.accel === 'tcg' ? ': an emulated CPU, times not meaningful' : ''}; boot ${(k.guest.bootMs / 1000).toFixed(1)} s, run ${(k.guest.commandMs / 1000).toFixed(1)} s)`
    : 'on this machine';
  return `${k.facts.release}${k.facts.version ? ` (${k.facts.version})` : ''} ${where}`;
}

function kernelJson(k: KernelValidation, sim: SimConfig) {
  return {
    kernel: k.target.label,
    spec: k.target.spec,
    facts: k.facts,
    guest: k.guest,
    times: k.guest?.accel === 'tcg' ? 'emulated' : 'measured',
    ...simConfigJson(sim),
    env: k.env,
    summary: summaryOf(k.results),
    traces: k.results.map((r) => ({
      ...validationToJson(r),
      observations: Object.fromEntries(r.engines.filter((e) => e.observations).map((e) => [e.engine, observationsToJson(e.observations!, { pages: true })])),
    })),
  };
}

export function registerValidate(program: Command): void {
  const cmd = program
    .command('validate')
    .description('run traces on the simulator and real processes (and the region) and diff them step by step, on one kernel or many')
    .argument('[traces...]', 'built-in scenario names or trace JSON files')
    .option('--all', 'every built-in scenario (`cowlab scenarios`)')
    .option('--engines <list>', `engines to compare, comma-separated: ${ENGINE_NAMES.join(', ')}`, 'sim,kernel')
    .option('--verbose', 'the step table of every trace, not only of those that mismatch')
    .option('--step-deadline-ms <ms>', 'a kernel step that takes longer fails the trace (every process is killed)', '60000')
    .option('--json', 'print one JSON document: environment, every kernel with its profile, every comparison with its diffs and observations')
    .option('--tap', 'print TAP version 13 instead (one test per trace and kernel, `ok N - kernel/trace`; a mismatch is `not ok` with a YAML diagnostic block)')
    .option('--report <file>', 'also write an HTML report: the environments, the matrix and what the kernels disagree on');
  addExportFlags(cmd, 'one row per trace, kernel and engine compared');
  addKernelFlags(cmd, { multiple: true });
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
  not counted. Write-step times are compared as a relative error (reported, not judged).

Kernels:
  --kernel host is this machine. Any other kernel boots in a QEMU guest (one boot per kernel
  for all traces): the kernel engine runs there, the simulator here, with the profile of the
  kernel that actually ran (\`cowlab kernels profiles\`). With several kernels the output is a
  matrix (traces down, kernels across) and a table of what the real kernels disagree on, each
  difference with the profile switch that explains it. Under TCG (no working KVM) times are
  not meaningful and are not compared; every page state and event still is.

Output for other tools:
  --tap prints TAP version 13 as the kernel selftests do: the plan (1..N), then
  \`ok N - host/fork-exec\` per trace and kernel, \`ok N - ... # SKIP why\` for a trace the
  kernel cannot run here, \`not ok N - ...\` with a YAML block (message, first mismatching
  step) for a mismatch. --export-csv and --export-markdown write the results as a table.

Exit status: 0 when every trace matched on every kernel (traces a kernel cannot run are listed
as not measurable), 1 when any differed, 2 on bad input.

Examples:
  cowlab validate --all
  cowlab validate --all --kernel host,debian:6.1,debian:6.12
  cowlab validate my-trace.json --kernel debian:6.12 --json
  cowlab validate fork-parent-writes-after-exit --reuse off     # a wrong model: fails, names the step
  cowlab validate --all --tap > validate.tap                       # for a TAP consumer (prove, CI)`,
    )
    .action(
      action(async (args: string[], flags: Flags) => {
        const names = parseEngineList(flags.engines, '--engines');
        if (!names.includes('kernel') && flags.kernel?.length) throw invalidOption('--kernel', 'needs the kernel engine in --engines (it is what runs on the kernel)');
        const hostFacts = runningKernelFacts(environment());
        simConfigFor(flags, hostFacts); // every model flag checked before anything boots
        const stepDeadlineMs = integerOption('--step-deadline-ms', flags.stepDeadlineMs, { min: 1 });
        const traces = tracesFrom(args, flags.all === true);
        if (flags.tap && flags.json) throw invalidOption('--tap', 'give --tap or --json, not both: each is the whole of stdout');
        if (flags.report !== undefined) checkOutputFile(flags.report, '--report', { suggest: 'report.html' }); // before anything runs
        checkExportFlags(flags, args);
        const { targets, guest } = await targetsFromFlags(flags, { multiple: true });
        const configs = new Map<KernelFacts, SimConfig>();
        const bar = progress('validate');
        let kernels: KernelValidation[];
        try {
          kernels = await validateOnKernels(traces, targets, {
            engines: names,
            simFor: (facts) => {
              const c = simConfigFor(flags, facts);
              configs.set(facts, c);
              return c.options;
            },
            stepDeadlineMs,
            guest,
            hooks: (t) => {
              bar.stop();
              return guestHooks(t.label);
            },
            onTrace: (t, i, n, name) => bar.update(i, n, `${targets.length > 1 ? `${t.label}: ` : ''}${name}`),
          });
        } finally {
          bar.stop();
        }
        const all = kernels.flatMap((k) => k.results);
        const failed = all.some((r) => r.status === 'mismatch');
        const summary = { kernels: kernels.length, ...summaryOf(all) };
        const labels = kernels.map((k) => k.target.label);
        const disagreements: Disagreement[] = kernelDisagreements(
          kernels.map((k) => ({ label: k.target.label, sim: k.sim, observations: kernelObservations(k) })),
        );
        const first = configs.get(kernels[0]!.facts)!;
        const exported: KernelResults[] = kernels.map((k) => ({ label: k.target.label, release: k.facts.release, results: k.results }));
        writeExports(flags, { csv: () => validationCsv(exported), markdown: () => validationMarkdown(exported) });
        if (flags.tap) {
          process.stdout.write(validationTap(exported));
          return failed ? EXIT_FAILED : EXIT_OK;
        }
        if (flags.report !== undefined) {
          const byName = new Map(traces.map((t) => [t.name, t]));
          const matrix: KernelMatrix = {
            kernels: kernels.map((k) => ({ label: k.target.label, release: k.facts.release, accel: k.guest ? k.guest.accel.toUpperCase() : null, profile: configs.get(k.facts)!.profile.name })),
            traces: traces.map((t, i) => ({ name: t.name, cells: kernels.map((k) => matrixCell(k.results[i])) })),
            disagreements,
            stepName: (trace, step) => stepLabel(byName.get(trace)!, { step }),
          };
          const out = resolve(flags.report);
          writeFileAtomic(out, renderValidationReport(matrix, kernels.map((k) => ({ label: k.target.label, env: k.env }))), '--report');
          process.stderr.write(`cowlab: report: ${out}\n`);
        }
        if (flags.json) {
          printJson({
            env: environment(),
            engines: names,
            reference: all[0]?.reference ?? null,
            costModel: { description: describeChosenCostModel(first.costModel), path: first.costModel.path, ...first.costModel.model },
            summary,
            kernels: kernels.map((k) => kernelJson(k, configs.get(k.facts)!)),
            matrix: {
              kernels: labels,
              traces: traces.map((t, i) => ({ trace: t.name, status: kernels.map((k) => k.results[i]!.status) })),
            },
            disagreements,
          });
          return failed ? EXIT_FAILED : EXIT_OK;
        }
        print(`validate: ${traces.length} trace${traces.length === 1 ? '' : 's'} on ${kernels.length === 1 ? 'one kernel' : `${kernels.length} kernels`}, engines ${names.join(', ')} (reference: ${all[0]?.reference ?? '-'})`);
        for (const k of kernels) {
          print(`kernel ${k.target.label}: ${describeKernel(k)}`);
          print(`  simulator: ${describeSimConfig(configs.get(k.facts)!)}`);
          for (const c of configs.get(k.facts)!.profile.caveats) print(`  note: ${c}`);
        }
        for (const n of new Set(kernels.flatMap((k) => (k.guest?.accelNote ? [k.guest.accelNote] : [])))) print(`note: ${n}`);
        print(`cost model: ${describeChosenCostModel(first.costModel)}`);
        print();
        if (kernels.length === 1) {
          print(summaryTable(kernels[0]!.results, kernelObservations(kernels[0]!), { emulated: kernels[0]!.guest?.accel === 'tcg' }));
          const sets = kernels[0]!.results.flatMap((r) => r.comparisons.flatMap((c) => describeOutcomes(r.trace, c)));
          if (sets.length) {
            print();
            for (const l of sets) print(l);
          }
        } else {
          const profiles = kernels.map((k) => configs.get(k.facts)!.profile.name);
          print(matrixTable(labels, traces.map((t) => t.name), (i, k) => matrixCell(kernels[k]!.results[i]), profiles));
          print();
          if (disagreements.length === 0) print('The kernels agree on every observation of every trace.');
          else {
            print(`What the kernels disagree on (${disagreements.length} observation${disagreements.length === 1 ? '' : 's'}; the profile switch that reproduces each, values per kernel):`);
            const byName = new Map(traces.map((t) => [t.name, t]));
            print(disagreementTable(labels, disagreements, (trace, step) => stepLabel(byName.get(trace)!, { step })));
          }
        }
        let detailed = 0;
        for (const k of kernels) {
          for (const r of k.results.filter((x) => flags.verbose || traces.length === 1 || x.status === 'mismatch')) {
            for (const c of r.comparisons) {
              const obs = r.engines.find((e) => e.engine === c.observed)!.observations!;
              const pred = r.engines.find((e) => e.engine === c.predicted)!.observations!;
              print();
              for (const line of traceHeader(obs.trace, `${c.predicted} vs ${c.observed}${kernels.length > 1 ? ` on ${k.target.label}` : ''}`)) print(line);
              print(stepTable(c, pred, obs));
              for (const [field, why] of Object.entries(c.unavailable)) print(`not compared: ${field}: ${why}`);
              detailed++;
            }
          }
        }
        if (detailed > 0) print(`\n${LEGEND}`);
        print();
        const where = kernels.length > 1 ? ` (${kernels.length} kernels x ${traces.length} traces)` : '';
        print(`${summary.matched} matched, ${summary.mismatched} mismatched, ${summary.notMeasurable} not measurable here${where}`);
        return failed ? EXIT_FAILED : EXIT_OK;
      }),
    );
}
