/**
 * `cowlab watch --html`: one watched snapshot as a self-contained page, in the report's own
 * form (report.html's CSS, charts and tables): the environment, what watch saw of the fork, the
 * COW memory over time as a chart, and the samples behind it.
 */
import type { Environment } from '../env/environment.js';
import type { ResultsDocument } from '../suite/schema.js';
import type { Presentation } from '../suite/types.js';
import { formatBytes } from '../util/units.js';
import type { WatchResult } from '../watch/watch.js';
import { escapeXml as esc, hasData, renderChart } from './chart.js';
import { environmentRows, htmlTable, pageHead } from './html.js';

/** The binary unit in which `bytes` reads as 1 to 1023 (KiB at least). */
function unitFor(bytes: number): { name: string; bytes: number } {
  if (bytes >= 2 ** 30) return { name: 'GiB', bytes: 2 ** 30 };
  if (bytes >= 2 ** 20) return { name: 'MiB', bytes: 2 ** 20 };
  return { name: 'KiB', bytes: 1024 };
}

/** The chart and tables of one watched snapshot. */
export function watchPresentation(r: WatchResult): Presentation {
  const t = (s: WatchResult['samples'][number]) => s.tMs / 1000;
  const x = { label: 'time since the fork was seen', unit: 's' };
  // COW on its own chart, in the unit that fits it: beside the parent's memory a small
  // snapshot's COW would be a flat line at zero.
  const cow = unitFor(r.peak.cowBytes);
  const mem = unitFor(Math.max(0, ...r.samples.map((s) => Math.max(s.parent.sharedDirty, s.parent.privateDirty))));
  return {
    charts: [
      {
        kind: 'line',
        title: `COW memory over time: pid ${r.pid} (${r.comm}) and its snapshot child ${r.child}`,
        x,
        y: { label: "COW (the child's Private_Dirty)", unit: cow.name },
        series: [{ name: "COW: the child's Private_Dirty", points: r.samples.map((s) => ({ x: t(s), y: s.cowBytes / cow.bytes })) }],
        caption: `Peak COW ${formatBytes(r.peak.cowBytes)} at ${(r.peak.tMs / 1000).toFixed(2)} s; the child lived at least ${(r.durationMs / 1000).toFixed(2)} s${r.childExited ? '' : ' (still running when watching stopped)'}.`,
      },
      {
        kind: 'line',
        title: "The parent's dirty memory: still shared with the child, and private to it",
        x,
        y: { label: 'memory', unit: mem.name },
        series: [
          { name: "the parent's Shared_Dirty (still shared)", points: r.samples.map((s) => ({ x: t(s), y: s.parent.sharedDirty / mem.bytes })) },
          { name: "the parent's Private_Dirty", dashed: true, points: r.samples.map((s) => ({ x: t(s), y: s.parent.privateDirty / mem.bytes })) },
        ],
      },
    ],
    tables: [
      {
        title: 'The fork, seen from outside',
        head: ['figure', 'ms'],
        rows: [
          ['fork time quoted', r.fork.ms.toFixed(2)],
          ["a pagemap read blocked by fork's page-table copy (lower bound)", r.fork.blockedMs === null ? 'no read overlapped' : r.fork.blockedMs.toFixed(2)],
          ['from the last poll without the child to the one that saw it (upper bound)', r.fork.upperBoundMs.toFixed(2)],
          ['a normal pagemap read (median)', r.fork.probeMedianMs.toFixed(3)],
          ["the child's start time after the last poll (10 ms ticks)", r.fork.startTimeDeltaMs === null ? '-' : r.fork.startTimeDeltaMs.toFixed(0)],
        ],
        note: r.fork.how,
      },
      {
        title: 'Samples (smaps_rollup of both processes)',
        head: ['t (s)', 'COW', 'parent Private_Dirty', 'parent Shared_Dirty', 'parent Rss', 'parent Pss', 'child Rss', 'child Pss', 'read ms'],
        rows: r.samples.map((s) => [t(s).toFixed(3), ...[s.cowBytes, s.parent.privateDirty, s.parent.sharedDirty, s.parent.rss, s.parent.pss, s.child.rss, s.child.pss].map(formatBytes), s.readMs.toFixed(2)]),
        note: `Before the fork: Rss ${formatBytes(r.before.rss)}, Private_Dirty ${formatBytes(r.before.privateDirty)}, Anonymous ${formatBytes(r.before.anonymous)}; ${formatBytes(r.anonVmaBytes)} of writable private anonymous VMAs. The read time is what the two smaps_rollup reads took (they walk the page tables).`,
      },
    ],
  };
}

/** The page: the environment, the chart, the tables, the notes. */
export function renderWatchReport(r: WatchResult, env: Environment): string {
  const p = watchPresentation(r);
  const envRows = environmentRows({ environment: env } as ResultsDocument);
  return [
    pageHead(`cowlab watch: pid ${r.pid} (${r.comm})`),
    `<h1>cowlab watch: the fork snapshot of pid ${r.pid} (${esc(r.comm)})</h1>`,
    `<p class="verdict"><strong>COW peak ${esc(formatBytes(r.peak.cowBytes))}, last ${esc(formatBytes(r.finalCowBytes))}; fork ${r.fork.ms.toFixed(2)} ms seen from outside; snapshot at least ${(r.durationMs / 1000).toFixed(2)} s, ${r.samples.length} samples</strong></p>`,
    "<p class=\"muted\">COW memory is the child's Private_Dirty (smaps_rollup): pages only the child maps because one of the two processes wrote its copy; Redis reports the same figure as rdb_last_cow_size.</p>",
    `<div class="charts">${p.charts.filter(hasData).map(renderChart).join('')}</div>`,
    ...p.tables.map(htmlTable),
    r.notes.length ? `<ul class="notes">${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '',
    '<h3>Environment</h3>',
    `<table><tbody>${envRows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</tbody></table>`,
    '</body></html>\n',
  ].join('\n');
}
