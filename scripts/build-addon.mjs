#!/usr/bin/env node
// `npm install` hook: builds the native addon with node-gyp against the installed Node headers
// (offline: nothing is downloaded when the running Node has them).
// cowlab measures Linux mechanisms (fork, pagemap, memfd); on another OS there is nothing to
// build, so we say so once and let the loader give the same clear message at run time.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

if (process.platform !== 'linux') {
  console.warn(`cowlab: the native addon is Linux-only; skipping the build on ${process.platform}.`);
  process.exit(0);
}
const require = createRequire(import.meta.url);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
// Without a nodedir node-gyp downloads the headers, which fails offline; a Node installed with
// its headers (PREFIX/include/node, as the official and distribution builds are) has all it
// needs. A nodedir the user configured wins.
const prefix = dirname(dirname(process.execPath));
const localHeaders = existsSync(join(prefix, 'include', 'node', 'node_api.h'));
const args = [nodeGyp, 'rebuild', ...(localHeaders && !process.env.npm_config_nodedir ? [`--nodedir=${prefix}`] : [])];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
