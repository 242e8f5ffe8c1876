/**
 * --export-csv FILE and --export-markdown FILE, shared by run, validate and compare. The paths
 * are checked before anything runs (exit 2 on a directory, /proc, a missing parent, the same
 * file twice, or an input file); the files are written at the end, atomically, and named on
 * stderr so that stdout stays the command's own output.
 */
import { resolve } from 'node:path';

import type { Command } from 'commander';

import { invalidOption } from '../errors.js';
import { checkOutputFile, sameFile, writeFileAtomic } from '../util/files.js';

export interface ExportFlags {
  exportCsv?: string;
  exportMarkdown?: string;
}

export function addExportFlags(cmd: Command, what: string): Command {
  return cmd
    .option('--export-csv <file>', `also write ${what} as CSV (RFC 4180, a header row, numbers in full)`)
    .option('--export-markdown <file>', `also write ${what} as markdown tables (for an issue or a pull request)`);
}

/** Checks both paths now; `inputs` are files the command reads, which an export must not replace. */
export function checkExportFlags(flags: ExportFlags, inputs: readonly string[] = []): void {
  const given: [string, string][] = [];
  if (flags.exportCsv !== undefined) given.push(['--export-csv', flags.exportCsv]);
  if (flags.exportMarkdown !== undefined) given.push(['--export-markdown', flags.exportMarkdown]);
  for (const [field, path] of given) {
    checkOutputFile(path, field, { suggest: field === '--export-csv' ? 'results.csv' : 'results.md' });
    for (const input of inputs) if (sameFile(path, input)) throw invalidOption(field, `${resolve(path)} is an input file of this command; give another file`);
  }
  if (given.length === 2 && sameFile(given[0]![1], given[1]![1])) throw invalidOption('--export-markdown', `${resolve(given[1]![1])} is also the --export-csv file; give two files`);
}

/** Writes the exports asked for; each is rendered only when asked. */
export function writeExports(flags: ExportFlags, render: { csv: () => string; markdown: () => string }): void {
  if (flags.exportCsv !== undefined) {
    const out = writeFileAtomic(flags.exportCsv, render.csv(), '--export-csv');
    process.stderr.write(`cowlab: csv: ${out}\n`);
  }
  if (flags.exportMarkdown !== undefined) {
    const out = writeFileAtomic(flags.exportMarkdown, render.markdown(), '--export-markdown');
    process.stderr.write(`cowlab: markdown: ${out}\n`);
  }
}
