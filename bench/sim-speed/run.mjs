// bench/sim-speed: is the simulator cheap enough to run where the kernel engine is too slow
// (sweeps, what-ifs)? The same trace, run by the kernel engine (real processes) and by the
// simulator, interleaved over repeats in one process. Trace: one private anonymous region of
// 65,536 pages populated by write; fork p0 -> c1; c1 writes every page. Metric: wall time of
// engine.run(trace), setup and observations included. Target: kernel / sim >= 100 (warm).
//
// The simulator's first run in a fresh process is slower (V8 has not optimized it yet): it is
// reported apart, from the first run of this process and of `--cold` more fresh processes.
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

// `--cold-once`: a fresh process times its first simulator run and prints it (see below).
if (process.argv.includes('--cold-once')) {
  console.log(await timeRun(new SimEngine()));
  process.exit(0);
}

// The first simulator run of this process, before anything else has warmed V8 up.
const firstNs = await timeRun(new SimEngine());
const coldNs = [firstNs];
for (let i = 0; i < coldProcesses; i++) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--pages', String(pages), '--cold-once'], { encoding: 'utf8' });
  coldNs.push(Number(out.trim()));
}

const env = environment();
console.log(`sim-speed: ${pages} pages, fork p0 -> c1, c1 writes all; ${repeats} interleaved repeats; kernel ${env.kernel}, ${env.cpu.model}`);
console.log(
  `sim cold (first run in a fresh process): median ${fmtNs(median(coldNs))}  (min ${fmtNs(Math.min(...coldNs))}, max ${fmtNs(Math.max(...coldNs))}, n=${coldNs.length}; this process: ${fmtNs(firstNs)})`,
);
const { a, b } = await interleave(
  { repeats, warmup: 2 },
  () => timeRun(new KernelEngine()),
  () => timeRun(new SimEngine()),
);
console.log(`ratio kernel / sim cold: ${(median(a) / median(coldNs)).toFixed(1)}`);
report({ title: 'engine.run(trace), wall time (sim warm)', aName: 'kernel', bName: 'sim', a, b, target: 100, higherIsBetter: true });
