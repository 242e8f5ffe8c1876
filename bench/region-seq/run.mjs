// bench/region-seq: sequential writes after a snapshot, with fault-around: one SIGSEGV and
// one mmap copy up to K+1 adjacent pages into adjacent frames. Metric: amortized per-page cost
// = sum of the store times / pages written (most stores do not fault), one figure per repeat;
// the kernel side (fork-write's child, one COW fault per page) with the same definition, its
// fork() excluded (it forks all of Node). Ratio of the medians. Target <= 0.5.
//
// usage: node bench/region-seq/run.mjs [--pages 16384] [--policy faultAround:16] [--repeats 7]
import { arg, cowlab, interleave, report } from '../lib.mjs';

const pages = Number(arg('pages', '16384'));
const policy = arg('policy', 'faultAround:16');
const repeats = Number(arg('repeats', '7'));
const { createBenchRegion, regionWriteRun, forkWrite, pageOrder, parsePattern, environment } = await cowlab();

const sum = (xs) => xs.reduce((s, x) => s + x, 0);
const env = environment();
console.log(`region-seq: ${pages} pages, sequential, ${policy}, ${repeats} interleaved repeats; kernel ${env.kernel}, ${env.cpu.model} x ${env.cpu.count}`);
const order = pageOrder(parsePattern('seq'), pages);
const region = createBenchRegion(pages, policy);
let result;
try {
  result = await interleave(
    { repeats, warmup: 2 },
    (i) => {
      const run = regionWriteRun(region, order, i);
      return (sum(run.latencyNs) + (policy === 'eager' ? run.snapshotNs : 0)) / pages;
    },
    async () => sum((await forkWrite({ pages, pattern: 'seq', repeats: 1, warmup: 0 })).runs[0].child.latencyNs) / pages,
  );
} finally {
  region.close();
}
report({ title: 'amortized per-page cost of sequential writes after a snapshot', aName: `region (${policy})`, bName: 'kernel (fork child)', a: result.a, b: result.b, target: 0.5 });
