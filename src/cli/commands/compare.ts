/**
 * `cowlab compare`: two results files side by side, each headline metric judged over its raw
 * samples (COMPARE_RULE), with --only-differences, --fail-on-difference and exports; --html
 * writes the comparison as a page with paired charts, also for the kernels of one run.
 */
import type { Command } from 'commander';

import { formatRatio, wrapText } from '../../report/format.js';
import { formatBand, formatMetricValue } from '../../suite/present.js';
import { anyDifference, compareResults, placementOnly, COMPARE_TEST, type Comparison, type MetricComparison } from '../../suite/compare.js';
import { comparisonCsv, comparisonMarkdown, formatInterval, formatSampleCounts, OUTCOME_WORDS } from '../../suite/export.js';
import { describeExplanation } from '../../validate/disagreements.js';
import type { Band } from '../../stats/summary.js';
import { EXIT_FAILED, EXIT_OK, action } from '../run.js';
import { addExportFlags, checkExportFlags, writeExports, type ExportFlags } from '../exportFlags.js';
import { print, printJson, table } from '../output.js';
import { invalidOption } from '../../errors.js';
import { renderComparisonReport, type LabelledRun } from '../../report/compareHtml.js';
import { EXPERIMENTS } from '../../suite/index.js';
import { checkOutputFile, sameFile, writeFileAtomic } from '../../util/files.js';
import { runsOf } from './compareInputs.js';

interface Flags extends ExportFlags {
  json?: boolean;
  html?: string;
  onlyDifferences?: boolean;
  failOnDifference?: boolean;
}

function cell(b: Band | null, unit: string): string {
  return b === null ? '-' : formatBand(b, formatMetricValue(unit));
}

function metricRow(m: MetricComparison): string[] {
  return [m.label, cell(m.a, m.unit), cell(m.b, m.unit), formatRatio(m.ratio), formatInterval(m), formatSampleCounts(m), OUTCOME_WORDS[m.outcome]];
}

/** The comparison as --only-differences shows it: changed experiments, different metrics. */
function onlyDifferences(c: Comparison): Comparison {
  const experiments = c.experiments
    .map((e) => ({ ...e, metrics: e.metrics.filter((m) => m.different) }))
    .filter((e) => e.verdictChanged || e.metrics.length > 0);
  return { ...c, experiments };
}

const pct = (f: number) => `${Math.round(f * 100)} %`;

/** --html checked before anything is read further: a writable file, none of the inputs. */
function checkHtmlFlag(path: string, inputs: readonly string[]): string {
  const out = checkOutputFile(path, '--html', { suggest: 'compare.html' });
  for (const input of inputs) if (sameFile(out, input)) throw invalidOption('--html', `${out} is an input file of this command; give another file`);
  return out;
}

function writeHtml(path: string, page: string): void {
  const out = writeFileAtomic(path, page, '--html');
  process.stderr.write(`cowlab: html: ${out}\n`);
}

/** More than two runs (the kernels of a matrix run): only the page puts them all side by side. */
function compareMany(runs: readonly LabelledRun[], flags: Flags, html: string | null): number {
  const labels = runs.map((r) => r.label).join(', ');
  const twoOnly = [flags.json && '--json', flags.exportCsv !== undefined && '--export-csv', flags.exportMarkdown !== undefined && '--export-markdown', flags.onlyDifferences && '--only-differences', flags.failOnDifference && '--fail-on-difference'].filter(Boolean);
  if (!html || twoOnly.length > 0) {
    const why = twoOnly.length > 0 ? `${twoOnly.join(', ')} compare${twoOnly.length === 1 ? 's' : ''} two runs` : 'the printed comparison is of two runs';
    throw invalidOption('<a>', `${runs.length} runs given (${labels}): ${why}; name two results files (e.g. ${runs[0]!.file} ${runs[1]!.file}), or give --html alone for all of them`);
  }
  writeHtml(html, renderComparisonReport(runs, null, EXPERIMENTS));
  print(`${runs.length} runs side by side (${labels}): ${html}`);
  return EXIT_OK;
}

export function registerCompare(program: Command): void {
  const cmd = program
    .command('compare')
    .description('put two results files (two hosts, kernels, or before/after a change) side by side; judge each metric over its raw samples')
    .argument('<a>', 'results.json of run a (the baseline), or a `run --out` directory; the directory of a run on several kernels gives each kernel')
    .argument('[b]', 'results.json of run b (ratios are b / a), or a directory; omitted when <a> holds several kernels')
    .option('--json', 'print the comparison as JSON (every metric with its interval, sample counts, outcome and why)')
    .option('--only-differences', 'show only experiments whose verdict changed and metrics judged different (also in --json and the exports)')
    .option('--fail-on-difference', 'exit 1 when anything differs: a metric judged different, a verdict changed, or a kernel observation that placement alone does not explain (for CI)')
    .option('--html <file>', 'also write the comparison as one self-contained HTML page: per experiment each run\'s charts paired on the same axes, the metric tests, the kernel matrix (with more than two runs: verdicts and charts)');
  addExportFlags(cmd, 'the comparison (one row per metric)')
    .addHelpText(
      'after',
      `
How a difference is judged:
  Each headline metric carries its raw samples (per-repeat figures). With at least
  ${COMPARE_TEST.minSamples} samples per run, a percentile bootstrap (${COMPARE_TEST.resamples} resamples, seeded: the same
  files always give the same answer) gives a ${pct(COMPARE_TEST.level)} confidence interval for the ratio of
  medians b / a. The metric is DIFFERENT when the whole interval lies beyond a ${pct(COMPARE_TEST.minEffect)}
  change (above ${(1 + COMPARE_TEST.minEffect).toFixed(2)}x or below ${(1 / (1 + COMPARE_TEST.minEffect)).toFixed(2)}x) for a count or a size, and
  beyond ${1 + COMPARE_TEST.timeMinEffect}x for a time (between runs a time moves more than its samples within
  one run show), else "no difference".
  With fewer samples (a single figure, or a results file written before samples were kept)
  it is "not enough samples"; a count or a size (never a time: one run of a time moves
  that much with the load) is DIFFERENT when the min-max bands do not overlap and the
  medians are more than ${COMPARE_TEST.apartFactor}x apart. Times from an emulated CPU (a TCG guest) are "not comparable".
  A metric may state a resolution, the smallest change its experiment's rule counts (for
  figures near zero, such as MemAvailable lost by a fork): medians closer than that are
  "no difference".
  The built-in scenarios' observations are compared page by page; those that differ only by
  where the kernel placed a region (which differs between any two runs) do not count.

Columns: a and b are median (min-max); b/a the ratio of medians; CI the interval; n the
samples behind each side. Counts are exact (65,536). --json says why for every metric.

Runs: <a> and <b> are results files or \`run --out\` directories. The directory of a run on
several kernels (\`run --kernel host,debian:6.12\`) holds DIR/<kernel>/results.json: given alone,
its two kernels are a and b; with more kernels only --html takes them all (the others compare
two runs: name two of the files).

Exit status: 0, or with --fail-on-difference 1 when anything differs; 2 on bad input (a file
that is not a results file, an export path that cannot be written).

Examples:
  cowlab compare before/results.json after/results.json
  cowlab compare a.json b.json --only-differences --fail-on-difference   # a CI gate
  cowlab compare a.json b.json --export-markdown compare.md --export-csv compare.csv
  cowlab compare a.json b.json --html compare.html
  cowlab compare cowlab-results --html kernels.html     # after run --kernel host,debian:6.1,debian:6.12`,
    )
    .action(
      action((argA: string, argB: string | undefined, flags: Flags) => {
        const runs = [...runsOf(argA, 'a', '<a>', argB !== undefined), ...(argB === undefined ? [] : runsOf(argB, 'b', '<b>', true))];
        const inputs = runs.map((r) => r.file);
        checkExportFlags(flags, inputs);
        const html = flags.html === undefined ? null : checkHtmlFlag(flags.html, inputs);
        if (runs.length < 2) throw invalidOption('<b>', `${argA} holds one run: give a second results file to compare it with`);
        if (runs.length > 2) return compareMany(runs, flags, html);
        const [ra, rb] = runs as [LabelledRun, LabelledRun];
        const [fileA, fileB] = [ra.file, rb.file];
        const full = compareResults(ra.doc, rb.doc);
        const differs = anyDifference(full);
        const c = flags.onlyDifferences ? onlyDifferences(full) : full;
        const keep = flags.onlyDifferences ? (m: MetricComparison) => m.different : () => true;
        writeExports(flags, { csv: () => comparisonCsv(c, keep), markdown: () => comparisonMarkdown(c, { a: fileA, b: fileB }, keep) });
        // The page shows every metric: --only-differences trims what is printed.
        if (html) writeHtml(html, renderComparisonReport(runs, full, EXPERIMENTS));
        const exit = flags.failOnDifference && differs ? EXIT_FAILED : EXIT_OK;
        if (flags.json) {
          printJson(c);
          return exit;
        }
        const side = (name: string, f: string, s: typeof c.a) => `${name} = ${f}: kernel ${s.kernel}, ${s.quick ? 'quick' : 'full'} suite, ${s.startedAt}`;
        print(side(ra.label, fileA, c.a));
        print(side(rb.label, fileB, c.b));
        const width = Math.max(60, Math.min(process.stdout.columns ?? 100, 120));
        wrapText(`rule: ${c.rule}`, width - 2).forEach((l, i) => print(i === 0 ? l : `  ${l}`));
        print();
        if (c.environment.length === 0) print('environment: no differences');
        else print(table(['environment', 'a', 'b'], c.environment.map((d) => [d.field, d.a, d.b]), ['left', 'left', 'left']));
        for (const e of c.experiments) {
          print();
          const v = (s: typeof e.a) => (s ? `${s.verdict}${s.status !== 'completed' ? ` (${s.status})` : ''}` : 'absent');
          print(`${e.number}. ${e.name}: a ${v(e.a)}, b ${v(e.b)}${e.verdictChanged ? '  <- verdict changed' : ''}`);
          if (e.a) print(`   a: ${e.a.figure}`);
          if (e.b) print(`   b: ${e.b.figure}`);
          if (e.metrics.length) {
            print(table(['metric', 'a', 'b', 'b/a', `${pct(c.test.level)} CI`, 'n a / b', 'judged'], e.metrics.map(metricRow), ['left', 'right', 'right', 'right', 'right', 'right', 'left']));
          }
        }
        // With --only-differences, observations that placement alone explains are counted, not listed.
        const listed = flags.onlyDifferences ? c.kernelDifferences.filter((d) => !placementOnly(d)) : c.kernelDifferences;
        const unlisted = c.kernelDifferences.length - listed.length;
        const who = c.a.kernel === c.b.kernel ? 'runs' : 'kernels';
        if (listed.length) {
          print();
          print(`What the two ${who} showed differently in the built-in scenarios (${listed.length} observations):`);
          print(
            table(
              ['scenario', 'step', 'observation', 'a', 'b', 'explained by'],
              listed.map((d) => [d.trace, d.step < 0 ? 'setup' : `${d.step} ${d.op} by ${d.proc}`, `${d.field}@${d.where}`, d.values[0] ?? '-', d.values[1] ?? '-', describeExplanation(d)]),
              ['left', 'left', 'left', 'right', 'right', 'left'],
            ),
          );
        }
        if (unlisted > 0) {
          print();
          print(`${unlisted} observation${unlisted === 1 ? '' : 's'} of the built-in scenarios differ only by where the kernel placed a region (not listed: see the full compare)`);
        }
        if (flags.onlyDifferences && c.experiments.length === 0) {
          print();
          print('no differences');
        }
        print();
        print(
          `${c.flagged} metric${c.flagged === 1 ? '' : 's'} different, ${c.notEnoughSamples} with not enough samples to judge; ` +
            `${c.verdictsChanged} verdict${c.verdictsChanged === 1 ? '' : 's'} changed${flags.failOnDifference ? (differs ? ' (exit 1: --fail-on-difference)' : '') : ''}`,
        );
        return exit;
      }),
    );
}
