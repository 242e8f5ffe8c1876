/**
 * Experiment 26: copy-on-write of multi-size THP (mTHP, Linux 6.8+). With a folio size below
 * the PMD's enabled (/sys/kernel/mm/transparent_hugepage/hugepages-<size>/enabled), a write
 * fault on untouched anonymous memory maps a whole 16 KiB to 1 MiB folio at once. After fork a
 * write copies only the 4 KiB page written (wp_page_copy): the rest of the folio stays shared.
 * After the sharer exits, whether a write reuses a page of the now PTE-mapped folio is the
 * profile's thpPteReuse: never before 6.15 (cd197c3a2040, 6.9), per page since (1da190f4d0a6).
 *
 * mTHP sizes are global settings: they are set only inside a guest cowlab booted (with the PMD
 * size off, so the folio size is the one under test) and restored after; on a host they are
 * read, and the experiment is not measurable unless they already are as needed. A trace on the
 * kernel engine, judged by PFN (root) and content.
 */
import { z } from 'zod';

import { kernelWriteValue, type KernelRunDetailed } from '../src/engines/kernel/engine.js';
import { profileFor } from '../src/engines/sim/profiles.js';
import { readKnob, withKnob } from '../src/env/knobs.js';
import { CowlabError } from '../src/errors.js';
import { runningKernelFacts } from '../src/kernels/facts.js';
import type { PagemapEntries } from '../src/pagemap/pagemap.js';
import { formatCount } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { buildTrace, kernelEngine, regionSpec } from '../src/suite/traces.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const THP = '/sys/kernel/mm/transparent_hugepage';
/** The sizes measured: the issue's 64 KiB and a small one. */
const SIZES = [{ name: '64kB', pages: 16 }, { name: '16kB', pages: 4 }] as const;
const FOLIOS = { full: 64, quick: 16 };
/** Which page of each folio the child writes, and which the parent writes after the child exited. */
const CHILD_PAGE = 1;
const PARENT_PAGE = 2;
const RULE =
  "Confirmed when, per folio size, the region's pages were mapped as folios of that size (physically contiguous and aligned), the child's write to one page of each folio gave that page alone a new frame (every other page of the folio still the parent's frame in both), the parent's write after the child exited copied or reused as the kernel's profile says (thpPteReuse: reused only with 'per-page'), and every page read back its value; " +
  'refuted otherwise; not measurable without root (PFNs), on a kernel without mTHP (before 6.8), or where the sizes cannot be set (a host: a global setting).';

const CaseSchema = z.object({
  size: z.string(),
  folioPages: z.number().int(),
  folios: z.number().int(),
  /** Folios whose pages were one contiguous aligned frame after the parent populated them. */
  largeFolios: z.number().int(),
  /** Pages whose frame changed in the child by its writes (expected: one per folio). */
  childCopied: z.number().int(),
  /** Other pages the child still shared with the parent after its writes. */
  restShared: z.number().int(),
  /** The parent's writes after the child exited: pages that kept their frame (reused). */
  parentReused: z.number().int(),
  /** thpPteReuse of the profile of the kernel that ran, and what it predicts for those writes. */
  profile: z.string(),
  thpPteReuse: z.string(),
  predictedReused: z.number().int(),
  contentMismatches: z.number().int(),
});
const RawSchema = z.object({ cases: z.array(CaseSchema), skipped: z.array(z.object({ case: z.string(), reason: z.string() })) });
type Raw = z.infer<typeof RawSchema>;
type Case = Raw['cases'][number];

/** Folios of `n` pages whose frames are consecutive from an `n`-aligned PFN. */
function contiguousFolios(e: PagemapEntries, n: number): number {
  let count = 0;
  for (let f = 0; f + n <= e.length; f += n) {
    let ok = e.present[f] === 1 && e.pfn[f]! % n === 0;
    for (let i = f + 1; ok && i < f + n; i++) ok = e.present[i] === 1 && e.pfn[i] === e.pfn[f]! + (i - f);
    if (ok) count++;
  }
  return count;
}

function judge(r: KernelRunDetailed, size: (typeof SIZES)[number], folios: number): Omit<Case, 'size' | 'folioPages' | 'folios' | 'profile' | 'thpPteReuse' | 'predictedReused'> {
  const n = size.pages;
  // details[i + 1] is trace step i; details[0] the setup.
  const populated = r.details[0]!.pagemap.p0!.m!;
  const afterChild = r.details[2]!.pagemap;
  const parent = afterChild.p0!.m!;
  const child = afterChild.c1!.m!;
  let childCopied = 0;
  let restShared = 0;
  for (let i = 0; i < folios * n; i++) {
    if (child.pfn[i] !== populated.pfn[i]) childCopied++;
    else if (i % n !== CHILD_PAGE && child.pfn[i] === parent.pfn[i]) restShared++;
  }
  const beforeWrite = r.details[3]!.pagemap.p0!.m!;
  const afterWrite = r.details[4]!.pagemap.p0!.m!;
  let parentReused = 0;
  for (let f = 0; f < folios; f++) if (afterWrite.pfn[f * n + PARENT_PAGE] === beforeWrite.pfn[f * n + PARENT_PAGE]) parentReused++;
  const read = r.details[5]!.access[0]!;
  let contentMismatches = 0;
  read.pages.forEach((p, k) => {
    if (read.values?.[k] !== kernelWriteValue(p % n === PARENT_PAGE ? 3 : -1, p)) contentMismatches++;
  });
  return { largeFolios: contiguousFolios(populated, n), childCopied, restShared, parentReused, contentMismatches };
}

async function oneCase(ctx: RunContext, size: (typeof SIZES)[number], folios: number): Promise<Case> {
  const pages = folios * size.pages;
  const each = (page: number) => ({ pages: Array.from({ length: folios }, (_, f) => f * size.pages + page) });
  const trace = buildTrace(
    `mthp-cow-${size.name}`,
    `p0 populates ${size.name} folios (MADV_HUGEPAGE, the PMD size off); c1 writes page ${CHILD_PAGE} of each, exits; p0 writes page ${PARENT_PAGE} of each and reads all.`,
    [regionSpec({ id: 'm', pages, thp: true })],
    [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'm', pages: each(CHILD_PAGE) },
      { op: 'exit', proc: 'c1' },
      { op: 'write', proc: 'p0', region: 'm', pages: each(PARENT_PAGE) },
      { op: 'read', proc: 'p0', region: 'm', pages: { start: 0, end: pages } },
    ],
  );
  const r = await kernelEngine().runDetailed(trace);
  const profile = profileFor(runningKernelFacts(ctx.env));
  const thpPteReuse = profile.options.thpPteReuse;
  return {
    size: size.name,
    folioPages: size.pages,
    folios,
    ...judge(r, size, folios),
    profile: profile.name,
    thpPteReuse,
    // A page of a PTE-mapped large folio the parent alone maps: reused only per page (6.15+).
    predictedReused: thpPteReuse === 'per-page' ? folios : 0,
  };
}

async function run(ctx: RunContext): Promise<Raw> {
  if (!ctx.env.privileges.pfnVisible) throw new CowlabError('ERR_NOT_MEASURABLE', 'needs root: the frames (PFNs) show what was copied');
  const folios = sized(ctx, FOLIOS);
  const raw: Raw = { cases: [], skipped: [] };
  const steps = new Steps(ctx, SIZES.length);
  for (const size of SIZES) {
    steps.next(size.name);
    const knob = `${THP}/hugepages-${size.name}/enabled`;
    try {
      if (readKnob(knob) === null) throw new CowlabError('ERR_NOT_MEASURABLE', `this kernel has no ${size.name} mTHP (${knob}; anonymous mTHP came in 6.8)`);
      // The PMD size off, so a 2 MiB range of the region cannot take a PMD THP instead.
      const c = await withKnob(ctx.env, `${THP}/hugepages-2048kB/enabled`, 'never', () => withKnob(ctx.env, knob, 'madvise', () => oneCase(ctx, size, folios)));
      raw.cases.push(c);
    } catch (err) {
      if (!(err instanceof CowlabError) || err.code !== 'ERR_NOT_MEASURABLE') throw err;
      raw.skipped.push({ case: size.name, reason: err.message });
      ctx.note(`${size.name}: not measured here: ${err.message}`);
    }
    steps.keep(raw);
  }
  if (raw.cases.length === 0) throw new CowlabError('ERR_NOT_MEASURABLE', raw.skipped.map((s) => `${s.case}: ${s.reason}`).join('; '));
  return raw;
}

function problemsOf(c: Case): string[] {
  const p: string[] = [];
  if (c.largeFolios !== c.folios) p.push(`${c.size}: only ${c.largeFolios} of ${c.folios} folios were mapped large`);
  if (c.childCopied !== c.folios) p.push(`${c.size}: the child's ${c.folios} writes changed ${c.childCopied} frames`);
  const rest = c.folios * (c.folioPages - 1);
  if (c.restShared !== rest) p.push(`${c.size}: ${c.restShared} of the ${rest} other pages stayed shared`);
  if (c.parentReused !== c.predictedReused) p.push(`${c.size}: the parent's writes reused ${c.parentReused} pages, the profile (${c.profile}, thpPteReuse ${c.thpPteReuse}) predicts ${c.predictedReused}`);
  if (c.contentMismatches > 0) p.push(`${c.size}: ${c.contentMismatches} pages read back wrong`);
  return p;
}

function verdict(raw: Raw) {
  const metrics: Metric[] = raw.cases.flatMap((c) => [
    { key: `${c.size}-child-copied`, label: `frames the child's writes changed (${c.size}, one write per folio)`, unit: 'pages', value: pointBand(c.childCopied) },
    { key: `${c.size}-parent-reused`, label: `pages the parent's writes reused after the child exited (${c.size})`, unit: 'pages', value: pointBand(c.parentReused) },
  ]);
  const skipped = raw.skipped.map((s) => `${s.case}: ${s.reason}`).join('; ');
  if (raw.cases.length === 0) return { verdict: 'not-measurable' as const, figure: 'no mTHP size could be set here', reason: `Not measured: ${skipped}.`, metrics };
  const problems = raw.cases.flatMap(problemsOf);
  const figure = raw.cases
    .map((c) => `${c.size}: ${c.largeFolios}/${c.folios} folios large; the child's write copied ${formatCount(c.childCopied)} pages (4 KiB each), ${formatCount(c.restShared)} others stayed shared; after its exit the parent's writes ${c.parentReused === 0 ? 'copied' : `reused ${formatCount(c.parentReused)}`} (thpPteReuse ${c.thpPteReuse})`)
    .join('; ');
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure,
    reason: problems.length === 0 ? `Held${skipped ? ` (${skipped})` : ''}: a COW write copies 4 KiB of a large folio and shares the rest.` : `Not so here: ${problems.join('; ')}.`,
    metrics,
  };
}

function present(raw: Raw) {
  return {
    charts: raw.cases.length === 0 ? [] : [
      {
        kind: 'bar' as const,
        title: 'mTHP after fork: pages per folio copied by one write, still shared, and reused by the parent after the exit',
        categories: raw.cases.map((c) => c.size),
        y: { label: 'pages per folio', unit: 'pages' },
        series: [
          { name: "copied by the child's write", values: raw.cases.map((c) => c.childCopied / c.folios) },
          { name: 'still shared', values: raw.cases.map((c) => c.restShared / c.folios) },
          { name: "reused by the parent's write", values: raw.cases.map((c) => c.parentReused / c.folios) },
        ],
      },
    ],
    tables: [
      {
        title: 'Per folio size',
        head: ['size', 'folios (large)', 'child copied', 'others shared', 'parent reused', 'predicted reused', 'profile'],
        rows: raw.cases.map((c) => [c.size, `${c.folios} (${c.largeFolios})`, formatCount(c.childCopied), formatCount(c.restShared), formatCount(c.parentReused), formatCount(c.predictedReused), `${c.profile}: thpPteReuse ${c.thpPteReuse}`]),
        note: raw.skipped.length ? `Not measured: ${raw.skipped.map((s) => `${s.case}: ${s.reason}`).join('; ')}` : 'The sizes were set inside the guest (the PMD size off) and restored after.',
      },
    ],
  };
}

export default defineExperiment<Raw>({
  number: 26,
  name: 'mthp-cow',
  title: 'Copy-on-write of multi-size THP copies 4 KiB',
  claim:
    'With mTHP a write fault maps a 16 KiB to 1 MiB folio at once; after fork a COW write copies only the 4 KiB page written and the rest of the folio stays shared; after the sharer exits the kernel reuses a page of the folio only where its profile says (6.15+).',
  short: 'a COW write copies 4 KiB of a large folio',
  measures:
    'In a guest, hugepages-64kB and -16kB enabled (madvise) with the PMD size off: a trace on the kernel engine populates a MADV_HUGEPAGE region, forks, the child writes one page per folio and exits, the parent writes another page per folio and reads all; PFNs after each step and every page read back.',
  rule: RULE,
  requirements: { root: true, engines: ['kernel'], minMemoryBytes: 8 * 2 ** 20 },
  budgetMs: { full: 3_000, quick: 2_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
