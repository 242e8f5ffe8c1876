/**
 * The per-step table every engine's observations print as (simulate, run-trace): one row
 * per step and region with the acting process's events, frames, time, and per process
 * present/shared/exclusive/zeroPage counts.
 */
import { countRegion } from '../engines/observations.js';
import type { StepObservation, TraceObservations } from '../engines/types.js';
import { describeSelector } from '../trace/select.js';
import type { Step, Trace } from '../trace/types.js';
import { escapeControls, formatCount, formatNs, wrapText } from './format.js';
import { table } from './table.js';

/** "write 0..512", "fork -> c1", "mprotect r 0..8/2", "setup". */
export function stepLabel(trace: Trace, s: { step: number }): string {
  if (s.step < 0) return 'setup';
  const step: Step = trace.steps[s.step]!;
  switch (step.op) {
    case 'fork': return `fork -> ${step.child}`;
    case 'write':
    case 'read': return `${step.op} ${describeSelector(step.pages)}`;
    case 'mprotect': return `mprotect ${step.prot}${step.pages ? ` ${describeSelector(step.pages)}` : ''}`;
    case 'pageout': return `pageout${step.pages ? ` ${describeSelector(step.pages)}` : ''}`;
    default: return step.op;
  }
}

/** Every process the trace creates, in order of birth. */
export function processNames(trace: Trace): string[] {
  return ['p0', ...trace.steps.flatMap((s) => (s.op === 'fork' ? [s.child] : []))];
}

/**
 * Trace name, description (wrapped, indented two spaces) and regions, one line each, control
 * characters escaped: a name or description cannot move the cursor or start a line of its own.
 */
export function traceHeader(trace: Trace, title: string): string[] {
  const lines = [`${title}: ${trace.name}`, ...wrapText(trace.description ?? '', 96).map((l) => `  ${l}`)];
  for (const r of trace.regions) {
    const extras = [r.thp ? 'THP' : '', ...r.advice].filter(Boolean).join(', ');
    lines.push(`region ${r.id}: ${formatCount(r.pages)} pages, ${r.map} ${r.backing}${extras ? ` (${extras})` : ''}, populate ${r.populate}`);
  }
  return lines.map(escapeControls);
}

function countsCell(s: StepObservation, proc: string, region: string): string {
  const ro = s.processes[proc]?.[region];
  if (!ro) return '-';
  const c = countRegion(ro);
  const n = (v: number | null) => (v === null ? '?' : String(v));
  const swapped = c.swapped === undefined ? '' : ` +${n(c.swapped)}sw`;
  return `${c.present}/${n(c.shared)}/${n(c.exclusive)}/${n(c.zeroPage)}${swapped}`;
}

/** The table and its legend. `timeLabel` says whether times are measured or predicted. */
export function observationsTable(obs: TraceObservations, timeLabel: string): string[] {
  const trace = obs.trace;
  const procs = processNames(trace);
  const swaps = trace.steps.some((st) => st.op === 'pageout');
  const head = ['step', 'op', 'proc', 'region', 'copies', 'reuses', 'zeroFills', ...(swaps ? ['swapIns'] : []), 'faults', 'frames', 'time', ...procs];
  const rows: (string | number)[][] = [];
  for (const s of obs.steps) {
    trace.regions.forEach((r, i) => {
      const e = s.events[r.id]!;
      const first = i === 0;
      rows.push([
        first ? (s.step < 0 ? 'setup' : String(s.step)) : '',
        first ? stepLabel(trace, s) : '',
        first ? s.proc : '',
        r.id,
        formatCount(e.copies), formatCount(e.reuses), formatCount(e.zeroFills), ...(swaps ? [formatCount(e.swapIns ?? null)] : []), formatCount(e.faults),
        formatCount(s.frames[r.id]),
        first ? formatNs(s.timeNs) : '',
        ...procs.map((p) => countsCell(s, p, r.id)),
      ]);
    });
  }
  const align = head.map((_, i) => (i === 1 || i === 2 || i === 3 ? 'left' : 'right') as 'left' | 'right');
  const lines = [table(head, rows, align), ''];
  lines.push(
    'per process: present/shared/exclusive/zeroPage pages ("-": not alive, "?": not observable here). Events are',
    "the acting process's faults: copies (new frame for a shared page), reuses (made writable in place), zeroFills",
    '(fresh page where none or the zero page was), faults (all, including those). frames: distinct physical',
    `frames mapped by live processes, zero page excluded. time: ${timeLabel}.`,
  );
  if (swaps) lines.push('+Nsw: pages swapped out (pagemap bit 62). swapIns: faults that read a swapped-out page back.');
  for (const [field, why] of Object.entries(obs.unavailable)) lines.push(`not observable here: ${field}: ${why}`);
  return lines;
}
