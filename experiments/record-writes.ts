/**
 * Experiment 27: `cowlab record` sees exactly what a process wrote. A real process (the kernel
 * engine's p0: a fork of cowlab running the native command loop) writes a known set of pages per
 * interval while `record` watches it from outside, by each method this kernel has:
 *
 *   soft-dirty  clear_refs 4 + pagemap bit 55: every interval the pages written in it
 *   fork        the process's own fork snapshot, pagemap bit 56: the pages first written since the fork
 *
 * The trace must hold, interval by interval, the set each method's definition gives from what the
 * process wrote (content, not counts); the process must pay what the method says (soft-dirty:
 * one minor fault per page per interval it writes; fork: one per page of the snapshot, the COW
 * itself). The cost of recording is measured at two resident sizes: the clear_refs write and the
 * pagemap reads per interval, per GiB resident.
 */
import { spawn } from 'node:child_process';

import { z } from 'zod';

import { privateAnonRegion, ProcessTree } from '../src/engines/kernel/tree.js';
import { CowlabError } from '../src/errors.js';
import { formatBytes } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import { selectPages } from '../src/trace/select.js';
import { writableAnonVmas } from '../src/watch/proc.js';
import { recordMeta, recordWrites, softDirtyAvailable, type RecordResult } from '../src/watch/record.js';

const METHODS = ['soft-dirty', 'fork'] as const;
type Method = (typeof METHODS)[number];
const DEADLINE_MS = 60_000;
const INTERVAL_MS = 200;
const MiB = 2 ** 20;

/**
 * The content cases, each on its own 256 pages of one 1024-page region, written in the same
 * intervals: the driver writes interval k's lists right after record's k-th read (and clear).
 */
const CASES = [
  { name: 'scattered', what: 'a few scattered pages, other ones each interval', writes: [[0, 3, 100, 255], [7, 8, 9, 200], [], [50]] },
  { name: 'rewrite', what: 'the same pages again in later intervals', writes: [[0, 1, 2], [0, 1, 2], [0, 1, 2, 3], []] },
  { name: 'run', what: 'a run of 64 pages, the next run in the next interval', writes: [range(32, 96), range(96, 160), [], []] },
  { name: 'twice', what: 'pages written twice within one interval', writes: [[5, 5, 6], [], [6, 7, 7], []] },
] as const;
const CASE_PAGES = 256;
const SIZES = { full: { costMiB: 64 }, quick: { costMiB: 32 } };

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_x, i) => a + i);
}

const IntervalSchema = z.object({
  /** Pages the process wrote (region pages, in order, repeats kept) and the minor faults of each store. */
  written: z.array(z.number().int()),
  faults: z.array(z.number().int()),
  /** Pages of the region the recorded trace writes in this interval. */
  recorded: z.array(z.number().int()),
});
const CostSchema = z.object({ residentBytes: z.number(), clearMs: z.number(), readMs: z.number(), intervals: z.number().int() });
/** soft-dirty: a process whose written buffer's VMA merges with a new mapping after a clear. */
const GrowSchema = z.object({
  /** Pages of the old buffer (written before the clear, not after) in the next interval's write set. */
  recordedInOld: z.number().int(),
  bufferPages: z.number().int(),
  /** Pages record said may be unwritten (RecordResult.wholeVma) in that interval. */
  flaggedPages: z.number().int(),
  merged: z.boolean(),
  note: z.string(),
});
type Grow = z.infer<typeof GrowSchema>;
const MethodRunSchema = z.object({
  method: z.enum(METHODS),
  grow: GrowSchema.nullish(),
  /** Why this method was not run here, else null. */
  notMeasured: z.string().nullable(),
  intervals: z.array(IntervalSchema),
  costs: z.array(CostSchema),
  note: z.string(),
});
const RawSchema = z.object({ kernel: z.string(), runs: z.array(MethodRunSchema) });
type Raw = z.infer<typeof RawSchema>;
type MethodRun = z.infer<typeof MethodRunSchema>;
type Interval = z.infer<typeof IntervalSchema>;

/** Interval k of the whole region: every case's writes, each case shifted to its own 256 pages. */
function regionWrites(k: number): number[] {
  return CASES.flatMap((c, i) => (c.writes[k] ?? []).map((p) => i * CASE_PAGES + p));
}
const WRITE_INTERVALS = Math.max(...CASES.map((c) => c.writes.length));

/** The pages of the region that `rec`'s trace writes after the fork, per interval (index = interval). */
function recordedPerInterval(rec: RecordResult, address: bigint, pages: number): number[][] {
  const meta = recordMeta(rec.trace)!;
  const out: number[][] = Array.from({ length: meta.intervals }, () => []);
  const forkAt = rec.trace.steps.findIndex((s) => s.op === 'fork');
  let w = 0;
  for (const st of rec.trace.steps.slice(forkAt + 1)) {
    const k = meta.stepInterval[w++]!;
    if (st.op !== 'write') continue;
    const region = rec.trace.regions.find((g) => g.id === st.region)!;
    const start = BigInt(meta.regionStart[region.id]!);
    const offset = Number((address - start) / 4096n);
    if (address < start || offset >= region.pages) continue;
    for (const p of selectPages(st.pages, region.pages)) if (p >= offset && p < offset + pages) out[k]!.push(p - offset);
  }
  return out;
}

/**
 * One recording of a fresh p0 by `method`: p0 maps `pages` pages and writes them all; record
 * starts (method fork: p0 forks c1, which holds the snapshot until the writes are done); after
 * record's k-th read p0 writes `writes(k)`. Returns what p0 wrote and what the trace says.
 */
async function recordOnce(ctx: RunContext, method: Method, pages: number, writes: (k: number) => number[], intervals: number): Promise<{ rec: RecordResult; intervals: Interval[] }> {
  const tree = new ProcessTree(
    {
      regions: [privateAnonRegion(pages)],
      parents: Int32Array.from([-1, 0]),
      capacity: Uint32Array.from([pages, 1]),
      execPath: '/bin/cat',
    },
    ['p0', 'c1'],
  );
  try {
    const started = await tree.start(DEADLINE_MS);
    const address = started.addresses[0]!;
    await tree.access(0, true, 0, Uint32Array.from(range(0, pages)), 1n << 40n, DEADLINE_MS);
    const done: { written: number[]; faults: number[] }[] = [];
    // The tree takes one command at a time: record may see the child before fork() returned.
    let forked: Promise<unknown> = Promise.resolve();
    const onInterval = async (k: number) => {
      ctx.signal.throwIfAborted();
      await forked;
      if (k < intervals) {
        const list = writes(k);
        const r = list.length ? await tree.access(0, true, 0, Uint32Array.from(list), BigInt(k + 2) << 40n, DEADLINE_MS) : null;
        done.push({ written: list, faults: r ? [...r.faults] : [] });
      } else if (method === 'fork' && k === intervals) await tree.exit(1, DEADLINE_MS); // the snapshot ends: record stops at its next interval
    };
    const recording = recordWrites({
      pid: started.pid,
      seconds: method === 'fork' ? 60 : Math.ceil(((intervals + 1) * INTERVAL_MS) / 1000),
      intervalMs: INTERVAL_MS,
      method,
      waitForkS: 30,
      signal: ctx.signal,
      onInterval,
    });
    // record takes its list of p0's children before its first wait: the fork is new to it.
    if (method === 'fork') forked = tree.fork(0, 1, DEADLINE_MS);
    await forked;
    const rec = await recording;
    const recorded = recordedPerInterval(rec, address, pages);
    // Interval k's writes happen after read k: the trace has them in interval k + 1.
    return { rec, intervals: done.map((d, k) => ({ ...d, recorded: recorded[k + 1] ?? [] })) };
  } finally {
    await tree.destroy(DEADLINE_MS);
  }
}

async function runMethod(ctx: RunContext, steps: Steps, method: Method, costPages: number): Promise<MethodRun> {
  if (method === 'soft-dirty' && !softDirtyAvailable()) {
    return { method, notMeasured: 'this kernel keeps no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY is off)', grow: null, intervals: [], costs: [], note: '' };
  }
  steps.next(`${method}: the content cases`);
  const content = await recordOnce(ctx, method, CASES.length * CASE_PAGES, regionWrites, WRITE_INTERVALS);
  // The cost at two sizes, both after the content cases (the first recording also warms up
  // cowlab's own code, which a TCG guest runs many times slower at first).
  const costs: z.infer<typeof CostSchema>[] = [];
  for (const pages of [CASES.length * CASE_PAGES, costPages]) {
    steps.next(`${method}: the cost at ${formatBytes(pages * 4096)} written`);
    const step = Math.max(1, Math.floor(pages / 200)); // 0.5 % of the pages per interval
    const r = await recordOnce(ctx, method, pages, (k) => range(0, pages).filter((p) => p % step === k % step), 4);
    costs.push(cost(r.rec));
  }
  const grow = method === 'soft-dirty' ? await growCase(ctx, steps) : null;
  return { method, notMeasured: null, grow, intervals: content.intervals, costs, note: content.rec.cost.note };
}

/**
 * A Node process (the soft-dirty kernel's own Node) writes a 4 MiB buffer; after record's first
 * clear it maps a second buffer, which the kernel places below the first and merges into its
 * VMA, and writes one page of the new one. None of the old buffer's pages is written after the
 * clear: every one in the next interval's write set is the kernel's whole-VMA soft-dirty mark.
 */
async function growCase(ctx: RunContext, steps: Steps): Promise<Grow> {
  steps.next('soft-dirty: a VMA that grows');
  const script = "const a=Buffer.alloc(4<<20,1);globalThis.a=a;process.stdout.write('ready\\n');process.stdin.on('data',()=>{const b=Buffer.alloc(4<<20);b[0]=1;globalThis.b=b;process.stdout.write('grown\\n');});";
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const said = async (word: string) => {
    for (let i = 0; !out.includes(word); i++) {
      if (i > 6000 || child.exitCode !== null) throw new CowlabError('ERR_NOT_MEASURABLE', `the Node child did not say '${word}'`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    await said('ready');
    const bufferBytes = (4 << 20) + 4096; // malloc's header page: glibc maps 4 MiB + 4 KiB
    const vmas = () => (writableAnonVmas(child.pid!) ?? []);
    const old = vmas().filter((v) => v.pages * 4096 === bufferBytes);
    if (old.length === 0) throw new CowlabError('ERR_NOT_MEASURABLE', "the Node child's 4 MiB buffer is not a VMA of its own");
    const buffer = old.at(-1)!; // the newest mapping is the lowest one
    const rec = await recordWrites({ pid: child.pid!, seconds: 1, intervalMs: INTERVAL_MS, method: 'soft-dirty', signal: ctx.signal, onInterval: async (k) => {
      if (k !== 0) return;
      child.stdin.write('grow\n');
      await said('grown');
    } });
    const merged = vmas().some((v) => v.start < buffer.start && v.end === buffer.end);
    const meta = recordMeta(rec.trace)!;
    const forkAt = rec.trace.steps.findIndex((st) => st.op === 'fork');
    let recordedInOld = 0;
    rec.trace.steps.slice(forkAt + 1).forEach((st, i) => {
      if (st.op !== 'write' || meta.stepInterval[i] !== 1) return;
      const g = rec.trace.regions.find((x) => x.id === st.region)!;
      const start = BigInt(meta.regionStart[g.id]!);
      for (const p of selectPages(st.pages, g.pages)) {
        const at = start + BigInt(p) * 4096n;
        if (at >= buffer.start && at < buffer.end) recordedInOld++;
      }
    });
    const flaggedPages = rec.wholeVma.filter((w) => w.interval === 1).reduce((n, w) => n + w.pages, 0);
    return { recordedInOld, bufferPages: buffer.pages, flaggedPages, merged, note: rec.notes.find((n) => n.includes('VM_SOFTDIRTY')) ?? '' };
  } finally {
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
}

function cost(rec: RecordResult): z.infer<typeof CostSchema> {
  const later = rec.intervals.slice(1); // interval 0 is the first clear or picture
  return { residentBytes: rec.residentPages * 4096, clearMs: median(later.map((i) => i.clearMs)), readMs: median(later.map((i) => i.readMs)), intervals: rec.intervals.length };
}

/** What the method's definition says the trace holds for interval k, and which stores fault. */
function expected(method: Method, intervals: Interval[], k: number): { pages: number[]; faults: number[] } {
  const before = new Set(method === 'fork' ? intervals.slice(0, k).flatMap((i) => i.written) : []);
  const seen = new Set<number>();
  const faults = intervals[k]!.written.map((p) => {
    const first = !seen.has(p) && !before.has(p);
    seen.add(p);
    return first ? 1 : 0;
  });
  return { pages: [...new Set(intervals[k]!.written.filter((p) => !before.has(p)))].sort((a, b) => a - b), faults };
}

const sameList = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Per case: intervals whose recorded set or faults differ from the method's definition. */
function problems(run: MethodRun): string[] {
  const out: string[] = [];
  run.intervals.forEach((iv, k) => {
    const e = expected(run.method, run.intervals, k);
    const got = [...iv.recorded].sort((a, b) => a - b);
    CASES.forEach((c, i) => {
      const lo = i * CASE_PAGES;
      const inCase = (p: number) => p >= lo && p < lo + CASE_PAGES;
      const want = e.pages.filter(inCase).map((p) => p - lo);
      const have = got.filter(inCase).map((p) => p - lo);
      if (!sameList(want, have)) out.push(`${run.method} ${c.name}, interval ${k + 1}: recorded [${have.join(',')}], written [${want.join(',')}]`);
    });
    if (!sameList(iv.faults, e.faults)) out.push(`${run.method} interval ${k + 1}: faults per store [${iv.faults.join(',')}], expected [${e.faults.join(',')}]`);
  });
  const g = run.grow;
  if (g && g.recordedInOld > g.flaggedPages) out.push(`${run.method} grow: ${g.recordedInOld} unwritten pages of the old buffer recorded as written, only ${g.flaggedPages} said to be unsure`);
  return out;
}

/** ms per GiB between the two resident sizes. */
function perGiB(run: MethodRun, pick: (c: z.infer<typeof CostSchema>) => number): number | null {
  const [a, b] = run.costs;
  if (!a || !b || b.residentBytes <= a.residentBytes) return null;
  return ((pick(b) - pick(a)) / (b.residentBytes - a.residentBytes)) * 2 ** 30;
}

/** A slope as text: a negative one means the two sizes' times are noise, not a cost per GiB. */
const slope = (v: number | null) => (v === null ? '?' : v < 0 ? 'no slope: noise' : v.toFixed(1));

function costFigure(run: MethodRun): string {
  const big = run.costs.at(-1)!;
  const clear = slope(perGiB(run, (c) => c.clearMs));
  const read = slope(perGiB(run, (c) => c.readMs));
  const at = `at ${formatBytes(big.residentBytes)} resident`;
  return run.method === 'soft-dirty'
    ? `clear_refs ${big.clearMs.toFixed(2)} ms, reads ${big.readMs.toFixed(2)} ms per interval ${at} (${clear} + ${read} ms/GiB)`
    : `reads ${big.readMs.toFixed(2)} ms per interval ${at} (${read} ms/GiB), no clear`;
}

const RULE =
  'Confirmed when, for each method this kernel has and each case, every interval of the recorded trace writes exactly the pages the method\'s definition gives from what the process wrote ' +
  '(soft-dirty: the pages written in that interval; fork: those first written since the fork), and each store took the minor faults the method says (one for a store the method records, none for a repeat); ' +
  'soft-dirty also sees a VMA merge with a new mapping: the kernel then marks the whole VMA soft-dirty, and every page record keeps there that the process did not write must be in the pages record says it is unsure of; ' +
  'refuted when a recorded set or a fault count differs, or record keeps unwritten pages without saying so. The fork method runs everywhere; soft-dirty only on kernels built with CONFIG_MEM_SOFT_DIRTY (not this host\'s 6.18: run it with --kernel debian:6.12).';

export default defineExperiment<Raw>({
  number: 27,
  name: 'record-writes',
  title: 'record sees exactly what a process wrote, and what that costs it',
  claim: "cowlab record's trace of a running process holds, interval by interval, exactly the pages it wrote (soft-dirty: each interval's; fork: each page's first write of the snapshot), at one minor fault per page and interval it writes (soft-dirty) or per page of the whole snapshot (fork: the COW fault itself). The time record takes per interval (pagemap reads, clear_refs) is measured, shown, not judged.",
  short: 'record sees exactly the pages written',
  rule: RULE,
  measures: `A fork of cowlab (the native command loop) maps ${CASES.length * CASE_PAGES} pages and writes them; \`record\` (${INTERVAL_MS} ms intervals) watches it by each method while it writes known pages after each of record's reads: ${CASES.map((c) => `${c.name} (${c.what})`).join('; ')}. Method fork: the process forks a child that holds the snapshot until the writes are done. The trace's write sets and the stores' minor faults are checked against the method's definition; the clear_refs and pagemap read times per interval are measured on two more recordings, of 4 MiB and 64 MiB (quick 32 MiB) written.`,
  requirements: { engines: ['kernel'], minMemoryBytes: 72 * MiB },
  budgetMs: { full: 20_000, quick: 12_000 },
  raw: RawSchema,
  async run(ctx) {
    const { costMiB } = sized(ctx, SIZES);
    const costPages = Math.floor(ctx.clamp(costMiB * MiB, 'the cost case\'s resident memory') / 4096);
    const raw: Raw = { kernel: ctx.env.kernel, runs: [] };
    const steps = new Steps(ctx, 3 * METHODS.length + 1);
    for (const m of METHODS) {
      raw.runs.push(await runMethod(ctx, steps, m, costPages));
      steps.keep(raw);
    }
    steps.finish();
    if (raw.runs.every((r) => r.notMeasured !== null)) throw new CowlabError('ERR_NOT_MEASURABLE', 'no method could record here');
    return raw;
  },
  verdict(raw) {
    const measured = raw.runs.filter((r) => r.notMeasured === null);
    const metrics: Metric[] = measured.flatMap((r) => {
      const big = r.costs.at(-1)!;
      return [
        { key: `${r.method}:read-ms`, label: `${r.method}: pagemap reads per interval at ${formatBytes(big.residentBytes)} resident`, unit: 'ns', value: pointBand(big.readMs * 1e6), timed: true },
        ...(r.method === 'soft-dirty' ? [{ key: 'soft-dirty:clear-ms', label: `soft-dirty: clear_refs per interval at ${formatBytes(big.residentBytes)} resident`, unit: 'ns', value: pointBand(big.clearMs * 1e6), timed: true }] : []),
        { key: `${r.method}:recorded-pages`, label: `${r.method}: pages recorded over the content cases`, unit: 'count', value: pointBand(r.intervals.reduce((n, i) => n + i.recorded.length, 0)) },
      ];
    });
    if (measured.length === 0) return { verdict: 'not-measurable', figure: 'no method ran', reason: 'Neither method could record here.', metrics };
    const bad = measured.flatMap(problems);
    const skipped = raw.runs.filter((r) => r.notMeasured !== null).map((r) => `${r.method} not measurable (${r.notMeasured})`);
    const growText = (g: Grow | null | undefined) => (g ? `; a VMA merged with a new mapping: ${g.recordedInOld} of its ${g.bufferPages} unwritten pages recorded, ${g.flaggedPages} of them said to be unsure` : '');
    const figure = measured.map((r) => `${r.method}: ${r.intervals.reduce((n, i) => n + i.recorded.length, 0)} pages in ${r.intervals.length} intervals ${problems(r).length ? 'NOT as written' : 'as written'}${growText(r.grow)}; ${costFigure(r)}`).join('; ') + (skipped.length ? `; ${skipped.join('; ')}` : '');
    const reason = bad.length
      ? `${bad.slice(0, 6).join('; ')}${bad.length > 6 ? `; and ${bad.length - 6} more` : ''}.`
      : `On ${raw.kernel}: ${measured.map((r) => `${r.method}: every interval of the ${CASES.length} cases recorded exactly the method's set, each store faulted as the method says (${r.intervals.reduce((n, i) => n + i.faults.reduce((a, b) => a + b, 0), 0)} faults for ${r.intervals.reduce((n, i) => n + i.written.length, 0)} stores)`).join('; ')}${skipped.length ? `; ${skipped.join('; ')}` : ''}.`;
    return { verdict: bad.length ? 'refuted' : 'confirmed', figure, reason, metrics };
  },
  present(raw) {
    const measured = raw.runs.filter((r) => r.notMeasured === null);
    const costs = measured.flatMap((r) => r.costs.map((c) => ({ r, c })));
    return {
      charts: [
        {
          kind: 'bar' as const,
          title: "Recording's cost per interval on the recorded process, by method and resident memory",
          categories: costs.map(({ r, c }) => `${r.method} ${formatBytes(c.residentBytes)}`),
          y: { label: 'time per interval', unit: 'ms' },
          series: [
            { name: 'clear_refs write (soft-dirty)', values: costs.map(({ c }) => c.clearMs) },
            { name: 'pagemap reads', values: costs.map(({ c }) => c.readMs) },
          ],
        },
      ],
      tables: [
        {
          title: 'Recorded against written, per method, case and interval',
          head: ['method', 'case', 'interval', 'written', 'recorded', 'faults per store', 'as the method says'],
          rows: [
            ...measured.flatMap((r) =>
              r.intervals.flatMap((iv, k) => {
                const e = expected(r.method, r.intervals, k);
                return CASES.map((c, i) => {
                  const lo = i * CASE_PAGES;
                  const pick = (ps: readonly number[]) => ps.map((p, j) => [p, j] as const).filter(([p]) => p >= lo && p < lo + CASE_PAGES);
                  const want = e.pages.filter((p) => p >= lo && p < lo + CASE_PAGES).map((p) => p - lo);
                  const have = [...iv.recorded].sort((a, b) => a - b).filter((p) => p >= lo && p < lo + CASE_PAGES).map((p) => p - lo);
                  const stores = pick(iv.written);
                  const ok = sameList(want, have) && stores.every(([, j]) => iv.faults[j] === e.faults[j]);
                  return [r.method, c.name, String(k + 1), short(stores.map(([p]) => p - lo)), short(have), stores.map(([, j]) => iv.faults[j]).join(',') || '-', ok ? 'yes' : `NO (expected [${short(want)}])`];
                });
              }),
            ),
            ...raw.runs.filter((r) => r.notMeasured !== null).map((r) => [r.method, 'all', '-', '-', '-', '-', `not measurable: ${r.notMeasured!}`]),
          ],
          note: 'Pages are numbered within each case\'s 256 pages. The writes of interval k happen right after record\'s k-th read (and clear), so the trace has them in interval k.',
        },
        {
          title: 'soft-dirty: a VMA that merges with a new mapping after a clear',
          head: ['method', 'old buffer pages', 'recorded in the next interval (none written)', 'said to be unsure', 'VMA merged', 'what record said'],
          rows: measured.filter((r) => r.grow).map((r) => [r.method, String(r.grow!.bufferPages), String(r.grow!.recordedInOld), String(r.grow!.flaggedPages), r.grow!.merged ? 'yes' : 'no', r.grow!.note || '-']),
          note: 'A Node process writes a 4 MiB buffer, then after record\'s clear maps another that the kernel merges into the first one\'s VMA. The kernel marks a new or expanded VMA soft-dirty as a whole (VM_SOFTDIRTY): pagemap shows all its pages written. record cannot tell which were, keeps them, and must say so.',
        },
        {
          title: 'Cost of recording on the recorded process',
          head: ['method', 'resident', 'clear_refs ms per interval', 'pagemap read ms per interval', 'per GiB resident'],
          rows: costs.map(({ r, c }) => [r.method, formatBytes(c.residentBytes), r.method === 'soft-dirty' ? c.clearMs.toFixed(3) : '-', c.readMs.toFixed(3), c === r.costs.at(-1) ? costFigure(r).replace(/^.*\(/, '').replace(/\).*$/, '') : '']),
          note: `${measured.map((r) => `${r.method}: ${r.note}`).join(' ')} Medians over the intervals after the first. In a TCG guest these times are emulated.`,
        },
      ],
    };
  },
});

/** A page list for a table cell: runs as a-b. */
function short(ps: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ps.length; ) {
    let j = i;
    while (j + 1 < ps.length && ps[j + 1] === ps[j]! + 1) j++;
    parts.push(j - i >= 2 ? `${ps[i]}-${ps[j]}` : ps.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return parts.join(',') || '-';
}
