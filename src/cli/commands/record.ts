/** `cowlab record --pid P --seconds S`: turn a running program's writes into a trace. */
import { writeFileSync } from 'node:fs';

import type { Command } from 'commander';

import { invalidOption } from '../../errors.js';
import { integerOption, choiceOption } from '../../options.js';
import { formatBytes } from '../../util/units.js';
import { RECORD_METHODS, recordWrites, type RecordResult } from '../../watch/record.js';
import { pidOption } from '../../watch/watch.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';

interface Flags {
  pid: string;
  seconds: string;
  intervalMs?: string;
  method?: string;
  waitForkS?: string;
  out?: string;
  json?: boolean;
}

export function printRecord(r: RecordResult, out: string | undefined): void {
  print(`recorded pid ${r.pid} (${r.comm}) by ${r.method === 'fork' ? `its snapshot (child ${r.child}): pages that stopped being shared` : 'soft-dirty bits'}, ${r.intervals.length} intervals of ${r.intervalMs} ms${r.stoppedBy === 'child-exited' ? ' (stopped when the child exited)' : r.stoppedBy === 'abort' ? ' (stopped by Ctrl-C)' : ''}`);
  print(`regions: ${r.regions.length} (writable private anonymous VMAs), ${formatBytes(r.regions.reduce((n, x) => n + x.pages * 4096, 0))}, ${formatBytes(r.residentPages * 4096)} resident at the start`);
  print(`written: ${r.distinctPages} distinct pages (${formatBytes(r.distinctPages * 4096)}), ${r.pageWrites} page writes over all intervals`);
  print(`cost on the recorded process: ${r.cost.note}`);
  print();
  const shown = r.intervals.length <= 12 ? r.intervals : [...r.intervals.slice(0, 6), ...r.intervals.slice(-6)];
  print(table(['interval', 't (s)', 'pages written', 'read ms', 'clear ms'], shown.map((iv) => [String(r.intervals.indexOf(iv)), (iv.tMs / 1000).toFixed(2), String(iv.pages), iv.readMs.toFixed(2), iv.clearMs.toFixed(2)]), ['right', 'right', 'right', 'right', 'right']));
  const largest = [...r.regions].sort((a, b) => b.pages - a.pages).slice(0, 5);
  print();
  print(table(['region', 'VMA', 'pages', 'resident'], largest.map((g) => [g.id, g.vma, String(g.pages), String(g.resident)]), ['left', 'left', 'right', 'right']));
  if (r.regions.length > largest.length) print(`(${r.regions.length - largest.length} smaller regions not shown)`);
  for (const n of r.notes) print(`note: ${n}`);
  if (out) print(`trace written to ${out}: cowlab simulate ${out}; cowlab predict --trace ${out}`);
}

export function registerRecord(program: Command): void {
  program
    .command('record')
    .description("record a running program's page writes as a trace (no change to the program), for simulate, validate and predict")
    .requiredOption('--pid <pid>', 'the process to record (same user, or root)')
    .requiredOption('--seconds <s>', 'how long to record')
    .option('--interval-ms <n>', 'ms per interval: one write step each (default 100)')
    .option('--method <m>', `how writes are seen: ${RECORD_METHODS.join(', ')} (default auto: soft-dirty where the kernel keeps it, else fork)`)
    .option('--wait-fork-s <s>', 'method fork: how long to wait for the process to fork (default 60)')
    .option('--out <file>', 'write the trace here (default: record-<comm>-<pid>.json)')
    .option('--json', 'print the result as JSON (the trace is still written to --out)')
    .addHelpText(
      'after',
      `
Methods:
  soft-dirty  (kernels with CONFIG_MEM_SOFT_DIRTY) each interval: read pagemap bit 55 of every
              page, then write 4 to /proc/P/clear_refs. Sees the first write per page per
              interval, not their order; costs P one extra minor fault per page per interval it
              writes, and the clear walks its page tables. A VMA that grows or merges with a
              new mapping reads soft-dirty as a whole (the kernel's VM_SOFTDIRTY): its pages
              are kept, and record says how many may be unwritten.
  fork        (any kernel) the process's own snapshot: waits for P to fork (start it: redis-cli
              BGSAVE), then each interval reads pagemap bit 56 of P's pages: a page shared with
              the child that turned exclusive was written (by either process: its copy). Sees
              only the first write per page of the whole snapshot, and only while the child
              lives: exactly the write set a snapshot pays COW for.

The trace (docs/trace.md): one region per writable private anonymous VMA of /proc/P/maps at
the start (a VMA over 2^24 pages, 64 GiB, is split into several regions); p0 writes the pages
resident then, forks c1, writes per interval the pages written in it, and c1 exits. Memory
mapped after the start is not recorded (its written size is reported).

Examples:
  cowlab record --pid $(pgrep -o redis-server) --seconds 5 --out redis.json &  redis-cli bgsave
  cowlab simulate redis.json
  cowlab predict --trace redis.json --scale-memory 4`,
    )
    .action(
      action(async (flags: Flags) => {
        const pid = pidOption('--pid', flags.pid);
        const seconds = integerOption('--seconds', flags.seconds, { min: 1, max: 3600 });
        const intervalMs = flags.intervalMs === undefined ? undefined : integerOption('--interval-ms', flags.intervalMs, { min: 10, max: 60_000 });
        const method = flags.method === undefined ? undefined : choiceOption('--method', flags.method, RECORD_METHODS);
        const waitForkS = flags.waitForkS === undefined ? undefined : integerOption('--wait-fork-s', flags.waitForkS, { min: 1, max: 86_400 });
        if (flags.out === '') throw invalidOption('--out', 'must be a file name');
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        try {
          if (!flags.json) process.stderr.write(`cowlab: recording pid ${pid} for ${seconds} s${method === 'fork' || method === undefined ? ' (method fork waits for it to fork)' : ''}\n`);
          const r = await recordWrites({
            pid,
            seconds,
            intervalMs,
            method,
            waitForkS,
            signal: ac.signal,
            fields: { pid: '--pid', seconds: '--seconds', intervalMs: '--interval-ms', method: '--method' },
            onFork: (c) => !flags.json && process.stderr.write(`cowlab: pid ${pid} forked ${c}: recording its snapshot\n`),
          });
          const out = flags.out ?? `${r.trace.name}.json`;
          writeFileSync(out, `${JSON.stringify(r.trace)}\n`);
          if (flags.json) printJson({ ...r, trace: undefined, out });
          else printRecord(r, out);
        } finally {
          process.off('SIGINT', stop);
        }
      }),
    );
}
