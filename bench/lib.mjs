// Shared by the benchmarks: compile a C reference, interleave two measurements over repeats,
// and print medians with the ratio last. Benchmarks import the built package (dist/).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(BENCH_DIR, '..');

/** Imports the built cowlab API (run `npm run build:ts` after editing src/): the internal
 *  entry, which holds the public API and the building blocks benchmarks use (regionWriteRun,
 *  pageOrder, ...). */
export async function cowlab() {
  const index = join(ROOT, 'dist', 'src', 'internal.js');
  if (!existsSync(index)) throw new Error(`${index} is missing: run npm run build:ts`);
  return import(index);
}

/** gcc -O2 `source` (relative to bench/) into bench/bin/<name>, when missing or stale. */
export function compileC(name, source) {
  const src = join(BENCH_DIR, source);
  const bin = join(BENCH_DIR, 'bin', name);
  mkdirSync(join(BENCH_DIR, 'bin'), { recursive: true });
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    execFileSync('gcc', ['-O2', '-Wall', '-o', bin, src], { stdio: 'inherit' });
  }
  return bin;
}

export function runJson(bin, args) {
  return JSON.parse(execFileSync(bin, args, { encoding: 'utf8' }));
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs a() and b() alternately `repeats` times (after `warmup` unrecorded pairs). */
export async function interleave({ repeats, warmup = 2 }, a, b) {
  const as = [];
  const bs = [];
  for (let i = 0; i < warmup + repeats; i++) {
    const x = await a(i);
    const y = await b(i);
    if (i >= warmup) {
      as.push(x);
      bs.push(y);
    }
  }
  return { a: as, b: bs };
}

export function fmtNs(ns) {
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} us` : `${Math.round(ns)} ns`;
}

/**
 * Prints both series' medians and bands, then the ratio line (always last). The ratio is
 * median(a) / median(b); `target` is an upper bound, or a lower bound with `higherIsBetter`
 * (a speedup, say).
 */
export function report({ title, aName, bName, a, b, target, unit = fmtNs, higherIsBetter = false }) {
  const band = (xs) => `median ${unit(median(xs))}  (min ${unit(Math.min(...xs))}, max ${unit(Math.max(...xs))}, n=${xs.length})`;
  console.log(title);
  console.log(`  ${aName.padEnd(28)} ${band(a)}`);
  console.log(`  ${bName.padEnd(28)} ${band(b)}`);
  const ratio = median(a) / median(b);
  const met = higherIsBetter ? ratio >= target : ratio <= target;
  const verdict = target === undefined ? '' : ` (target ${higherIsBetter ? '>=' : '<='} ${target}: ${met ? 'met' : 'MISSED'})`;
  console.log(`ratio ${aName} / ${bName}: ${ratio.toFixed(3)}${verdict}`);
  return ratio;
}

export function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
