/**
 * Experiment 9: the xv6 "copyout" case, in the kernel and in the userspace region.
 * Kernel half: when a syscall writes into a page that is COW-shared after fork (read(2) into a
 * buffer), the kernel breaks COW itself: the read succeeds and the reader gets its own copy,
 * the other process keeps its frame. Region half: in a cowlab CowRegion the same read(2) into
 * a COW page of a view fails with EFAULT (the kernel raises no SIGSEGV for its own writes, so
 * the region's handler never sees it); copyoutError() says why, and after
 * view.prepareWrite(start, end) the read succeeds with the right bytes while the snapshot
 * keeps the old ones.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { z } from 'zod';

import { CowlabError } from '../src/errors.js';
import { forkWrite, type ForkWriteResult } from '../src/forkwrite/forkWrite.js';
import { copyoutError, CowRegion } from '../src/region/region.js';
import type { ChartSpec } from '../src/report/chart.js';
import { formatCount, formatNs } from '../src/report/format.js';
import { summarize } from '../src/stats/summary.js';
import { bandOf, toUs } from '../src/suite/measure.js';
import { formatBand } from '../src/suite/present.js';
import { sized, Steps } from '../src/suite/steps.js';
import { describeDisagreements, predictForkWrites, predictionTable, PredictionSchema } from '../src/suite/predict.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import { mulberry32 } from '../src/util/prng.js';

const PAGES = { full: 4096, quick: 1024 };
const RUNS = { full: { warmup: 1, repeats: 3 }, quick: { warmup: 1, repeats: 2 } };
const RULE =
  'Confirmed when, in the kernel, every read(2) into a COW-shared page succeeds with the right bytes and the reader ends up with its own copy of each page ' +
  '(its PFN changed and the other process kept the old frame; without root: the page became exclusive in the reader), and, in the userspace region, every read(2) into a COW page ' +
  'fails with EFAULT (turned into ERR_COW_EFAULT, whose message names prepareWrite) and succeeds after view.prepareWrite with the right bytes, one copy per page, the snapshot unchanged; refuted otherwise.';
/** What the region's EFAULT message must point to. */
const HINT = /prepareWrite/;

const RunSchema = z.object({
  warmup: z.boolean(),
  written: z.number().int(),
  faults: z.number(),
  /** Written pages whose PFN changed in the child (null without PFNs). */
  pfnChanged: z.number().nullable(),
  /** Of those, pages whose PFN the parent kept (null without PFNs). */
  pfnKeptInOther: z.number().nullable(),
  exclusiveAfter: z.number(),
  p50Ns: z.number(),
  p99Ns: z.number(),
});

const RegionRunSchema = z.object({
  warmup: z.boolean(),
  pages: z.number().int(),
  /** First read(2) into each COW page: failed with EFAULT. */
  efaults: z.number().int(),
  /** Of those, turned by copyoutError() into ERR_COW_EFAULT naming prepareWrite. */
  explained: z.number().int(),
  /** After prepareWrite: reads that returned all 8 bytes, and whose bytes were right. */
  readsOk: z.number().int(),
  contentOk: z.number().int(),
  /** Pages whose snapshot (the other view) still holds the old value. */
  snapshotKept: z.number().int(),
  /** Region counters over the run: copies made, SIGSEGVs handled (prepareWrite takes none). */
  copies: z.number().int(),
  handlerFaults: z.number().int(),
  /** Per page, timed from JS: prepareWrite of the page, the read(2) after it, both. */
  prepareP50Ns: z.number(),
  readP50Ns: z.number(),
  totalP50Ns: z.number(),
  totalP99Ns: z.number(),
});

const RawSchema = z.object({
  pages: z.number().int(),
  pfnVisible: z.boolean(),
  /** The child's pages written by the kernel: pread(2) of 8 bytes into each. Every value was
   *  read back in the child and checked (a mismatch fails the run). */
  read: z.array(RunSchema),
  /** The same pages written by CPU stores, for comparison. */
  store: z.array(RunSchema),
  /** The userspace region: read(2) into COW pages of a CowView, before and after prepareWrite.
   *  (Empty in results recorded before the region half existed.) */
  region: z.array(RegionRunSchema).default([]),
  /** The ERR_COW_EFAULT message the first failed read got. */
  regionMessage: z.string().nullable().default(null),
  /** The simulator's run of the kernel half's traces (absent in results written before). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;

function runs(r: ForkWriteResult) {
  return r.runs.map((x) => ({
    warmup: x.warmup,
    written: x.child!.written,
    faults: x.child!.faults,
    pfnChanged: x.verify.pfnChangedInWriter,
    pfnKeptInOther: x.verify.pfnKeptInOther,
    exclusiveAfter: x.verify.exclusiveAfterWrite,
    p50Ns: x.child!.perPageNs!.p50,
    p99Ns: x.child!.perPageNs!.p99,
  }));
}

const VALUE_BASE = 0x5eed_0000_0000n;
const SNAPSHOT_BASE = 0x01d0_0000_0000n;

/**
 * One region run: a root view whose pages hold SNAPSHOT_BASE + page is forked (the snapshot);
 * then, page by page in random order, read(2) of 8 bytes from `fd` (VALUE_BASE + page at
 * offset page * 8) into the root's COW page, which fails with EFAULT; prepareWrite(page);
 * the read again, which succeeds; the bytes are checked in both views.
 */
function regionRun(pages: number, fd: number, warmup: boolean, seed: number): { run: z.infer<typeof RegionRunSchema>; message: string | null } {
  const region = CowRegion.create({ pages, populate: 'write' });
  try {
    const root = region.root;
    const ps = root.bytes / pages;
    const words = new BigUint64Array(root.buffer);
    for (let p = 0; p < pages; p++) words[(p * ps) / 8] = SNAPSHOT_BASE + BigInt(p);
    const snap = root.fork();
    const before = region.stats();
    const rnd = mulberry32(seed);
    const order = Array.from({ length: pages }, (_, i) => i);
    for (let i = pages - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const prepareNs: number[] = [];
    const readNs: number[] = [];
    const totalNs: number[] = [];
    let efaults = 0;
    let explained = 0;
    let readsOk = 0;
    let message: string | null = null;
    for (const p of order) {
      const into = new Uint8Array(root.buffer, p * ps, 8);
      try {
        readSync(fd, into, 0, 8, p * 8);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EFAULT') efaults++;
        const e = copyoutError(err);
        if (e instanceof CowlabError && e.code === 'ERR_COW_EFAULT' && HINT.test(e.message)) {
          explained++;
          message ??= e.message;
        }
      }
      const t0 = process.hrtime.bigint();
      root.prepareWrite(p, p + 1);
      const t1 = process.hrtime.bigint();
      if (readSync(fd, into, 0, 8, p * 8) === 8) readsOk++;
      const t2 = process.hrtime.bigint();
      prepareNs.push(Number(t1 - t0));
      readNs.push(Number(t2 - t1));
      totalNs.push(Number(t2 - t0));
    }
    const after = region.stats();
    const snapWords = new BigUint64Array(snap.buffer);
    let contentOk = 0;
    let snapshotKept = 0;
    for (let p = 0; p < pages; p++) {
      if (words[(p * ps) / 8] === VALUE_BASE + BigInt(p)) contentOk++;
      if (snapWords[(p * ps) / 8] === SNAPSHOT_BASE + BigInt(p)) snapshotKept++;
    }
    const total = summarize(totalNs)!;
    return {
      run: {
        warmup,
        pages,
        efaults,
        explained,
        readsOk,
        contentOk,
        snapshotKept,
        copies: after.copies - before.copies,
        handlerFaults: after.faults - before.faults,
        prepareP50Ns: summarize(prepareNs)!.p50,
        readP50Ns: summarize(readNs)!.p50,
        totalP50Ns: total.p50,
        totalP99Ns: total.p99,
      },
      message,
    };
  } finally {
    region.close();
  }
}

/** The region half: warm-up and measured runs, reading from a temporary file of 8-byte values. */
function regionRuns(pages: number, { warmup, repeats }: { warmup: number; repeats: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'cowlab-copyout-'));
  const file = join(dir, 'values');
  const values = new BigUint64Array(pages);
  for (let p = 0; p < pages; p++) values[p] = VALUE_BASE + BigInt(p);
  writeFileSync(file, new Uint8Array(values.buffer));
  const fd = openSync(file, 'r');
  try {
    const out = Array.from({ length: warmup + repeats }, (_, i) => regionRun(pages, fd, i < warmup, 9 + i));
    return { runs: out.map((o) => o.run), message: out.find((o) => o.message !== null)?.message ?? null };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function run(ctx: RunContext): Promise<Raw> {
  const pages = sized(ctx, PAGES);
  const counts = sized(ctx, RUNS);
  const steps = new Steps(ctx, 3);
  steps.next('read(2) into COW pages');
  const read = await forkWrite({ pages, pattern: 'rand', childAccess: 'read', ...counts });
  const raw: Raw = { pages, pfnVisible: read.pfnVisible, read: runs(read), store: [], region: [], regionMessage: null };
  steps.keep(raw);
  steps.next('stores into COW pages');
  const store = await forkWrite({ pages, pattern: 'rand', ...counts });
  raw.store = runs(store);
  raw.predicted = await predictForkWrites(ctx.env, [
    { result: read, key: 'read', label: 'read(2) into COW pages' },
    { result: store, key: 'store', label: 'stores into COW pages' },
  ]);
  steps.keep(raw);
  steps.next('read(2) into a COW region view');
  const region = regionRuns(pages, counts);
  raw.region = region.runs;
  raw.regionMessage = region.message;
  return raw;
}

/** What the region half got wrong, or why it is missing. */
function regionProblems(raw: Raw): string[] {
  const p: string[] = [];
  for (const r of raw.region.filter((x) => !x.warmup)) {
    if (r.efaults !== r.pages) p.push(`region: ${r.efaults} of ${r.pages} reads into COW pages failed with EFAULT`);
    if (r.explained !== r.efaults) p.push(`region: ${r.explained} of ${r.efaults} EFAULTs explained (ERR_COW_EFAULT naming prepareWrite)`);
    if (r.readsOk !== r.pages || r.contentOk !== r.pages) p.push(`region: after prepareWrite ${r.readsOk} reads succeeded, ${r.contentOk} with the right bytes, of ${r.pages}`);
    if (r.snapshotKept !== r.pages) p.push(`region: the snapshot kept ${r.snapshotKept} of ${r.pages} pages`);
    if (r.copies !== r.pages) p.push(`region: ${r.copies} copies for ${r.pages} pages`);
  }
  return p;
}

function verdict(raw: Raw) {
  const read = raw.read.filter((r) => !r.warmup);
  const store = raw.store.filter((r) => !r.warmup);
  const readP50 = bandOf(read.map((r) => r.p50Ns));
  const storeP50 = bandOf(store.map((r) => r.p50Ns));
  const metrics: Metric[] = [
    { key: 'read-p50', label: 'read(2) of 8 bytes into a COW page, p50', unit: 'ns', value: readP50 },
    { key: 'store-p50', label: 'store into a COW page, p50', unit: 'ns', value: storeP50 },
  ];
  const region = raw.region.filter((r) => !r.warmup);
  const regionTotal = bandOf(region.map((r) => r.totalP50Ns));
  if (region.length) metrics.push({ key: 'region-prepare-read-p50', label: 'region: prepareWrite + read(2) of a COW page, p50', unit: 'ns', value: regionTotal });
  const last = read.at(-1);
  if (!last) return { verdict: 'not-measurable' as const, figure: 'no measured run', reason: 'Only the warm-up run of the kernel half was recorded.', metrics };
  const problems: string[] = [];
  for (const r of read) {
    const copied = r.pfnChanged ?? r.exclusiveAfter;
    if (copied !== r.written) problems.push(`${copied} of ${r.written} pages ${r.pfnChanged === null ? 'became exclusive' : 'got a new frame'} in the reader`);
    if (r.pfnKeptInOther !== null && r.pfnKeptInOther !== r.written) problems.push(`the other process kept only ${r.pfnKeptInOther} of ${r.written} frames`);
  }
  problems.push(...regionProblems(raw));
  const copies = last.pfnChanged ?? last.exclusiveAfter;
  const kept = last.pfnKeptInOther === null ? 'PFNs hidden (not root)' : `the parent kept ${formatCount(last.pfnKeptInOther)} frames`;
  const r = region.at(-1);
  const regionFigure = r
    ? `; region: ${formatCount(r.efaults)} of ${formatCount(r.pages)} reads into COW pages failed with EFAULT, all succeeded after prepareWrite (${formatNs(regionTotal.median)} per page)`
    : '; region half not measured in this recording';
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure: `kernel: read(2) into ${formatCount(last.written)} COW pages all succeeded, ${formatCount(copies)} copied in the reader, ${kept}; ${formatNs(readP50.median)} per read vs ${formatNs(storeP50.median)} per store${regionFigure}`,
    reason:
      `${problems.length === 0 ? `Held in all ${read.length} measured kernel runs${region.length ? ` and ${region.length} region runs` : ''}.` : `Not so here: ${[...new Set(problems)].join('; ')}.`}` +
      (r ? ` Region: ${formatCount(r.copies)} copies, ${formatCount(r.handlerFaults)} SIGSEGVs (the kernel raised none for read(2)), snapshot kept ${formatCount(r.snapshotKept)} pages; prepareWrite ${formatNs(r.prepareP50Ns)}, read(2) after it ${formatNs(r.readP50Ns)} (p50, timed from JS). Error: ${raw.regionMessage ?? 'none'}` : '') +
      describeDisagreements(raw.predicted),
    metrics,
  };
}

function present(raw: Raw) {
  const kernelSides = [
    { name: 'read(2) into the page (kernel copyout)', runs: raw.read },
    { name: 'CPU store into the page', runs: raw.store },
  ];
  const sides = [
    ...kernelSides,
    ...(raw.region.length ? [{ name: 'region: prepareWrite + read(2)', runs: raw.region.map((r) => ({ warmup: r.warmup, p50Ns: r.totalP50Ns, p99Ns: r.totalP99Ns })) }] : []),
  ];
  const warm = (rs: { warmup: boolean; p50Ns: number; p99Ns: number }[], k: 'p50Ns' | 'p99Ns') => bandOf(rs.filter((r) => !r.warmup).map((r) => r[k]));
  const charts: ChartSpec[] = [
    {
      kind: 'bar',
      title: `Breaking COW for a write: the kernel's read(2), a CPU store, and the region's prepareWrite before read(2), ${formatCount(raw.pages)} random pages`,
      categories: sides.map((s) => s.name),
      y: { label: 'latency per page', unit: 'µs', scale: 'log' },
      series: [
        { name: 'cold p50', values: sides.map((s) => toUs(s.runs[0]?.p50Ns ?? Number.NaN)) },
        { name: 'warm p50 (min-max)', values: sides.map((s) => toUs(warm(s.runs, 'p50Ns').median)), lo: sides.map((s) => toUs(warm(s.runs, 'p50Ns').min)), hi: sides.map((s) => toUs(warm(s.runs, 'p50Ns').max)) },
        { name: 'warm p99', values: sides.map((s) => toUs(warm(s.runs, 'p99Ns').median)) },
      ],
    },
  ];
  const lastRegion = raw.region.filter((r) => !r.warmup).at(-1) ?? raw.region.at(-1);
  const lastRead = raw.read.filter((r) => !r.warmup).at(-1) ?? raw.read.at(-1);
  if (lastRegion && lastRead) {
    charts.push({
      kind: 'bar',
      title: 'read(2) into a COW page: succeeded or EFAULT (last measured run of each)',
      categories: ['kernel: read(2) after fork', 'region: read(2) before prepareWrite', 'region: read(2) after prepareWrite'],
      y: { label: 'reads', unit: 'pages' },
      series: [
        { name: 'succeeded with the right bytes', values: [lastRead.written, lastRegion.pages - lastRegion.efaults, lastRegion.contentOk] },
        { name: 'failed with EFAULT', values: [0, lastRegion.efaults, lastRegion.pages - lastRegion.readsOk] },
      ],
    });
  }
  return {
    charts,
    tables: [
      {
        title: 'Per run: what the page tables say',
        head: ['how', 'run', 'pages', 'faults', raw.pfnVisible ? 'PFN changed in reader' : 'exclusive after', 'PFN kept in parent', 'p50', 'p99'],
        rows: kernelSides.flatMap((s) =>
          s.runs.map((r, i) => [
            s.name,
            r.warmup ? `${i + 1} (cold)` : String(i + 1),
            formatCount(r.written),
            formatCount(r.faults),
            formatCount(r.pfnChanged ?? r.exclusiveAfter),
            r.pfnKeptInOther === null ? 'n/a' : formatCount(r.pfnKeptInOther),
            formatNs(r.p50Ns),
            formatNs(r.p99Ns),
          ]),
        ),
        note: 'Each read(2) is a pread of 8 bytes from a memfd into the first bytes of the page; the bytes were read back in the child and checked.',
      },
      {
        title: 'The userspace region: read(2) into a COW page of a CowView',
        head: ['run', 'pages', 'EFAULT', 'explained (ERR_COW_EFAULT)', 'read after prepareWrite', 'right bytes', 'snapshot kept', 'copies', 'SIGSEGVs', 'prepareWrite p50', 'read p50', 'both p50'],
        rows: raw.region.map((r, i) => [
          r.warmup ? `${i + 1} (cold)` : String(i + 1),
          formatCount(r.pages),
          formatCount(r.efaults),
          formatCount(r.explained),
          formatCount(r.readsOk),
          formatCount(r.contentOk),
          formatCount(r.snapshotKept),
          formatCount(r.copies),
          formatCount(r.handlerFaults),
          formatNs(r.prepareP50Ns),
          formatNs(r.readP50Ns),
          formatNs(r.totalP50Ns),
        ]),
        note: `A region of ${formatCount(raw.pages)} pages is written and forked (the snapshot); then, page by page in random order: fs.readSync of 8 bytes from a file into the page (fails: EFAULT), view.prepareWrite(page, page + 1), the same read again. Timed from JS with process.hrtime. The error cowlab gives for the EFAULT: ${raw.regionMessage ?? '(none recorded)'}`,
      },
      { title: 'Warm medians', head: ['how', 'p50 (min–max)'], rows: sides.map((s) => [s.name, formatBand(warm(s.runs, 'p50Ns'))]) },
      ...(raw.predicted ? [predictionTable(raw.predicted, 'Kernel half, measured against predicted')] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 9,
  name: 'copyout',
  title: 'Copyout: the kernel writes into a COW page',
  claim:
    'A syscall that writes into a COW-shared page (read(2) into a buffer after fork) succeeds in the kernel, which breaks COW itself (the reader gets a private copy, the other process keeps its frame); into a userspace COW region the same read fails with EFAULT until the region is told (prepareWrite).',
  short: 'read(2) into COW: kernel copies; region: EFAULT',
  measures:
    "Kernel: after a real fork the child fills its pages with pread(2) from a memfd instead of stores; pagemap before and after (PFN, exclusive bit) in both processes, minor faults, per-read latency, content read back; the same pages written by stores for comparison. Region: fs.readSync into each COW page of a forked CowView (EFAULT, the error cowlab gives for it), then view.prepareWrite and the read again: bytes in both views, copies, SIGSEGVs, time.",
  requirements: { minMemoryBytes: 8 * 2 ** 20 },
  rule: RULE,
  budgetMs: { full: 6_000, quick: 3_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
