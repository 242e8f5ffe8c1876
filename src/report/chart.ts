/**
 * Charts as inline SVG strings, for the self-contained HTML report: line/scatter (several
 * series, optional min-max whiskers), bar (grouped when several series) and CDF (cumulative
 * distributions with p50/p99 marks). Scales and ticks come from d3-scale; every text is laid
 * out from measured widths (chartText.ts), top to bottom: title, legend, plot, axis labels,
 * so nothing is placed where an earlier text already is. The SVG scales to its container
 * (viewBox, width 100%). Every plotted element has class "mark" (tests count them).
 *
 * Values are in the axis's unit (the label says which); log axes drop values <= 0.
 */
import { scaleBand, scaleLinear, scaleLog } from 'd3-scale';

import { escapeXml, lineHeight, svgText, textCss, textWidth, TEXT_STYLES, wrapToWidth } from './chartText.js';

export { escapeXml } from './chartText.js';

export interface Axis {
  label: string;
  /** Unit of the values, shown in the axis label: "µs", "ms", "MiB", "pages", "%". */
  unit: string;
  scale?: 'linear' | 'log';
  /** Force the domain to include these (e.g. 0 for a linear y axis; the default). */
  min?: number;
  max?: number;
}

export interface XYPoint {
  x: number;
  y: number;
  /** Min-max band over repeats, drawn as a whisker. */
  lo?: number;
  hi?: number;
}

export interface XYSeries {
  name: string;
  points: XYPoint[];
  dashed?: boolean;
}

export interface BarSeries {
  name: string;
  /** One value per category (null: no bar). */
  values: (number | null)[];
  lo?: (number | null)[];
  hi?: (number | null)[];
}

export interface CdfSeries {
  name: string;
  /** The distribution as (value, fraction of samples <= value), fractions 0..1, any order. */
  points: { x: number; fraction: number }[];
  /** The 50th and 99th percentiles, marked on the curve and named in the legend. */
  p50: number | null;
  p99: number | null;
}

export type ChartSpec =
  | { kind: 'line' | 'scatter'; title: string; x: Axis; y: Axis; series: XYSeries[]; caption?: string }
  | { kind: 'bar'; title: string; categories: string[]; y: Axis; series: BarSeries[]; caption?: string }
  | { kind: 'cdf'; title: string; x: Axis; series: CdfSeries[]; caption?: string };

/** Okabe-Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

/** The viewBox width: the chart's own coordinates; on screen it scales to its container. */
const W = 680;
const PLOT_H = 300;
const PAD = 12; // outer padding, left and right of titles and legends
const RIGHT = 24; // right of the plot: half of the last x tick label
const GAP = 6; // between a tick and its label, between stacked blocks

/** Tick labels: 3 significant digits, k/M/G for large values. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  const sig = (x: number) => String(Number(x.toPrecision(3)));
  if (a >= 1e9) return `${sig(v / 1e9)}G`;
  if (a >= 1e6) return `${sig(v / 1e6)}M`;
  if (a >= 1e4) return `${sig(v / 1e3)}k`;
  return sig(v);
}

/** A value as a tooltip shows it: integers in full (4,096, never 4.1k), others to 4 digits. */
export function formatExact(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return String(Number(v.toPrecision(4)));
}

/** "latency (µs, log scale)"; the unit is left out where the label already names it
 *  ("pages", not "pages (pages)"). */
export function axisTitle(a: Axis): string {
  const named = new RegExp(`(^|\\W)${a.unit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|\\W)`, 'i').test(a.label);
  const parts = [...(named ? [] : [a.unit]), ...(a.scale === 'log' ? ['log scale'] : [])];
  return parts.length ? `${a.label} (${parts.join(', ')})` : a.label;
}

type NumScale = ((v: number) => number) & { ticks(n?: number): number[]; domain(): number[] };

interface Extent {
  lo: number;
  hi: number;
}

function extentOf(values: number[], a: Axis): Extent {
  const usable = a.scale === 'log' ? values.filter((v) => v > 0) : values.filter(Number.isFinite);
  let lo = Math.min(...usable, ...(a.min !== undefined ? [a.min] : []));
  let hi = Math.max(...usable, ...(a.max !== undefined ? [a.max] : []));
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = a.scale === 'log' ? 1 : 0;
    hi = a.scale === 'log' ? 10 : 1;
  }
  if (a.scale !== 'log' && a.min === undefined) lo = Math.min(lo, 0);
  if (lo === hi) {
    if (a.scale === 'log') {
      lo /= 2;
      hi *= 2;
    } else {
      hi = lo === 0 ? 1 : hi + Math.abs(hi) * 0.1;
    }
  }
  return { lo, hi };
}

/** A log axis spans the data, 3 % of its decades beyond each end (room for a point's
 *  circle): not rounded out to powers of ten, which could leave most of it empty. */
function numScale(a: Axis, e: Extent, range: [number, number]): NumScale {
  if (a.scale === 'log') {
    const pad = 10 ** (0.03 * Math.max(Math.log10(e.hi / e.lo), 0.5));
    return scaleLog().domain([e.lo / pad, e.hi * pad]).range(range) as unknown as NumScale;
  }
  return scaleLinear().domain([e.lo, e.hi]).nice().range(range) as unknown as NumScale;
}

/** Ticks that get a label and a grid line; on log axes the powers of ten (and 2, 5 within
 *  two decades), the rest as short unlabelled marks. Fewer than two labelled ticks (a range
 *  inside one decade) label every tick d3 proposes. */
function ticksOf(a: Axis, s: NumScale): { major: number[]; minor: number[] } {
  const all = s.ticks(a.scale === 'log' ? undefined : 6);
  if (a.scale !== 'log') return { major: all, minor: [] };
  const [d0, d1] = s.domain() as [number, number];
  const decades = Math.log10(d1 / d0);
  const major: number[] = [];
  const minor: number[] = [];
  for (const t of all) {
    const exp = Math.floor(Math.log10(t) + 1e-9);
    const mant = t / 10 ** exp;
    const isMant = (m: number) => Math.abs(mant - m) < 1e-6;
    const everyOther = decades > 6 ? exp % 2 === 0 : true;
    if ((isMant(1) && everyOther) || (decades <= 2 && (isMant(2) || isMant(5)))) major.push(t);
    else minor.push(t);
  }
  return major.length >= 2 ? { major, minor } : { major: all, minor: [] };
}

/** Labels along an axis, keeping only those that clear the previous kept one by `gap`. */
function thinLabels(ticks: number[], pos: (t: number) => number, size: (t: number) => number, gap: number): number[] {
  const kept: number[] = [];
  let end = -Infinity;
  for (const t of [...ticks].sort((a, b) => pos(a) - pos(b))) {
    const half = size(t) / 2;
    if (pos(t) - half < end + gap) continue;
    kept.push(t);
    end = pos(t) + half;
  }
  return kept;
}

/** The chart's geometry, decided before anything is drawn. */
interface Layout {
  left: number;
  right: number;
  top: number;
  base: number;
  /** Lines of the y axis label (rotated) and of the x axis label. */
  yLabel: string[];
  xLabel: string[];
}

interface LegendItem {
  name: string;
  dashed?: boolean;
}

class Svg {
  readonly parts: string[] = [];
  add(s: string): void {
    this.parts.push(s);
  }
}

/** Title lines from the top, then legend rows below them; returns where the next block may start. */
function header(svg: Svg, title: string, legendItems: LegendItem[], marker: 'line' | 'box'): number {
  let y = GAP;
  for (const line of wrapToWidth(title, W - 2 * PAD, 'title')) {
    svg.add(svgText(PAD, y + TEXT_STYLES.title.size, line, 'title'));
    y += lineHeight('title');
  }
  if (legendItems.length === 0) return y;
  y += GAP;
  let x = PAD;
  const row = lineHeight('legend');
  for (const [i, item] of legendItems.entries()) {
    // A name wider than the chart wraps on its own rows; others flow left to right.
    const lines = wrapToWidth(item.name, W - 2 * PAD - 22, 'legend');
    const w = 22 + Math.max(...lines.map((l) => textWidth(l, 'legend'))) + 14;
    if (x + w > W - PAD && x > PAD) {
      x = PAD;
      y += row;
    }
    const baseline = y + TEXT_STYLES.legend.size;
    const c = PALETTE[i % PALETTE.length]!;
    svg.add(
      marker === 'line'
        ? `<line x1="${x}" y1="${baseline - 4}" x2="${x + 16}" y2="${baseline - 4}" stroke="${c}" stroke-width="2"${item.dashed ? ' stroke-dasharray="5 3"' : ''}/>`
        : `<rect x="${x + 3}" y="${baseline - 9}" width="10" height="10" fill="${c}"/>`,
    );
    lines.forEach((l, k) => svg.add(svgText(x + 21, baseline + k * row, l, 'legend')));
    y += (lines.length - 1) * row;
    x = lines.length > 1 ? W : x + w; // after a wrapped name, the next item starts a row
  }
  return y + row;
}

/** The plot's box: left of it the y tick labels and the rotated y label (measured), above it
 *  the header; below it go the x tick labels and the x label (height() adds them). */
function layout(headerBottom: number, y: Axis, yTickLabels: string[], x: Axis | null): Layout {
  const yLabel = wrapToWidth(axisTitle(y), PLOT_H, 'axis-label');
  const tickW = Math.max(0, ...yTickLabels.map((t) => textWidth(t, 'tick')));
  const left = Math.ceil(PAD + yLabel.length * lineHeight('axis-label') + GAP + tickW + GAP);
  const xLabel = x ? wrapToWidth(axisTitle(x), W - left - RIGHT, 'axis-label') : [];
  // The top tick label sits half a line above the plot: keep it clear of the header.
  const top = Math.ceil(headerBottom + GAP + TEXT_STYLES.tick.size / 2);
  return { left, right: W - RIGHT, top, base: top + PLOT_H, yLabel, xLabel };
}

function height(l: Layout, below: number): number {
  return Math.ceil(l.base + below + l.xLabel.length * lineHeight('axis-label') + GAP);
}

function finish(svg: Svg, h: number, title: string, caption?: string): string {
  const desc = caption ? `<desc>${escapeXml(caption)}</desc>` : '';
  return (
    `<svg class="chart" viewBox="0 0 ${W} ${h}" width="100%" preserveAspectRatio="xMidYMin meet" role="img" aria-label="${escapeXml(title)}">` +
    `<title>${escapeXml(title)}</title>${desc}` +
    svg.parts.join('') +
    '</svg>'
  );
}

function yAxis(svg: Svg, a: Axis, s: NumScale, l: Layout): void {
  const { major, minor } = ticksOf(a, s);
  const labelled = thinLabels(major, (t) => s(t), () => lineHeight('tick'), 2);
  for (const t of major) svg.add(`<line x1="${l.left}" x2="${l.right}" y1="${r1(s(t))}" y2="${r1(s(t))}" class="grid"/>`);
  for (const t of labelled) svg.add(svgText(l.left - GAP, s(t) + 4, formatTick(t), 'tick', { anchor: 'end' }));
  for (const t of minor) svg.add(`<line x1="${l.left - 3}" x2="${l.left}" y1="${r1(s(t))}" y2="${r1(s(t))}" class="axis"/>`);
  svg.add(`<line x1="${l.left}" x2="${l.left}" y1="${l.top}" y2="${l.base}" class="axis"/>`);
  const cy = (l.top + l.base) / 2;
  const ascent = TEXT_STYLES['axis-label'].size;
  l.yLabel.forEach((line, i) => {
    const x = PAD + ascent + i * lineHeight('axis-label');
    svg.add(svgText(x, cy, line, 'axis-label', { anchor: 'middle', transform: `rotate(-90 ${r1(x)} ${r1(cy)})` }));
  });
}

/** Height below the plot that x tick labels take (their baseline, then the label block). */
const X_TICKS_BELOW = 18 + 18;

function xAxis(svg: Svg, a: Axis, s: NumScale, l: Layout): void {
  const { major, minor } = ticksOf(a, s);
  const labelled = thinLabels(major, (t) => s(t), (t) => textWidth(formatTick(t), 'tick'), 8);
  for (const t of major) svg.add(`<line x1="${r1(s(t))}" x2="${r1(s(t))}" y1="${l.base}" y2="${l.base + 5}" class="axis"/>`);
  for (const t of labelled) svg.add(svgText(s(t), l.base + 18, formatTick(t), 'tick', { anchor: 'middle' }));
  for (const t of minor) svg.add(`<line x1="${r1(s(t))}" x2="${r1(s(t))}" y1="${l.base}" y2="${l.base + 3}" class="axis"/>`);
  svg.add(`<line x1="${l.left}" x2="${l.right}" y1="${l.base}" y2="${l.base}" class="axis"/>`);
  l.xLabel.forEach((line, i) => {
    svg.add(svgText((l.left + l.right) / 2, l.base + X_TICKS_BELOW + TEXT_STYLES['axis-label'].size / 2 + i * lineHeight('axis-label'), line, 'axis-label', { anchor: 'middle' }));
  });
}

function plottable(a: Axis, v: number | null | undefined): v is number {
  return v !== null && v !== undefined && Number.isFinite(v) && (a.scale !== 'log' || v > 0);
}

const r1 = (v: number) => Math.round(v * 10) / 10;

/** The y scale's tick labels, known before the plot's height is placed (they set its left margin). */
function yTickLabels(a: Axis, s: NumScale): string[] {
  return ticksOf(a, s).major.map(formatTick);
}

function xyChart(c: Extract<ChartSpec, { kind: 'line' | 'scatter' }>): string {
  const svg = new Svg();
  const headerBottom = header(svg, c.title, c.series.map((s) => ({ name: s.name, dashed: s.dashed })), 'line');
  const pts = c.series.flatMap((s) => s.points);
  const xAxisDef = { ...c.x, min: c.x.min ?? (c.x.scale === 'log' ? undefined : Math.min(...pts.map((p) => p.x))) };
  const yExtent = extentOf(pts.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]), c.y);
  const l = layout(headerBottom, c.y, yTickLabels(c.y, numScale(c.y, yExtent, [1, 0])), c.x);
  const xs = numScale(c.x, extentOf(pts.map((p) => p.x), xAxisDef), [l.left, l.right]);
  const ys = numScale(c.y, yExtent, [l.base, l.top]);
  yAxis(svg, c.y, ys, l);
  xAxis(svg, c.x, xs, l);
  for (const [i, s] of c.series.entries()) {
    const color = PALETTE[i % PALETTE.length]!;
    const ok = s.points.filter((p) => plottable(c.x, p.x) && plottable(c.y, p.y)).sort((a, b) => a.x - b.x);
    if (c.kind === 'line' && ok.length > 1) {
      const d = ok.map((p, j) => `${j === 0 ? 'M' : 'L'}${r1(xs(p.x))},${r1(ys(p.y))}`).join('');
      svg.add(`<path d="${d}" class="mark line" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    }
    for (const p of ok) {
      const x = r1(xs(p.x));
      if (plottable(c.y, p.lo) && plottable(c.y, p.hi) && p.hi > p.lo) {
        svg.add(`<line x1="${x}" x2="${x}" y1="${r1(ys(p.lo))}" y2="${r1(ys(p.hi))}" class="band" stroke="${color}"/>`);
      }
      svg.add(`<circle cx="${x}" cy="${r1(ys(p.y))}" r="3" class="mark" fill="${color}"><title>${escapeXml(`${s.name}: ${formatExact(p.x)} ${c.x.unit} → ${formatExact(p.y)} ${c.y.unit}`)}</title></circle>`);
    }
  }
  return finish(svg, height(l, X_TICKS_BELOW), c.title, c.caption);
}

/** Category labels wrapped to the width of their band's step (measured). */
function categoryLines(categories: string[], step: number): string[][] {
  return categories.map((cat) => wrapToWidth(cat, Math.max(24, step - 6), 'tick'));
}

function barChart(c: Extract<ChartSpec, { kind: 'bar' }>): string {
  const svg = new Svg();
  const headerBottom = header(svg, c.title, c.series.length > 1 ? c.series.map((s) => ({ name: s.name })) : [], 'box');
  const values = c.series.flatMap((s) => [...s.values, ...(s.hi ?? []), ...(s.lo ?? [])]).filter((v): v is number => v !== null);
  // A bar needs a baseline below its value: on a log axis the power of ten under the least.
  // (A given minimum, e.g. a pair's shared extent, is floored the same way.)
  const lows = [...values, ...(c.y.min !== undefined ? [c.y.min] : [])].filter((v) => v > 0);
  const min = c.y.scale === 'log' && lows.length ? 10 ** Math.floor(Math.log10(Math.min(...lows))) : c.y.min;
  const yExtent = extentOf(values, { ...c.y, min });
  // The band width depends on the left margin, which depends on the y tick labels only.
  const pre = layout(headerBottom, c.y, yTickLabels(c.y, numScale(c.y, yExtent, [1, 0])), null);
  const xb = scaleBand<string>().domain(c.categories).range([pre.left, pre.right]).paddingInner(0.25).paddingOuter(0.1);
  const lines = categoryLines(c.categories, xb.step());
  const below = 16 + Math.max(1, ...lines.map((x) => x.length)) * lineHeight('tick');
  const l = pre;
  const ys = numScale(c.y, yExtent, [l.base, l.top]);
  const inner = scaleBand<string>().domain(c.series.map((s) => s.name)).range([0, xb.bandwidth()]).padding(0.08);
  yAxis(svg, c.y, ys, l);
  const y0 = c.y.scale === 'log' ? l.base : ys(0);
  for (const [i, s] of c.series.entries()) {
    const color = PALETTE[i % PALETTE.length]!;
    for (const [j, cat] of c.categories.entries()) {
      const v = s.values[j];
      if (!plottable(c.y, v)) continue;
      const x = (xb(cat) ?? 0) + (inner(s.name) ?? 0);
      const y = ys(v);
      svg.add(`<rect x="${r1(x)}" y="${r1(Math.min(y, y0))}" width="${r1(inner.bandwidth())}" height="${r1(Math.max(1, Math.abs(y0 - y)))}" class="mark" fill="${color}"><title>${escapeXml(`${cat}, ${s.name}: ${formatExact(v)} ${c.y.unit}`)}</title></rect>`);
      const lo = s.lo?.[j];
      const hi = s.hi?.[j];
      if (plottable(c.y, lo) && plottable(c.y, hi) && hi > lo) {
        const cx = r1(x + inner.bandwidth() / 2);
        svg.add(`<line x1="${cx}" x2="${cx}" y1="${r1(ys(lo))}" y2="${r1(ys(hi))}" class="band" stroke="#333"/>`);
      }
    }
  }
  svg.add(`<line x1="${l.left}" x2="${l.right}" y1="${l.base}" y2="${l.base}" class="axis"/>`);
  for (const [j, cat] of c.categories.entries()) {
    const x = (xb(cat) ?? 0) + xb.bandwidth() / 2;
    lines[j]!.forEach((line, k) => svg.add(svgText(x, l.base + 16 + k * lineHeight('tick'), line, 'tick', { anchor: 'middle' })));
  }
  return finish(svg, height(l, below), c.title, c.caption);
}

const CDF_MARKS = [
  { q: 50, label: 'p50', key: 'p50' },
  { q: 99, label: 'p99', key: 'p99' },
] as const;

function cdfLegendName(s: CdfSeries, unit: string): string {
  const marks = CDF_MARKS.filter((m) => s[m.key] !== null).map((m) => `${m.label} ${formatExact(s[m.key]!)} ${unit}`);
  return marks.length ? `${s.name}: ${marks.join(', ')}` : s.name;
}

function cdfChart(c: Extract<ChartSpec, { kind: 'cdf' }>): string {
  const svg = new Svg();
  const y: Axis = { label: 'stores at or below', unit: '%', min: 0, max: 100 };
  const headerBottom = header(svg, c.title, c.series.map((s) => ({ name: cdfLegendName(s, c.x.unit) })), 'line');
  const yExtent = { lo: 0, hi: 100 };
  const l = layout(headerBottom, y, yTickLabels(y, numScale(y, yExtent, [1, 0])), c.x);
  const xs = numScale(c.x, extentOf(c.series.flatMap((s) => s.points.map((p) => p.x)), c.x), [l.left, l.right]);
  const ys = numScale(y, yExtent, [l.base, l.top]);
  yAxis(svg, y, ys, l);
  xAxis(svg, c.x, xs, l);
  // The percentile guides, labelled inside the plot below their line, at its right end.
  for (const m of CDF_MARKS) {
    svg.add(`<line x1="${l.left}" x2="${l.right}" y1="${r1(ys(m.q))}" y2="${r1(ys(m.q))}" class="guide"/>`);
    svg.add(svgText(l.right - 4, ys(m.q) + 13, m.label, 'note', { anchor: 'end' }));
  }
  for (const [i, s] of c.series.entries()) {
    const color = PALETTE[i % PALETTE.length]!;
    const ok = s.points.filter((p) => plottable(c.x, p.x)).sort((a, b) => a.x - b.x || a.fraction - b.fraction);
    if (ok.length > 1) {
      const d = ok.map((p, j) => `${j === 0 ? 'M' : 'L'}${r1(xs(p.x))},${r1(ys(p.fraction * 100))}`).join('');
      svg.add(`<path d="${d}" class="mark line" fill="none" stroke="${color}" stroke-width="2"/>`);
    }
    for (const m of CDF_MARKS) {
      const v = s[m.key];
      if (!plottable(c.x, v)) continue;
      svg.add(`<circle cx="${r1(xs(v))}" cy="${r1(ys(m.q))}" r="4" class="mark" fill="${color}" stroke="#fff"><title>${escapeXml(`${s.name}: ${m.label} ${formatExact(v)} ${c.x.unit}`)}</title></circle>`);
    }
  }
  return finish(svg, height(l, X_TICKS_BELOW), c.title, c.caption);
}

/** Whether the chart has anything to plot (a recording in which nothing was measured can
 *  present a chart with no values: the report leaves it out rather than draw empty axes). */
export function hasData(c: ChartSpec): boolean {
  switch (c.kind) {
    case 'line':
    case 'scatter':
      return c.series.some((s) => s.points.some((p) => plottable(c.x, p.x) && plottable(c.y, p.y)));
    case 'bar':
      return c.series.some((s) => s.values.some((v) => plottable(c.y, v)));
    case 'cdf':
      return c.series.some((s) => s.points.some((p) => plottable(c.x, p.x)));
  }
}

/** The chart as an `<svg>` element (a string), with inline presentation attributes. */
export function renderChart(c: ChartSpec): string {
  switch (c.kind) {
    case 'line':
    case 'scatter':
      return xyChart(c);
    case 'bar':
      return barChart(c);
    case 'cdf':
      return cdfChart(c);
  }
}

/** The (value, fraction) points of a distribution given as histogram counts over edges: the
 *  fraction at or below each bin's upper edge (for results that kept only a histogram). */
export function cdfFromHistogram(edges: readonly number[], counts: readonly number[]): { x: number; fraction: number }[] {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return [];
  let seen = 0;
  const first = counts.findIndex((n) => n > 0);
  const out = [{ x: edges[first]!, fraction: 0 }];
  for (let i = first; i < counts.length; i++) {
    seen += counts[i]!;
    out.push({ x: edges[i + 1]!, fraction: seen / total });
    if (seen === total) break;
  }
  return out;
}

/** CSS for the classes renderChart uses (the report inlines it once). */
export const CHART_CSS = `
svg.chart { display: block; width: 100%; max-width: 760px; height: auto; background: #fff; }
${textCss()}
svg.chart .axis { stroke: #444; stroke-width: 1; }
svg.chart .grid { stroke: #e3e3e3; stroke-width: 1; }
svg.chart .guide { stroke: #888; stroke-width: 1; stroke-dasharray: 3 3; }
svg.chart .band { stroke-width: 1.5; }
`;

