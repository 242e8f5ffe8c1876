/** `cowlab list`: every experiment, its claim, what it measures and what it needs. */
import type { Command } from 'commander';

import { EXPERIMENTS } from '../../suite/index.js';
import { environment, meminfo } from '../../env/environment.js';
import { describeRequirements, unmetRequirement } from '../../suite/requirements.js';
import { action } from '../run.js';
import { print, printJson } from '../output.js';

export function registerList(program: Command): void {
  program
    .command('list')
    .description('describe every experiment: its claim, what it measures, what it needs, and whether it can run here')
    .option('--json', 'print JSON: [{ number, name, title, claim, measures, requirements, ... }]')
    .action(
      action((flags: { json?: boolean }) => {
        const env = environment();
        const limit = Math.floor(meminfo().availableBytes / 2);
        const rows = EXPERIMENTS.map((e) => ({
          number: e.number,
          name: e.name,
          title: e.title,
          claim: e.claim,
          short: e.short,
          rule: e.rule,
          measures: e.measures,
          requirements: e.requirements,
          needs: describeRequirements(e.requirements),
          budgetMs: e.budgetMs,
          notMeasurableHere: unmetRequirement(e.requirements, env, limit),
        }));
        if (flags.json) return printJson(rows);
        for (const r of rows) {
          print(`${String(r.number).padStart(2)}  ${r.name}: ${r.title}`);
          print(`    claim:    ${r.claim}`);
          print(`    measures: ${r.measures}`);
          print(`    verdict:  ${r.rule}`);
          const budget = r.budgetMs.full > 0 ? `; budget ${r.budgetMs.full / 1000} s (--quick ${r.budgetMs.quick / 1000} s)` : '';
          print(`    needs:    ${r.needs}${budget}`);
          print(`    here:     ${r.notMeasurableHere === null ? 'runs' : `not measurable: ${r.notMeasurableHere}`}`);
          print();
        }
      }),
    );
}
