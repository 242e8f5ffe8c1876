/** `cowlab predict`: the simulator's prediction of a process's next snapshot (COW memory, fork time), with what-ifs. */
import type { Command } from 'commander';

import { invalidOption } from '../../errors.js';
import { environment } from '../../env/environment.js';
import { runningKernelFacts } from '../../kernels/facts.js';
import { integerOption } from '../../options.js';
import { resolveTraceArg } from '../../trace/scenarios.js';
import { formatBytes } from '../../util/units.js';
import { measureForkCost, predictSnapshot, type PredictResult } from '../../watch/predict.js';
import { recordWrites } from '../../watch/record.js';
import { pidOption } from '../../watch/watch.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';
import { addSimFlags, simConfigFor, type SimFlags } from '../simFlags.js';

interface Flags extends SimFlags {
  pid?: string;
  trace?: string;
  seconds?: string;
  scaleMemory?: string;
  scaleRate?: string;
  snapshotSeconds?: string;
  intervalMs?: string;
  measureFork?: boolean;
  json?: boolean;
}

function positiveNumber(field: string, text: string | undefined, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(text.trim())) throw invalidOption(field, `must be a positive number, got '${text}'`);
  const n = Number(text);
  if (!(n > 0) || n > max) throw invalidOption(field, `must be above 0 and at most ${max}, got ${text}`);
  return n;
}

export function printPredict(r: PredictResult): void {
  const what = [r.scaleMemory !== 1 ? `${r.scaleMemory}x the memory` : '', r.scaleRate !== 1 ? `${r.scaleRate}x the write rate` : ''].filter(Boolean).join(', ');
  print(`prediction for the next snapshot of '${r.name}'${what ? ` at ${what}` : ''}, the child living ${r.snapshotSeconds.toFixed(2)} s`);
  print(`resident private memory at the fork: ${formatBytes(r.residentBytes)} (of ${formatBytes(r.regionBytes)} mapped)`);
  print(`fork time: ${r.fork.ms.toFixed(2)} ms (${r.fork.source})`);
  print(`COW memory: ${formatBytes(r.cowBytes)} copied by the end of the snapshot; ${formatBytes(r.newBytes)} newly allocated by the parent (zero fills, not COW); ${formatBytes(r.writtenBytes)} distinct pages written`);
  print(`(simulated in ${(r.simMs / 1000).toFixed(2)} s)`);
  print();
  const n = r.points.length;
  const idx = n <= 11 ? r.points.map((_p, i) => i) : Array.from({ length: 11 }, (_x, i) => Math.round((i * (n - 1)) / 10));
  print(table(['t (s)', 'COW', 'new'], [...new Set(idx)].map((i) => [r.points[i]!.tS.toFixed(2), formatBytes(r.points[i]!.cowBytes), formatBytes(r.points[i]!.newBytes)]), ['right', 'right', 'right']));
  for (const note of r.notes) print(`note: ${note}`);
}

export function registerPredict(program: Command): void {
  const cmd = program
    .command('predict')
    .description("predict a process's next snapshot: COW memory over time and fork time, by the simulator; what-ifs for more memory, a faster write rate, a longer snapshot")
    .option('--pid <pid>', 'record this process first (cowlab record, --seconds long), then predict')
    .option('--trace <file>', 'a trace recorded by cowlab record (or any trace whose p0 forks, with --interval-ms)')
    .option('--seconds <s>', 'with --pid: how long to record (default 5)')
    .option('--scale-memory <k>', 'K times the memory (integer): the same writes per second spread over K times the data')
    .option('--scale-rate <k>', 'K times the write rate (a number, 0.5 or 2)')
    .option('--snapshot-seconds <t>', 'the child lives T s (default: as long as the recording)')
    .option('--interval-ms <n>', 'ms per write step, for a trace not made by cowlab record')
    .option('--measure-fork', "measure fork cost per GiB here (forks cowlab at two sizes, about a second) instead of the cost model's forkPerPageNs")
    .option('--json', 'print the prediction as JSON');
  addSimFlags(cmd).addHelpText(
    'after',
    `
What it does:
  Replays the recorded snapshot on the simulator: p0 populates the pages resident at the fork,
  forks, then writes each interval's pages; every first write to a shared page is a copy. COW
  memory is the copies (what the child's Private_Dirty and Redis's rdb_last_cow_size report).
  Production sizes are the normal case: a 64 GiB process is 2^24-page regions, simulated in
  seconds.

What-ifs:
  --scale-memory 4      every page stands for 4; each recorded write lands on one of them at
                        random: same write rate, 4x the data (COW grows with the data only
                        where writes are spread)
  --scale-rate 2        each interval takes the writes of 2 recorded intervals
  --snapshot-seconds 60 the child lives 60 s; a shorter recording repeats (its write set stays
                        the hot set: pages written again cost nothing more)

Fork time: forkBaseNs + forkPerPageNs x resident pages from the cost model (--cost-model FILE
from cowlab calibrate; uncalibrated defaults otherwise), or with --measure-fork a fork cost per
GiB measured here. It says which.

Examples:
  cowlab record --pid $(pgrep -o redis-server) --seconds 5 --out redis.json &  redis-cli bgsave
  cowlab predict --trace redis.json
  cowlab predict --trace redis.json --scale-memory 200 --snapshot-seconds 60 --measure-fork`,
  ).action(
    action(async (flags: Flags) => {
      if ((flags.pid === undefined) === (flags.trace === undefined)) throw invalidOption(flags.pid ? '--trace' : '--pid', 'give exactly one of --pid (record first) or --trace (a recorded trace)');
      const scaleMemory = flags.scaleMemory === undefined ? undefined : integerOption('--scale-memory', flags.scaleMemory, { min: 1, max: 4096 });
      const scaleRate = positiveNumber('--scale-rate', flags.scaleRate, 1000);
      const snapshotSeconds = positiveNumber('--snapshot-seconds', flags.snapshotSeconds, 86_400);
      const intervalMs = flags.intervalMs === undefined ? undefined : integerOption('--interval-ms', flags.intervalMs, { min: 1, max: 3_600_000 });
      const config = simConfigFor(flags, runningKernelFacts(environment()));
      let trace;
      if (flags.pid !== undefined) {
        const pid = pidOption('--pid', flags.pid);
        const seconds = flags.seconds === undefined ? 5 : integerOption('--seconds', flags.seconds, { min: 1, max: 3600 });
        if (!flags.json) process.stderr.write(`cowlab: recording pid ${pid} for ${seconds} s (on a kernel without soft-dirty this waits for it to fork)\n`);
        trace = (await recordWrites({ pid, seconds, fields: { pid: '--pid', seconds: '--seconds' } })).trace;
      } else {
        trace = resolveTraceArg(flags.trace!);
      }
      const forkCost = flags.measureFork ? await measureForkCost() : undefined;
      const r = predictSnapshot({ trace, scaleMemory, scaleRate, snapshotSeconds, intervalMs, sim: config.options, forkCost });
      if (flags.json) printJson(r);
      else printPredict(r);
    }),
  );
}
