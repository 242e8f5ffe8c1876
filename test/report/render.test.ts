/**
 * The report's charts as a browser draws them (headless Chromium): every chart renders with
 * plotted marks, and in no chart does a text box overlap another or leave the chart. Checked
 * on a real `cowlab run --quick` report, on the charts of every recorded fixture (including the
 * experiments that need root or a guest, which cannot run here), and on charts made to be hard
 * to lay out. A hand-made SVG with overlapping text shows the check finds what it looks for.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { CHART_CSS, hasData, renderChart, type ChartSpec } from '../../src/report/chart.js';
import { packageRoot } from '../../src/util/package.js';
import { chartLayouts, CHROMIUM, HAVE_CHROMIUM, withPage, type ChartLayout } from '../helpers/chartLayout.js';
import { runCli } from '../helpers/cli.js';

const SKIP = `skipped: ${CHROMIUM} is not installed (apt-get install chromium)`;
if (!HAVE_CHROMIUM) console.warn(`test/report/render.test.ts: ${SKIP}`);

/** A page holding the given SVGs with the report's chart CSS. */
function page(svgs: string[]): string {
  return `<!doctype html><html><head><meta charset="utf-8"><style>body { margin: 0; padding: 16px; width: 760px; } ${CHART_CSS}</style></head><body>${svgs.join('\n')}</body></html>`;
}

function expectClean(charts: ChartLayout[]): void {
  for (const c of charts) {
    expect(c.width, c.title).toBeGreaterThan(100);
    expect(c.height, c.title).toBeGreaterThan(100);
    expect(c.visibleMarks, c.title).toBeGreaterThan(0);
    expect(c.overlaps, `overlapping text in "${c.title}"`).toEqual([]);
    expect(c.outside, `text outside "${c.title}"`).toEqual([]);
    if (c.widthErrors) expect(c.widthErrors, `text widths in "${c.title}"`).toEqual([]);
  }
}

/** Every chart the experiments present from the recorded fixtures (confirmed, refuted, not measurable). */
function fixtureCharts(): ChartSpec[] {
  const dir = join(packageRoot(), 'test', 'fixtures', 'verdicts');
  return readdirSync(dir).flatMap((f) => {
    const exp = EXPERIMENTS.find((e) => e.name === f.split('.')[0]);
    if (!exp) return [];
    // As the report does: a chart with nothing to plot is left out.
    return exp.present(exp.raw.parse(JSON.parse(readFileSync(join(dir, f), 'utf8')))).charts.filter(hasData);
  });
}

const LONG = 'a title long enough to wrap over three lines of the chart, with words like Shared_Dirty, PAGEMAP_SCAN and userfaultfd-wp in it, and numbers: 65,536 pages, 1.00 GiB';

/** Charts made to be hard to lay out: long titles, many long legend names, long categories, wide tick labels. */
const HARD: ChartSpec[] = [
  {
    kind: 'line',
    title: LONG,
    x: { label: 'an x axis label that is long enough to need a second line below the plot when the chart is narrow, which it is', unit: 'pages', scale: 'log' },
    y: { label: 'a y label that runs along the whole height of the plot and then some more words', unit: 'µs', scale: 'log' },
    series: Array.from({ length: 7 }, (_, i) => ({ name: `series ${i}: ${'warm p50 (median over repeats, min-max) '.repeat(i % 3 + 1)}`, points: [{ x: 1, y: 1 + i }, { x: 65536, y: 1e5 * (i + 1) }] })),
  },
  {
    kind: 'bar',
    title: LONG,
    categories: ['kernel COW after fork', 'SIGSEGV + copy + mmap (bare C)', 'userfaultfd-wp async + PAGEMAP_SCAN', 'AVERYLONGIDENTIFIERWITHOUTANYSPACEATALL', 'x', 'soft-dirty (clear_refs 4, pagemap bit 55)', 'seven', 'eight', 'nine'],
    y: { label: 'bytes', unit: 'bytes' },
    series: ['first store', 'arming / pages', 'collecting / pages', 'a fourth series'].map((name, i) => ({ name, values: Array.from({ length: 9 }, (_, j) => 123456789 * (i + 1) + j * 1e7) })),
  },
  {
    kind: 'cdf',
    title: LONG,
    x: { label: 'latency of one store', unit: 'µs', scale: 'log' },
    series: [
      { name: 'cold (first run)', points: [{ x: 1.1, fraction: 0.01 }, { x: 1.2, fraction: 0.5 }, { x: 1.25, fraction: 0.99 }, { x: 1.3, fraction: 1 }], p50: 1.2, p99: 1.25 },
      { name: 'warm (last run)', points: [{ x: 1.15, fraction: 0.01 }, { x: 1.21, fraction: 0.5 }, { x: 1.28, fraction: 1 }], p50: 1.21, p99: 1.27 },
    ],
  },
];

describe.skipIf(!HAVE_CHROMIUM)(`charts in headless Chromium (${HAVE_CHROMIUM ? CHROMIUM : SKIP})`, () => {
  it('the check finds overlapping text and text outside the chart (a hand-made SVG)', async () => {
    const bad =
      '<svg class="chart" viewBox="0 0 300 200" width="300"><title>bad</title>' +
      '<rect class="mark" x="10" y="10" width="20" height="20"/>' +
      '<text x="10" y="50" class="title">a two-line title that</text><text x="10" y="56" class="legend">runs into the legend</text>' +
      '<text x="250" y="120" class="tick">cut off at the edge</text>' +
      '<text x="10" y="150" class="tick">apart</text><text x="10" y="180" class="tick">from each other</text></svg>';
    const good = renderChart({ kind: 'bar', title: 'good', categories: ['a', 'b'], y: { label: 'y', unit: 'µs' }, series: [{ name: 's', values: [1, 2] }] });
    const [b, g] = await withPage(async (p) => {
      await p.setContent(page([bad, good]));
      return chartLayouts(p);
    });
    expect(b!.overlaps).toEqual([['a two-line title that', 'runs into the legend']]);
    expect(b!.outside).toEqual(['cut off at the edge']);
    // Without textLength the hand-made texts have no measured width to compare with.
    if (b!.widthErrors) expect(b!.widthErrors.length).toBe(5);
    expect(g!.overlaps).toEqual([]);
    expect(g!.outside).toEqual([]);
  });

  it('lays out every fixture chart and the hard cases without overlapping text, at two widths', async () => {
    const specs = [...fixtureCharts(), ...HARD];
    expect(specs.length).toBeGreaterThan(40);
    for (const width of [1100, 420]) {
      const charts = await withPage(async (p) => {
        await p.setViewportSize({ width, height: 900 });
        await p.setContent(page(specs.map(renderChart)));
        return chartLayouts(p);
      });
      expect(charts.length).toBe(specs.length);
      expectClean(charts);
    }
  }, 60_000);

  describe('a real report (cowlab run --quick)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cowlab-render-'));
    let status: number | null = null;
    beforeAll(() => {
      status = runCli(['run', '--quick', '--out', dir], { timeout: 240_000 }).status;
    }, 250_000);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('renders every chart with marks, loads nothing, and no text overlaps in any chart', async () => {
      expect(status).toBe(0);
      const html = readFileSync(join(dir, 'report.html'), 'utf8');
      const { charts, requests, errors, scrollWidth } = await withPage(async (p) => {
        const requests: string[] = [];
        const errors: string[] = [];
        p.on('request', (r) => requests.push(r.url()));
        p.on('pageerror', (e) => errors.push(e.message));
        await p.goto(pathToFileURL(join(dir, 'report.html')).href);
        const charts = await chartLayouts(p);
        // Responsive: on a phone-wide window the charts shrink with it.
        await p.setViewportSize({ width: 390, height: 800 });
        const scrollWidth = await p.$$eval('svg.chart', (s) => Math.max(...(s as unknown as { getBoundingClientRect(): { right: number } }[]).map((x) => x.getBoundingClientRect().right)));
        return { charts, requests, errors, scrollWidth };
      });
      expect(charts.length).toBe((html.match(/<svg /g) ?? []).length);
      expect(charts.length).toBeGreaterThanOrEqual(20);
      expectClean(charts);
      expect(scrollWidth).toBeLessThanOrEqual(390);
      expect(requests.filter((u) => !u.startsWith('file:'))).toEqual([]);
      expect(errors).toEqual([]);
    }, 60_000);
  });
});
