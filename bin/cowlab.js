#!/usr/bin/env node
// The cowlab command. The TypeScript is compiled to dist/ by `npm install` (prepare).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error(`cowlab: ${fileURLToPath(main)} is missing; run \`npm install\` (or \`npm run build:ts\`) in the cowlab package`);
  process.exit(1);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv);
