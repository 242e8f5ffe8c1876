/** Runs the built CLI (`npm test` compiles dist/ first) as a separate process. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { join } from 'node:path';

import { packageRoot } from '../../src/util/package.js';

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export const CLI = join(packageRoot(), 'bin', 'cowlab.js');

export function runCli(args: string[], opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, ...opts });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Runs an ES module script in a fresh node process with the given node flags. */
export function runNode(nodeArgs: string[], script: string, opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    encoding: 'utf8', timeout: 300_000, cwd: packageRoot(), ...opts,
  });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Runs an ES module script with node as the unprivileged user `nobody` (uid 65534). */
export function runAsNobody(script: string, opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 60_000, cwd: packageRoot(), ...opts },
  );
  return { status: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Runs the built CLI as the unprivileged user `nobody` (uid 65534). */
export function runCliAsNobody(args: string[], opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, ...args], {
    encoding: 'utf8', timeout: 120_000, cwd: packageRoot(), ...opts,
  });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export const DIST_INDEX = join(packageRoot(), 'dist', 'src', 'index.js');
