/** `cowlab report`: rebuild report.html from a results file. */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import type { Command } from 'commander';

import { EXPERIMENTS } from '../../../experiments/index.js';
import { CowlabError } from '../../errors.js';
import { renderReport } from '../../report/html.js';
import { parseResults, type ResultsDocument } from '../../suite/schema.js';
import { action } from '../run.js';
import { print } from '../output.js';

/** Reads and checks a results file; a missing or bad file is bad input (exit 2). */
export function readResults(path: string): ResultsDocument {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CowlabError('ERR_INVALID_OPTION', `${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: path });
  }
  return parseResults(text, path, EXPERIMENTS);
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
        const out = resolve(flags.out ?? join(dirname(file), 'report.html'));
        writeFileSync(out, renderReport(doc, EXPERIMENTS));
        print(`report: ${out}`);
      }),
    );
}
