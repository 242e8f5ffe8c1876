/**
 * A results document and a comparison as CSV and markdown (`run`, `compare` with
 * --export-csv / --export-markdown). CSV is long format, one row per headline metric, numbers
 * in full; markdown is the summary a person pastes into an issue or a pull request.
 */
import { markdownTable, markdownText, toCsv, type Cell } from '../report/export.js';
import { placementOnly, type Comparison, type MetricComparison } from './compare.js';
import { formatBand, formatMetricValue } from './present.js';
import type { ResultsDocument } from './schema.js';
import type { Band } from '../stats/summary.js';

export const RESULTS_CSV_HEAD = ['number', 'experiment', 'status', 'verdict', 'metric', 'label', 'unit', 'median', 'min', 'max', 'noisy', 'n', 'samples'] as const;

const samplesCell = (b: Band) => (b.samples ? b.samples.join(' ') : null);

function resultRows(doc: ResultsDocument): Cell[][] {
  const rows: Cell[][] = [];
  for (const e of doc.experiments) {
    const head = [e.number, e.name, e.status, e.verdict.verdict];
    if (e.verdict.metrics.length === 0) rows.push([...head, null, null, null, null, null, null, null, null, null]);
    for (const m of e.verdict.metrics) {
      const v = m.value;
      rows.push([...head, m.key, m.label, m.unit, v.median, v.min, v.max, v.noisy, v.samples?.length ?? null, samplesCell(v)]);
    }
  }
  return rows;
}

/**
 * One row per headline metric (samples: the raw values, space-separated); an experiment
 * without metrics has one row with them empty. Several kernels (`run --kernel a,b`): a first
 * column `kernel`.
 */
export function resultsCsv(runs: ResultsDocument | readonly { label: string; doc: ResultsDocument }[]): string {
  if (!Array.isArray(runs)) return toCsv(RESULTS_CSV_HEAD, resultRows(runs as ResultsDocument));
  const many = runs as readonly { label: string; doc: ResultsDocument }[];
  return toCsv(['kernel', ...RESULTS_CSV_HEAD], many.flatMap((r) => resultRows(r.doc).map((row) => [r.label, ...row])));
}

const verdictWords = (v: string) => (v === 'not-measurable' ? 'not measurable' : v);

/** The summary (one row per experiment), then every headline metric; several kernels: a section each. */
export function resultsMarkdown(runs: ResultsDocument | readonly { label: string; doc: ResultsDocument }[]): string {
  if (Array.isArray(runs)) {
    const many = runs as readonly { label: string; doc: ResultsDocument }[];
    return many.map((r) => oneResultsMarkdown(r.doc, `cowlab results: ${r.label}`)).join('\n');
  }
  return oneResultsMarkdown(runs as ResultsDocument, 'cowlab results');
}

function oneResultsMarkdown(doc: ResultsDocument, title: string): string {
  const e = doc.environment;
  const counts = (k: string) => doc.experiments.filter((x) => x.verdict.verdict === k).length;
  const out = [
    `# ${title}`,
    '',
    `Kernel ${e.kernel} (${e.arch}), ${e.cpu.model} x${e.cpu.count}, ${doc.options.quick ? 'quick' : 'full'} suite, started ${doc.startedAt}, ${(doc.durationMs / 1000).toFixed(1)} s${doc.interrupted ? ' (interrupted)' : ''}. ` +
      `${counts('confirmed')} confirmed, ${counts('refuted')} refuted, ${counts('not-measurable')} not measurable here.`,
    '',
    markdownTable(
      ['#', 'experiment', 'verdict', 'claim', 'measured here (or why not)'],
      doc.experiments.map((x) => [
        x.number,
        x.name,
        verdictWords(x.verdict.verdict),
        markdownText(x.short),
        markdownText(x.verdict.verdict === 'not-measurable' ? `${x.verdict.figure === 'not measured' ? '' : `${x.verdict.figure}: `}${x.verdict.reason}` : x.verdict.figure),
      ]),
      ['right'],
    ),
  ];
  const metrics = doc.experiments.flatMap((x) => x.verdict.metrics.map((m) => ({ x, m })));
  if (metrics.length) {
    out.push('', '## Headline metrics', '', 'Median over the samples, with the min-max band; n is the number of samples behind it.', '');
    out.push(
      markdownTable(
        ['experiment', 'metric', 'median', 'min', 'max', 'n'],
        metrics.map(({ x, m }) => {
          const f = formatMetricValue(m.unit);
          return [x.name, markdownText(m.label), f(m.value.median), f(m.value.min), f(m.value.max), m.value.samples?.length ?? null];
        }),
        ['left', 'left', 'right', 'right', 'right', 'right'],
      ),
    );
  }
  return `${out.join('\n')}\n`;
}

export const COMPARISON_CSV_HEAD = [
  'number', 'experiment', 'metric', 'label', 'unit',
  'a_median', 'a_min', 'a_max', 'a_n', 'b_median', 'b_min', 'b_max', 'b_n',
  'ratio', 'ci_low', 'ci_high', 'ci_level', 'outcome', 'why',
] as const;

/** One row per metric of either file. */
export function comparisonCsv(c: Comparison, keep: (m: MetricComparison) => boolean = () => true): string {
  const rows: Cell[][] = [];
  for (const e of c.experiments) {
    for (const m of e.metrics.filter(keep)) {
      rows.push([
        e.number, e.name, m.key, m.label, m.unit,
        m.a?.median, m.a?.min, m.a?.max, m.samples.a,
        m.b?.median, m.b?.min, m.b?.max, m.samples.b,
        m.ratio, m.interval?.low, m.interval?.high, m.interval?.level, m.outcome, m.why,
      ]);
    }
  }
  return toCsv(COMPARISON_CSV_HEAD, rows);
}

export const OUTCOME_WORDS: Record<MetricComparison['outcome'], string> = {
  different: 'DIFFERENT',
  'no-difference': 'no difference',
  'not-enough-samples': 'not enough samples',
  'not-comparable': 'not comparable',
  'one-side': 'one host only',
};

/** "0.97x-1.04x", or "-" when no test was made. */
export function formatInterval(m: MetricComparison): string {
  return m.interval ? `${m.interval.low.toFixed(2)}x-${m.interval.high.toFixed(2)}x` : '-';
}

/** "5 / 5", "1 / 1", "? / 5" (not recorded). */
export function formatSampleCounts(m: MetricComparison): string {
  const n = (v: number | null, band: Band | null) => (band === null ? '-' : v === null ? '?' : String(v));
  return `${n(m.samples.a, m.a)} / ${n(m.samples.b, m.b)}`;
}

/** "3 kernel observations differ (2 only by where the kernel placed a region)". */
function kernelObservationsText(c: Comparison): string {
  const n = c.kernelDifferences.length;
  const placed = c.kernelDifferences.filter(placementOnly).length;
  return `${n} kernel observation${n === 1 ? '' : 's'} differ${n === 1 ? 's' : ''}${placed ? ` (${placed === n ? 'all' : placed} only by where the kernel placed a region)` : ''}`;
}

/** The comparison for an issue or a pull request: the two runs, the rule, then every metric kept. */
export function comparisonMarkdown(c: Comparison, files: { a: string; b: string }, keep: (m: MetricComparison) => boolean = () => true): string {
  const side = (name: string, f: string, s: Comparison['a']) => `- **${name}** = \`${f}\`: kernel ${s.kernel}, ${s.quick ? 'quick' : 'full'} suite, ${s.startedAt}`;
  const out = ['# cowlab compare', '', side('a', files.a, c.a), side('b', files.b, c.b), '', `Rule: ${markdownText(c.rule)}.`, ''];
  out.push(
    `${c.flagged} metric${c.flagged === 1 ? '' : 's'} different, ${c.notEnoughSamples} with not enough samples; ${c.verdictsChanged} verdict${c.verdictsChanged === 1 ? '' : 's'} changed; ` +
      `${kernelObservationsText(c)}.`,
  );
  if (c.environment.length) out.push('', '## Environment', '', markdownTable(['field', 'a', 'b'], c.environment.map((d) => [d.field, d.a, d.b])));
  const rows = c.experiments.flatMap((e) =>
    e.metrics.filter(keep).map((m) => {
      const f = formatMetricValue(m.unit);
      return [e.name, markdownText(m.label), m.a ? formatBand(m.a, f) : '-', m.b ? formatBand(m.b, f) : '-', m.ratio === null ? '-' : `${m.ratio.toFixed(2)}x`, formatInterval(m), formatSampleCounts(m), OUTCOME_WORDS[m.outcome]];
    }),
  );
  const changed = c.experiments.filter((e) => e.verdictChanged);
  if (changed.length) {
    out.push('', '## Verdicts changed', '', markdownTable(['#', 'experiment', 'a', 'b'], changed.map((e) => [e.number, e.name, e.a!.verdict, e.b!.verdict]), ['right']));
  }
  out.push('', '## Metrics', '');
  out.push(
    rows.length
      ? markdownTable(['experiment', 'metric', 'a', 'b', 'b/a', `${Math.round(c.test.level * 100)} % CI of b/a`, 'n a / b', 'judged'], rows, ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'left'])
      : 'No metric to show.',
  );
  return `${out.join('\n')}\n`;
}
