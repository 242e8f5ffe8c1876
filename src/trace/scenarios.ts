/**
 * Built-in scenarios: one trace per COW case, in experiments/scenarios/<name>.json, each with
 * a description of what it demonstrates. `resolveTraceArg` lets every command take either a
 * scenario name or a path to a trace file.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { CowlabError } from '../errors.js';
import { packageRoot } from '../util/package.js';
import { loadTrace, type ParseTraceOptions } from './parse.js';
import type { Trace } from './types.js';

export interface ScenarioInfo {
  name: string;
  description: string;
  /** Absolute path of the trace file. */
  path: string;
}

export function scenariosDir(): string {
  return join(packageRoot(), 'experiments', 'scenarios');
}

/** Every built-in scenario, sorted by name. */
export function listScenarios(): ScenarioInfo[] {
  const dir = scenariosDir();
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const path = join(dir, f);
      let description = '';
      try {
        const doc = JSON.parse(readFileSync(path, 'utf8')) as { description?: unknown };
        if (typeof doc.description === 'string') description = doc.description;
      } catch {
        description = '(unreadable: run it to see the error)';
      }
      return { name: f.slice(0, -'.json'.length), description, path };
    });
}

function scenarioNames(): string {
  return listScenarios().map((s) => s.name).join(', ');
}

/** Loads and checks built-in scenario `name` (ERR_INVALID_OPTION naming the others if unknown). */
export function loadScenario(name: string, opts: ParseTraceOptions = {}): Trace {
  const path = join(scenariosDir(), `${name}.json`);
  if (!/^[a-z0-9][a-z0-9_-]*$/i.test(name) || !existsSync(path)) {
    throw new CowlabError('ERR_INVALID_OPTION', `scenario: no scenario '${name}' (scenarios: ${scenarioNames()})`, { field: 'scenario' });
  }
  return loadTrace(path, { ...opts, source: `scenario ${name}` });
}

/**
 * A command's trace argument: a path to a JSON trace file when one exists there (or the
 * argument looks like a path), else a built-in scenario name.
 */
export function resolveTraceArg(arg: string, opts: ParseTraceOptions = {}): Trace {
  const looksLikePath = arg.includes('/') || arg.endsWith('.json');
  if (existsSync(arg) && statSync(arg).isFile()) return loadTrace(arg, opts);
  if (looksLikePath) {
    throw new CowlabError('ERR_INVALID_OPTION', `trace: no file '${arg}' (give a trace file or one of the scenarios: ${scenarioNames()})`, {
      field: 'trace',
    });
  }
  if (existsSync(join(scenariosDir(), `${arg}.json`))) return loadScenario(arg, opts);
  throw new CowlabError('ERR_INVALID_OPTION', `trace: '${arg}' is neither a trace file nor a scenario (scenarios: ${scenarioNames()})`, {
    field: 'trace',
  });
}
