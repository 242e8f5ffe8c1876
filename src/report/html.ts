/**
 * report.html: one self-contained file (inline CSS and SVG, no scripts, no fonts, no network;
 * a Content-Security-Policy forbids loading anything). The environment first, then a summary
 * table, then a section per experiment: claim, verdict, charts, the tables behind them.
 */
import type { ExperimentResult, ResultsDocument } from '../suite/schema.js';
import type { AnyExperiment, Presentation, TableSpec } from '../suite/types.js';
import { describeRequirements } from '../suite/requirements.js';
import { CHART_CSS, escapeXml as esc, hasData, renderChart } from './chart.js';
import { formatBytes } from './format.js';
import { renderKernelSection, type KernelMatrix } from './kernels.js';

const CSS = `
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1040px; padding: 24px; color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.differs { color: #c2410c; font-weight: 600; }
section.experiment { border-top: 2px solid #ccc; padding-top: 14px; margin-top: 26px; }
.claim { font-style: italic; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
.confirmed { background: #1a7f37; } .refuted { background: #c2410c; } .not-measurable { background: #6b7280; }
.verdict { font-size: 15px; margin: 8px 0; }
.notes { color: #8a5a00; font-size: 13px; }
.muted { color: #666; font-size: 13px; }
.banner { background: #fff4e5; border: 1px solid #f0b35a; padding: 8px 12px; margin: 12px 0; }
/* One chart per row (up to 760 px): two side by side would shrink their text below 9 px. */
.charts { display: grid; grid-template-columns: minmax(0, 1fr); gap: 16px; }
${CHART_CSS}`;

export function badge(v: string): string {
  return `<span class="badge ${esc(v)}">${esc(v.replace('-', ' '))}</span>`;
}

/** The longest cell right-aligned as a figure: "2.53 µs (2.42 µs–2.55 µs) noisy" is 31. */
const FIGURE_MAX_CHARS = 40;

export function htmlTable(t: TableSpec): string {
  // Figures (cells that start with a number) are right-aligned; a measurement that differs
  // from its prediction (predictionTable's DIFFERS) stands out.
  // A sentence that happens to start with a number ("95 % CI of b/a ... is not wholly beyond")
  // is prose, and reads left-aligned: a figure is short.
  const numeric = (s: string) => /^[-+≈]?\d/.test(s.trim()) && s.length <= FIGURE_MAX_CHARS;
  const cls = (s: string) => (s === 'DIFFERS' ? ' class="differs"' : numeric(s) ? ' class="num"' : '');
  const head = t.head.map((h) => `<th>${esc(h)}</th>`).join('');
  const rows = t.rows
    .map((r) => `<tr>${r.map((c) => `<td${cls(c)}>${esc(c)}</td>`).join('')}</tr>`)
    .join('');
  const note = t.note ? `<p class="muted">${esc(t.note)}</p>` : '';
  return `<h3>${esc(t.title)}</h3><table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>${note}`;
}

export function environmentRows(d: ResultsDocument): [string, string][] {
  const e = d.environment;
  const p = e.privileges;
  return [
    ['kernel', `${e.kernel} (${e.arch})`],
    ['guest', e.guest ? `QEMU guest (${e.guest.kernel}), ${e.guest.accel.toUpperCase()}${e.guest.accel === 'tcg' ? ': an emulated CPU, times not meaningful' : ''}` : 'no (this machine)'],
    ['CPU', `${e.cpu.model}, ${e.cpu.count} CPUs`],
    ['hypervisor', e.hypervisor.present ? (e.hypervisor.vendor ?? 'yes (unknown vendor)') : 'none (bare metal)'],
    ['memory', `${formatBytes(e.memory.totalBytes)} total, ${formatBytes(e.memory.availableBytes)} available at start`],
    ['page size', `${e.pageSize} B${e.hugePageSize ? `, PMD huge page ${formatBytes(e.hugePageSize)}` : ''}`],
    ['THP', e.thp.enabled === null ? 'not available' : `enabled=${e.thp.enabled}, defrag=${e.thp.defrag}, huge zero page ${e.thp.useZeroPage ? 'on' : 'off'}`],
    ['KSM', e.ksmRun === null ? 'not available' : e.ksmRun === 1 ? 'running' : e.ksmRun === 0 ? 'off' : `run=${e.ksmRun}`],
    ['overcommit', e.overcommitMemory === null ? '-' : `vm.overcommit_memory=${e.overcommitMemory}, max_map_count ${e.maxMapCount ?? '-'}`],
    ['clocksource', e.clocksource ?? '-'],
    ['noise sources', [
      e.noise.damon.length ? `DAMON (${e.noise.damon.join('; ')})` : 'no DAMON',
      e.noise.freePageReporting === null ? 'no balloon' : e.noise.freePageReporting ? 'balloon free page reporting (fresh frames can be cold)' : 'balloon without free page reporting',
    ].join(', ')],
    ['privileges', `uid ${p.uid}${p.root ? ' (root)' : ''}; PFNs ${p.pfnVisible ? 'visible' : 'hidden'}; kpagecount ${p.kpagecount ? 'readable' : 'not readable'}`],
    ['software', `cowlab ${e.cowlab}, node ${e.node}`],
  ];
}

function experimentSection(r: ExperimentResult, exp: AnyExperiment | undefined, presentation: Presentation | null, presentError: string | null): string {
  const v = r.verdict;
  const parts: string[] = [];
  parts.push(`<section class="experiment" id="${esc(r.name)}">`);
  parts.push(`<h2>${r.number}. ${esc(r.title)} <span class="muted">(${esc(r.name)})</span></h2>`);
  parts.push(`<p class="claim">Claim: ${esc(r.claim)}</p>`);
  parts.push(`<p class="verdict">${badge(v.verdict)} <strong>${esc(v.figure)}</strong></p>`);
  parts.push(`<p>${esc(v.reason)}</p>`);
  parts.push(`<p class="muted">Verdict rule: ${esc(r.rule)}</p>`);
  if (r.notes.length) parts.push(`<ul class="notes">${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`);
  if (presentation) {
    const charts = presentation.charts.filter(hasData);
    if (charts.length) parts.push(`<div class="charts">${charts.map(renderChart).join('')}</div>`);
    for (const t of presentation.tables) parts.push(htmlTable(t));
  }
  if (presentError) parts.push(`<p class="notes">The measurements could not be presented: ${esc(presentError)}</p>`);
  const how = exp ? `What it measures: ${exp.measures} Needs: ${describeRequirements(exp.requirements)}.` : '';
  parts.push(`<p class="muted">${esc(how)} Status: ${esc(r.status)}; ${(r.durationMs / 1000).toFixed(1)} s of a ${(r.budgetMs / 1000).toFixed(0)} s budget.${r.error ? ` Error: ${esc(r.error.code)}: ${esc(r.error.message)}` : ''}</p>`);
  parts.push('</section>');
  return parts.join('\n');
}

/** The document head: the CSP that forbids loading anything, the inline CSS (`extraCss` after it). */
export function pageHead(title: string, extraCss = ''): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}${extraCss}</style></head><body>`;
}

/** `cowlab validate --report`: the kernels validated, the matrix and the disagreements. */
export function renderValidationReport(matrix: KernelMatrix, envs: readonly { label: string; env: ResultsDocument['environment'] }[]): string {
  const doc = (env: ResultsDocument['environment']) => ({ environment: env }) as ResultsDocument;
  const rows = environmentRows(doc(envs[0]!.env)).map(([k], i) => [k, ...envs.map((e) => environmentRows(doc(e.env))[i]![1])]);
  return [
    pageHead(`cowlab validate: ${envs.map((e) => e.label).join(', ')}`),
    `<h1>cowlab validate on ${envs.length === 1 ? 'one kernel' : `${envs.length} kernels`}</h1>`,
    '<p class="muted">Each trace ran in real processes on each kernel (the reference) and through the simulator with that kernel\'s profile; page states, copies, reuses, zero fills and frames must match exactly, faults within 2 + 1 % per step.</p>',
    '<h3>Environments</h3>',
    `<table><thead><tr><th></th>${envs.map((e) => `<th>${esc(e.label)}</th>`).join('')}</tr></thead><tbody>${rows
      .map((r) => `<tr><th>${esc(r[0]!)}</th>${r.slice(1).map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
      .join('')}</tbody></table>`,
    renderKernelSection(matrix, true),
    '</body></html>\n',
  ].join('\n');
}

/** An experiment's charts and tables from its raw (null when it has none, or present() threw). */
export function presentResult(r: ExperimentResult, exp: AnyExperiment | undefined): { presentation: Presentation | null; presentError: string | null } {
  if (!exp || r.raw === null || r.raw === undefined) return { presentation: null, presentError: null };
  try {
    return { presentation: exp.present(r.raw), presentError: null };
  } catch (err) {
    return { presentation: null, presentError: (err as Error).message };
  }
}

/** The report for a results document; `experiments` supplies present() for each one's raw. */
export function renderReport(d: ResultsDocument, experiments: readonly AnyExperiment[]): string {
  const when = new Date(d.startedAt);
  const head = pageHead(`cowlab report: ${d.environment.kernel}`);
  const intro = [
    `<h1>cowlab: copy-on-write on ${esc(d.environment.kernel)}</h1>`,
    `<p class="muted">Run ${esc(when.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}, ${d.options.quick ? 'quick suite' : 'full suite'}, ${(d.durationMs / 1000).toFixed(1)} s. Figures follow the measuring rules: warm-up runs reported apart as cold, medians over repeats with min-max bands, a band wider than 2x treated as noise.</p>`,
    d.interrupted ? '<p class="banner">This run was interrupted (Ctrl-C): the results below are what was collected before it stopped.</p>' : '',
    '<h3>Environment</h3>',
    `<table>${environmentRows(d).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>`,
    '<h3>Summary</h3>',
    `<table><thead><tr><th>#</th><th>experiment</th><th>claim</th><th>measured</th><th>verdict</th></tr></thead><tbody>${d.experiments
      .map((r) => `<tr><td>${r.number}</td><td><a href="#${esc(r.name)}">${esc(r.name)}</a></td><td>${esc(r.short)}</td><td>${esc(r.verdict.figure)}</td><td>${badge(r.verdict.verdict)}${r.verdict.verdict === 'not-measurable' ? ` <span class="muted">${esc(r.verdict.reason)}</span>` : ''}</td></tr>`)
      .join('')}</tbody></table>`,
  ].join('\n');
  const sections = d.experiments.map((r) => {
    const exp = experiments.find((e) => e.name === r.name);
    const { presentation, presentError } = presentResult(r, exp);
    return experimentSection(r, exp, presentation, presentError);
  });
  return `${head}\n${intro}\n${sections.join('\n')}\n</body></html>\n`;
}
