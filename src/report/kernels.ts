/**
 * The kernel matrix in the HTML report: for several kernels, the built-in scenarios' validation
 * (scenarios down, kernels across, the profile each was modelled with), what the real kernels
 * disagree on (each difference with the profile switch that reproduces it), and, for a suite
 * run, every experiment's verdict per kernel. Built from `validate` results or from the
 * model-validation experiment of each kernel's results document.
 */
import { observationsFromJson } from '../engines/observations.js';
import { resolveSimOptions, type ResolvedSimOptions, type SimOptions } from '../engines/sim/options.js';
import type { TraceObservations } from '../engines/types.js';
import type { ResultsDocument } from '../suite/schema.js';
import { describeExplanation, kernelDisagreements, type Disagreement } from '../validate/disagreements.js';
import { escapeXml as esc } from './chart.js';
import { stepLabel } from './observationsTable.js';

export interface KernelColumn {
  label: string;
  release: string;
  /** "TCG", "KVM", or null on the host. */
  accel: string | null;
  profile: string;
}

export interface KernelMatrix {
  kernels: KernelColumn[];
  /** Per trace, one cell per kernel: matched, a mismatch (with its step), not measurable. */
  traces: { name: string; cells: string[] }[];
  disagreements: Disagreement[];
  /** Step labels by trace ("write 0..512"), for the disagreement table. */
  stepName: (trace: string, step: number) => string;
  /** Suite runs: each experiment's verdict per kernel. */
  verdicts?: { name: string; cells: string[] }[];
}

/** The model-validation raw fields the matrix reads (experiments/model-validation.ts). */
interface ValidationRaw {
  profile?: { name: string; options: Record<string, unknown> };
  scenarios: {
    name: string;
    status: string;
    comparisons: { engine: string; matched: boolean; firstMismatch: string | null }[];
    kernel?: unknown;
  }[];
}

function cellOf(s: ValidationRaw['scenarios'][number] | undefined): string {
  if (!s) return '-';
  if (s.status === 'matched') return 'matched';
  if (s.status === 'not-measurable') return 'not measurable';
  const bad = s.comparisons.find((c) => !c.matched);
  return `✗ ${bad?.firstMismatch?.split(':')[0] ?? 'mismatch'}`;
}

/** The matrix of a suite run on several kernels (one results document per kernel). */
export function matrixFromResults(runs: readonly { label: string; doc: ResultsDocument }[]): KernelMatrix {
  const raws = runs.map((r) => (r.doc.experiments.find((e) => e.name === 'model-validation')?.raw ?? null) as ValidationRaw | null);
  const names = [...new Set(raws.flatMap((r) => r?.scenarios.map((s) => s.name) ?? []))];
  const traces = names.map((name) => ({ name, cells: raws.map((r) => (r ? cellOf(r.scenarios.find((s) => s.name === name)) : 'not run')) }));
  const observed = raws.map((r) => {
    const m = new Map<string, TraceObservations>();
    for (const s of r?.scenarios ?? []) {
      if (s.kernel) m.set(s.name, observationsFromJson(s.kernel as Parameters<typeof observationsFromJson>[0]));
    }
    return m;
  });
  const complete = raws.every((r) => r?.profile !== undefined);
  const disagreements = complete
    ? kernelDisagreements(runs.map((r, k) => ({ label: r.label, sim: resolveSimOptions(raws[k]!.profile!.options as SimOptions) as ResolvedSimOptions, observations: observed[k]! })))
    : [];
  const anyTrace = (trace: string) => observed.find((m) => m.has(trace))?.get(trace)?.trace;
  const verdictNames = [...new Set(runs.flatMap((r) => r.doc.experiments.map((e) => e.name)))];
  return {
    kernels: runs.map((r, k) => ({
      label: r.label,
      release: r.doc.environment.kernel,
      accel: r.doc.environment.guest ? r.doc.environment.guest.accel.toUpperCase() : null,
      profile: raws[k]?.profile?.name ?? '-',
    })),
    traces,
    disagreements,
    stepName: (trace, step) => {
      const t = anyTrace(trace);
      return t ? stepLabel(t, { step }) : String(step);
    },
    verdicts: verdictNames.map((name) => ({
      name,
      cells: runs.map((r) => r.doc.experiments.find((e) => e.name === name)?.verdict.verdict ?? '-'),
    })),
  };
}

function th(text: string): string {
  return `<th>${esc(text)}</th>`;
}

/** The HTML section (empty for one kernel unless `always`: there is nothing to put side by side). */
export function renderKernelSection(m: KernelMatrix, always = false): string {
  if (m.kernels.length < 2 && !always) return '';
  const heads = m.kernels.map((k) => `<th>${esc(k.label)}<br><span class="muted">${esc(k.release)}${k.accel ? `, ${esc(k.accel)}` : ''}</span></th>`).join('');
  const parts: string[] = ['<section class="experiment" id="kernels">', '<h2>Kernels side by side</h2>'];
  if (m.verdicts?.length) {
    parts.push('<h3>Every experiment on every kernel</h3>');
    parts.push(`<table><thead><tr>${th('experiment')}${heads}</tr></thead><tbody>${m.verdicts
      .map((v) => `<tr><td>${esc(v.name)}</td>${v.cells.map((c) => `<td><span class="badge ${esc(c)}">${esc(c.replace('-', ' '))}</span></td>`).join('')}</tr>`)
      .join('')}</tbody></table>`);
    if (m.kernels.some((k) => k.accel === 'TCG')) {
      parts.push('<p class="muted">Under TCG the guest CPU is emulated: experiments whose verdict rests on measured time are not measurable there; every page-state verdict stands.</p>');
    }
  }
  // The scenarios come from model-validation (or validate): a run without it has none, and
  // an empty table with a "-" profile would only look like a failure.
  if (m.traces.length === 0 && !always) {
    parts.push('<p class="muted">No built-in scenarios in these runs (they come with <code>model-validation</code>, or <code>cowlab validate --kernel</code>).</p>', '</section>');
    return parts.join('\n');
  }
  parts.push('<h3>The built-in scenarios, validated on each kernel</h3>');
  parts.push(`<table><thead><tr>${th('scenario')}${heads}</tr></thead><tbody>${m.traces
    .map((t) => `<tr><td>${esc(t.name)}</td>${t.cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}<tr><th>profile</th>${m.kernels.map((k) => `<th>${esc(k.profile)}</th>`).join('')}</tr></tbody></table>`);
  parts.push('<h3>What the kernels themselves disagree on</h3>');
  if (m.disagreements.length === 0) {
    parts.push('<p>The kernels showed the same observations at every step of every scenario.</p>');
  } else {
    parts.push('<p class="muted">Observations of the real kernels that differ, per scenario and step, and the profile switch whose change reproduces each difference in the simulator (values per kernel, in column order).</p>');
    parts.push(`<table><thead><tr>${th('scenario')}${th('step')}${th('observation')}${m.kernels.map((k) => th(k.label)).join('')}${th('explained by')}</tr></thead><tbody>${m.disagreements
      .map(
        (d) =>
          `<tr><td>${esc(d.trace)}</td><td>${esc(d.step < 0 ? 'setup' : `${d.step} ${m.stepName(d.trace, d.step)} by ${d.proc}`)}</td><td>${esc(`${d.field}@${d.where}`)}</td>${d.values
            .map((v) => `<td class="num">${esc(v ?? '-')}</td>`)
            .join('')}<td>${esc(describeExplanation(d))}</td></tr>`,
      )
      .join('')}</tbody></table>`);
  }
  parts.push('</section>');
  return parts.join('\n');
}
