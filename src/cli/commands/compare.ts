/** `cowlab compare`: two results files side by side, differences beyond noise flagged. */
import type { Command } from 'commander';

import { formatBytes, formatNs, formatRatio } from '../../report/format.js';
import { formatBand } from '../../suite/present.js';
import { compareResults, type MetricComparison } from '../../suite/compare.js';
import { describeExplanation } from '../../validate/disagreements.js';
import type { Band } from '../../stats/summary.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';
import { readResults } from './report.js';

function formatValue(unit: string): (v: number) => string {
  switch (unit) {
    case 'ns':
      return formatNs;
    case 'bytes':
      return formatBytes;
    case 'percent':
      return (v) => `${v.toFixed(1)} %`;
    case 'ns/GiB':
      return (v) => `${(v / 1e6).toFixed(2)} ms/GiB`;
    default:
      return (v) => String(Number(v.toPrecision(4)));
  }
}

function cell(b: Band | null, unit: string): string {
  return b === null ? '-' : formatBand(b, formatValue(unit));
}

function metricRow(m: MetricComparison): string[] {
  return [m.label, cell(m.a, m.unit), cell(m.b, m.unit), formatRatio(m.ratio), m.beyondNoise ? 'DIFFERENT' : '', m.why];
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description('put two results files (two hosts or kernels) side by side and flag differences beyond the noise band')
    .argument('<a>', 'results.json of host a')
    .argument('<b>', 'results.json of host b')
    .option('--json', 'print the comparison as JSON')
    .action(
      action((fileA: string, fileB: string, flags: { json?: boolean }) => {
        const c = compareResults(readResults(fileA), readResults(fileB));
        if (flags.json) return printJson(c);
        const side = (name: string, f: string, s: typeof c.a) => `${name} = ${f}: kernel ${s.kernel}, ${s.quick ? 'quick' : 'full'} suite, ${s.startedAt}`;
        print(side('a', fileA, c.a));
        print(side('b', fileB, c.b));
        print(`rule: ${c.rule}`);
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
            print(table(['metric', 'a', 'b', 'b/a', 'beyond noise', 'why'], e.metrics.map(metricRow), ['left', 'right', 'right', 'right', 'left', 'left']));
          }
        }
        if (c.kernelDifferences.length) {
          print();
          print(`What the two kernels showed differently in the built-in scenarios (${c.kernelDifferences.length} observations):`);
          print(
            table(
              ['scenario', 'step', 'observation', 'a', 'b', 'explained by'],
              c.kernelDifferences.map((d) => [d.trace, d.step < 0 ? 'setup' : `${d.step} ${d.op} by ${d.proc}`, `${d.field}@${d.where}`, d.values[0] ?? '-', d.values[1] ?? '-', describeExplanation(d)]),
              ['left', 'left', 'left', 'right', 'right', 'left'],
            ),
          );
        }
        print();
        print(`${c.flagged} metric${c.flagged === 1 ? '' : 's'} differ beyond noise; ${c.experiments.filter((e) => e.verdictChanged).length} verdicts changed`);
      }),
    );
}
