#!/usr/bin/env node
// Renders a report.html to a PNG with headless Chromium (Debian's /usr/bin/chromium through
// playwright-core; no browser is downloaded): the window's top, the whole page (--full), or one
// experiment's section down to its charts (--section NAME). docs/report.png is
//   node scripts/render-report.mjs cowlab-results/report.html docs/report.png --section fork-write-latency
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { chromium } from 'playwright-core';

const sIdx = process.argv.indexOf('--section');
const section = sIdx > 0 ? process.argv[sIdx + 1] : null;
const [input, output] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && !['--height', '--section'].includes(all[i - 1]));
if (!input || !output) {
  console.error('usage: node scripts/render-report.mjs <report.html> <out.png> [--height N] [--full | --section NAME]');
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
  if (section) {
    // From the section's heading to the bottom of its charts (the tables below are long).
    const sel = `section#${section}`;
    const top = await page.$eval(sel, (e) => e.getBoundingClientRect().top + window.scrollY);
    const bottom = await page.$eval(`${sel} .charts`, (e) => e.getBoundingClientRect().bottom + window.scrollY);
    await page.screenshot({ path: output, fullPage: true, clip: { x: 0, y: Math.max(0, top - 12), width: 1100, height: bottom - top + 24 } });
  } else {
    await page.screenshot({ path: output, fullPage: process.argv.includes('--full') });
  }
  console.log(`wrote ${output}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
