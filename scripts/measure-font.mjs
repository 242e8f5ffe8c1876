#!/usr/bin/env node
// Measures the advance width of every character the report's charts may draw, in the chart
// font (Liberation Sans, metric-compatible with Arial and Helvetica), regular and bold, in
// headless Chromium with kerning off (as the charts draw it), and writes
// src/report/fontMetrics.ts. Run again only when the character set or the font changes:
//   node scripts/measure-font.mjs
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const FONT = 'Liberation Sans';
const SIZE = 1000; // widths are stored per 1000 units of font size (as in AFM files)
const set = new Set();
for (let c = 0x20; c <= 0x7e; c++) set.add(String.fromCharCode(c));
for (let c = 0xa0; c <= 0xff; c++) set.add(String.fromCharCode(c));
for (const ch of '–—‘’“”…•→←↑↓≈≠≤≥÷−μ✗✓√∞Δ‰€') set.add(ch);
const chars = [...set];

const profile = mkdtempSync(join(tmpdir(), 'cowlab-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  await page.setContent('<canvas id="c"></canvas>');
  const measure = (weight) =>
    page.evaluate(
      ({ chars, weight, font, size }) => {
        const ctx = document.getElementById('c').getContext('2d');
        ctx.font = `${weight} ${size}px "${font}"`;
        ctx.fontKerning = 'none';
        // The font must really be the one named: a fallback would give other widths. (A
        // missing font falls back to the generic family: the same width as it alone.)
        const probe = 'The quick brown fox 0123456789';
        const fallback = (generic) => {
          ctx.font = `${weight} ${size}px "${font}", ${generic}`;
          const w = ctx.measureText(probe).width;
          ctx.font = `${weight} ${size}px ${generic}`;
          return w === ctx.measureText(probe).width;
        };
        if (fallback('monospace') && fallback('serif')) throw new Error(`${font} is not installed`);
        ctx.font = `${weight} ${size}px "${font}"`;
        return chars.map((ch) => Math.round(ctx.measureText(ch).width));
      },
      { chars, weight, font: FONT, size: SIZE },
    );
  const regular = await measure(400);
  const bold = await measure(700);
  const entries = (w) => chars.map((ch, i) => `${JSON.stringify(ch)}: ${w[i]}`).join(', ');
  const out = `/**
 * Advance widths of the chart font (${FONT}; Arial and Helvetica share its metrics), per 1000
 * units of font size, kerning off: measured in headless Chromium by scripts/measure-font.mjs
 * (generated, do not edit). The charts lay text out from these and pin each text's length to
 * the measured one (SVG textLength), so the layout holds in whatever font the viewer has.
 */
export const CHART_FONT = '${FONT}';
export const REGULAR: Readonly<Record<string, number>> = { ${entries(regular)} };
export const BOLD: Readonly<Record<string, number>> = { ${entries(bold)} };
`;
  writeFileSync(new URL('../src/report/fontMetrics.ts', import.meta.url), out);
  console.log(`measured ${chars.length} characters of ${FONT}: 'M' ${regular[chars.indexOf('M')]}, 'i' ${regular[chars.indexOf('i')]}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
