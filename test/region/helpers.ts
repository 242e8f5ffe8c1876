/** Helpers of the region tests: child Node processes for the crash cases, and a model check. */
import { spawnSync } from 'node:child_process';

import { packageRoot } from '../../src/util/package.js';
import { DIST_INDEX } from '../helpers/cli.js';

export interface ScriptResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs an ES module in a new Node process. `cowlab` is the built package (dist/, compiled by
 * `npm test` first) and `native` its addon contract; the script body may await.
 */
export function runScript(body: string, nodeArgs: string[] = [], timeout = 60_000): ScriptResult {
  const nativeJs = DIST_INDEX.replace(/index\.js$/, 'native.js');
  const script = `const cowlab = await import(${JSON.stringify(DIST_INDEX)});\n` +
    `const { native } = await import(${JSON.stringify(nativeJs)});\n${body}`;
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout,
    cwd: packageRoot(),
  });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Deterministic bytes for page p of a model written with `seed`. */
export function pattern(seed: number, p: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = (seed * 0x9e37_79b1 + p * 0x85eb_ca6b + 1) >>> 0;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Index of the first byte where a and b differ, or -1. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
