/** `cowlab run`: the experiment suite, a summary table, results.json and report.html. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import type { Command } from 'commander';

import { EXPERIMENTS } from '../../../experiments/index.js';
import { CowlabError } from '../../errors.js';
import { native } from '../../native.js';
import { renderReport } from '../../report/html.js';
import { runSuite, selectExperiments } from '../../suite/runner.js';
import type { ResultsDocument } from '../../suite/schema.js';
import { EXIT_FAILED, EXIT_OK, action } from '../run.js';
import { print, printJson, table } from '../output.js';
import { progress } from '../progress.js';

export const EXIT_INTERRUPTED = 130;
export const DEFAULT_OUT = 'cowlab-results';

interface Flags {
  quick?: boolean;
  out: string;
  json?: boolean;
}

function verdictCell(v: ResultsDocument['experiments'][number]['verdict']): string {
  return v.verdict === 'not-measurable' ? 'not measurable' : v.verdict;
}

/** One line per experiment: claim, figure (or why not measurable), verdict; then the notes. */
export function printSummary(doc: ResultsDocument, files: { results: string; report: string }): void {
  print(table(
    ['#', 'experiment', 'verdict', 'claim', 'measured here (or why not)'],
    doc.experiments.map((e) => [
      String(e.number),
      e.name,
      verdictCell(e.verdict),
      e.short,
      e.verdict.verdict === 'not-measurable' ? `${e.verdict.figure === 'not measured' ? '' : `${e.verdict.figure}: `}${e.verdict.reason}` : e.verdict.figure,
    ]),
    ['right', 'left', 'left', 'left', 'left'],
  ).split('\n').map((l) => l.trimEnd()).join('\n'));
  const notes = doc.experiments.flatMap((e) => e.notes.map((n) => `  ${e.name}: ${n}`));
  if (notes.length) {
    print();
    print('notes:');
    for (const n of notes) print(n);
  }
  print();
  const counts = (k: string) => doc.experiments.filter((e) => e.verdict.verdict === k).length;
  print(`${counts('confirmed')} confirmed, ${counts('refuted')} refuted, ${counts('not-measurable')} not measurable here; ${(doc.durationMs / 1000).toFixed(1)} s${doc.interrupted ? ' (interrupted)' : ''}`);
  print(`results: ${files.results}`);
  print(`report:  ${files.report}`);
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run the experiment suite on this machine: a summary, results.json and report.html (the main command)')
    .argument('[names...]', 'experiments to run, by name or number (default: all; see cowlab list)')
    .option('--quick', 'the short suite: fewer sweep points and repeats (well under a minute)')
    .option('--out <dir>', 'directory for results.json and report.html', DEFAULT_OUT)
    .option('--json', 'print the results document on stdout instead of the summary')
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

Examples:
  cowlab run
  cowlab run --quick --out /tmp/cow
  cowlab run fork-cost thp-cow
  cowlab run 1 4 --json > results.json`,
    )
    .action(
      action(async (names: string[], flags: Flags) => {
        const selected = selectExperiments(EXPERIMENTS, names); // bad names exit 2 before anything runs
        const dir = resolve(flags.out);
        try {
          mkdirSync(dir, { recursive: true });
        } catch (err) {
          throw new CowlabError('ERR_INVALID_OPTION', `--out: cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: '--out' });
        }
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
        const bar = progress('cowlab run');
        const tty = process.stderr.isTTY === true;
        let finished = 0;
        let doc: ResultsDocument;
        try {
          doc = await runSuite(EXPERIMENTS, {
            names,
            quick: flags.quick === true,
            signal: controller.signal,
            onProgress: (p) => bar.update(finished, p.count, `${p.name}${p.detail ? `: ${p.detail}` : ''}`),
            onResult: (r) => {
              finished++;
              bar.update(finished, selected.length, r.name);
              if (!tty) process.stderr.write(`cowlab run: ${r.number} ${r.name}: ${verdictCell(r.verdict)} (${(r.durationMs / 1000).toFixed(1)} s)\n`);
            },
          });
        } finally {
          bar.stop();
          native().killAllChildren(); // nothing should be left; belt and braces after Ctrl-C
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
        const files = { results: join(dir, 'results.json'), report: join(dir, 'report.html') };
        writeFileSync(files.results, `${JSON.stringify(doc, null, 2)}\n`);
        writeFileSync(files.report, renderReport(doc, EXPERIMENTS));
        if (flags.json) printJson(doc);
        else printSummary(doc, files);
        if (doc.interrupted) return EXIT_INTERRUPTED;
        return doc.experiments.some((e) => e.status === 'failed') ? EXIT_FAILED : EXIT_OK;
      }),
    );
}
