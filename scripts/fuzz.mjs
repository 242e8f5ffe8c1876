#!/usr/bin/env node
// npm run fuzz -- --seconds N [--seed S]: the fuzz properties of test/fuzz/ for N seconds in
// all (shared between traces, sim against kernel, results files, command lines and region
// calls), then what they tried, per kind and outcome. `npm test` runs the same properties
// with a bounded number of inputs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const seconds = Number(flag('--seconds', '60'));
const seed = flag('--seed', undefined);
if (!Number.isInteger(seconds) || seconds < 1) {
  console.error(`fuzz: --seconds must be a positive integer, got '${flag('--seconds')}'`);
  process.exit(2);
}
if (seed !== undefined && !/^\d+$/.test(seed)) {
  console.error(`fuzz: --seed must be a non-negative integer, got '${seed}'`);
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'cowlab-fuzz-'));
const report = join(dir, 'report.jsonl');
console.log(`fuzz: ${seconds} s over test/fuzz/${seed === undefined ? '' : `, seed ${seed}`}`);
const r = spawnSync(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/fuzz'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, COWLAB_FUZZ_SECONDS: String(seconds), COWLAB_FUZZ_REPORT: report, ...(seed === undefined ? {} : { COWLAB_FUZZ_SEED: seed }) },
});
let lines = [];
try {
  lines = readFileSync(report, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
} catch {
  // no property got to the end
}
rmSync(dir, { recursive: true, force: true });
console.log('\nwhat the fuzzer tried:');
for (const { kind, counts } of lines) {
  const n = Object.values(counts).reduce((a, b) => a + b, 0);
  const detail = Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`  ${kind.padEnd(14)} ${String(n).padStart(7)} ${kind === 'region' ? 'calls' : 'inputs'}  (${detail})`);
}
console.log(r.status === 0 ? 'fuzz: nothing found' : 'fuzz: a property failed (its shrunk input is above)');
process.exit(r.status ?? 1);
