/**
 * validate as text and as JSON. Text: one summary line per trace, then for each trace that
 * mismatched (or every trace, when asked) the step-by-step table with predicted and observed
 * values side by side and every difference marked with ✗.
 */
import { countRegion } from '../engines/observations.js';
import type { StepEvents, TraceObservations } from '../engines/types.js';
import { escapeControls, formatCount, formatNs } from '../report/format.js';
import { processNames, stepLabel } from '../report/observationsTable.js';
import { table } from '../report/table.js';
import type { FieldDiff, StepComparison, TraceComparison } from './compare.js';
import { describeExplanation, type Disagreement } from './disagreements.js';
import type { TraceValidation } from './validate.js';

export const MARK = '✗';

function pct(x: number | null): string {
  return x === null ? '-' : `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
}

/** "step 3 (write c1 0..512): copies sim=512 kernel=0; exclusive@c1 ..." */
export function describeMismatch(c: TraceComparison, obs: TraceObservations): string | null {
  if (c.firstMismatch === null) return null;
  const s = c.steps[c.firstMismatch]!;
  const where = s.step < 0 ? 'setup' : `step ${s.step} (${stepLabel(obs.trace, s)} by ${s.proc})`;
  const diffs = s.diffs.slice(0, 3).map((d) => diffText(d, c)).join('; ');
  return `${where}: ${diffs}${s.diffs.length > 3 ? `; +${s.diffs.length - 3} more` : ''}`;
}

export function diffText(d: FieldDiff, c: Pick<TraceComparison, 'predicted' | 'observed'>): string {
  const at = [d.proc, d.region].filter(Boolean).join('/');
  const pages = d.pages && d.pages.length > 0 ? ` (pages ${d.pages.join(', ')}${d.pages.length >= 8 ? ', ...' : ''})` : '';
  const note = d.note ? ` [${d.note}]` : '';
  return `${d.field}${at ? `@${at}` : ''} ${c.predicted}=${d.predicted ?? 'n/a'} ${c.observed}=${d.observed ?? 'n/a'}${pages}${note}`;
}

/** One line per trace: status, steps, first mismatch, write time error. */
export function summaryTable(results: TraceValidation[], observed: Map<string, TraceObservations>, opts: { emulated?: boolean } = {}): string {
  const rows = results.flatMap((v) => {
    if (v.comparisons.length === 0) {
      return [[v.trace, v.status === 'not-measurable' ? 'not measurable' : v.status, '-', '-', v.reason ?? notApplicable(v)]];
    }
    return v.comparisons.map((c) => {
      const matched = c.steps.filter((s) => s.matched).length;
      const obs = observed.get(v.trace)!;
      return [
        v.comparisons.length > 1 ? `${v.trace} (${c.predicted})` : v.trace,
        c.matched ? 'matched' : `${MARK} MISMATCH`,
        `${matched}/${c.steps.length}`,
        opts.emulated ? 'n/a (emulated CPU)' : c.writeTime.relError === null ? '-' : `${formatNs(c.writeTime.predictedNs)} / ${formatNs(c.writeTime.observedNs)} (${pct(c.writeTime.relError)})`,
        describeMismatch(c, obs) ?? (c.outcomes ? `judged against ${c.outcomes.count} outcomes (see below)` : notApplicable(v)),
      ];
    });
  });
  return table(['trace', 'status', 'steps', 'write time: engine / reference', 'first mismatch, or note'], rows, ['left', 'left', 'right', 'right', 'left']);
}

function notApplicable(v: TraceValidation): string {
  const na = v.engines.filter((e) => e.notApplicable !== null && e.engine !== v.reference);
  return na.map((e) => `${e.engine} not applicable: ${e.notApplicable}`).join('; ') || '-';
}

function eventCell(p: StepEvents, o: StepEvents, f: keyof StepEvents, diffs: FieldDiff[], region: string): string {
  const bad = diffs.some((d) => d.field === f && d.region === region);
  const a = p[f] ?? null;
  const b = o[f] ?? null;
  return a === b ? formatCount(b) : `${formatCount(a)}/${formatCount(b)}${bad ? ` ${MARK}` : ''}`;
}

/** The step-by-step table of one comparison: predicted/observed where they differ. */
export function stepTable(c: TraceComparison, predicted: TraceObservations, observed: TraceObservations): string {
  const trace = observed.trace;
  const procs = processNames(trace);
  const swaps = trace.steps.some((st) => st.op === 'pageout');
  const head = ['step', 'op', 'proc', 'region', 'copies', 'reuses', 'zeroFills', ...(swaps ? ['swapIns'] : []), 'faults', 'frames', `time ${c.predicted} / ${c.observed}`, ...procs];
  const rows: string[][] = [];
  c.steps.forEach((s: StepComparison, i) => {
    const ps = predicted.steps[i]!;
    const os = observed.steps[i]!;
    trace.regions.forEach((r, k) => {
      const pe = ps.events[r.id]!;
      const oe = os.events[r.id]!;
      const pf = ps.frames[r.id] ?? null;
      const of = os.frames[r.id] ?? null;
      const framesBad = s.diffs.some((d) => d.field === 'frames' && d.region === r.id);
      rows.push([
        k === 0 ? (s.step < 0 ? 'setup' : String(s.step)) : '',
        k === 0 ? stepLabel(trace, s) : '',
        k === 0 ? s.proc : '',
        r.id,
        eventCell(pe, oe, 'copies', s.diffs, r.id),
        eventCell(pe, oe, 'reuses', s.diffs, r.id),
        eventCell(pe, oe, 'zeroFills', s.diffs, r.id),
        ...(swaps ? [eventCell(pe, oe, 'swapIns', s.diffs, r.id)] : []),
        eventCell(pe, oe, 'faults', s.diffs, r.id),
        pf === of ? formatCount(of) : `${formatCount(pf)}/${formatCount(of)}${framesBad ? ` ${MARK}` : ''}`,
        k === 0 ? `${formatNs(s.time.predictedNs)} / ${formatNs(s.time.observedNs)}` : '',
        ...procs.map((p) => {
          const pr = ps.processes[p]?.[r.id];
          const or = os.processes[p]?.[r.id];
          if (!pr && !or) return '-';
          const text = (x: typeof pr) => {
            if (!x) return 'gone';
            const n = countRegion(x);
            const swapped = n.swapped === undefined ? '' : ` +${n.swapped ?? '?'}sw`;
            return `${n.present}/${n.shared ?? '?'}/${n.exclusive ?? '?'}/${n.zeroPage ?? '?'}${swapped}`;
          };
          const bad = s.diffs.some((d) => d.proc === p && (d.region === r.id || d.field === 'processes'));
          return bad ? `${text(pr)} ${MARK} ${text(or)}` : text(or);
        }),
      ]);
    });
  });
  const align = head.map((_, i) => (i >= 1 && i <= 3 ? 'left' : 'right') as 'left' | 'right');
  return table(head, rows, align);
}

export const LEGEND = [
  `Cells show the reference's value, or engine/reference where they differ (${MARK}: a mismatch).`,
  'Per process: present/shared/exclusive/zeroPage pages (+N sw: swapped out, in traces that page out).',
  'copies, reuses, zeroFills, swapIns, present, shared, exclusive, zeroPage, swapped and frames must match exactly; faults may exceed the prediction by 2 + 1 %',
  "(the measuring loop's own incidental faults).",
].join('\n');

/** What a set of outcomes means for one comparison, in a few lines (printed after the tables). */
export function describeOutcomes(trace: string, c: TraceComparison): string[] {
  const o = c.outcomes;
  if (!o) return [];
  const ranges = o.ranges.map((r) => `${r.step < 0 ? 'setup' : `step ${r.step}`} ${r.field}@${r.where} ${r.min}..${r.max}`);
  return [
    `${trace} (${c.predicted}): the prediction is a set of ${o.count} outcomes: ${o.why}.`,
    `  judged against a range: ${ranges.length ? ranges.join('; ') : 'none (every outcome shows the same)'}; every other observation exactly.`,
    `  ${c.matched ? 'matched' : 'closest'}: ${o.label}.`,
  ].map(escapeControls);
}

/** validate --json: every comparison with its step diffs (page arrays as counts). */
export function validationToJson(v: TraceValidation): Record<string, unknown> {
  return {
    trace: v.trace,
    description: v.description,
    status: v.status,
    reason: v.reason,
    reference: v.reference,
    engines: v.engines.map((e) => ({ engine: e.engine, notApplicable: e.notApplicable, wallNs: e.wallNs, unavailable: e.observations?.unavailable ?? null })),
    comparisons: v.comparisons.map((c) => ({
      predicted: c.predicted,
      observed: c.observed,
      matched: c.matched,
      firstMismatchStep: c.firstMismatch === null ? null : c.steps[c.firstMismatch]!.step,
      writeTime: c.writeTime,
      unavailable: c.unavailable,
      outcomes: c.outcomes ?? null,
      steps: c.steps.map((s) => ({
        step: s.step,
        op: s.op,
        proc: s.proc,
        matched: s.matched,
        diffs: s.diffs,
        events: s.events,
        frames: s.frames,
        counts: s.counts,
        time: s.time,
      })),
    })),
  };
}

/** One matrix cell: how a trace went on one kernel. */
export function matrixCell(v: TraceValidation | undefined): string {
  if (!v) return '-';
  if (v.status === 'not-measurable') return 'not measurable';
  if (v.status === 'matched') {
    const sets = v.comparisons.filter((c) => c.outcomes);
    return sets.length ? `matched (1 of ${sets[0]!.outcomes!.count} outcomes)` : 'matched';
  }
  const first = v.comparisons.find((c) => !c.matched);
  const s = first && first.firstMismatch !== null ? first.steps[first.firstMismatch]! : null;
  return `${MARK} ${s ? (s.step < 0 ? 'setup' : `step ${s.step}`) : 'mismatch'}${v.comparisons.length > 1 && first ? ` (${first.predicted})` : ''}`;
}

/** Traces down, kernels across; the profile each kernel was modelled with as the last row. */
export function matrixTable(labels: string[], traces: string[], cell: (trace: number, kernel: number) => string, profiles: string[]): string {
  const rows = traces.map((t, i) => [t, ...labels.map((_, k) => cell(i, k))]);
  rows.push(['(profile)', ...profiles]);
  return table(['trace', ...labels], rows, ['left', ...labels.map(() => 'left' as const)]);
}

/** What the kernels disagree on, with the switch that explains each difference. */
export function disagreementTable(labels: string[], ds: readonly Disagreement[], stepName: (trace: string, step: number) => string): string {
  const rows = ds.map((d) => [
    d.trace,
    d.step < 0 ? 'setup' : `${d.step} ${stepName(d.trace, d.step)} by ${d.proc}`,
    `${d.field}@${d.where}`,
    ...d.values.map((v) => v ?? '-'),
    describeExplanation(d),
  ]);
  return table(['trace', 'step', 'observation', ...labels, 'explained by'], rows, ['left', 'left', 'left', ...labels.map(() => 'right' as const), 'left']);
}
