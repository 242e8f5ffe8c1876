// bench/write-tracking: the region against its floor. The region's write fault (CowRegion:
// view.fork(), a store per page into the fork, its SIGSEGV handler copies and maps a frame)
// against the bare C of the same mechanism (native/track_signal.cc, remap: SIGSEGV + copy
// into a memfd frame + mmap(MAP_FIXED) over the page, armed the same way), over the same pages
// in the same random order, interleaved over repeats. Every run is content-checked (the
// written set, the live bytes, the snapshot's old bytes). Metric: per-store p50 of each
// repeat; ratio of the medians. Target <= 1.1 (the region's own code costs at most 10 %).
// The other mechanisms' figures: `cowlab run write-tracking` and `cowlab region-bench`.
//
// usage: node bench/write-tracking/run.mjs [--pages 16384] [--repeats 7] [--pattern rand]
import { arg, interleave, cowlab, report } from '../lib.mjs';

const pages = Number(arg('pages', '16384'));
const repeats = Number(arg('repeats', '7'));
const pattern = arg('pattern', 'rand');
const { WriteTracker, summarize, environment } = await cowlab();

const env = environment();
console.log(`write-tracking: ${pages} pages, ${pattern} order, ${repeats} interleaved repeats; kernel ${env.kernel}, ${env.cpu.model} x ${env.cpu.count}`);
const tracker = WriteTracker.create({ pages, pattern });
let result;
try {
  result = await interleave(
    { repeats, warmup: 2 },
    async () => summarize((await tracker.run('region')).latencyNs).p50,
    async () => summarize((await tracker.run('sigsegv-remap')).latencyNs).p50,
  );
} finally {
  tracker.close();
}
report({ title: `per-store write fault, p50 (${pattern} order): the region against its mechanism in bare C`, aName: 'region (CowRegion)', bName: 'bare SIGSEGV + copy + mmap', a: result.a, b: result.b, target: 1.1 });
