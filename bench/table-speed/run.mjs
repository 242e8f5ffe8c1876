// bench/table-speed: is text output linear in the rows? Every text table (pagemap dumps,
// simulate and run-trace steps, validate) goes through src/report/table.ts; cli-table3 laid
// tables out in time quadratic in the rows (8,000 rows 15.6 s, 65,536 rows many minutes;
// issue 11, row 3). Two measurements, interleaved over repeats in one process:
//
//   1. simulate's two outputs of one 8,000-step trace, already simulated: the text table
//      (observationsTable) against the JSON document (observationsToJson + JSON.stringify).
//      Target: text / JSON <= 2 (it was 50: 16.7 s against 0.3 s).
//   2. table() of a pagemap-like table of 4n rows against n rows (n = 16,384: 65,536 rows
//      against 16,384). Linear: 4; quadratic: 16. Target: <= 6. Printed last.
//
// usage: node bench/table-speed/run.mjs [--rows 16384] [--steps 8000] [--repeats 7]
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { arg, cowlab, fmtNs, interleave, median, report, ROOT } from '../lib.mjs';

const rows = Number(arg('rows', '16384'));
const stepCount = Number(arg('steps', '8000'));
const repeats = Number(arg('repeats', '7'));
const { parseTrace, simulateTrace, environment } = await cowlab();
const { table } = await import(join(ROOT, 'dist', 'src', 'report', 'table.js'));
const { observationsTable } = await import(join(ROOT, 'dist', 'src', 'report', 'observationsTable.js'));
const { observationsToJson } = await import(join(ROOT, 'dist', 'src', 'engines', 'observations.js'));

/** Wall time of fn(), ns. */
function time(fn) {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) * 1e6;
}

// 1. simulate: text against JSON, for the same observations.
const steps = [{ op: 'fork', proc: 'p0', child: 'c1' }];
for (let i = 1; i < stepCount; i++) steps.push({ op: 'write', proc: i % 2 ? 'c1' : 'p0', region: 'heap', pages: { start: i % 1024, end: (i % 1024) + 1 } });
const trace = parseTrace({ name: 'table-speed', regions: [{ id: 'heap', pages: 1024 }], steps });
const obs = simulateTrace(trace);
const sim = await interleave(
  { repeats, warmup: 1 },
  () => time(() => observationsTable(obs, 'predicted').join('\n')),
  () => time(() => JSON.stringify(observationsToJson(obs, { pages: true }))),
);

// 2. table(): 4n rows against n rows.
const pagemapRows = (n) =>
  Array.from({ length: n }, (_, i) => [i, `0x${(0x7f0000000000 + i * 4096).toString(16)}`, i % 3 ? 'yes' : '.', `0x${(0x100000 + i).toString(16)}`, i % 2 ? 'yes' : '.', '.', '.', i % 7 ? '1' : '2', '.', '.', 'yes']);
const head = ['page', 'address', 'present', 'pfn', 'exclusive', 'file/shm', 'swapped', 'kpagecount', 'thp', 'zero', 'anon'];
const big = pagemapRows(4 * rows);
const small = pagemapRows(rows);
const scale = await interleave({ repeats, warmup: 1 }, () => time(() => table(head, big)), () => time(() => table(head, small)));

const env = environment();
console.log(`table-speed: kernel ${env.kernel}, ${env.cpu.model}; ${repeats} interleaved repeats`);
console.log(`simulate text of ${stepCount} steps: median ${fmtNs(median(sim.a))}; a ${4 * rows}-row table: median ${fmtNs(median(scale.a))}`);
report({ title: `simulate output of ${stepCount} steps (observations made once)`, aName: 'text (observationsTable)', bName: 'JSON', a: sim.a, b: sim.b, target: 2 });
report({ title: `table(): ${4 * rows} rows against ${rows} (linear: 4, quadratic: 16)`, aName: `${4 * rows} rows`, bName: `${rows} rows`, a: scale.a, b: scale.b, target: 6 });
