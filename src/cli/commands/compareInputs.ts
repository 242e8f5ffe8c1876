/**
 * What `cowlab compare` may be given: a results file, a `run --out` directory (its
 * results.json), or the directory of a run on several kernels, which holds no results.json of
 * its own but one per kernel in DIR/<kernel>/ (run.ts writeRun): that gives one run per kernel.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { invalidOption } from '../../errors.js';
import type { LabelledRun } from '../../report/compareHtml.js';
import { readResults } from './report.js';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // missing or unreadable: readResults names the problem
  }
}

/** DIR/<kernel>/results.json of a several-kernel run, the host first, then by name. */
function kernelRuns(dir: string): { label: string; file: string }[] {
  const subdirs = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'results.json')))
    .map((d) => d.name)
    .sort((x, y) => (x === 'host' ? -1 : y === 'host' ? 1 : x.localeCompare(y)));
  return subdirs.map((name) => ({ label: name, file: join(dir, name, 'results.json') }));
}

/**
 * The runs one argument names. `label` ("a", "b") labels a single run; a several-kernel
 * directory's runs are labelled by kernel, prefixed with `label` when `prefix` (both
 * arguments given, so that two matrices cannot give two runs the same name).
 */
export function runsOf(arg: string, label: string, field: string, prefix: boolean): LabelledRun[] {
  if (!isDirectory(arg)) return [{ label, file: arg, doc: readResults(arg) }];
  const own = join(arg, 'results.json');
  if (existsSync(own)) return [{ label, file: own, doc: readResults(own) }];
  const kernels = kernelRuns(arg);
  if (kernels.length === 0) throw invalidOption(field, `${arg} is a directory with no results.json, and no <kernel>/results.json of a run on several kernels`);
  return kernels.map((k) => ({ label: prefix ? `${label}:${k.label}` : k.label, file: k.file, doc: readResults(k.file) }));
}
