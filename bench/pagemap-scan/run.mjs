// bench/pagemap-scan: inspecting a populated 1 GiB region (262,144 pages) through cowlab
// (readPagemap + kpagecount + kpageflags, decoded into typed arrays) against a plain C
// program making the same reads of the same pages (ref.c), interleaved. Target: <= 1.2.
// Needs root (PFNs and /proc/kpage*).
//
// usage: node bench/pagemap-scan/run.mjs [--pages 262144] [--repeats 11]
import { arg, compileC, cowlab, interleave, report, runJson } from '../lib.mjs';

const pages = Number(arg('pages', '262144'));
const repeats = Number(arg('repeats', '11'));
const { Mapping, readPagemap, readKpageCounts, readKpageFlags, pfnAccess } = await cowlab();
const access = pfnAccess();
if (!access.pfnVisible || !access.kpagecount) {
  console.log(`pagemap-scan: not measurable here: ${access.pfnReason ?? access.kpagecountReason}`);
  process.exit(0);
}
const ref = compileC('pagemap-scan-ref', 'pagemap-scan/ref.c');
const m = Mapping.create({ pages, thp: 'never' });
m.touch('write');

function scan() {
  const t0 = process.hrtime.bigint();
  const pm = readPagemap(0, m.address, pages);
  let n = 0;
  for (let i = 0; i < pm.length; i++) n += pm.present[i];
  const pfns = new Float64Array(n);
  for (let i = 0, j = 0; i < pm.length; i++) if (pm.present[i]) pfns[j++] = pm.pfn[i];
  readKpageCounts(pfns);
  readKpageFlags(pfns);
  return Number(process.hrtime.bigint() - t0);
}

console.log(`pagemap-scan: ${pages} pages (${(pages * 4096) / 2 ** 30} GiB) populated, ${repeats} interleaved repeats`);
const { a, b } = await interleave(
  { repeats, warmup: 2 },
  () => scan(),
  () => runJson(ref, [String(process.pid), `0x${m.address.toString(16)}`, String(pages)]).ns,
);
m.unmap();
report({ title: 'decode pagemap + kpagecount + kpageflags of the region', aName: 'cowlab (Node + addon)', bName: 'plain C loop', a, b, target: 1.2 });
