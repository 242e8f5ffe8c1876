// npm run bench [-- name...]: runs the named benchmarks (default: all), one after another.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

import { BENCH_DIR } from './lib.mjs';

const all = readdirSync(BENCH_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(BENCH_DIR, d.name, 'run.mjs')))
  .map((d) => d.name);
const names = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const name of names.length ? names : all) {
  if (!all.includes(name)) {
    console.error(`bench: no benchmark '${name}'; have: ${all.join(', ')}`);
    process.exit(2);
  }
  console.log(`\n=== ${name}`);
  const r = spawnSync(process.execPath, [join(BENCH_DIR, name, 'run.mjs'), ...process.argv.slice(2).filter((a) => a.startsWith('--'))], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
