/**
 * Experiment 5: the shared zero page. A load from never-touched private anonymous memory maps
 * the kernel's one read-only zero page (for a THP region, the huge zero page): every page read
 * is present, mapped to the zero page, never exclusive, and the region holds no frame of its
 * own. The first store to such a page allocates a fresh zeroed frame: a zero fill, not a copy.
 * Run on the kernel engine; as root, the PFNs and /proc/kpageflags (bit 24, ZERO_PAGE) show it
 * is one frame; without root, PAGEMAP_SCAN still reports the zero-page mappings.
 */
import { z } from 'zod';

import type { KernelRunDetailed } from '../src/engines/kernel/engine.js';
import { pfnAccess } from '../src/pagemap/access.js';
import { KPF, readKpageFlags } from '../src/pagemap/pagemap.js';
import { formatCount, formatNs } from '../src/report/format.js';
import { pointBand, toUs } from '../src/suite/measure.js';
import { createEngine } from '../src/suite/engines.js';
import { sized, Steps } from '../src/suite/steps.js';
import { describeDisagreements, predictionTable, PredictionSchema, profileName, simulate, type PredictedCount } from '../src/suite/predict.js';
import type { TraceObservations } from '../src/engines/types.js';
import { accessP50, buildTrace, countOnes, distinctPfns, kernelEngine, regionSpec, stepEvents } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const PAGES = { full: 16384, quick: 4096 };
const HUGE_PAGES = { full: 8, quick: 4 };
const RULE =
  'Confirmed when, after one load per page of untouched memory, every page is present, maps the zero page and is not exclusive, the region holds no frame of its own ' +
  '(as root: all its pages map one PFN, a 4 KiB zero page, or the 512 of one huge zero page, with kpageflags ZERO_PAGE), and the stores that follow are one zero fill each ' +
  '(a fresh frame per page, or, for the huge zero page, as many as the simulator predicts for this kernel: one per huge page since 6.13, which allocates a huge page, one per 4 KiB store before, which splits the PMD; no copy), ' +
  'after which no page maps the zero page; refuted otherwise. ' +
  'Not measurable when the kernel engine cannot tell zero-page mappings here (no PAGEMAP_SCAN, Linux < 6.7, and not root).';

const PhaseSchema = z.object({
  faults: z.number().int(),
  zeroFills: z.number().int(),
  copies: z.number().int(),
  present: z.number().int(),
  /** Pages mapping the zero page; null when the kernel engine cannot tell here. */
  zeroPage: z.number().int().nullable(),
  exclusive: z.number().int(),
  /** Distinct frames the process maps, the zero page excluded (null without root). */
  frames: z.number().int().nullable(),
  /** Distinct PFNs among the region's present pages, the zero page included (null without root). */
  distinctPfns: z.number().int().nullable(),
  /** Of those, how many kpageflags marks ZERO_PAGE (null without root). */
  zeroFlagged: z.number().int().nullable(),
  p50Ns: z.number(),
  timeNs: z.number(),
});

const VariantSchema = z.object({
  name: z.string(),
  thp: z.boolean(),
  pages: z.number().int(),
  /** Pages per fault-able unit: 1, or 512 for a huge page. */
  unitPages: z.number().int(),
  read: PhaseSchema,
  write: PhaseSchema,
  /** The simulator's zero fills for the writes, with the profile of the kernel that ran (absent
   *  in older results: then one per unit). */
  predictedWriteZeroFills: z.number().int().optional(),
});

const RawSchema = z.object({
  pfnVisible: z.boolean(),
  /** Why zero-page mappings cannot be identified here (null: they can). */
  zeroUnavailable: z.string().nullable(),
  variants: z.array(VariantSchema),
  /** The simulator's counts for the same traces beside the measured ones, per variant (absent in older results). */
  predicted: PredictionSchema.optional(),
});
type Raw = z.infer<typeof RawSchema>;
type Phase = z.infer<typeof PhaseSchema>;

function phase(r: KernelRunDetailed, step: number): Phase {
  const obs = r.observations;
  const o = obs.steps[step + 1]!;
  const page = o.processes.p0!.z!;
  const e = stepEvents(obs, step, 'z');
  const entries = r.details[step + 1]!.pagemap.p0!.z!;
  const pfnVisible = obs.unavailable.frames === undefined;
  let distinct: number | null = null;
  let zeroFlagged: number | null = null;
  if (pfnVisible) {
    const pfns = distinctPfns(entries);
    distinct = pfns.size;
    if (pfnAccess().kpageflags && pfns.size > 0) {
      const list = Float64Array.from(pfns);
      const flags = readKpageFlags(list);
      zeroFlagged = list.filter((_, i) => flags.has(i, KPF.ZERO_PAGE)).length;
    }
  }
  return {
    faults: e.faults,
    zeroFills: e.zeroFills,
    copies: e.copies,
    present: countOnes(page.present)!,
    zeroPage: countOnes(page.zeroPage),
    exclusive: countOnes(page.exclusive) ?? 0,
    frames: o.frames.z ?? null,
    distinctPfns: distinct,
    zeroFlagged,
    p50Ns: accessP50(r.details[step + 1]!.access[0]),
    timeNs: o.timeNs ?? 0,
  };
}

async function measure(name: string, pages: number, thp: boolean, unitPages: number) {
  const trace = buildTrace(
    `zero-page-${thp ? 'thp' : '4k'}`,
    'p0 reads every page of an untouched region, then writes every page.',
    [regionSpec({ id: 'z', pages, thp, populate: 'none' })],
    [
      { op: 'read', proc: 'p0', region: 'z', pages: { start: 0, end: pages } },
      { op: 'write', proc: 'p0', region: 'z', pages: { start: 0, end: pages } },
    ],
  );
  const r = await kernelEngine().runDetailed(trace);
  const sim = (await simulate(trace)) ?? (await createEngine('sim').run(trace));
  const variant = { name, thp, pages, unitPages, read: phase(r, 0), write: phase(r, 1), predictedWriteZeroFills: stepEvents(sim, 1, 'z').zeroFills };
  return { variant, predicted: predictedCounts(variant, sim), zeroUnavailable: r.observations.unavailable.zeroPage ?? null };
}

/** The claim's counts of one variant, measured beside the simulator's for the same trace. */
function predictedCounts(v: Raw['variants'][number], sim: TraceObservations): PredictedCount[] {
  const out: PredictedCount[] = [];
  for (const [i, k] of [[0, 'read'], [1, 'write']] as const) {
    const o = sim.steps[i + 1]!;
    const e = o.events.z!;
    const bits = o.processes.p0!.z!;
    const m = v[k];
    const c = (key: string, text: string, measured: number | null, predicted: number | null | undefined) =>
      out.push({ key: `${v.thp ? 'thp' : '4k'}.${k}.${key}`, what: `${v.name}, after the ${k}s: ${text}`, measured, predicted: predicted ?? null });
    c('zeroFills', 'zero fills', m.zeroFills, e.zeroFills);
    c('copies', 'copies', m.copies, e.copies);
    c('present', 'pages present', m.present, countOnes(bits.present));
    c('zeroPage', 'pages mapping the zero page', m.zeroPage, countOnes(bits.zeroPage));
    c('exclusive', 'pages exclusive', m.exclusive, countOnes(bits.exclusive));
    c('frames', 'frames of the region', m.frames, o.frames.z);
  }
  return out;
}

async function run(ctx: RunContext): Promise<Raw> {
  const access = pfnAccess();
  if (!access.pfnVisible) ctx.note(`PFNs are hidden (${access.pfnReason ?? 'not root'}): the zero page is identified by PAGEMAP_SCAN, without PFNs or kpageflags`);
  const t = ctx.env.thp;
  const perHuge = (ctx.env.hugePageSize ?? 2 * 2 ** 20) / ctx.env.pageSize;
  const huge = t.enabled !== null && t.enabled !== 'never' && t.useZeroPage === true;
  if (!huge) ctx.note(`THP variant skipped: ${t.enabled === null || t.enabled === 'never' ? 'transparent huge pages are off' : 'the huge zero page is off (transparent_hugepage/use_zero_page)'}`);
  const steps = new Steps(ctx, huge ? 2 : 1);
  steps.next('4 KiB pages');
  const base = await measure('4 KiB pages', sized(ctx, PAGES), false, 1);
  const raw: Raw = { pfnVisible: access.pfnVisible, zeroUnavailable: base.zeroUnavailable, variants: [base.variant], predicted: { profile: profileName(ctx.env), counts: base.predicted } };
  steps.keep(raw);
  if (huge && raw.zeroUnavailable === null) {
    steps.next('transparent huge pages');
    const h = await measure('transparent huge pages', sized(ctx, HUGE_PAGES) * perHuge, true, perHuge);
    raw.variants.push(h.variant);
    raw.predicted!.counts.push(...h.predicted);
  }
  return raw;
}

/** What each variant got wrong (empty: the claim held). */
function problemsOf(v: Raw['variants'][number]): string[] {
  const p: string[] = [];
  const { read, write } = v;
  const units = v.pages / v.unitPages;
  const where = `${v.name}: `;
  if (read.present !== v.pages || read.zeroPage !== v.pages) p.push(`${where}${read.zeroPage} of ${v.pages} pages read map the zero page (${read.present} present)`);
  if (read.exclusive > 0) p.push(`${where}${read.exclusive} zero-page mappings were exclusive`);
  if (read.zeroFills + read.copies > 0 || (read.frames !== null && read.frames > 0)) p.push(`${where}the reads allocated (${read.zeroFills} zero fills, ${read.frames ?? 'n/a'} frames)`);
  if (read.distinctPfns !== null && read.distinctPfns !== v.unitPages) p.push(`${where}the pages read map ${read.distinctPfns} PFNs, not ${v.unitPages}`);
  if (read.zeroFlagged !== null && read.zeroFlagged !== read.distinctPfns) p.push(`${where}only ${read.zeroFlagged} of those PFNs have kpageflags ZERO_PAGE`);
  const expected = v.predictedWriteZeroFills ?? units;
  if (write.zeroFills !== expected || write.copies > 0) p.push(`${where}the writes made ${write.zeroFills} zero fills and ${write.copies} copies (expected ${expected} zero fills)`);
  if (write.zeroPage !== null && write.zeroPage > 0) p.push(`${where}${write.zeroPage} pages still map the zero page after the writes`);
  if (write.frames !== null && write.frames !== v.pages) p.push(`${where}${write.frames} frames after the writes, not ${v.pages}`);
  return p;
}

function verdict(raw: Raw) {
  const base = raw.variants[0];
  const metrics: Metric[] = [];
  if (!base) return { verdict: 'not-measurable' as const, figure: 'nothing measured', reason: 'No variant was measured.', metrics };
  if (raw.zeroUnavailable !== null || base.read.zeroPage === null) {
    return {
      verdict: 'not-measurable' as const,
      figure: 'zero-page mappings cannot be identified here',
      reason: `${raw.zeroUnavailable ?? 'the kernel engine reported no zero-page information'}. (Reads: ${formatCount(base.read.faults)} faults, ${formatCount(base.read.zeroFills)} zero fills; writes: ${formatCount(base.write.zeroFills)} zero fills.)`,
      metrics,
    };
  }
  metrics.push({ key: 'zero-page-read-p50', label: 'read fault mapping the zero page, p50', unit: 'ns', value: pointBand(base.read.p50Ns) });
  metrics.push({ key: 'zero-fill-write-p50', label: 'first write after the read (a zero fill), p50', unit: 'ns', value: pointBand(base.write.p50Ns) });
  if (base.read.distinctPfns !== null) metrics.push({ key: 'pfns-after-reads', label: 'distinct PFNs after reading every page', unit: 'count', value: pointBand(base.read.distinctPfns) });
  const problems = raw.variants.flatMap(problemsOf);
  const huge = raw.variants.find((v) => v.thp);
  const pfns = base.read.distinctPfns === null ? 'PFNs hidden' : `${formatCount(base.read.distinctPfns)} PFN${base.read.distinctPfns === 1 ? '' : 's'}${base.read.zeroFlagged ? ' (kpageflags ZERO_PAGE)' : ''}`;
  const figure =
    `reading ${formatCount(base.pages)} untouched pages: ${formatCount(base.read.zeroPage)} map the zero page, ${pfns}, ${formatCount(base.read.frames)} frames, ${formatNs(base.read.p50Ns)} per read fault; ` +
    `writing them: ${formatCount(base.write.zeroFills)} zero fills, ${formatCount(base.write.copies)} copies, ${formatNs(base.write.p50Ns)} each`;
  const hugeText = huge
    ? ` THP: ${formatCount(huge.read.faults)} read faults for ${formatCount(huge.pages)} pages, ${huge.read.distinctPfns === null ? 'PFNs hidden' : `${formatCount(huge.read.distinctPfns)} PFNs (one huge zero page)`}; ` +
      `the writes ${formatCount(huge.write.zeroFills)} zero fills (${huge.write.zeroFills * huge.unitPages === huge.pages ? 'a huge page each' : 'each store split the huge zero page and zero-filled 4 KiB'}).`
    : '';
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure,
    reason: `${problems.length === 0 ? 'Held for every variant.' : `Not so here: ${problems.join('; ')}.`}${hugeText}${raw.pfnVisible ? '' : ' Without root the zero page is identified by PAGEMAP_SCAN; PFNs and kpageflags are hidden.'}${describeDisagreements(raw.predicted)}`,
    metrics,
  };
}

/** Time of a phase's accesses per fault it took: the fault's cost, for huge pages too. */
function perFault(p: Phase): number {
  return p.faults > 0 ? p.timeNs / p.faults : 0;
}

function present(raw: Raw) {
  const cats = raw.variants.flatMap((v) => [`${v.name}: after the reads`, `${v.name}: after the writes`]);
  const pick = (f: (p: Phase) => number | null) => raw.variants.flatMap((v) => [f(v.read), f(v.write)]);
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: 'Reads map one zero frame; writes allocate a frame per page',
        categories: cats,
        // min 0.5: the single PFN of the zero page must show as a bar on the log axis.
        y: { label: 'count', unit: 'pages or frames', scale: 'log' as const, min: 0.5 },
        series: [
          { name: 'pages mapping the zero page', values: pick((p) => p.zeroPage) },
          { name: 'distinct PFNs mapped (root)', values: pick((p) => p.distinctPfns) },
          { name: 'frames of the region', values: pick((p) => p.frames) },
          { name: 'zero fills', values: pick((p) => p.zeroFills) },
        ],
      },
      {
        kind: 'bar' as const,
        title: 'Cost per fault: mapping the zero page (read) against allocating a zeroed page (write)',
        categories: raw.variants.map((v) => (v.thp ? `${v.name} (a fault per huge page)` : v.name)),
        y: { label: 'time per fault (access time / faults)', unit: 'µs', scale: 'log' as const },
        series: [
          { name: 'read of an untouched page', values: raw.variants.map((v) => toUs(perFault(v.read))) },
          { name: 'write after the read', values: raw.variants.map((v) => toUs(perFault(v.write))) },
        ],
      },
    ],
    tables: [
      {
        title: 'What the page tables say after each phase (kernel engine)',
        head: ['variant', 'phase', 'faults', 'zero fills', 'copies', 'present', 'zero page', 'exclusive', 'frames', 'distinct PFNs', 'ZERO_PAGE flag', 'p50 per access', 'per fault'],
        rows: raw.variants.flatMap((v) =>
          (['read', 'write'] as const).map((k) => {
            const p = v[k];
            return [v.name, k === 'read' ? 'read every page' : 'then write every page', formatCount(p.faults), formatCount(p.zeroFills), formatCount(p.copies), formatCount(p.present), formatCount(p.zeroPage), formatCount(p.exclusive), formatCount(p.frames), formatCount(p.distinctPfns), formatCount(p.zeroFlagged), formatNs(p.p50Ns), formatNs(perFault(p))];
          }),
        ),
        note: `One load, then one store, per page of a private anonymous region p0 never touched (populate none). Huge pages: a fault maps or allocates a whole ${raw.variants.find((v) => v.thp)?.unitPages ?? 512}-page huge page. ${raw.pfnVisible ? 'PFNs and kpageflags read as root.' : 'Not root: PFNs, frames and kpageflags are hidden (n/a); the zero page comes from PAGEMAP_SCAN.'}`,
      },
      ...(raw.predicted ? [predictionTable(raw.predicted)] : []),
    ],
  };
}

export default defineExperiment<Raw>({
  number: 5,
  name: 'zero-page',
  title: 'The zero page',
  claim:
    'Reading never-touched anonymous memory maps one shared zero frame and allocates nothing; the first write then allocates a fresh zeroed page (a zero fill, not a copy).',
  short: 'reads map one zero frame; writes allocate',
  rule: RULE,
  measures:
    'Traces on the kernel engine: read every page of an untouched region (64 MiB, 16 MiB with --quick), then write them; the same on a THP region (huge zero page) when THP and use_zero_page are on. After each phase: present / zero page (PAGEMAP_SCAN) / exclusive bits, and as root the distinct PFNs, their kpageflags ZERO_PAGE bit and the frames; zero fills, copies and faults per phase.',
  requirements: { engines: ['kernel', 'sim'], minMemoryBytes: 16 * 2 ** 20 },
  budgetMs: { full: 5_000, quick: 3_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
