/** `cowlab run`: the experiment suite, a summary table, results.json and report.html. */
import { join, relative } from 'node:path';

import type { Command } from 'commander';

import { CowlabError, invalidOption } from '../../errors.js';
import { native } from '../../native.js';
import { renderReport } from '../../report/html.js';
import { renderComparisonReport } from '../../report/compareHtml.js';
import { matrixFromResults, type KernelMatrix } from '../../report/kernels.js';
import { suiteInGuest } from '../../guest/commands.js';
import type { GuestOptions } from '../../guest/runner.js';
import type { KernelTarget } from '../../kernels/targets.js';
import { EXPERIMENTS, parseResults, runSuite, selectExperiments, type ResultsDocument } from '../../suite/index.js';
import { SUITE_THP, type SuiteThp } from '../../suite/types.js';
import { chooseCostModel } from '../../calibrate/store.js';
import { checkOutputDir, checkOutputFile, ensureOutputDir, isDirectory, writeFileAtomic } from '../../util/files.js';
import { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, action } from '../run.js';
import { addKernelFlags, guestHooks, targetsFromFlags, type KernelFlags } from '../kernelFlags.js';
import { wrapText } from '../../report/format.js';
import { print, printJson, table, wrappedTable } from '../output.js';
import { addExportFlags, checkExportFlags, writeExports, type ExportFlags } from '../exportFlags.js';
import { resultsCsv, resultsMarkdown } from '../../suite/export.js';
import { progress } from '../progress.js';

export const DEFAULT_OUT = 'cowlab-results';
/** A whole suite in a TCG guest: a few minutes; the deadline leaves room for a slow host. */
const GUEST_SUITE_DEADLINE_MS = 30 * 60_000;

interface Flags extends ExportFlags {
  quick?: boolean;
  thp: string;
  out: string;
  json?: boolean;
}

function verdictCell(v: ResultsDocument['experiments'][number]['verdict']): string {
  return v.verdict === 'not-measurable' ? 'not measurable' : v.verdict;
}

/** The terminal's width: the TTY's, or $COLUMNS; null for a pipe or file (lines are not wrapped). */
function terminalWidth(): number | null {
  if (process.stdout.isTTY && process.stdout.columns > 0) return process.stdout.columns;
  const c = Number(process.env.COLUMNS);
  return Number.isInteger(c) && c > 0 ? c : null;
}

/** Notes, each on one line, or wrapped to `width` with its continuation indented. */
function printNotes(notes: readonly string[], width: number | null): void {
  for (const n of notes) {
    if (width === null) print(n);
    else wrapText(n, width - 6).forEach((line, i) => print(i === 0 ? `  ${line}` : `      ${line}`));
  }
}

/**
 * One line per experiment: claim, figure (or why not measurable), verdict; then the notes. On a
 * terminal the figure wraps to the terminal's width (the full text is in --json and the report).
 */
export function printSummary(doc: ResultsDocument, files: { results: string; report: string }): void {
  const width = terminalWidth();
  const head = ['#', 'experiment', 'verdict', 'claim', 'measured here (or why not)'];
  const align = ['right', 'left', 'left', 'left', 'left'] as const;
  const rows = doc.experiments.map((e) => [
      String(e.number),
      e.name,
      verdictCell(e.verdict),
      e.short,
      e.verdict.verdict === 'not-measurable' ? `${e.verdict.figure === 'not measured' ? '' : `${e.verdict.figure}: `}${e.verdict.reason}` : e.verdict.figure,
    ]);
  const text = width === null ? table(head, rows, align) : wrappedTable(head, rows, align, width, 12, [3, 4]);
  print(text.split('\n').map((l) => l.trimEnd()).join('\n'));
  const notes = doc.experiments.flatMap((e) => e.notes.map((n) => `  ${e.name}: ${n}`));
  if (notes.length) {
    print();
    print('notes:');
    printNotes(notes, width);
  }
  print();
  const counts = (k: string) => doc.experiments.filter((e) => e.verdict.verdict === k).length;
  print(`${counts('confirmed')} confirmed, ${counts('refuted')} refuted, ${counts('not-measurable')} not measurable here; ${(doc.durationMs / 1000).toFixed(1)} s${doc.interrupted ? ' (interrupted)' : ''}`);
  print(`results: ${files.results}`);
  print(`report:  ${files.report}`);
}

/** Runs the suite here, with Ctrl-C stopping the running experiment and keeping the rest. */
/** What a suite run is asked for, on any kernel. */
interface SuiteAsk {
  names: string[];
  quick: boolean;
  thp: SuiteThp;
}

async function runOnHost({ names, quick, thp }: SuiteAsk, selected: number, label: string | null): Promise<ResultsDocument> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = () => {
    signals++;
    native().killAllChildren();
    if (signals === 1) {
      controller.abort();
      process.stderr.write('\ncowlab: interrupted: stopping the running experiment and keeping the results so far (Ctrl-C again to quit at once)\n');
    } else {
      process.exit(EXIT_INTERRUPTED);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const bar = progress(label ? `cowlab run (${label})` : 'cowlab run');
  const tty = process.stderr.isTTY === true;
  let finished = 0;
  try {
    return await runSuite(EXPERIMENTS, {
      names,
      quick,
      thp,
      signal: controller.signal,
      onProgress: (p) => bar.update(finished, p.count, `${p.name}${p.detail ? `: ${p.detail}` : ''}`),
      onResult: (r) => {
        finished++;
        bar.update(finished, selected, r.name);
        if (!tty) process.stderr.write(`cowlab run: ${r.number} ${r.name}: ${verdictCell(r.verdict)} (${(r.durationMs / 1000).toFixed(1)} s)\n`);
      },
    });
  } finally {
    bar.stop();
    native().killAllChildren(); // nothing should be left; belt and braces after Ctrl-C
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The suite in a guest: one boot, the results document checked against the schema. */
async function runInGuestKernel(t: KernelTarget, guest: GuestOptions, ask: SuiteAsk): Promise<ResultsDocument> {
  // What the selected experiments need carried into the guest (Experiment.guest).
  const selected = selectExperiments(EXPERIMENTS, ask.names);
  const carry = {
    modules: [...new Set(selected.flatMap((e) => e.guest?.modules ?? []))],
    tools: [...new Set(selected.flatMap((e) => e.guest?.tools ?? []))],
  };
  const r = await suiteInGuest({ kernel: t.kernel!, options: guest, hooks: guestHooks(t.label) }, ask.names, ask.quick, carry, ask.thp);
  return parseResults(JSON.stringify(r.doc), `the results of the ${t.label} guest`, EXPERIMENTS);
}

/** The files of one run in `dir`. */
function runFiles(dir: string): { results: string; report: string } {
  return { results: join(dir, 'results.json'), report: join(dir, 'report.html') };
}

/**
 * Checks --out before anything is measured: DIR (created when missing, but never its parents,
 * and never in /proc, /sys or /dev), each kernel's DIR/<kernel>/ with several kernels, and
 * every file they will hold (an existing directory named results.json is an error now, not
 * after the run). Creates nothing.
 */
function checkOutDir(dir: string, subdirs: readonly string[]): string {
  const abs = checkOutputDir(dir, '--out', 'last');
  if (!isDirectory(abs)) return abs; // created at the end, empty: nothing in it to collide with
  const dirs = subdirs.length ? subdirs.map((s) => join(abs, s)) : [abs];
  if (subdirs.length) checkOutputFile(join(abs, 'report.html'), '--out');
  for (const d of dirs) {
    checkOutputDir(d, '--out', 'last');
    if (!isDirectory(d)) continue;
    const files = runFiles(d);
    checkOutputFile(files.results, '--out');
    checkOutputFile(files.report, '--out');
  }
  return abs;
}

/** Writes one run's files into `dir` (inside `root`, the --out directory, with several kernels). */
function writeRun(dir: string, doc: ResultsDocument, root?: string): { results: string; report: string } {
  if (root !== undefined) ensureOutputDir(root, '--out', 'last');
  ensureOutputDir(dir, '--out', 'last');
  const files = runFiles(dir);
  writeFileAtomic(files.results, `${JSON.stringify(doc, null, 2)}\n`, '--out');
  writeFileAtomic(files.report, renderReport(doc, EXPERIMENTS), '--out');
  return files;
}

function suiteThp(value: string): SuiteThp {
  if ((SUITE_THP as readonly string[]).includes(value)) return value as SuiteThp;
  throw invalidOption('--thp', `must be ${SUITE_THP.join(' or ')}, got '${value}'`);
}

/** A directory name for a kernel label ("debian:6.1" -> "debian-6.1"). */
export function kernelDirName(label: string): string {
  return label.replace(/[^A-Za-z0-9.+_-]+/g, '-').replace(/^-+|-+$/g, '') || 'kernel';
}

export function registerRun(program: Command): void {
  const cmd = program
    .command('run')
    .description('run the experiment suite on this machine or on other kernels: a summary, results.json and report.html (the main command)')
    .argument('[names...]', 'experiments to run, by name or number (default: all; see cowlab list)')
    .option('--quick', 'the short suite: fewer sweep points and repeats (well under a minute)')
    .option('--thp <mode>', `the page size of fork-write-latency's sweep: never (4 KiB pages) or always (THP), to compare the two with \`cowlab compare\`; experiments that measure both page sizes, or one by their claim, ignore it`, 'never')
    .option('--out <dir>', 'directory for results.json and report.html', DEFAULT_OUT)
    .option('--json', 'print the results document on stdout instead of the summary');
  addExportFlags(cmd, 'the verdicts and headline metrics (with several kernels, all of them)');
  addKernelFlags(cmd, { multiple: true, commandDeadlineMs: GUEST_SUITE_DEADLINE_MS })
    .addHelpText(
      'after',
      `
Each experiment tests one claim from the COW literature on this kernel and says confirmed,
refuted, or not measurable here (and why: no root, THP disabled, not enough memory, a trace
the kernel engine cannot run here). Sizes are clamped to what the machine holds, said in the
notes.

The default suite takes at most about 3 minutes on a 2-core machine; --quick well under one.
Ctrl-C stops the running experiment, kills every child process, and still writes the results
collected so far (marked interrupted); exit status 130.

With --kernel, the suite runs on each kernel named (one QEMU guest boot per kernel; host is
this machine). Under TCG (no working KVM) the guest CPU is emulated: experiments whose
verdict rests on measured time are not measurable there, the others stand. With several
kernels, DIR/<kernel>/ holds each kernel's results.json and report.html, and DIR/report.html
puts them side by side: every verdict per kernel, the built-in scenarios validated on each,
and what the kernels disagree on. \`cowlab compare\` takes any two of the results files.

Examples:
  cowlab run
  cowlab run --quick --out /tmp/cow
  cowlab run fork-cost thp-cow
  cowlab run --quick --kernel host,debian:6.1,debian:6.12
  cowlab run 1 4 --json > results.json
  cowlab run fork-write-latency --out a && cowlab run fork-write-latency --thp always --out b && cowlab compare a b
  cowlab run --quick zero-page --export-csv zero-page.csv --export-markdown zero-page.md`,
    )
    .action(
      action(async (names: string[], flags: Flags & KernelFlags) => {
        const selected = selectExperiments(EXPERIMENTS, names); // bad names exit 2 before anything runs
        const thp = suiteThp(flags.thp);
        const dir = checkOutDir(flags.out, []); // --out is checked before anything runs; created only at the end
        checkExportFlags(flags);
        chooseCostModel(); // a COWLAB_COST_MODEL naming no readable model exits 2 now, not inside an experiment
        const { targets, guest } = await targetsFromFlags(flags, { multiple: true, commandDeadlineMs: GUEST_SUITE_DEADLINE_MS });
        const ask: SuiteAsk = { names, quick: flags.quick === true, thp };
        const several = targets.length > 1;
        if (several) checkOutDir(dir, targets.map((t) => kernelDirName(t.label)));
        const runs: { label: string; doc: ResultsDocument; files: { results: string; report: string } }[] = [];
        let interrupted = false;
        for (const t of targets) {
          let doc: ResultsDocument;
          try {
            doc = t.kernel === null ? await runOnHost(ask, selected.length, several ? t.label : null) : await runInGuestKernel(t, guest!, ask);
          } catch (err) {
            if (err instanceof CowlabError && err.code === 'ERR_INTERRUPTED' && runs.length > 0) {
              process.stderr.write(`cowlab: ${err.message}; keeping the kernels that finished\n`);
              interrupted = true;
              break;
            }
            throw err;
          }
          runs.push({ label: t.label, doc, files: several ? writeRun(join(dir, kernelDirName(t.label)), doc, dir) : writeRun(dir, doc) });
          if (doc.interrupted) {
            interrupted = true;
            break;
          }
        }
        writeExports(flags, {
          csv: () => (several ? resultsCsv(runs) : resultsCsv(runs[0]!.doc)),
          markdown: () => (several ? resultsMarkdown(runs) : resultsMarkdown(runs[0]!.doc)),
        });
        if (!several) {
          const { doc, files } = runs[0]!;
          if (flags.json) printJson(doc);
          else printSummary(doc, files);
        } else {
          const report = join(dir, 'report.html');
          const matrix = matrixFromResults(runs);
          // The kernels side by side: verdicts, the scenario matrix, every chart paired on shared axes.
          const labelled = runs.map((r) => ({ label: r.label, doc: r.doc, file: relative(dir, r.files.results), report: relative(dir, r.files.report) }));
          writeFileAtomic(report, renderComparisonReport(labelled, null, EXPERIMENTS), '--out');
          if (flags.json) printJson({ tool: 'cowlab', kernels: runs.map((r) => ({ kernel: r.label, results: r.doc })) });
          else printKernelsSummary(runs, matrix, report);
        }
        if (interrupted) return EXIT_INTERRUPTED;
        return runs.some((r) => r.doc.experiments.some((e) => e.status === 'failed')) ? EXIT_FAILED : EXIT_OK;
      }),
    );
}

/** Several kernels: the verdicts side by side, then where each kernel's files are. */
function printKernelsSummary(runs: { label: string; doc: ResultsDocument; files: { results: string; report: string } }[], matrix: KernelMatrix, report: string): void {
  const labels = runs.map((r) => r.label);
  print(table(['experiment', ...labels], (matrix.verdicts ?? []).map((v) => [v.name, ...v.cells.map((c) => c.replace('-', ' '))]), ['left', ...labels.map(() => 'left' as const)]));
  // The scenarios are validated by model-validation: a run without it has none to show.
  if (matrix.traces.length > 0) {
    print();
    print(table(['scenario', ...labels], [...matrix.traces.map((t) => [t.name, ...t.cells]), ['(profile)', ...matrix.kernels.map((k) => k.profile)]], ['left', ...labels.map(() => 'left' as const)]));
  }
  if (matrix.disagreements.length) {
    print();
    print(`The kernels disagree on ${matrix.disagreements.length} observation${matrix.disagreements.length === 1 ? '' : 's'} of the scenarios (see the report).`);
  }
  for (const r of runs) {
    const notes = r.doc.experiments.flatMap((e) => e.notes.map((n) => `  ${r.label}: ${e.name}: ${n}`));
    if (notes.length) {
      print();
      printNotes(notes, terminalWidth());
    }
  }
  print();
  for (const r of runs) print(`${r.label.padEnd(Math.max(...labels.map((l) => l.length)))}  ${r.files.results}`);
  print(`report: ${report}`);
}
