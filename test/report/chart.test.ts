/** The SVG charts: every kind renders marks, axes carry their units, log axes label decades. */
import { describe, expect, it } from 'vitest';

import { axisTitle, formatExact, formatTick, renderChart, type ChartSpec } from '../../src/report/chart.js';

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

  it('draws a histogram over the non-empty bins, series side by side', () => {
    const svg = renderChart({
      kind: 'histogram',
      title: 'h',
      x: { label: 'latency', unit: 'µs', scale: 'log' },
      y: { label: 'stores', unit: 'count' },
      edges: [1, 2, 5, 10, 20],
      series: [{ name: 'cold', counts: [0, 3, 1, 0] }, { name: 'warm', counts: [0, 5, 0, 0] }],
    });
    expect(count(svg, /<rect [^>]*class="mark"/g)).toBe(3);
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
