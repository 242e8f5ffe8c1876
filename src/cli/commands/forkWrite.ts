/** `cowlab fork-write`: per-page COW fault latency of a real fork, verified by pagemap. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { invalidOption } from '../../errors.js';
import { forkWrite, forkWriteToJson, type ForkWriteResult, type ForkWriteRun, type SideRun } from '../../forkwrite/forkWrite.js';
import { checkDeadlineOutlastsChild, resolveForkWriteOptions, PARENT_WHEN, THP_CHOICES, WRITERS, type ForkWriteOptions } from '../../forkwrite/options.js';
import { formatPattern } from '../../forkwrite/pattern.js';
import { formatBytes, formatCount, formatNs } from '../../report/format.js';
import type { Band } from '../../stats/summary.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';
import { progress } from '../progress.js';

interface Flags {
  pages: string;
  pattern: string;
  seed: string;
  count?: string;
  thp: string;
  writer: string;
  parentWhen: string;
  repeats: string;
  warmup: string;
  holdMs: string;
  deadlineMs?: string;
  json?: boolean;
  raw?: boolean;
}

const FLAG: Record<keyof ForkWriteOptions, string> = {
  pages: '--pages', pattern: '--pattern', seed: '--seed', count: '--count', thp: '--thp', writer: '--writer',
  parentWhen: '--parent-when', repeats: '--repeats', warmup: '--warmup', deadlineMs: '--deadline-ms',
  holdMs: '--hold-ms', onProgress: '--progress',
  // API-only options (no flag): named as the API names them.
  order: 'order', childAccess: 'childAccess', parentPaceNs: 'parentPaceNs', onRunStart: 'onRunStart',
};

/** Flags (strings) to API options; values are checked by the API with the flag names. */
function toOptions(f: Flags): ForkWriteOptions {
  if (f.raw && !f.json) throw invalidOption('--raw', 'only goes with --json (it adds every per-page latency to the JSON document)');
  const o: ForkWriteOptions = {
    pages: f.pages as unknown as number,
    pattern: f.pattern as ForkWriteOptions['pattern'], // a string from the command line, checked by parsePattern
    seed: f.seed as unknown as number,
    thp: f.thp as ForkWriteOptions['thp'],
    writer: f.writer as ForkWriteOptions['writer'],
    parentWhen: f.parentWhen as ForkWriteOptions['parentWhen'],
    repeats: f.repeats as unknown as number,
    warmup: f.warmup as unknown as number,
    holdMs: f.holdMs as unknown as number,
  };
  if (f.count !== undefined) o.count = f.count as unknown as number;
  if (f.deadlineMs !== undefined) o.deadlineMs = f.deadlineMs as unknown as number;
  // Checked here, with flag names, before anything is allocated; forkWrite re-checks numbers.
  const resolved = resolveForkWriteOptions(o, (k) => FLAG[k]);
  checkDeadlineOutlastsChild(resolved, (k) => FLAG[k]);
  const { order: _order, ...r } = resolved;
  return { ...o, ...r, pattern: formatPattern(r.pattern), seed: r.pattern.kind === 'rand' ? r.pattern.seed : 1 };
}

function sideCells(s: SideRun | null): string[] {
  if (s === null || s.perPageNs === null) return ['-', '-', '-', '-', '-'];
  const p = s.perPageNs;
  return [formatNs(p.p50), formatNs(p.p90), formatNs(p.p99), formatNs(p.max), formatCount(s.faults)];
}

function bandCell(b: Band | null | undefined): string {
  if (!b) return '-';
  return `${formatNs(b.median)}${b.noisy ? ' (noisy)' : ''}`;
}

function runLabel(r: ForkWriteRun, all: ForkWriteRun[]): string {
  if (r.warmup) return `warm-up ${r.index + 1}${r.index === 0 ? ' (cold)' : ''}`;
  const firstMeasured = all.findIndex((x) => !x.warmup);
  return `run ${r.index - firstMeasured + 1}${r.index === 0 ? ' (cold)' : ''}`;
}

function printResult(r: ForkWriteResult): void {
  const o = r.options;
  const env = environment();
  const writes = o.writer === 'child' ? 'the child writes' : o.writer === 'parent'
    ? `the parent writes (${o.parentWhen === 'child-alive' ? 'while the child lives' : 'after the child exited'})`
    : `the child writes, then the parent (${o.parentWhen === 'child-alive' ? 'while the child lives' : 'after it exited'})`;
  print(`fork-write: ${formatCount(o.pages)} pages (${formatBytes(o.pages * env.pageSize)}), ${formatCount(o.count)} written, pattern ${formatPattern(o.pattern)}, THP ${o.thp}; ${writes}`);
  print(`kernel ${env.kernel}, ${r.pfnVisible ? 'PFNs visible (root)' : `PFNs hidden: ${env.privileges.pfnReason}`}, timer overhead ${formatNs(r.runs[0]?.timerOverheadNs)} per store`);
  if (r.thp.requested) {
    const thpPages = r.thp.thpPages === null ? '' : `, ${formatCount(r.thp.thpPages)} pages in THPs (kpageflags)`;
    print(`THP backing before the fork: ${formatBytes(r.thp.hugeBytes)} AnonHugePages${thpPages}`);
  }
  print();
  const head = ['', 'fork', 'child p50', 'p90', 'p99', 'max', 'faults', 'parent p50', 'p90', 'p99', 'max', 'faults'];
  const rows = r.runs.map((run) => [runLabel(run, r.runs), formatNs(run.forkNs), ...sideCells(run.child), ...sideCells(run.parent)]);
  const w = r.summary.warm;
  rows.push([
    'warm median', bandCell(w.forkNs),
    bandCell(w.child?.p50), bandCell(w.child?.p90), bandCell(w.child?.p99), bandCell(w.child?.max), w.child?.faults ? formatCount(w.child.faults.median) : '-',
    bandCell(w.parent?.p50), bandCell(w.parent?.p90), bandCell(w.parent?.p99), bandCell(w.parent?.max), w.parent?.faults ? formatCount(w.parent.faults.median) : '-',
  ]);
  print(table(head, rows));
  const last = r.runs[r.runs.length - 1]!;
  const v = last.verify;
  print();
  print('verification (last run, from pagemap):');
  print(`  shared after fork       ${formatCount(v.sharedAfterFork)} of ${formatCount(o.pages)} pages${last.kpagecountTwoAfterFork === null ? '' : ` (kpagecount 2: ${formatCount(last.kpagecountTwoAfterFork)})`}`);
  print(`  PFN changed in writer   ${v.pfnChangedInWriter === null ? 'n/a (PFNs hidden)' : formatCount(v.pfnChangedInWriter)} of ${formatCount(o.count)} written`);
  print(`  PFN kept in the other   ${v.pfnKeptInOther === null ? 'n/a' : formatCount(v.pfnKeptInOther)}`);
  print(`  exclusive after write   ${formatCount(v.exclusiveAfterWrite)}`);
  for (const [name, s] of [['child', last.child], ['parent', last.parent]] as const) {
    if (s?.vmstat) {
      const d = s.vmstat;
      print(`  vmstat around ${name} writes: pgfault +${formatCount(d.pgfault)}, pgreuse +${formatCount(d.pgreuse)}, thp_split_pmd +${formatCount(d.thp_split_pmd)}`);
    }
  }
  const noisy = [w.child?.p50, w.parent?.p50].some((b) => b?.noisy);
  if (noisy) print('note: the p50 band over repeats is wider than 2x: treat these figures as noise (see DESIGN measuring rules).');
}

export function registerForkWrite(program: Command): void {
  program
    .command('fork-write')
    .description('fork this process over a populated region and time every COW fault the writes take')
    .requiredOption('--pages <n>', 'region size in 4 KiB pages (populated before the fork)')
    .option('--pattern <p>', 'write order: seq | rand | stride:N (every Nth page)', 'seq')
    .option('--seed <n>', 'seed of the rand pattern', '1')
    .option('--count <n>', 'write only the first n pages of the pattern (default: all)')
    .option('--thp <mode>', `huge pages: ${THP_CHOICES.join(' | ')}`, 'never')
    .option('--writer <who>', `who writes after the fork: ${WRITERS.join(' | ')}`, 'child')
    .option('--parent-when <when>', `when the parent writes: ${PARENT_WHEN.join(' | ')}`, 'child-alive')
    .option('--repeats <n>', 'measured runs', '5')
    .option('--warmup <n>', 'runs before the measured ones (reported as cold/warm-up)', '1')
    .option('--hold-ms <ms>', 'the child keeps its snapshot this long before exiting', '0')
    .option('--deadline-ms <ms>', 'kill a child that has not finished by then (default: 10 s + 50 µs per page)')
    .option('--json', 'print one JSON document: { env, options, runs, summary }')
    .option('--raw', 'with --json, include every per-page latency')
    .addHelpText(
      'after',
      `
What it measures:
  The region is private anonymous memory in this Node process, written page by page before
  the fork so every page is present. After fork() (of Node itself) each page is shared
  read-only; the first store to a page in either process copies it (a COW fault). Each run
  is a trace on the kernel engine (cowlab run-trace runs the same kind): each store is timed
  alone with clock_gettime in native code, faults come from getrusage, and the pagemap of
  both processes after every step verifies what happened (shared after fork, PFN changed in
  the writer, PFN kept in the other process); the values are read back at the end.

  --writer parent --parent-when child-exited measures reuse: the child is gone, the page is
  no longer shared, so the kernel makes it writable in place (a fault, but no copy).

Examples:
  cowlab fork-write --pages 4096
  cowlab fork-write --pages 65536 --pattern rand --repeats 10 --json
  cowlab fork-write --pages 2048 --thp always --pattern stride:512
  cowlab fork-write --pages 4096 --writer parent --parent-when child-exited

PFNs need root (CAP_SYS_ADMIN); without it the PFN-based checks print n/a.`,
    )
    .action(
      action(async (flags: Flags) => {
        const options = toOptions(flags);
        const bar = progress('fork-write');
        let result: ForkWriteResult;
        try {
          result = await forkWrite({ ...options, onProgress: (p) => bar.update(p.done, p.total, p.warmup ? '(warm-up)' : '') });
        } finally {
          bar.stop();
        }
        if (flags.json) printJson({ env: environment(), ...forkWriteToJson(result, flags.raw === true) });
        else printResult(result);
      }),
    );
}
