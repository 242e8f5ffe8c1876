/** The SVG charts: every kind renders marks, axes carry their units, log axes label decades. */
import { describe, expect, it } from 'vitest';

import { axisTitle, cdfFromHistogram, formatExact, formatTick, renderChart, type ChartSpec } from '../../src/report/chart.js';
import { TEXT_STYLES, textWidth, wrapToWidth } from '../../src/report/chartText.js';

const count = (svg: string, re: RegExp) => (svg.match(re) ?? []).length;

describe('renderChart', () => {
  it('draws a multi-series log-log line chart with whiskers, a legend and unit labels', () => {
    const c: ChartSpec = {
      kind: 'line',
      title: 'latency <against> pages',
      x: { label: 'pages written', unit: 'pages', scale: 'log' },
      y: { label: 'latency', unit: 'µs', scale: 'log' },
      series: [
        { name: 'p50', points: [{ x: 1, y: 5, lo: 4, hi: 6 }, { x: 100, y: 5.5 }, { x: 65536, y: 6 }] },
        { name: 'p99 & more', dashed: true, points: [{ x: 1, y: 50 }, { x: 65536, y: 0 }] },
      ],
    };
    const svg = renderChart(c);
    expect(svg).toMatch(/^<svg [^>]*viewBox="0 0 680 \d+"/);
    expect(count(svg, /<circle [^>]*class="mark"/g)).toBe(4); // y = 0 cannot sit on a log axis
    expect(count(svg, /<path [^>]*class="mark line"/g)).toBe(1); // one point left: no line
    expect(svg).toContain('class="band"');
    expect(svg).toContain('pages written (log scale)');
    expect(svg).toContain('latency (µs, log scale)');
    expect(svg).toContain('latency &lt;against&gt; pages');
    expect(svg).toContain('p99 &amp; more');
    for (const t of ['>1<', '>10<', '>100<', '>1000<', '>10k<']) expect(svg).toContain(t);
  });

  it('draws grouped bars, one per series and category, with category labels', () => {
    const svg = renderChart({
      kind: 'bar',
      title: 'bars',
      categories: ['seq', 'rand', 'stride'],
      y: { label: 'latency', unit: 'µs' },
      series: [
        { name: 'cold', values: [5, 6, null] },
        { name: 'warm', values: [4, 5, 4.5], lo: [3.9, 4.8, 4.4], hi: [4.1, 5.2, 4.6] },
      ],
    });
    expect(count(svg, /<rect [^>]*class="mark"/g)).toBe(5);
    expect(svg).toContain('>stride<');
    expect(svg).toContain('latency (µs)');
  });

  it('draws a CDF per series with p50 and p99 dots, and names the percentiles in the legend', () => {
    const svg = renderChart({
      kind: 'cdf',
      title: 'h',
      x: { label: 'latency', unit: 'µs', scale: 'log' },
      series: [
        { name: 'cold', points: [{ x: 1, fraction: 0.1 }, { x: 2, fraction: 0.5 }, { x: 40, fraction: 1 }], p50: 2, p99: 30 },
        { name: 'warm', points: cdfFromHistogram([1, 2, 5, 10], [0, 3, 1]), p50: null, p99: null },
      ],
    });
    expect(count(svg, /<path [^>]*class="mark line"/g)).toBe(2);
    expect(count(svg, /<circle [^>]*class="mark"/g)).toBe(2);
    expect(svg).toContain('>cold: p50 2 µs, p99 30 µs<');
    expect(svg).toContain('>p99<');
    expect(cdfFromHistogram([1, 2, 5, 10], [0, 3, 1])).toEqual([{ x: 2, fraction: 0 }, { x: 5, fraction: 0.75 }, { x: 10, fraction: 1 }]);
  });

  it('ends a log axis at the data, not at the next power of ten', () => {
    const svg = renderChart({ kind: 'line', title: 't', x: { label: 'pages', unit: 'pages', scale: 'log' }, y: { label: 'y', unit: 'µs' }, series: [{ name: 's', points: [{ x: 1, y: 1 }, { x: 16384, y: 2 }] }] });
    expect(svg).toContain('>10k<');
    expect(svg).not.toContain('>100k<');
    const xs = [...svg.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
    const right = Math.max(...[...svg.matchAll(/<line x1="[\d.]+" x2="([\d.]+)"/g)].map((m) => Number(m[1])));
    expect(right - Math.max(...xs)).toBeLessThan(20); // the last point sits at the axis's end
  });

  it('is responsive: a viewBox and width 100%, no fixed pixel size', () => {
    const svg = renderChart({ kind: 'bar', title: 't', categories: ['a'], y: { label: 'y', unit: 'µs' }, series: [{ name: 's', values: [1] }] });
    expect(svg).toMatch(/^<svg [^>]*viewBox="0 0 680 \d+" width="100%"/);
    expect(svg).not.toMatch(/^<svg [^>]*height="/);
  });

  it('wraps a long title to its measured width and starts the legend below its last line', () => {
    const title = 'smaps of the region: after the fork parent and child share it (Shared_Dirty, the child\'s Private_Dirty 0); after the exec it is the parent\'s own again';
    const svg = renderChart({ kind: 'bar', title, categories: ['a'], y: { label: 'y', unit: 'MiB' }, series: [{ name: 'one', values: [1] }, { name: 'two', values: [2] }] });
    const titles = [...svg.matchAll(/<text x="[\d.]+" y="([\d.]+)" class="title" textLength="([\d.]+)"/g)].map((m) => ({ y: Number(m[1]), len: Number(m[2]) }));
    expect(titles.length).toBe(2);
    for (const t of titles) expect(t.len).toBeLessThanOrEqual(680 - 24);
    const legendY = Math.min(...[...svg.matchAll(/<text x="[\d.]+" y="([\d.]+)" class="legend"/g)].map((m) => Number(m[1])));
    expect(legendY - TEXT_STYLES.legend.size).toBeGreaterThan(titles.at(-1)!.y + 3); // the legend's top clears the title's descent
  });
  it('survives empty series', () => {
    const svg = renderChart({ kind: 'line', title: 'empty', x: { label: 'x', unit: 'u' }, y: { label: 'y', unit: 'v' }, series: [{ name: 'none', points: [] }] });
    expect(svg).toMatch(/<\/svg>$/);
    expect(svg).not.toContain('NaN');
  });
});

describe('formatTick', () => {
  it.each([
    [0, '0'], [0.5, '0.5'], [5, '5'], [1000, '1000'], [10000, '10k'], [65536, '65.5k'], [2e6, '2M'], [1.5e9, '1.5G'],
  ])('%d -> %s', (v, s) => expect(formatTick(v)).toBe(s));
});

describe('chart text', () => {
  it('shows a mark\'s value in full in its tooltip: 4,096 stays 4,096', () => {
    const svg = renderChart({ kind: 'bar', title: 't', categories: ['a'], y: { label: 'pages written', unit: 'pages' }, series: [{ name: 's', values: [4096] }] });
    expect(svg).toContain('<title>a, s: 4,096 pages</title>');
    expect(formatExact(2.345678)).toBe('2.346');
    expect(formatExact(65536)).toBe('65,536');
  });

  it('names a unit once: "pages", not "pages (pages)", and keeps a unit the label does not name', () => {
    expect(axisTitle({ label: 'pages', unit: 'pages' })).toBe('pages');
    expect(axisTitle({ label: 'distinct frames', unit: 'frames', scale: 'log' })).toBe('distinct frames (log scale)');
    expect(axisTitle({ label: 'latency per page', unit: 'µs', scale: 'log' })).toBe('latency per page (µs, log scale)');
    expect(axisTitle({ label: 'file offset', unit: 'bytes' })).toBe('file offset (bytes)');
  });
});

describe('measured text widths', () => {
  it('measures from the font table: wide letters wider, bold wider, unknown characters as wide as M', () => {
    expect(textWidth('MMMM', 'tick')).toBeGreaterThan(textWidth('iiii', 'tick') * 3);
    expect(textWidth('Shared_Dirty', 'title')).toBeGreaterThan(textWidth('Shared_Dirty', 'axis-label'));
    expect(textWidth('\u4e00', 'tick')).toBe(textWidth('M', 'tick'));
    expect(textWidth('M', 'tick')).toBeCloseTo(0.833 * 11, 5); // Liberation Sans / Arial: M is 833/1000 em
  });

  it('wraps by width, not by character count, and splits a word wider than the line', () => {
    const lines = wrapToWidth('iiiiiiiiii MMMMMMMMMM iiiiiiiiii', 100, 'tick');
    for (const l of lines) expect(textWidth(l, 'tick')).toBeLessThanOrEqual(100);
    expect(lines[0]).toBe('iiiiiiiiii'); // 10 i fit with room; 10 M (92 px) do not fit after them
    expect(wrapToWidth('PAGEMAP_SCAN_LONG_IDENTIFIER', 60, 'tick').every((l) => textWidth(l, 'tick') <= 60)).toBe(true);
  });
});
