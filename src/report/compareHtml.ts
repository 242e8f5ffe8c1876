/**
 * `cowlab compare --html`: two or more runs (two hosts, before and after a change, or the
 * kernels of one `run --kernel a,b,...`) in one self-contained, script-free page. Per
 * experiment: each run's verdict, its charts paired with the others' on the same axes (a
 * difference in height is a difference in the data, not in scaling), and with two runs the
 * metric table of `compare` and a chart of its ratios with their confidence intervals.
 */
import type { Comparison, ExperimentComparison, MetricComparison } from '../suite/compare.js';
import { formatInterval, formatSampleCounts, OUTCOME_WORDS } from '../suite/export.js';
import { formatBand, formatMetricValue } from '../suite/present.js';
import type { ResultsDocument } from '../suite/schema.js';
import type { AnyExperiment } from '../suite/types.js';
import { hasData, renderChart, escapeXml as esc, type Axis, type ChartSpec } from './chart.js';
import { formatRatio } from './format.js';
import { badge, environmentRows, htmlTable, pageHead, presentResult } from './html.js';
import { matrixFromResults, renderKernelSection } from './kernels.js';

export interface LabelledRun {
  /** "a", "b", or a kernel's directory name ("host", "debian-6.12"). */
  label: string;
  /** Where the results were read from (shown, not linked: the page loads nothing). */
  file: string;
  doc: ResultsDocument;
  /** The run's own report.html, relative to this page (a matrix run links each kernel's). */
  report?: string;
}

// Paired charts need room side by side: the page is wider than a single report.
const COMPARE_CSS = `
body { max-width: 1560px; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 520px), 1fr)); gap: 16px; margin: 10px 0 18px; }
.pair > figure { margin: 0; }
.pair figcaption { font-size: 13px; font-weight: 600; margin-bottom: 2px; }
tr.differs th, tr.differs td { background: #fff4e5; }
`;

/**
 * The axis spanning `values` (every chart of a pair). A linear y axis keeps its zero (the
 * charts' default when no minimum is given); an x axis starts at the data, as xyChart does.
 */
function extentOver(values: number[], a: Axis, axis: 'x' | 'y'): Axis {
  const usable = values.filter((v) => Number.isFinite(v) && (a.scale !== 'log' || v > 0));
  if (usable.length === 0) return a;
  const floor = a.min ?? (a.scale !== 'log' && axis === 'y' ? 0 : Infinity);
  return { ...a, min: Math.min(floor, ...usable), max: Math.max(a.max ?? -Infinity, ...usable) };
}

function yValues(c: ChartSpec): number[] {
  if (c.kind === 'bar') return c.series.flatMap((s) => [...s.values, ...(s.lo ?? []), ...(s.hi ?? [])]).filter((v): v is number => v !== null);
  if (c.kind === 'cdf') return [];
  return c.series.flatMap((s) => s.points.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]));
}

function xValues(c: ChartSpec): number[] {
  if (c.kind === 'bar') return [];
  if (c.kind === 'cdf') return c.series.flatMap((s) => s.points.map((p) => p.x));
  return c.series.flatMap((s) => s.points.map((p) => p.x));
}

/** The same chart of each run, given one x and one y extent (where the chart kinds agree). */
export function shareAxes(charts: ChartSpec[]): ChartSpec[] {
  const kinds = new Set(charts.map((c) => c.kind));
  if (kinds.size !== 1) return charts;
  const ys = charts.flatMap(yValues);
  const xs = charts.flatMap(xValues);
  return charts.map((c) => {
    switch (c.kind) {
      case 'bar':
        return { ...c, y: extentOver(ys, c.y, 'y') };
      case 'cdf':
        return { ...c, x: extentOver(xs, c.x, 'x') };
      default:
        return { ...c, x: extentOver(xs, c.x, 'x'), y: extentOver(ys, c.y, 'y') };
    }
  });
}

function chartsOf(run: LabelledRun, name: string, experiments: readonly AnyExperiment[]): { charts: ChartSpec[]; error: string | null } {
  const r = run.doc.experiments.find((e) => e.name === name);
  if (!r) return { charts: [], error: null };
  const { presentation, presentError } = presentResult(r, experiments.find((e) => e.name === name));
  return { charts: (presentation?.charts ?? []).filter(hasData), error: presentError };
}

/** Each chart position of the experiment, one figure per run that has it, on shared axes. */
function pairedCharts(runs: readonly LabelledRun[], name: string, experiments: readonly AnyExperiment[]): string {
  const per = runs.map((r) => chartsOf(r, name, experiments));
  const parts: string[] = [];
  for (const [k, p] of per.entries()) if (p.error) parts.push(`<p class="notes">${esc(runs[k]!.label)}: the measurements could not be presented: ${esc(p.error)}</p>`);
  const positions = Math.max(0, ...per.map((p) => p.charts.length));
  for (let i = 0; i < positions; i++) {
    const present = per.map((p, k) => ({ run: runs[k]!, chart: p.charts[i] })).filter((x): x is { run: LabelledRun; chart: ChartSpec } => x.chart !== undefined);
    const shared = shareAxes(present.map((x) => x.chart));
    parts.push(`<div class="pair">${present.map((x, k) => `<figure><figcaption>${esc(x.run.label)}</figcaption>${renderChart(shared[k]!)}</figure>`).join('')}</div>`);
  }
  return parts.join('\n');
}

function metricCell(m: MetricComparison, side: 'a' | 'b'): string {
  const b = m[side];
  return b === null ? '-' : formatBand(b, formatMetricValue(m.unit));
}

/** The ratios b / a of the metrics that have one, with their bootstrap intervals as whiskers. */
function ratioChart(e: ExperimentComparison, level: number): ChartSpec | null {
  const ms = e.metrics.filter((m) => m.ratio !== null && m.outcome !== 'not-comparable');
  if (ms.length < 2) return null; // one ratio: the table says it; a single full-width bar says nothing more
  return {
    kind: 'bar',
    title: `${e.name}: b / a per headline metric (1 is no change; whiskers: the ${Math.round(level * 100)} % interval where a test was made)`,
    categories: ms.map((m) => m.label),
    y: { label: 'b / a', unit: 'ratio of medians' },
    series: [{ name: 'b / a', values: ms.map((m) => m.ratio), lo: ms.map((m) => m.interval?.low ?? null), hi: ms.map((m) => m.interval?.high ?? null) }],
  };
}

function metricsBlock(e: ExperimentComparison, c: Comparison): string {
  if (e.metrics.length === 0) return '';
  const table = htmlTable({
    title: 'Headline metrics',
    head: ['metric', 'a', 'b', 'b/a', `${Math.round(c.test.level * 100)} % CI`, 'n a / b', 'judged', 'why'],
    rows: e.metrics.map((m) => [m.label, metricCell(m, 'a'), metricCell(m, 'b'), formatRatio(m.ratio), formatInterval(m), formatSampleCounts(m), m.different ? 'DIFFERS' : OUTCOME_WORDS[m.outcome], m.why]),
  });
  const chart = ratioChart(e, c.test.level);
  return table + (chart ? `<div class="pair">${renderChart(chart)}</div>` : '');
}

function verdictRow(runs: readonly LabelledRun[], name: string): string {
  return runs
    .map((r) => {
      const x = r.doc.experiments.find((e) => e.name === name);
      return x ? `<p class="verdict"><strong>${esc(r.label)}</strong> ${badge(x.verdict.verdict)} ${esc(x.verdict.figure)}</p>` : `<p class="verdict"><strong>${esc(r.label)}</strong> <span class="muted">not in this run</span></p>`;
    })
    .join('\n');
}

function experimentSection(runs: readonly LabelledRun[], name: string, experiments: readonly AnyExperiment[], c: Comparison | null): string {
  const any = runs.map((r) => r.doc.experiments.find((e) => e.name === name)).find((x) => x !== undefined)!;
  const ec = c?.experiments.find((e) => e.name === name);
  return [
    `<section class="experiment" id="${esc(name)}">`,
    `<h2>${any.number}. ${esc(any.title)} <span class="muted">(${esc(name)})</span>${ec?.verdictChanged ? ' <span class="badge refuted">verdict changed</span>' : ''}</h2>`,
    `<p class="claim">Claim: ${esc(any.claim)}</p>`,
    verdictRow(runs, name),
    ec && c ? metricsBlock(ec, c) : '',
    pairedCharts(runs, name, experiments),
    '</section>',
  ].join('\n');
}

function runsTable(runs: readonly LabelledRun[]): string {
  const rows = runs.map((r) => `<tr><th>${r.report ? `<a href="${esc(r.report)}">${esc(r.label)}</a>` : esc(r.label)}</th><td>${esc(r.file)}</td><td>${esc(r.doc.environment.kernel)}${r.doc.environment.guest ? ` (QEMU guest, ${esc(r.doc.environment.guest.accel.toUpperCase())})` : ''}</td><td>${r.doc.options.quick ? 'quick' : 'full'}</td><td>${esc(r.doc.startedAt)}</td><td class="num">${(r.doc.durationMs / 1000).toFixed(1)} s</td></tr>`);
  return `<table><thead><tr><th></th><th>results</th><th>kernel</th><th>suite</th><th>started</th><th>took</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function environmentTable(runs: readonly LabelledRun[]): string {
  const per = runs.map((r) => environmentRows(r.doc));
  const rows = per[0]!.map(([k], i) => {
    const cells = per.map((p) => p[i]![1]);
    const differs = new Set(cells).size > 1;
    return `<tr${differs ? ' class="differs"' : ''}><th>${esc(k)}</th>${cells.map((v) => `<td>${esc(v)}</td>`).join('')}</tr>`;
  });
  return `<table><thead><tr><th></th>${runs.map((r) => `<th>${esc(r.label)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function summaryTable(runs: readonly LabelledRun[], names: string[], c: Comparison | null): string {
  const head = `<tr><th>experiment</th>${runs.map((r) => `<th>${esc(r.label)}</th>`).join('')}${c ? '<th>metrics different</th>' : ''}</tr>`;
  const rows = names.map((name) => {
    const cells = runs.map((r) => {
      const v = r.doc.experiments.find((e) => e.name === name)?.verdict.verdict;
      return `<td>${v ? badge(v) : '-'}</td>`;
    });
    const ec = c?.experiments.find((e) => e.name === name);
    const diff = ec ? `<td class="num">${ec.metrics.filter((m) => m.different).length} of ${ec.metrics.length}</td>` : '';
    return `<tr><td><a href="#${esc(name)}">${esc(name)}</a></td>${cells.join('')}${diff}</tr>`;
  });
  return `<table><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

/**
 * The comparison page. `comparison` is compareResults(a, b) when two runs are compared (its
 * metric tables and ratios are shown), null for verdicts and charts only: more than two runs,
 * or the kernels of one `run --kernel` (where an emulated guest's times are not comparable).
 */
export function renderComparisonReport(runs: readonly LabelledRun[], comparison: Comparison | null, experiments: readonly AnyExperiment[]): string {
  const names = [...new Set(runs.flatMap((r) => r.doc.experiments.map((e) => e.name)))];
  const kernels = new Set(runs.map((r) => r.doc.environment.kernel));
  const c = comparison;
  const intro = [
    pageHead(`cowlab compare: ${runs.map((r) => r.label).join(', ')}`, COMPARE_CSS),
    `<h1>cowlab compare: ${runs.map((r) => esc(r.label)).join(' / ')}</h1>`,
    runsTable(runs),
    c
      ? `<p>${c.flagged} metric${c.flagged === 1 ? '' : 's'} different, ${c.notEnoughSamples} with not enough samples to judge; ${c.verdictsChanged} verdict${c.verdictsChanged === 1 ? '' : 's'} changed.</p><p class="muted">Rule: ${esc(c.rule)}.</p>`
      : `<p class="muted">Verdicts and charts side by side; <code>cowlab compare</code> of two of these results files tests their metrics.${runs.some((r) => r.report) ? ' Each run\'s name links to its own report.' : ''}</p>`,
    '<p class="muted">Each experiment\'s charts are paired: the same chart of every run, on the same axes.</p>',
    '<h3>Environments</h3>',
    environmentTable(runs),
    '<h3>Summary</h3>',
    summaryTable(runs, names, c),
  ];
  // Several kernels (a matrix run, or two hosts on different kernels): the scenario matrix.
  const matrix = kernels.size > 1 ? renderKernelSection(matrixFromResults(runs.map((r) => ({ label: r.label, doc: r.doc })))) : '';
  const sections = names.map((n) => experimentSection(runs, n, experiments, c));
  return `${intro.join('\n')}\n${matrix}\n${sections.join('\n')}\n</body></html>\n`;
}
