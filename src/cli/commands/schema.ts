/** `cowlab schema`: the JSON Schema of results.json, generated from the zod schema the reader uses. */
import type { Command } from 'commander';

import { EXPERIMENTS } from '../../suite/index.js';
import { resultsJsonSchema } from '../../suite/jsonSchema.js';
import { action } from '../run.js';
import { printJson } from '../output.js';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema (draft 2020-12) of results.json, for validators and code generators')
    .addHelpText(
      'after',
      `
The schema is generated from the zod schemas \`cowlab report\` and \`cowlab compare\` check a
file with, so it describes exactly what they accept: the document, the environment, every
experiment's verdict and metrics (with their samples), and each experiment's raw
measurements, tied to its name. Fields are open (a reader ignores unknown ones).

Examples:
  cowlab schema > results.schema.json
  npx ajv-cli validate --spec=draft2020 -s results.schema.json -d cowlab-results/results.json`,
    )
    .action(
      action(() => {
        printJson(resultsJsonSchema(EXPERIMENTS));
      }),
    );
}
