/**
 * validate's results for other tools: TAP version 13 (`validate --tap`, the kernel selftests'
 * convention: one test per trace and kernel, `ok N - kernel/trace`, a trace the kernel cannot
 * run is `ok ... # SKIP why`, a mismatch is `not ok` with a YAML diagnostic block), and CSV and
 * markdown (--export-csv, --export-markdown: one row per trace, kernel and engine compared).
 */
import type { TraceObservations } from '../engines/types.js';
import { markdownTable, markdownText, toCsv, type Cell } from '../report/export.js';
import type { TraceComparison } from './compare.js';
import { describeMismatch } from './report.js';
import type { TraceValidation } from './validate.js';

/** What the exports need of one kernel's run (a KernelValidation, or a test's stand-in). */
export interface KernelResults {
  label: string;
  release: string;
  results: TraceValidation[];
}

function observationsOf(v: TraceValidation, engine: string): TraceObservations | null {
  return v.engines.find((e) => e.engine === engine)?.observations ?? null;
}

function mismatchText(v: TraceValidation, c: TraceComparison): string {
  const obs = observationsOf(v, c.observed);
  return (obs && describeMismatch(c, obs)) ?? `${c.predicted} and ${c.observed} differ`;
}

/** A TAP description: no '#' (it starts a directive) and no line break. */
function tapText(s: string): string {
  return s.replace(/\r?\n|\r/g, ' ').replace(/\\/g, '\\\\').replace(/#/g, '\\#');
}

/** A YAML scalar: JSON strings and numbers are valid YAML flow scalars. */
const y = (v: unknown) => JSON.stringify(v ?? null);

function diagnostics(k: KernelResults, v: TraceValidation): string[] {
  const failed = v.comparisons.filter((c) => !c.matched);
  const lines = [
    '  ---',
    `  message: ${y(failed.map((c) => `${c.predicted} vs ${c.observed}: ${mismatchText(v, c)}`).join('; '))}`,
    '  severity: fail',
    `  kernel: ${y(k.label)}`,
    `  release: ${y(k.release)}`,
    `  trace: ${y(v.trace)}`,
    `  reference: ${y(v.reference)}`,
    '  comparisons:',
  ];
  for (const c of v.comparisons) {
    const first = c.firstMismatch === null ? null : c.steps[c.firstMismatch]!;
    lines.push(`    - predicted: ${y(c.predicted)}`);
    lines.push(`      observed: ${y(c.observed)}`);
    lines.push(`      matched: ${c.matched}`);
    lines.push(`      steps: ${y(`${c.steps.filter((s) => s.matched).length}/${c.steps.length}`)}`);
    if (first) {
      lines.push(`      firstMismatchStep: ${first.step < 0 ? y('setup') : first.step}`);
      lines.push(`      mismatch: ${y(mismatchText(v, c))}`);
    }
  }
  lines.push('  ...');
  return lines;
}

/** The TAP 13 document: the plan first, one test per trace and kernel, in run order. */
export function validationTap(kernels: readonly KernelResults[]): string {
  const tests = kernels.flatMap((k) => k.results.map((v) => ({ k, v })));
  const out = ['TAP version 13', `1..${tests.length}`];
  tests.forEach(({ k, v }, i) => {
    const name = `${i + 1} - ${tapText(`${k.label}/${v.trace}`)}`;
    if (v.status === 'matched') out.push(`ok ${name}`);
    else if (v.status === 'not-measurable') out.push(`ok ${name} # SKIP ${tapText(v.reason ?? 'not measurable here')}`);
    else out.push(`not ok ${name}`, ...diagnostics(k, v));
  });
  return `${out.join('\n')}\n`;
}

export const VALIDATION_CSV_HEAD = [
  'kernel', 'release', 'trace', 'status', 'predicted', 'observed', 'steps_matched', 'steps',
  'first_mismatch_step', 'mismatch', 'write_predicted_ns', 'write_observed_ns', 'write_rel_error', 'reason',
] as const;

function rowsOf(k: KernelResults): Cell[][] {
  return k.results.flatMap((v): Cell[][] => {
    if (v.comparisons.length === 0) return [[k.label, k.release, v.trace, v.status, null, v.reference, null, null, null, null, null, null, null, v.reason]];
    return v.comparisons.map((c) => {
      const first = c.firstMismatch === null ? null : c.steps[c.firstMismatch]!;
      return [
        k.label, k.release, v.trace, v.status, c.predicted, c.observed,
        c.steps.filter((s) => s.matched).length, c.steps.length,
        first === null ? null : first.step < 0 ? 'setup' : first.step,
        c.matched ? null : mismatchText(v, c),
        c.writeTime.predictedNs, c.writeTime.observedNs, c.writeTime.relError, v.reason,
      ];
    });
  });
}

/** One row per trace, kernel and engine compared with the reference (a trace not run: one row). */
export function validationCsv(kernels: readonly KernelResults[]): string {
  return toCsv(VALIDATION_CSV_HEAD, kernels.flatMap(rowsOf));
}

/** A summary line, then one table row per trace and kernel. */
export function validationMarkdown(kernels: readonly KernelResults[]): string {
  const all = kernels.flatMap((k) => k.results);
  const n = (s: TraceValidation['status']) => all.filter((v) => v.status === s).length;
  const rows = kernels.flatMap((k) =>
    k.results.map((v) => {
      const failed = v.comparisons.filter((c) => !c.matched);
      const steps = v.comparisons.map((c) => `${c.steps.filter((s) => s.matched).length}/${c.steps.length}`).join(', ');
      const note = v.status === 'mismatch' ? failed.map((c) => `${c.predicted}: ${mismatchText(v, c)}`).join('; ') : v.status === 'not-measurable' ? (v.reason ?? '') : '';
      return [k.label, v.trace, v.status === 'not-measurable' ? 'not measurable' : v.status, steps || '-', markdownText(note)];
    }),
  );
  return [
    '# cowlab validate',
    '',
    `${kernels.length === 1 ? `Kernel ${kernels[0]!.label} (${kernels[0]!.release})` : `${kernels.length} kernels: ${kernels.map((k) => `${k.label} (${k.release})`).join(', ')}`}: ` +
      `${n('matched')} matched, ${n('mismatch')} mismatched, ${n('not-measurable')} not measurable.`,
    '',
    markdownTable(['kernel', 'trace', 'status', 'steps matched', 'first mismatch, or why not measurable'], rows, ['left', 'left', 'left', 'right', 'left']),
    '',
  ].join('\n');
}
