// bench/region-rand: the userspace COW region's write fault against the kernel's, random
// order, lazy policy (the kernel's algorithm). Each repeat forks a populated region (warm frame
// pool after the warm-up) and stores one word per page into the fork, each store timed alone;
// the kernel side is fork-write's child doing the same stores after fork(). Interleaved over
// repeats. Metric: per-page p50 of each repeat; ratio of the medians. Target <= 2.0.
//
// usage: node bench/region-rand/run.mjs [--pages 16384] [--repeats 7]
import { arg, cowlab, interleave, report } from '../lib.mjs';

const pages = Number(arg('pages', '16384'));
const repeats = Number(arg('repeats', '7'));
const { createBenchRegion, regionWriteRun, forkWrite, pageOrder, parsePattern, summarize, environment } = await cowlab();

const env = environment();
console.log(`region-rand: ${pages} pages, random order, lazy, ${repeats} interleaved repeats; kernel ${env.kernel}, ${env.cpu.model} x ${env.cpu.count}`);
const order = pageOrder(parsePattern('rand', 1), pages);
const region = createBenchRegion(pages, 'lazy');
let result;
try {
  result = await interleave(
    { repeats, warmup: 2 },
    (i) => summarize(regionWriteRun(region, order, i).latencyNs).p50,
    async () => (await forkWrite({ pages, pattern: 'rand', seed: 1, repeats: 1, warmup: 0 })).runs[0].child.perPageNs.p50,
  );
} finally {
  region.close();
}
report({ title: 'per-page COW write fault, p50 (random order, lazy)', aName: 'region (userspace COW)', bName: 'kernel (fork child)', a: result.a, b: result.b, target: 2.0 });
