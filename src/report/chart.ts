/**
 * Charts as inline SVG strings, for the self-contained HTML report: line/scatter (several
 * series, optional min-max whiskers), bar (grouped when several series) and histogram (one or
 * more overlaid series). Scales and ticks come from d3-scale; everything else is plain
 * string building. Every plotted element has class "mark" (tests count them).
 *
 * Values are in the axis's unit (the label says which); log axes drop values <= 0.
 */
import { scaleBand, scaleLinear, scaleLog } from 'd3-scale';

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

export interface HistogramSeries {
  name: string;
  /** counts[i] falls in [edges[i], edges[i+1]). */
  counts: number[];
}

export type ChartSpec =
  | { kind: 'line' | 'scatter'; title: string; x: Axis; y: Axis; series: XYSeries[]; caption?: string }
  | { kind: 'bar'; title: string; categories: string[]; y: Axis; series: BarSeries[]; caption?: string }
  | { kind: 'histogram'; title: string; x: Axis; y: Axis; edges: number[]; series: HistogramSeries[]; caption?: string };

/** Okabe-Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

const W = 680;
const PLOT_H = 300;
const M = { left: 72, right: 24, top: 34, bottom: 52 };
const CHAR_W = 6.6; // average width of a 11px sans-serif character, for legend layout

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

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

type NumScale = ((v: number) => number) & { ticks(n?: number): number[] };

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

function numScale(a: Axis, e: Extent, range: [number, number]): NumScale {
  if (a.scale === 'log') {
    const lo = 10 ** Math.floor(Math.log10(e.lo));
    const hi = 10 ** Math.ceil(Math.log10(e.hi));
    return scaleLog().domain([lo, hi]).range(range) as unknown as NumScale;
  }
  return scaleLinear().domain([e.lo, e.hi]).nice().range(range) as unknown as NumScale;
}

/** Ticks that get a label and a grid line; on log axes the powers of ten (and 2, 5 within
 *  two decades), the rest as short unlabelled marks. */
function ticksOf(a: Axis, s: NumScale): { major: number[]; minor: number[] } {
  const all = s.ticks(a.scale === 'log' ? undefined : 6);
  if (a.scale !== 'log') return { major: all, minor: [] };
  const [d0, d1] = (s as unknown as { domain(): number[] }).domain() as [number, number];
  const decades = Math.log10(d1 / d0);
  const major: number[] = [];
  const minor: number[] = [];
  for (const t of all) {
    const mant = Math.round(t / 10 ** Math.floor(Math.log10(t) + 1e-9));
    const everyOther = decades > 6 ? Math.round(Math.log10(t)) % 2 === 0 : true;
    if ((mant === 1 && everyOther) || (decades <= 2 && (mant === 2 || mant === 5))) major.push(t);
    else minor.push(t);
  }
  return { major, minor };
}

class Svg {
  readonly parts: string[] = [];
  add(s: string): void {
    this.parts.push(s);
  }
}

function legend(svg: Svg, names: string[], kind: 'line' | 'box', dashed: boolean[] = []): number {
  // Items left to right, wrapped at the plot width; returns the height used.
  let x = M.left;
  let y = M.top - 8;
  for (const [i, name] of names.entries()) {
    const w = 22 + name.length * CHAR_W + 16;
    if (x + w > W - M.right && x > M.left) {
      x = M.left;
      y += 16;
    }
    const c = PALETTE[i % PALETTE.length]!;
    svg.add(
      kind === 'line'
        ? `<line x1="${x}" y1="${y - 4}" x2="${x + 16}" y2="${y - 4}" stroke="${c}" stroke-width="2"${dashed[i] ? ' stroke-dasharray="5 3"' : ''}/>`
        : `<rect x="${x + 3}" y="${y - 9}" width="10" height="10" fill="${c}"/>`,
    );
    svg.add(`<text x="${x + 21}" y="${y}" class="legend">${escapeXml(name)}</text>`);
    x += w;
  }
  return y - (M.top - 8);
}

const TITLE_CHARS = Math.floor((W - M.left - M.right) / 7.2);

function frame(title: string, legendNames: string[], kind: 'line' | 'box', dashed?: boolean[]): { svg: Svg; top: number } {
  const svg = new Svg();
  const lines = wrap(title, TITLE_CHARS);
  lines.forEach((line, i) => svg.add(`<text x="${M.left}" y="${16 + i * 16}" class="title">${escapeXml(line)}</text>`));
  const titleExtra = (lines.length - 1) * 16;
  if (titleExtra) svg.add(`<g transform="translate(0 ${titleExtra})">`);
  const extra = legendNames.length > 0 ? legend(svg, legendNames, kind, dashed) + 8 : 0;
  if (titleExtra) svg.add('</g>');
  return { svg, top: M.top + extra + titleExtra };
}

function finish(svg: Svg, top: number, title: string, caption?: string): string {
  const h = top + PLOT_H + M.bottom;
  const desc = caption ? `<desc>${escapeXml(caption)}</desc>` : '';
  return (
    `<svg class="chart" viewBox="0 0 ${W} ${h}" width="${W}" height="${h}" role="img" aria-label="${escapeXml(title)}">` +
    `<title>${escapeXml(title)}</title>${desc}` +
    svg.parts.join('') +
    '</svg>'
  );
}

function yAxis(svg: Svg, a: Axis, s: NumScale, top: number): void {
  const { major, minor } = ticksOf(a, s);
  for (const t of major) {
    const y = s(t);
    svg.add(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" class="grid"/>`);
    svg.add(`<text x="${M.left - 6}" y="${y + 4}" class="tick" text-anchor="end">${formatTick(t)}</text>`);
  }
  for (const t of minor) svg.add(`<line x1="${M.left - 3}" x2="${M.left}" y1="${s(t)}" y2="${s(t)}" class="axis"/>`);
  svg.add(`<line x1="${M.left}" x2="${M.left}" y1="${top}" y2="${top + PLOT_H}" class="axis"/>`);
  const cy = top + PLOT_H / 2;
  svg.add(`<text x="16" y="${cy}" class="axis-label" text-anchor="middle" transform="rotate(-90 16 ${cy})">${escapeXml(axisTitle(a))}</text>`);
}

function xAxis(svg: Svg, a: Axis, s: NumScale, top: number): void {
  const base = top + PLOT_H;
  const { major, minor } = ticksOf(a, s);
  for (const t of major) {
    const x = s(t);
    svg.add(`<line x1="${x}" x2="${x}" y1="${base}" y2="${base + 5}" class="axis"/>`);
    svg.add(`<text x="${x}" y="${base + 18}" class="tick" text-anchor="middle">${formatTick(t)}</text>`);
  }
  for (const t of minor) svg.add(`<line x1="${s(t)}" x2="${s(t)}" y1="${base}" y2="${base + 3}" class="axis"/>`);
  svg.add(`<line x1="${M.left}" x2="${W - M.right}" y1="${base}" y2="${base}" class="axis"/>`);
  svg.add(`<text x="${(M.left + W - M.right) / 2}" y="${base + 40}" class="axis-label" text-anchor="middle">${escapeXml(axisTitle(a))}</text>`);
}

function plottable(a: Axis, v: number | null | undefined): v is number {
  return v !== null && v !== undefined && Number.isFinite(v) && (a.scale !== 'log' || v > 0);
}

const r1 = (v: number) => Math.round(v * 10) / 10;

function xyChart(c: Extract<ChartSpec, { kind: 'line' | 'scatter' }>): string {
  const { svg, top } = frame(c.title, c.series.map((s) => s.name), 'line', c.series.map((s) => s.dashed ?? false));
  const pts = c.series.flatMap((s) => s.points);
  const xs = numScale(c.x, extentOf(pts.map((p) => p.x), { ...c.x, min: c.x.min ?? (c.x.scale === 'log' ? undefined : Math.min(...pts.map((p) => p.x))) }), [M.left, W - M.right]);
  const ys = numScale(c.y, extentOf(pts.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]), c.y), [top + PLOT_H, top]);
  yAxis(svg, c.y, ys, top);
  xAxis(svg, c.x, xs, top);
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
  return finish(svg, top, c.title, c.caption);
}

function barChart(c: Extract<ChartSpec, { kind: 'bar' }>): string {
  const { svg, top } = frame(c.title, c.series.length > 1 ? c.series.map((s) => s.name) : [], 'box');
  const values = c.series.flatMap((s) => [...s.values, ...(s.hi ?? [])]).filter((v): v is number => v !== null);
  const ys = numScale(c.y, extentOf(values, c.y), [top + PLOT_H, top]);
  const xb = scaleBand<string>().domain(c.categories).range([M.left, W - M.right]).paddingInner(0.25).paddingOuter(0.1);
  const inner = scaleBand<string>().domain(c.series.map((s) => s.name)).range([0, xb.bandwidth()]).padding(0.08);
  yAxis(svg, c.y, ys, top);
  const base = top + PLOT_H;
  const y0 = c.y.scale === 'log' ? base : ys(0);
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
  svg.add(`<line x1="${M.left}" x2="${W - M.right}" y1="${base}" y2="${base}" class="axis"/>`);
  for (const cat of c.categories) {
    const x = (xb(cat) ?? 0) + xb.bandwidth() / 2;
    const lines = wrap(cat, Math.max(8, Math.floor(xb.bandwidth() / CHAR_W)));
    lines.slice(0, 3).forEach((line, k) => {
      svg.add(`<text x="${r1(x)}" y="${base + 16 + k * 12}" class="tick" text-anchor="middle">${escapeXml(line)}</text>`);
    });
  }
  return finish(svg, top, c.title, c.caption);
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
}

function histogram(c: Extract<ChartSpec, { kind: 'histogram' }>): string {
  const { svg, top } = frame(c.title, c.series.map((s) => s.name), 'box');
  const counts = c.series.flatMap((s) => s.counts);
  // The x range covers the bins that hold something (both edges of each).
  const used = c.edges.filter((_, i) => c.series.some((s) => (s.counts[i] ?? 0) > 0 || (s.counts[i - 1] ?? 0) > 0));
  const xs = numScale(c.x, extentOf(used.length ? used : c.edges, { ...c.x, min: c.x.min ?? (c.x.scale === 'log' ? undefined : Math.min(...used)) }), [M.left, W - M.right]);
  const ys = numScale(c.y, extentOf(counts, c.y), [top + PLOT_H, top]);
  yAxis(svg, c.y, ys, top);
  xAxis(svg, c.x, xs, top);
  const base = top + PLOT_H;
  // Several series share each bin side by side (series i in the i-th slice of the bin).
  const k = c.series.length;
  for (const [i, s] of c.series.entries()) {
    const color = PALETTE[i % PALETTE.length]!;
    for (let b = 0; b < s.counts.length; b++) {
      const n = s.counts[b]!;
      const e0 = c.edges[b]!;
      const e1 = c.edges[b + 1]!;
      if (n <= 0 || !plottable(c.x, e0) || !plottable(c.x, e1) || !plottable(c.y, n)) continue;
      const slice = (xs(e1) - xs(e0)) / k;
      const x0 = xs(e0) + i * slice;
      const y = ys(n);
      svg.add(`<rect x="${r1(x0)}" y="${r1(y)}" width="${r1(Math.max(1, slice - 0.5))}" height="${r1(Math.max(1, base - y))}" class="mark" fill="${color}"><title>${escapeXml(`${s.name}: ${formatExact(n)} in [${formatExact(e0)}, ${formatExact(e1)}) ${c.x.unit}`)}</title></rect>`);
    }
  }
  return finish(svg, top, c.title, c.caption);
}

/** The chart as an `<svg>` element (a string), with inline presentation attributes. */
export function renderChart(c: ChartSpec): string {
  switch (c.kind) {
    case 'line':
    case 'scatter':
      return xyChart(c);
    case 'bar':
      return barChart(c);
    case 'histogram':
      return histogram(c);
  }
}

/** CSS for the classes renderChart uses (the report inlines it once). */
export const CHART_CSS = `
svg.chart { font-family: system-ui, sans-serif; background: #fff; max-width: 100%; height: auto; }
svg.chart .title { font-size: 13px; font-weight: 600; fill: #222; }
svg.chart .legend, svg.chart .tick { font-size: 11px; fill: #333; }
svg.chart .axis-label { font-size: 12px; fill: #222; }
svg.chart .axis { stroke: #444; stroke-width: 1; }
svg.chart .grid { stroke: #e3e3e3; stroke-width: 1; }
svg.chart .band { stroke-width: 1.5; }
`;
