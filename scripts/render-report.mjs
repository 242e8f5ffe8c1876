#!/usr/bin/env node
// Renders a report.html to a PNG with headless Chromium (Debian's /usr/bin/chromium through
// playwright-core; no browser is downloaded). Used for docs/report.png:
//   node scripts/render-report.mjs cowlab-results/report.html docs/report.png [--height 2400]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { chromium } from 'playwright-core';

const [input, output] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (!input || !output) {
  console.error('usage: node scripts/render-report.mjs <report.html> <out.png> [--height N] [--full]');
  process.exit(2);
}
const hIdx = process.argv.indexOf('--height');
const height = hIdx > 0 ? Number(process.argv[hIdx + 1]) : 2400;
const profile = mkdtempSync(join(tmpdir(), 'cowlab-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1100, height },
});
try {
  const page = await browser.newPage();
  await page.goto(pathToFileURL(resolve(input)).href);
  await page.screenshot({ path: output, fullPage: process.argv.includes('--full') });
  console.log(`wrote ${output}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
