/** `cowlab watch --pid P`: wait for a running process to fork and follow the snapshot's COW cost from outside. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import { integerOption } from '../../options.js';
import { renderWatchReport } from '../../report/watchHtml.js';
import { checkOutputFile, writeFileAtomic } from '../../util/files.js';
import { formatBytes } from '../../util/units.js';
import { pidOption, watchFork, type WatchResult } from '../../watch/watch.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';

interface Flags {
  pid: string;
  intervalMs?: string;
  timeoutS?: string;
  json?: boolean;
  html?: string;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

/** The samples to show: at most `rows`, evenly spread, always the first, the peak and the last. */
function pickSamples(r: WatchResult, rows = 12): WatchResult['samples'] {
  const n = r.samples.length;
  if (n <= rows) return r.samples;
  const keep = new Set<number>([0, n - 1, r.samples.findIndex((s) => s.tMs === r.peak.tMs)]);
  for (let i = 1; keep.size < rows && i < rows; i++) keep.add(Math.round((i * (n - 1)) / (rows - 1)));
  return [...keep].sort((a, b) => a - b).map((i) => r.samples[i]!);
}

export function printWatch(r: WatchResult): void {
  print(`watched pid ${r.pid} (${r.comm}): it forked child ${r.child}; before the fork Rss ${formatBytes(r.before.rss)}, Private_Dirty ${formatBytes(r.before.privateDirty)}, Anonymous ${formatBytes(r.before.anonymous)}`);
  print(`fork time (seen from outside): ${r.fork.ms.toFixed(2)} ms: ${r.fork.how}`);
  if (r.fork.startTimeDeltaMs !== null) print(`  the child's start time (10 ms ticks) is ${r.fork.startTimeDeltaMs.toFixed(0)} ms after the last poll before the fork`);
  print(`snapshot: the child lived at least ${(r.durationMs / 1000).toFixed(2)} s${r.childExited ? '' : ' (still running when watching stopped)'}; ${r.samples.length} samples`);
  print(`COW (the child's Private_Dirty): peak ${formatBytes(r.peak.cowBytes)} at ${(r.peak.tMs / 1000).toFixed(2)} s, last ${formatBytes(r.finalCowBytes)}`);
  print();
  const rows = pickSamples(r).map((s) => [
    (s.tMs / 1000).toFixed(2),
    MiB(s.cowBytes),
    MiB(s.parent.privateDirty),
    MiB(s.parent.sharedDirty),
    MiB(s.parent.rss),
    MiB(s.parent.pss),
    MiB(s.child.rss),
    MiB(s.child.pss),
    s.readMs.toFixed(2),
  ]);
  print(table(['t (s)', 'COW MiB', 'parent Priv_Dirty', 'parent Shr_Dirty', 'parent Rss', 'parent Pss', 'child Rss', 'child Pss', 'read ms'], rows, ['right', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right']));
  for (const n of r.notes) print(`note: ${n}`);
}

export function registerWatch(program: Command): void {
  program
    .command('watch')
    .description("wait for a running process to fork (a snapshot: Redis BGSAVE, ...) and follow the snapshot's COW memory and fork time from outside")
    .requiredOption('--pid <pid>', 'the process to watch (same user, or root); it is not stopped or changed')
    .option('--interval-ms <n>', 'ms between samples of parent and child while the child lives (default 50)')
    .option('--timeout-s <s>', 'give up when the process has not forked within this many seconds (default 60)')
    .option('--json', 'print the result as JSON (every sample)')
    .option('--html <file>', 'also write the snapshot as a self-contained HTML page: the COW-over-time chart, the fork figures, every sample, the environment')
    .addHelpText(
      'after',
      `
What it does:
  Polls the process about every millisecond for a new child (/proc/P/task/*/children, or a
  scan of /proc/*/stat where the kernel has no children files). Each poll also reads one
  pagemap entry of P: fork copies P's page tables with P's mmap lock held for writing, so the
  read that overlaps the fork blocks until the copy is done. Its duration is the fork time seen
  from outside (the poll gap is an upper bound; the child's start time a 10 ms-tick figure).

  Then, until the child exits, every --interval-ms it reads smaps_rollup of both processes:
  Private_Dirty, Shared_Dirty, Rss, Pss, Anonymous. COW memory is the child's Private_Dirty:
  pages only the child still maps because one of the two wrote a copy (Redis reports the same
  figure as rdb_last_cow_size). smaps_rollup walks the page tables: the read time is shown.

Exit status: 0 when the snapshot was followed; 2 for a bad --pid (no such process, a zombie,
a kernel thread); 1 when the process exits while watched or does not fork in time.

Examples:
  cowlab watch --pid $(pgrep -o redis-server) &  redis-cli bgsave
  cowlab watch --pid 1234 --interval-ms 20 --json > snapshot.json
  cowlab watch --pid 1234 --html snapshot.html`,
    )
    .action(
      action(async (flags: Flags) => {
        const pid = pidOption('--pid', flags.pid);
        const intervalMs = flags.intervalMs === undefined ? undefined : integerOption('--interval-ms', flags.intervalMs, { min: 1, max: 60_000 });
        const timeoutS = flags.timeoutS === undefined ? undefined : integerOption('--timeout-s', flags.timeoutS, { min: 1, max: 86_400 });
        // Checked before waiting: a bad path must not cost the snapshot.
        const html = flags.html === undefined ? undefined : checkOutputFile(flags.html, '--html', { suggest: 'watch.html' });
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        try {
          if (!flags.json) process.stderr.write(`cowlab: waiting for pid ${pid} to fork (Ctrl-C stops)\n`);
          const r = await watchFork({
            pid,
            intervalMs,
            timeoutS,
            signal: ac.signal,
            fields: { pid: '--pid', intervalMs: '--interval-ms', timeoutS: '--timeout-s' },
            onFork: (c) => !flags.json && process.stderr.write(`cowlab: pid ${pid} forked ${c}; sampling until it exits\n`),
          });
          if (flags.json) printJson(r);
          else printWatch(r);
          if (html !== undefined) process.stderr.write(`cowlab: html: ${writeFileAtomic(html, renderWatchReport(r, environment()), '--html')}\n`);
        } finally {
          process.off('SIGINT', stop);
        }
      }),
    );
}
