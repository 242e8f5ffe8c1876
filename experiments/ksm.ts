/**
 * Experiment 21: KSM, copy-on-write in reverse. ksmd finds anonymous pages of MADV_MERGEABLE
 * memory with the same content and maps them all to one write-protected frame (kpageflags KSM,
 * one PFN); a write to one of them is then an ordinary COW fault that gives only that page a
 * frame of its own again. With use_zero_pages, pages of zeros are mapped to the zero page
 * instead. KSM is a global setting (/sys/kernel/mm/ksm/run): it runs in a guest cowlab booted
 * (--kernel), or on a host where it already runs with these settings. Root (PFNs, kpageflags).
 */
import { z } from 'zod';

import { CowlabError } from '../src/errors.js';
import { readKnob, withKnob } from '../src/env/knobs.js';
import { Mapping } from '../src/memory/mapping.js';
import { KPF, readKpageFlags, readPagemap } from '../src/pagemap/pagemap.js';
import { formatCount, formatNs } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const KSM = '/sys/kernel/mm/ksm';
const PAGES = { full: 2048, quick: 512 };
/** How long ksmd gets to merge the region (it scans pages_to_scan pages every sleep_millisecs). */
const MERGE_DEADLINE_MS = 20_000;
const RULE =
  "Confirmed when ksmd merges the region's N pages of one content into as few frames as KSM allows (ceil(N / max_page_sharing) PFNs, kpageflags KSM on every page) and a write to one page gives that page alone a new frame (the others keep the KSM frame, every byte as written); " +
  "and with use_zero_pages, N pages of zeros end up on the zero page (no frame of their own), a write again giving only that page a frame. Refuted otherwise; not measurable without root, or where KSM cannot be set (a host: it is a global setting).";

const CaseSchema = z.object({
  case: z.enum(['same-content', 'zero-pages']),
  pages: z.number().int(),
  /** ns until the region was merged (null: not within the deadline). */
  mergeNs: z.number().nullable(),
  /** After the merge: distinct frames of the region (the zero page counts as one). */
  framesMerged: z.number().int(),
  /** Pages with kpageflags KSM (same-content) or ZERO_PAGE (zero-pages) after the merge. */
  flaggedMerged: z.number().int(),
  /** After the write to one page: did its frame change, and how many others kept the merged one. */
  writtenMoved: z.boolean(),
  othersKept: z.number().int(),
  /** Pages whose bytes differ from what was written (0 expected). */
  contentMismatches: z.number().int(),
});
const RawSchema = z.object({ cases: z.array(CaseSchema), skipped: z.array(z.object({ case: z.string(), reason: z.string() })) });
type Raw = z.infer<typeof RawSchema>;
type Case = Raw['cases'][number];

const fill = (which: Case['case']) => (which === 'zero-pages' ? 0 : 0x5a);

/** The region's frames and flags, as root. */
function frames(m: Mapping): { pfn: Float64Array; ksm: number; zero: number } {
  const pm = readPagemap(0, m.address, m.pages);
  const flags = readKpageFlags(pm.pfn);
  return { pfn: pm.pfn, ksm: flags.count(KPF.KSM), zero: flags.count(KPF.ZERO_PAGE) };
}

async function oneCase(ctx: RunContext, which: Case['case'], pages: number): Promise<Case> {
  const m = Mapping.create({ pages, thp: 'never' });
  try {
    const bytes = new Uint8Array(m.buffer);
    bytes.fill(fill(which));
    m.advise('mergeable');
    const t0 = process.hrtime.bigint();
    let mergeNs: number | null = null;
    let f = frames(m);
    // A KSM frame takes at most max_page_sharing mappings; more pages make more frames.
    const most = Math.ceil(pages / Number(readKnob(`${KSM}/max_page_sharing`) ?? pages));
    const merged = () => (which === 'zero-pages' ? f.zero === pages : f.ksm === pages && new Set(f.pfn).size <= most);
    const end = Date.now() + MERGE_DEADLINE_MS;
    while (!merged() && Date.now() < end) {
      ctx.signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 20));
      f = frames(m);
    }
    if (merged()) mergeNs = Number(process.hrtime.bigint() - t0);
    const before = f;
    // One write: a COW fault on the merged (write-protected) frame.
    const k = pages >> 1;
    const ps = m.bytes / pages;
    bytes[k * ps] = 0xa5;
    const after = frames(m);
    let othersKept = 0;
    for (let i = 0; i < pages; i++) if (i !== k && after.pfn[i] === before.pfn[i]) othersKept++;
    let contentMismatches = 0;
    for (let p = 0; p < pages; p++) {
      const want0 = p === k ? 0xa5 : fill(which);
      let ok = bytes[p * ps] === want0;
      for (let i = p * ps + 1; ok && i < (p + 1) * ps; i++) ok = bytes[i] === fill(which);
      if (!ok) contentMismatches++;
    }
    return {
      case: which,
      pages,
      mergeNs,
      framesMerged: new Set(before.pfn).size,
      flaggedMerged: which === 'zero-pages' ? before.zero : before.ksm,
      writtenMoved: after.pfn[k] !== before.pfn[k],
      othersKept,
      contentMismatches,
    };
  } finally {
    m.unmap();
  }
}

async function run(ctx: RunContext): Promise<Raw> {
  const pages = sized(ctx, PAGES);
  const raw: Raw = { cases: [], skipped: [] };
  if (readKnob(`${KSM}/run`) === null) throw new CowlabError('ERR_NOT_MEASURABLE', 'this kernel has no KSM (/sys/kernel/mm/ksm)');
  const steps = new Steps(ctx, 2);
  for (const [which, zeroPages] of [['same-content', '0'], ['zero-pages', '1']] as const) {
    steps.next(which);
    try {
      const c = await withKnob(ctx.env, `${KSM}/pages_to_scan`, String(pages * 4), () =>
        withKnob(ctx.env, `${KSM}/sleep_millisecs`, '10', () =>
          withKnob(ctx.env, `${KSM}/use_zero_pages`, zeroPages, () => withKnob(ctx.env, `${KSM}/run`, '1', () => oneCase(ctx, which, pages))),
        ),
      );
      raw.cases.push(c);
    } catch (err) {
      if (!(err instanceof CowlabError) || err.code !== 'ERR_NOT_MEASURABLE') throw err;
      raw.skipped.push({ case: which, reason: err.message });
      ctx.note(`${which}: not measured here: ${err.message}`);
    }
    steps.keep(raw);
  }
  // Neither case could run: the experiment as a whole is not measurable here (a host).
  if (raw.cases.length === 0) throw new CowlabError('ERR_NOT_MEASURABLE', raw.skipped.map((s) => `${s.case}: ${s.reason}`).join('; '));
  return raw;
}

function verdict(raw: Raw) {
  const metrics: Metric[] = raw.cases.map((c) => ({ key: `${c.case}-frames`, label: `frames of ${c.pages} pages after the merge (${c.case})`, unit: 'count', value: pointBand(c.framesMerged) }));
  const skipped = raw.skipped.map((s) => `${s.case}: ${s.reason}`).join('; ');
  if (raw.cases.length === 0) return { verdict: 'not-measurable' as const, figure: 'KSM could not run here', reason: `Not measured: ${skipped}.`, metrics };
  const problems: string[] = [];
  const held: string[] = [];
  for (const c of raw.cases) {
    if (c.contentMismatches > 0) throw new CowlabError('ERR_VERIFY', `ksm (${c.case}): ${c.contentMismatches} pages do not hold what was written`);
    const name = c.case === 'zero-pages' ? 'on the zero page' : 'with kpageflags KSM';
    if (c.mergeNs === null) problems.push(`${c.case}: ksmd did not merge the region within ${MERGE_DEADLINE_MS / 1000} s (${formatCount(c.framesMerged)} frames, ${formatCount(c.flaggedMerged)} pages ${name})`);
    else if (!c.writtenMoved || c.othersKept !== c.pages - 1) problems.push(`${c.case}: the write ${c.writtenMoved ? 'moved' : 'did not move'} its page, and ${formatCount(c.othersKept)} of ${formatCount(c.pages - 1)} others kept their frame`);
    else held.push(`${formatCount(c.pages)} pages ${c.case === 'zero-pages' ? 'of zeros went to the zero page' : `of one content merged into ${formatCount(c.framesMerged)} KSM frame${c.framesMerged > 1 ? 's (max_page_sharing)' : ''}`} in ${formatNs(c.mergeNs)}, and a write gave only its page a new frame`);
  }
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure: problems.length === 0 ? held.join('; ') : problems.join('; '),
    reason: `${problems.length === 0 ? `Held in ${held.length} case${held.length > 1 ? 's' : ''}.` : `Not so here: ${problems.join('; ')}.`}${skipped ? ` Not measured here: ${skipped}.` : ''}`,
    metrics,
  };
}

function present(raw: Raw) {
  return {
    charts: raw.cases.length
      ? [
          {
            kind: 'bar' as const,
            title: 'Frames of the region: before KSM (one per page), after the merge, and after one write',
            categories: raw.cases.map((c) => c.case),
            y: { label: 'distinct frames', unit: 'frames', scale: 'log' as const },
            series: [
              { name: 'before (written)', values: raw.cases.map((c) => c.pages) },
              { name: 'merged', values: raw.cases.map((c) => c.framesMerged) },
              { name: 'after one write', values: raw.cases.map((c) => c.framesMerged + (c.writtenMoved ? 1 : 0)) },
            ],
          },
        ]
      : [],
    tables: [
      {
        title: 'KSM cases',
        head: ['case', 'pages', 'merged in', 'frames after merge', 'pages flagged', 'write: its page moved', 'others kept'],
        rows: [
          ...raw.cases.map((c) => [c.case, formatCount(c.pages), c.mergeNs === null ? 'not merged' : formatNs(c.mergeNs), formatCount(c.framesMerged), formatCount(c.flaggedMerged), c.writtenMoved ? 'yes' : 'no', formatCount(c.othersKept)]),
          ...raw.skipped.map((s) => [s.case, '-', `not measured: ${s.reason}`, '', '', '', '']),
        ],
        note: 'ksmd runs with pages_to_scan 4 N and sleep_millisecs 10 for the case (set in the guest and put back after). The simulator does not model KSM: nothing is predicted.',
      },
    ],
  };
}

export default defineExperiment<Raw>({
  number: 21,
  name: 'ksm',
  title: 'KSM: COW in reverse',
  claim:
    'ksmd merges pages of the same content in MADV_MERGEABLE memory into shared write-protected frames (one per max_page_sharing pages; with use_zero_pages, pages of zeros onto the zero page), and a write to one of them is a COW fault that gives only that page its own frame again.',
  short: 'KSM merges; a write unmerges one page',
  measures:
    'N pages of one content (and N of zeros) marked MADV_MERGEABLE; PFNs and kpageflags (KSM, ZERO_PAGE) polled until ksmd merged them; then one page written: its PFN and everybody else\'s, and every byte read back.',
  rule: RULE,
  requirements: { root: true },
  budgetMs: { full: 20_000, quick: 10_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
