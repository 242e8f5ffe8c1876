/** `cowlab region-bench`: write-fault cost of the userspace COW region against the kernel's. */
import type { Command } from 'commander';

import { environment } from '../../env/environment.js';
import {
  describeRegionBenchOptions,
  regionBench,
  resolveRegionBenchOptions,
  type BenchSide,
  type RegionBenchOptions,
  type RegionBenchResult,
} from '../../region/bench.js';
import { formatPattern } from '../../forkwrite/pattern.js';
import { formatPolicy } from '../../region/policy.js';
import { formatBytes, formatCount, formatNs } from '../../report/format.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';
import { progress } from '../progress.js';

interface Flags {
  pages: string;
  pattern: string;
  seed: string;
  policy: string;
  repeats: string;
  warmup: string;
  json?: boolean;
}

const FLAG: Record<keyof RegionBenchOptions, string> = {
  pages: '--pages', pattern: '--pattern', seed: '--seed', policy: '--policy', repeats: '--repeats',
  warmup: '--warmup', onProgress: '--progress',
};

function toOptions(f: Flags): RegionBenchOptions {
  const o: RegionBenchOptions = {
    pages: f.pages as unknown as number,
    pattern: f.pattern as RegionBenchOptions['pattern'], // a string from the command line, checked by parsePattern
    seed: f.seed as unknown as number,
    policy: f.policy as RegionBenchOptions['policy'], // checked by parsePolicy
    repeats: f.repeats as unknown as number,
    warmup: f.warmup as unknown as number,
  };
  // Checked here with the flag names, before anything is mapped.
  resolveRegionBenchOptions(o, (k) => FLAG[k]);
  return o;
}

function row(name: string, s: BenchSide): string[] {
  const p = s.perPageNs;
  return [name, formatNs(p.p50), formatNs(p.p90), formatNs(p.p99), formatNs(p.max), formatNs(s.meanStoreNs),
    `${formatNs(s.snapshotNs.median)}${s.snapshotNs.noisy ? ' (noisy)' : ''}`, formatCount(s.faults.median)];
}

function printResult(r: RegionBenchResult): void {
  const o = r.options;
  const env = environment();
  print(`region-bench: ${formatCount(o.pages)} pages (${formatBytes(o.pages * env.pageSize)}), pattern ${formatPattern(o.pattern)}, policy ${formatPolicy(o.policy)}, ${o.repeats} repeats after ${o.warmup} warm-up`);
  print(`kernel ${env.kernel}, ${env.cpu.model} x ${env.cpu.count}${env.hypervisor.present ? ', virtualized' : ''}`);
  print(`per-page cost: ${r.definition}`);
  print();
  print(table(['', 'p50', 'p90', 'p99', 'max', 'mean store', 'snapshot', 'faults/run'], [row('kernel', r.kernel), row('region', r.region)]));
  print();
  print(`region copies per run: ${formatCount(r.region.copies.median)}; kernel snapshot = fork() of the whole Node process`);
  print();
  print('other write-tracking mechanisms, same pages and order, interleaved (per-page cost as above):');
  print(table(['mechanism', 'p50', 'p90', 'p99', 'arm', 'collect'], r.mechanisms.filter((m) => m.perPageNs).map((m) => [
    m.label + (m.mechanism === r.floor ? ' (floor)' : ''), formatNs(m.perPageNs!.p50), formatNs(m.perPageNs!.p90), formatNs(m.perPageNs!.p99),
    m.armNs !== null ? formatNs(m.armNs) : '-', m.collectNs !== null ? formatNs(m.collectNs) : '-'])));
  for (const m of r.mechanisms.filter((x) => !x.perPageNs)) print(`${m.label}: not available here: ${m.reason ?? ''}`);
  print();
  const floor = r.mechanisms.find((m) => m.mechanism === r.floor);
  print(`ratio region/floor (${floor?.label ?? 'none: eager takes no faults'}): ${r.ratioToFloor !== null ? r.ratioToFloor.toFixed(2) : '-'} (goal <= 1.1)`);
  print(`ratio region/cheapest (${r.cheapest === 'kernel-cow' ? 'kernel COW' : (r.mechanisms.find((m) => m.mechanism === r.cheapest)?.label ?? r.cheapest)}): ${r.ratioToCheapest.toFixed(2)}`);
  print(`ratio region/kernel (p50 per-page cost): ${r.ratioToKernel.toFixed(2)}`);
}

export function registerRegionBench(program: Command): void {
  program
    .command('region-bench')
    .description("per-page write-fault cost of cowlab's userspace COW region against the kernel's fork COW, in one run")
    .requiredOption('--pages <n>', 'pages (4 KiB) written after the snapshot, on each side')
    .option('--pattern <p>', 'write order: seq | rand | stride:N', 'seq')
    .option('--seed <n>', 'seed of the rand pattern', '1')
    .option('--policy <p>', 'region copy policy: lazy | eager | faultAround:K', 'lazy')
    .option('--repeats <n>', 'measured repeats per side (interleaved)', '5')
    .option('--warmup <n>', 'unrecorded repeats per side first', '1')
    .option('--json', 'print one JSON document: { env, options, kernel, region, ratio, mechanisms, floor, cheapest, ratioToFloor, ratioToCheapest, ratioToKernel }')
    .addHelpText(
      'after',
      `
What it measures:
  region  a region of --pages populated pages; each repeat forks the root (view.fork()) and
          stores one 8-byte word per page into the fork, in pattern order. A store to a shared
          page takes a SIGSEGV that cowlab resolves: copy 4 KiB into a pooled frame, mmap it
          over the page (lazy); with faultAround:K up to K following shared pages are copied
          in the same fault and mapped with the same mmap; eager copies everything at fork().
  kernel  fork-write: a populated private anonymous mapping, fork(), and the child stores the
          same pages in the same order (one kernel COW fault per page).
  others  the other write-tracking mechanisms (cowlab run write-tracking) over the same pages
          and order: SIGSEGV + copy + mmap in bare C (the region's floor: same mechanism, same
          fault-around), SIGSEGV + mprotect, userfaultfd-wp sync and async, soft-dirty; one not
          available here is listed with the reason.
  Repeats alternate region, kernel and the others, after --warmup unrecorded ones. The region is created
  once, so its frame pool is warm after the warm-up (frames of a released fork are reused).

Per-page cost:
  lazy                each store timed alone (clock_gettime in native code); p50/p90/p99/max
                      over every store of the measured repeats. Ratio = region p50 / kernel p50.
  faultAround, eager  amortized, because most stores do not fault: (sum of the store times,
                      plus the snapshot for eager, where eager copies) / pages written, one
                      figure per repeat, percentiles over the repeats; the kernel side is its
                      store times / pages written (its fork() forks all of Node, not these
                      pages, so it is reported apart). Ratio = region p50 / kernel p50.

Ratios (printed last): region / floor (goal <= 1.1: what the region's own code costs beyond
its mechanism), region / the cheapest mechanism measured, region / kernel COW.

Examples:
  cowlab region-bench --pages 16384 --pattern rand --json
  cowlab region-bench --pages 16384 --pattern seq --policy faultAround:16`,
    )
    .action(
      action(async (flags: Flags) => {
        const options = toOptions(flags);
        const bar = progress('region-bench');
        let result: RegionBenchResult;
        try {
          result = await regionBench({ ...options, onProgress: (p) => bar.update(p.done, p.total, p.warmup ? '(warm-up)' : '') });
        } finally {
          bar.stop();
        }
        if (flags.json) {
          printJson({
            env: environment(),
            options: describeRegionBenchOptions(result.options),
            perPage: result.perPage,
            definition: result.definition,
            kernel: result.kernel,
            region: result.region,
            ratio: result.ratio,
            mechanisms: result.mechanisms,
            floor: result.floor,
            cheapest: result.cheapest,
            ratioToFloor: result.ratioToFloor,
            ratioToCheapest: result.ratioToCheapest,
            ratioToKernel: result.ratioToKernel,
          });
        } else {
          printResult(result);
        }
      }),
    );
}
