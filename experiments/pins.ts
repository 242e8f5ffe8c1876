/**
 * Experiment 18: pins and COW. A page pinned read-only with vmsplice(2) must keep showing what
 * it held when it was pinned, whatever the other process of a fork writes afterwards: the
 * class of bug behind CVE-2020-29374 (a child read its parent's later writes through a pipe),
 * fixed by making a read-only pin of a shared anonymous page unshare it first. The cases of the
 * kernel's own tools/testing/selftests/mm/cow.c (vmsplice in the child, before and after the
 * fork) on each backing, each checked byte by byte; a MAP_SHARED page is the control, where the
 * other process's write is meant to show through the pin. The simulator does not model pins:
 * nothing is predicted.
 */
import { z } from 'zod';

import { CowlabError } from '../src/errors.js';
import { formatBytes, formatCount } from '../src/report/format.js';
import { PIN_BACKINGS, PIN_CASES, vmsplicePin, type PinBacking, type PinCase } from '../src/probes/pins.js';
import { pointBand } from '../src/suite/measure.js';
import { Steps } from '../src/suite/steps.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const CASE_LABEL: Record<PinCase, string> = {
  'in-child': 'vmsplice in the child, the parent writes',
  'before-fork': 'vmsplice before fork, the child writes',
  'after-fork': 'vmsplice after fork, the child writes',
};
const BACKING_LABEL: Record<PinBacking, string> = {
  base: '4 KiB page',
  thp: 'THP (PMD-mapped)',
  'thp-pte': 'THP (PTE-mapped)',
  shared: 'MAP_SHARED page (control)',
};
const RULE =
  'Confirmed when, in every case on every private backing, the bytes read through the pin are the pinned ones (no byte of the other process\'s later write), ' +
  "and on the MAP_SHARED control every byte read is the other process's write (the probe sees a write through a pin where one is meant to show); " +
  'refuted when a private backing leaks a byte, or the control shows none (the probe is blind). A THP row the kernel gave no huge page is left out, said in the notes.';

const RowSchema = z.object({
  case: z.enum(PIN_CASES),
  backing: z.enum(PIN_BACKINGS),
  size: z.number().int(),
  transferred: z.number().int(),
  leaked: z.number().int(),
  garbled: z.number().int(),
  hugePage: z.boolean(),
});
const RawSchema = z.object({ rows: z.array(RowSchema) });
type Raw = z.infer<typeof RawSchema>;
type Row = Raw['rows'][number];

/** The backings this machine can give: THP needs transparent huge pages not `never`. */
function backings(ctx: RunContext): PinBacking[] {
  const thp = ctx.env.thp.enabled !== 'never' && ctx.env.thp.enabled !== null;
  if (!thp) ctx.note(`THP rows skipped: THP is ${ctx.env.thp.enabled ?? 'not available'}`);
  return PIN_BACKINGS.filter((b) => thp || !b.startsWith('thp'));
}

async function run(ctx: RunContext): Promise<Raw> {
  const bs = backings(ctx);
  const raw: Raw = { rows: [] };
  const cells = PIN_CASES.flatMap((c) => bs.map((b) => ({ c, b })));
  const steps = new Steps(ctx, 1);
  await steps.sweep(cells, raw, {
    detail: ({ c, b }) => `${c}, ${b}`,
    measure: async ({ c, b }) => {
      const r = await vmsplicePin({ case: c, backing: b });
      if (!r.hugePage) ctx.note(`${CASE_LABEL[c]} on ${BACKING_LABEL[b]}: the kernel gave no huge page; left out`);
      raw.rows.push({ case: c, backing: b, size: r.size, transferred: r.transferred, leaked: r.leaked, garbled: r.garbled, hugePage: r.hugePage });
    },
  });
  return raw;
}

const counted = (rows: Row[]) => rows.filter((r) => r.hugePage);

function verdict(raw: Raw) {
  const rows = counted(raw.rows);
  const priv = rows.filter((r) => r.backing !== 'shared');
  const control = rows.filter((r) => r.backing === 'shared');
  const leaks = priv.filter((r) => r.leaked > 0);
  const blind = control.filter((r) => r.leaked !== r.transferred);
  const garbled = rows.filter((r) => r.garbled > 0);
  const metrics: Metric[] = [
    { key: 'private-bytes-leaked', label: 'bytes of a later write seen through a pin (private backings)', unit: 'bytes', value: pointBand(priv.reduce((s, r) => s + r.leaked, 0)) },
    { key: 'cases-checked', label: 'case and backing pairs checked', unit: 'count', value: pointBand(rows.length) },
  ];
  if (priv.length === 0 || control.length === 0) {
    return { verdict: 'not-measurable' as const, figure: 'no case was measured', reason: 'No private backing or no control was measured here.', metrics };
  }
  if (garbled.length > 0) {
    const g = garbled[0]!;
    throw new CowlabError('ERR_VERIFY', `pins: ${formatCount(g.garbled)} bytes read through the pin (${g.case}, ${g.backing}) are neither the pinned value nor the write`);
  }
  const bytes = priv.reduce((s, r) => s + r.transferred, 0);
  const problems = [
    ...leaks.map((r) => `${CASE_LABEL[r.case]} on a ${BACKING_LABEL[r.backing]}: ${formatCount(r.leaked)} of ${formatCount(r.transferred)} bytes read through the pin are the other process's later write`),
    ...blind.map((r) => `the control (${CASE_LABEL[r.case]}) showed ${formatCount(r.leaked)} of ${formatCount(r.transferred)} written bytes: the probe cannot see a write through a pin`),
  ];
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure:
      problems.length === 0
        ? `${priv.length} case × backing pairs, ${formatBytes(bytes)} read through pins: no byte of a later write (the MAP_SHARED control showed every one)`
        : `${leaks.length} of ${priv.length} pairs leak a later write through a pin`,
    reason: problems.length === 0 ? `Held for every case on ${[...new Set(priv.map((r) => BACKING_LABEL[r.backing]))].join(', ')}.` : `Not so here: ${problems.join('; ')}.`,
    metrics,
  };
}

function present(raw: Raw) {
  const bs = [...new Set(raw.rows.map((r) => r.backing))];
  const cell = (c: PinCase, b: PinBacking) => raw.rows.find((r) => r.case === c && r.backing === b);
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: 'Bytes of the other process\'s later write read through a vmsplice pin (private backings: 0 expected; the shared control: all)',
        categories: PIN_CASES.map((c) => CASE_LABEL[c]),
        y: { label: 'bytes', unit: 'bytes' },
        series: bs.map((b) => ({ name: BACKING_LABEL[b], values: PIN_CASES.map((c) => cell(c, b)?.leaked ?? null) })),
      },
    ],
    tables: [
      {
        title: 'Cases × backings (cow.c vmsplice tests)',
        head: ['case', ...bs.map((b) => BACKING_LABEL[b])],
        rows: PIN_CASES.map((c) => [
          CASE_LABEL[c],
          ...bs.map((b) => {
            const r = cell(c, b);
            if (!r) return '-';
            if (!r.hugePage) return 'no huge page';
            return `${formatCount(r.leaked)} of ${formatCount(r.transferred)} bytes leaked`;
          }),
        ]),
        note: 'Every byte of the region starts as 1; the other process writes 0xff over it after the pin. The pipe holds the first 64 KiB of a huge page (vmsplice transfers what fits). The simulator does not model pins, so nothing is predicted here.',
      },
    ],
  };
}

export default defineExperiment<Raw>({
  number: 18,
  name: 'pins',
  title: 'Pins and COW (vmsplice)',
  claim:
    "A page pinned read-only with vmsplice(2) keeps what it held when pinned, whatever the other process of a fork writes afterwards (the CVE-2020-29374 class of leak is closed), on base pages and on PMD- and PTE-mapped THPs.",
  short: 'a vmsplice pin never shows a later write',
  measures:
    "The vmsplice cases of the kernel's tools/testing/selftests/mm/cow.c: the child pins the shared page and unmaps it while the parent writes; the parent pins before or after the fork while the child writes. The bytes read back through the pipe are checked one by one, on a 4 KiB page, a PMD-mapped and a PTE-mapped THP, and a MAP_SHARED control.",
  rule: RULE,
  requirements: {},
  budgetMs: { full: 3_000, quick: 2_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
