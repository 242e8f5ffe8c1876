// bench/fidelity: does Node around the measurement change it? cowlab's forkWrite (a trace on
// the kernel engine, p0 the Node process itself) against a plain C program (ref.c) doing the
// same fork-then-write measurement, interleaved over repeats. Metric: the child's per-page COW fault p50. Target: ratio <= 1.05.
//
// usage: node bench/fidelity/run.mjs [--pages 4096] [--pattern seq|rand] [--repeats 15]
import { arg, compileC, cowlab, interleave, report, runJson } from '../lib.mjs';

const pages = Number(arg('pages', '4096'));
const pattern = arg('pattern', 'seq');
const repeats = Number(arg('repeats', '15'));
const { forkWrite, environment } = await cowlab();
const ref = compileC('fidelity-ref', 'fidelity/ref.c');

const env = environment();
console.log(`fidelity: ${pages} pages, pattern ${pattern}, ${repeats} interleaved repeats; kernel ${env.kernel}, ${env.cpu.model}`);
const { a, b } = await interleave(
  { repeats, warmup: 3 },
  async () => (await forkWrite({ pages, pattern, repeats: 1, warmup: 0 })).runs[0].child.perPageNs.p50,
  () => runJson(ref, [String(pages), pattern, '1']).p50,
);
report({ title: 'child per-page COW fault, p50', aName: 'cowlab (Node + addon)', bName: 'plain C reference', a, b, target: 1.05 });
