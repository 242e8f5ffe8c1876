/**
 * The cowlab CLI: commander over the public API. Each command lives in commands/ and adds
 * itself here with one line.
 */
import { Command, CommanderError } from 'commander';

import { registerCompare } from './commands/compare.js';
import { registerEnv } from './commands/env.js';
import { registerForkWrite } from './commands/forkWrite.js';
import { registerList } from './commands/list.js';
import { registerPagemap } from './commands/pagemap.js';
import { registerScenarios } from './commands/scenarios.js';
import { registerSimulate } from './commands/simulate.js';
import { registerRunTrace } from './commands/runTrace.js';
import { registerValidate } from './commands/validate.js';
import { registerCalibrate } from './commands/calibrate.js';
import { registerReport } from './commands/report.js';
import { registerRun } from './commands/run.js';
import { registerRegionBench } from './commands/regionBench.js';
import { registerObserve } from './commands/observe.js';
import { registerKernels } from './commands/kernels.js';
import { registerSchema } from './commands/schema.js';
import { registerWatch } from './commands/watch.js';
import { registerRecord } from './commands/record.js';
import { registerPredict } from './commands/predict.js';
import { EXIT_OK, EXIT_USAGE, reportError } from './run.js';
import { packageVersion } from '../util/package.js';
import { escapeControlsKeepingLines } from '../report/format.js';

export function buildProgram(): Command {
  const program = new Command('cowlab')
    .description('A laboratory for Linux copy-on-write: real fork-then-write faults, pagemap, simulation, validation.')
    .version(packageVersion(), '-V, --version')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`cowlab: ${escapeControlsKeepingLines(str.replace(/^error: /, '').replace(/\n$/, ''))}\n`) });
  registerRun(program);
  registerList(program);
  registerReport(program);
  registerCompare(program);
  registerForkWrite(program);
  registerPagemap(program);
  registerRegionBench(program);
  registerEnv(program);
  registerSimulate(program);
  registerRunTrace(program);
  registerValidate(program);
  registerCalibrate(program);
  registerScenarios(program);
  registerKernels(program);
  registerObserve(program);
  registerSchema(program);
  registerWatch(program);
  registerRecord(program);
  registerPredict(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI and returns the exit code (0 ok, 1 failed, 2 bad input). */
export async function main(argv: string[]): Promise<number> {
  process.exitCode = undefined;
  // `cowlab ... | head`: the reader went away; stop quietly, as other Unix tools do.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK);
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(err.code) || err.exitCode === 0;
      return ok ? EXIT_OK : EXIT_USAGE;
    }
    return reportError(err);
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
}
