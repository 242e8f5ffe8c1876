// bench/sim-speed: is the simulator cheap enough to run where the kernel engine is too slow
// (sweeps, what-ifs)? The same trace, run by the kernel engine (real processes) and by the
// simulator, interleaved over repeats in one process. Trace: one private anonymous region of
// 65,536 pages populated by write; fork p0 -> c1; c1 writes every page. Metric: wall time of
// engine.run(trace), setup and observations included. Target: kernel / sim >= 100 (warm).
//
// Also reported, apart: the simulator's first run in a fresh process (V8 has not optimized it
// yet), and its warm runs in fresh processes that never ran the kernel engine: the difference
// between those and the interleaved runs is the cache and allocator state the kernel engine
// leaves behind. (Keep it that way: once any ArrayBuffer of the process has been detached,
// by unmapping a Mapping or releasing a CowView, V8 checks for detachment on every
// typed-array access from then on, and the simulator gets slower.)
//
// usage: node bench/sim-speed/run.mjs [--pages 65536] [--repeats 7] [--cold 5]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

import { arg, cowlab, fmtNs, interleave, median, report } from '../lib.mjs';

const pages = Number(arg('pages', '65536'));
const repeats = Number(arg('repeats', '7'));
const coldProcesses = Number(arg('cold', '5'));
const { KernelEngine, SimEngine, parseTrace, environment } = await cowlab();

const trace = parseTrace({
  name: 'sim-speed',
  regions: [{ id: 'heap', pages, map: 'private', backing: 'anon', populate: 'write' }],
  steps: [
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'write', proc: 'c1', region: 'heap', pages: { start: 0, end: pages } },
  ],
});

/** Wall time of one engine.run(trace), ns. */
async function timeRun(engine) {
  const t0 = performance.now();
  await engine.run(trace);
  return (performance.now() - t0) * 1e6;
}

// `--fresh`: a fresh process times its first simulator run, then the median of 20 more after
// 10 unrecorded ones (V8 and the allocator settled), and prints both (see below).
if (process.argv.includes('--fresh')) {
  const first = await timeRun(new SimEngine());
  const warm = [];
  for (let i = 0; i < 30; i++) warm.push(await timeRun(new SimEngine()));
  console.log(JSON.stringify({ first, warm: median(warm.slice(10)) }));
  process.exit(0);
}

// The first simulator run of this process, before anything else has warmed V8 up.
const firstNs = await timeRun(new SimEngine());
const coldNs = [firstNs];
const freshWarmNs = [];
for (let i = 0; i < coldProcesses; i++) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--pages', String(pages), '--fresh'], { encoding: 'utf8' });
  const { first, warm } = JSON.parse(out);
  coldNs.push(first);
  freshWarmNs.push(warm);
}

const env = environment();
console.log(`sim-speed: ${pages} pages, fork p0 -> c1, c1 writes all; ${repeats} interleaved repeats; kernel ${env.kernel}, ${env.cpu.model}`);
console.log(
  `sim cold (first run in a fresh process): median ${fmtNs(median(coldNs))}  (min ${fmtNs(Math.min(...coldNs))}, max ${fmtNs(Math.max(...coldNs))}, n=${coldNs.length}; this process: ${fmtNs(firstNs)})`,
);
if (freshWarmNs.length > 0) {
  console.log(
    `sim warm in a fresh process (no kernel engine run): median ${fmtNs(median(freshWarmNs))}  (min ${fmtNs(Math.min(...freshWarmNs))}, max ${fmtNs(Math.max(...freshWarmNs))}, n=${freshWarmNs.length}, each a median of 20 runs)`,
  );
}
const { a, b } = await interleave(
  { repeats, warmup: 2 },
  () => timeRun(new KernelEngine()),
  () => timeRun(new SimEngine()),
);
console.log(`ratio kernel / sim cold: ${(median(a) / median(coldNs)).toFixed(1)}`);
if (freshWarmNs.length > 0) console.log(`ratio kernel / sim warm in a fresh process: ${(median(a) / median(freshWarmNs)).toFixed(1)}`);
report({ title: 'engine.run(trace), wall time (sim warm)', aName: 'kernel', bName: 'sim', a, b, target: 100, higherIsBetter: true });
