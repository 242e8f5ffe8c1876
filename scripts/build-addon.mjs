#!/usr/bin/env node
// `npm install` hook: builds the native addon with node-gyp against the installed Node headers.
// cowlab measures Linux mechanisms (fork, pagemap, memfd); on another OS there is nothing to
// build, so we say so once and let the loader give the same clear message at run time.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

if (process.platform !== 'linux') {
  console.warn(`cowlab: the native addon is Linux-only; skipping the build on ${process.platform}.`);
  process.exit(0);
}
const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
const result = spawnSync(process.execPath, [nodeGyp, 'rebuild'], { stdio: 'inherit' });
process.exit(result.status ?? 1);
