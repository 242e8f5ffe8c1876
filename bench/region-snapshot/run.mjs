// bench/region-snapshot: taking a snapshot of 1 GiB. Region: view.fork() of a region of
// 262,144 populated pages (its writable pages become read-only, every frame count +1, the new
// view is mapped read-only: no page is copied). Kernel: fork() of a plain C process holding
// 1 GiB of populated private anonymous memory (ref.c; page tables copied, pages shared).
// Each repeat builds a fresh 1 GiB on both sides, interleaved. Ratio of the medians (no target).
//
// usage: node bench/region-snapshot/run.mjs [--pages 262144] [--repeats 7]
import { arg, compileC, cowlab, interleave, report, runJson } from '../lib.mjs';

const pages = Number(arg('pages', '262144'));
const repeats = Number(arg('repeats', '7'));
const { CowRegion, environment } = await cowlab();
const ref = compileC('region-snapshot-ref', 'region-snapshot/ref.c');

const env = environment();
console.log(`region-snapshot: ${pages} pages (${(pages * 4096) / 2 ** 30} GiB), ${repeats} interleaved repeats; kernel ${env.kernel}, ${env.cpu.model} x ${env.cpu.count}`);
const { a, b } = await interleave(
  { repeats, warmup: 1 },
  () => {
    const region = CowRegion.create({ pages });
    try {
      return region.root.fork().forkNs;
    } finally {
      region.close();
    }
  },
  () => runJson(ref, [String(pages)]).forkNs,
);
report({ title: 'snapshot of 1 GiB', aName: 'region view.fork()', bName: 'kernel fork() (C process)', a, b });
