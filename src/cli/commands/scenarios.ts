/** `cowlab scenarios`: the built-in traces, one per COW case, with what each demonstrates. */
import type { Command } from 'commander';

import { escapeControls, wrapText } from '../../report/format.js';
import { listScenarios } from '../../trace/scenarios.js';
import { action } from '../run.js';
import { print, printJson } from '../output.js';

export function registerScenarios(program: Command): void {
  program
    .command('scenarios')
    .description('list the built-in scenarios: one trace per copy-on-write case')
    .option('--json', 'print a JSON array of { name, description, path }')
    .addHelpText(
      'after',
      `
Each scenario is a trace file in experiments/scenarios/<name>.json (format: docs/trace.md).
Pass its name wherever a trace is expected:

  cowlab simulate fork-child-writes-all
  cowlab simulate thp-fork-write --json`,
    )
    .action(
      action((flags: { json?: boolean }) => {
        const list = listScenarios();
        if (flags.json) return printJson(list);
        for (const s of list) {
          print(escapeControls(s.name));
          for (const line of wrapText(s.description, 92)) print(`    ${line}`);
        }
        print();
        print(`${list.length} scenarios. Run one: cowlab simulate <name>`);
      }),
    );
}
