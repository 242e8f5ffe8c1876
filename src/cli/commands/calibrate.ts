/** `cowlab calibrate`: measure this kernel's cost per COW event for the simulator's time model. */
import type { Command } from 'commander';

import { calibrate } from '../../calibrate/calibrate.js';
import { costModelOutput, defaultCostModelPath, saveCostModel } from '../../calibrate/store.js';
import { integerOption } from '../../options.js';
import { formatNs } from '../../report/format.js';
import { table } from '../../report/table.js';
import { action } from '../run.js';
import { print, printJson } from '../output.js';

interface Flags {
  pages: string;
  repeats: string;
  warmup: string;
  out?: string;
  json?: boolean;
}

const LABELS: Record<string, string> = {
  forkBaseNs: 'fork(), no present page',
  forkPerPageNs: 'fork(), per present page',
  copyNs: 'write fault: COW copy',
  reuseNs: 'write fault: reuse in place',
  zeroFillNs: 'write fault: fresh zeroed page',
  hugeZeroFillNs: 'write fault: fresh 2 MiB huge page',
  faultNs: 'other fault (zero page read)',
  accessNs: 'access without a fault',
};

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description("measure this kernel's cost per fork, copy, reuse, zero-fill and fault: the simulator's time model")
    .option('--pages <n>', 'pages of the measured region', '4096')
    .option('--repeats <n>', 'measured repeats (medians are kept)', '5')
    .option('--warmup <n>', 'repeats run first and dropped (cold memory is slower)', '1')
    .option('--out <file>', `where to write the cost model (default: ${defaultCostModelPath()})`)
    .option('--json', 'print the cost model instead of a table')
    .addHelpText(
      'after',
      `
The cost model is written to --out, or to $COWLAB_COST_MODEL, or to
~/.config/cowlab/cost-model.json, where simulate and validate find it (they print which cost
model their times come from; --cost-model default ignores it). The path is checked before
anything is measured: its directory must exist (only ~/.config/cowlab is created) and not be
in /proc, /sys or /dev. Re-run it after a kernel or host change: the file records the
environment it was measured in.

Example:
  cowlab calibrate --repeats 7 && cowlab validate --all`,
    )
    .action(
      action(async (flags: Flags) => {
        const pages = integerOption('--pages', flags.pages, { min: 16, max: 1 << 22 });
        const repeats = integerOption('--repeats', flags.repeats, { min: 1, max: 1000 });
        const warmup = integerOption('--warmup', flags.warmup, { min: 0, max: 100 });
        const out = costModelOutput(flags.out); // a bad output path exits 2 before anything is measured
        process.stderr.write(`calibrate: measuring ${warmup + repeats} runs of the calibration trace (${pages} pages)...\n`);
        const { model, hugeZeroFill } = await calibrate({ pages, repeats, warmup });
        const path = saveCostModel(model, out);
        if (flags.json) return printJson({ path, ...model });
        print(`calibrate: kernel ${model.env.kernel}, ${pages} pages, median of ${repeats} runs after ${warmup} warm-up`);
        print();
        print(table(
          ['event', 'cost', 'median (min-max) over runs'],
          Object.entries(model.constants).map(([k, v]) => [LABELS[k] ?? k, formatNs(v), String(model.env[`band.${k}`] ?? (k === 'hugeZeroFillNs' ? model.env.hugeZeroFillNs : '-'))]),
          ['left', 'right', 'left'],
        ));
        if (hugeZeroFill.ns === null) print(`note: the 2 MiB zero-fill cost keeps its default: ${hugeZeroFill.reason}`);
        for (const [k, v] of Object.entries(model.env)) if (k.startsWith('note.')) print(`note: ${k.slice(5)}: ${String(v)}`);
        print();
        print(`cost model written to ${path}`);
      }),
    );
}
