/** `cowlab report`: rebuild report.html from a results file. */
import { dirname, join, resolve } from 'node:path';

import type { Command } from 'commander';

import { invalidOption } from '../../errors.js';
import { renderReport } from '../../report/html.js';
import { EXPERIMENTS, parseResults, type ResultsDocument } from '../../suite/index.js';
import { checkOutputFile, MAX_RESULTS_BYTES, readBoundedText, sameFile, writeFileAtomic } from '../../util/files.js';
import { action } from '../run.js';
import { print } from '../output.js';

/**
 * Reads and checks a results file; a missing, oversized (MAX_RESULTS_BYTES), special (a
 * device, a directory) or bad file is bad input (exit 2). A pipe (`/dev/stdin`) is read up to
 * the same cap.
 */
export function readResults(path: string): ResultsDocument {
  return parseResults(readBoundedText(path, MAX_RESULTS_BYTES, path), path, EXPERIMENTS);
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('rebuild report.html from a results.json (checked against its schema first)')
    .argument('<results>', 'a results.json written by cowlab run')
    .option('--out <file>', 'the HTML file to write (default: report.html beside the results file)')
    .action(
      action((file: string, flags: { out?: string }) => {
        const doc = readResults(file);
        const given = flags.out !== undefined;
        const target = resolve(flags.out ?? join(dirname(file), 'report.html'));
        let out: string;
        try {
          out = checkOutputFile(target, '--out', { suggest: 'report.html' });
        } catch (err) {
          // The default lies beside the results file: say so when that place is the problem (/dev/stdin).
          if (!given && err instanceof Error) throw invalidOption('--out', `${err.message.replace(/^--out: /, '')} (the default, report.html beside ${file}; give --out)`);
          throw err;
        }
        if (sameFile(out, file)) throw invalidOption('--out', `${out} is the results file itself; give another file`);
        writeFileAtomic(out, renderReport(doc, EXPERIMENTS), '--out');
        print(`report: ${out}`);
      }),
    );
}
