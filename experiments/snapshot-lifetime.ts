/**
 * Experiment 17 (issue 14, storage 5): what a snapshot costs to keep. After a snapshot, the
 * space it holds alone grows with the distinct blocks the live file overwrites (the storage
 * form of redis-bgsave's "snapshot memory = distinct pages written"), and deleting it frees
 * exactly that. Proved with the file systems' own counters (src/storage/lifetime.ts): Btrfs
 * qgroup exclusive bytes and XFS's refcount-backed FIEMAP, and statfs free space around the
 * deletion; predicted by a small extent model (XFS counts references per block, Btrfs per
 * extent).
 */
import { z } from 'zod';

import { formatBytes } from '../src/report/format.js';
import { BLOCK_BYTES } from '../src/storage/files.js';
import { enableQuota, snapshotLifetime } from '../src/storage/lifetime.js';
import type { Scratch, ScratchFs } from '../src/storage/scratch.js';
import { checkpointTurn, clampForEmulatedCpu, clampToDisk, unlessNotMeasurable, withStorage } from '../src/storage/session.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const MiB = 2 ** 20;
const FILE = { full: 64 * MiB, quick: 32 * MiB };
/** On an emulated CPU (a TCG guest), where every block write is slow; images there are the
 *  smallest each mkfs takes, in the guest's RAM. */
const TCG_FILE_BYTES = 16 * MiB;
/** Distinct fractions overwritten, and how often each block is written. */
const CASES = [
  { name: '0 %', fraction: 0, times: 1 },
  { name: '10 %', fraction: 0.1, times: 1 },
  { name: '50 %', fraction: 0.5, times: 1 },
  { name: '100 %', fraction: 1, times: 1 },
  { name: '50 % twice', fraction: 0.5, times: 2 },
] as const;
/** Counters agree with the model (and freed with held) within 1 MiB + 2 % of the file:
 *  the snapshot's own metadata (tree blocks, refcount records) is in the counters. */
const tolerance = (fileBytes: number) => MiB + 0.02 * fileBytes;

const BACKINGS = ['btrfs-snapshot', 'xfs-reflink'] as const;
type Backing = (typeof BACKINGS)[number];
const LABEL: Record<Backing, string> = {
  'btrfs-snapshot': 'Btrfs read-only subvolume snapshot (qgroup exclusive)',
  'xfs-reflink': 'XFS reflink clone (refcount: FIEMAP not shared)',
};

const PointSchema = z.object({
  case: z.string(),
  fraction: z.number(),
  times: z.number().int(),
  fileBytes: z.number().int(),
  distinct: z.number().int(),
  writes: z.number().int(),
  heldBytes: z.number(),
  fiemapExclusiveBytes: z.number(),
  predictedBytes: z.number(),
  freedBytes: z.number(),
  units: z.number().int(),
  snapshotMismatches: z.number().int(),
  liveMismatches: z.number().int(),
});
const RawSchema = z.object({
  rows: z.array(z.object({ backing: z.enum(BACKINGS), points: z.array(PointSchema), notMeasured: z.string().nullable() })),
});
type Raw = z.infer<typeof RawSchema>;
type Point = z.infer<typeof PointSchema>;

/** The backing's file system, quotas on for Btrfs; its reason when it cannot be made here. */
function makeFs(s: Scratch, backing: Backing, bytes: number): ScratchFs | string {
  return unlessNotMeasurable(() => {
    const fs = s.filesystem(backing === 'btrfs-snapshot' ? 'btrfs' : 'xfs', bytes);
    if (backing === 'btrfs-snapshot') enableQuota(s, fs);
    return fs;
  });
}

async function run(ctx: RunContext): Promise<Raw> {
  const raw: Raw = { rows: [] };
  return withStorage(ctx, async (s) => {
    const { bytes: wanted, emulated } = clampForEmulatedCpu(ctx, sized(ctx, FILE), TCG_FILE_BYTES, 'file');
    const fileBytes = clampToDisk(ctx, s, wanted, 1 / 16, 'file');
    const steps = new Steps(ctx, BACKINGS.length * CASES.length);
    for (const backing of BACKINGS) {
      const fs = makeFs(s, backing, Math.max(4 * fileBytes, emulated ? 0 : 1024 * MiB));
      const row = { backing, points: [] as Point[], notMeasured: typeof fs === 'string' ? fs : null };
      raw.rows.push(row);
      if (typeof fs === 'string') continue;
      for (const [i, c] of CASES.entries()) {
        steps.next(`${backing}, ${c.name} of ${formatBytes(fileBytes)} overwritten`);
        const distinct = Math.round(c.fraction * (fileBytes / BLOCK_BYTES));
        // The "twice" case overwrites the same blocks as the once case of its fraction.
        const seed = 2000 + CASES.findIndex((o) => o.fraction === c.fraction);
        row.points.push({ case: c.name, fraction: c.fraction, times: c.times, ...snapshotLifetime(s, fs, fileBytes, distinct, c.times, seed, String(i)) });
        steps.keep(raw);
        await checkpointTurn(ctx.signal);
      }
    }
    steps.finish();
    return raw;
  });
}

function problems(p: Point): string[] {
  const tol = tolerance(p.fileBytes);
  const out: string[] = [];
  const at = `at ${p.case}`;
  if (Math.abs(p.heldBytes - p.predictedBytes) > tol) out.push(`${at} the snapshot held ${formatBytes(p.heldBytes)}, the model predicted ${formatBytes(p.predictedBytes)}`);
  if (Math.abs(p.freedBytes - p.heldBytes) > tol) out.push(`${at} deleting it freed ${formatBytes(p.freedBytes)} of the ${formatBytes(p.heldBytes)} it held`);
  if (p.snapshotMismatches + p.liveMismatches > 0) out.push(`${at} ${p.snapshotMismatches} snapshot and ${p.liveMismatches} live blocks read back wrong`);
  return out;
}

const mib = (b: number) => (b / MiB).toFixed(1);

function verdict(raw: Raw) {
  const measured = raw.rows.filter((r) => r.points.length > 0);
  const metrics: Metric[] = measured.flatMap((r) => r.points.flatMap((p) => [
    { key: `${r.backing}@${p.case.replace(/ /g, '')}:held-bytes`, label: `${LABEL[r.backing]}: bytes held, ${p.case} overwritten`, unit: 'bytes', value: pointBand(p.heldBytes) },
    { key: `${r.backing}@${p.case.replace(/ /g, '')}:freed-bytes`, label: `${LABEL[r.backing]}: bytes freed by deleting it, ${p.case} overwritten`, unit: 'bytes', value: pointBand(p.freedBytes) },
  ]));
  const notes = raw.rows.filter((r) => r.notMeasured !== null).map((r) => ` The ${r.backing} row was not measured: ${r.notMeasured}`).join('');
  if (measured.length === 0) return { verdict: 'not-measurable' as const, figure: 'nothing measured', reason: `No backing was measured.${notes}`, metrics };
  const bad = measured.flatMap((r) => r.points.flatMap(problems).map((x) => `${r.backing} ${x}`));
  const file = measured[0]!.points[0]!.fileBytes;
  const figure = `${formatBytes(file)} file, MiB held by the snapshot / freed by deleting it at ${measured[0]!.points.map((p) => p.case).join(', ')} overwritten: ` +
    measured.map((r) => `${r.backing.split('-')[0]} ${r.points.map((p) => `${mib(p.heldBytes)}/${mib(p.freedBytes)}`).join(', ')}`).join('; ');
  const reason = (bad.length ? `${bad.join('; ')}.` : measured.map((r) => {
    const once = r.points.find((p) => p.case === '50 %');
    const twice = r.points.find((p) => p.case === '50 % twice');
    const distinct = once && twice ? ` Writing the 50 % twice held ${mib(twice.heldBytes)} MiB, as once (${mib(once.heldBytes)} MiB): distinct blocks count, not writes.` : '';
    const unit = r.backing === 'btrfs-snapshot'
      ? `the snapshot holds whole extents only (${r.points.at(-1)?.units ?? 0} extents in the file): a partly overwritten extent stays referenced by the live file too, so random writes below 100 % leave the snapshot holding almost nothing of its own`
      : 'the snapshot holds each overwritten block (reference counts per block)';
    return `${LABEL[r.backing]}: held within ${formatBytes(tolerance(r.points[0]!.fileBytes))} of the extent model at every case and deleting it freed what it held; ${unit}.${distinct} Content as written.`;
  }).join(' ')) + notes;
  return { verdict: bad.length ? ('refuted' as const) : ('confirmed' as const), figure, reason, metrics };
}

function present(raw: Raw) {
  const measured = raw.rows.filter((r) => r.points.length > 0);
  const cats = CASES.map((c) => c.name);
  const at = (r: Raw['rows'][number], c: string, f: (p: Point) => number) => {
    const p = r.points.find((x) => x.case === c);
    return p === undefined ? null : f(p) / MiB;
  };
  return {
    charts: [{
      kind: 'bar' as const,
      title: 'Space a snapshot holds alone, and what deleting it frees, by blocks overwritten',
      categories: cats,
      y: { label: 'space', unit: 'MiB' },
      series: measured.flatMap((r) => [
        { name: `${r.backing}: held`, values: cats.map((c) => at(r, c, (p) => Math.max(0, p.heldBytes))) },
        { name: `${r.backing}: freed by deleting it`, values: cats.map((c) => at(r, c, (p) => Math.max(0, p.freedBytes))) },
      ]),
      caption: 'Held: Btrfs qgroup exclusive bytes of the snapshot, XFS bytes of the clone its refcount btree shows unshared (FIEMAP). Freed: statfs free space after the file system freed the deleted snapshot.',
    }],
    tables: [{
      title: 'A snapshot\'s space: held after the live file overwrote distinct random blocks, freed when deleted',
      head: ['backing', 'overwritten', 'distinct blocks', 'block writes', 'held', 'model', 'FIEMAP exclusive', 'freed by deleting', 'content'],
      rows: [
        ...measured.flatMap((r) => r.points.map((p) => [
          LABEL[r.backing], p.case, String(p.distinct), String(p.writes), formatBytes(p.heldBytes), formatBytes(p.predictedBytes),
          formatBytes(p.fiemapExclusiveBytes), formatBytes(p.freedBytes), p.snapshotMismatches + p.liveMismatches === 0 ? 'as written' : 'DIFFERS',
        ])),
        ...raw.rows.filter((r) => r.notMeasured !== null).map((r) => [LABEL[r.backing], r.notMeasured!, '', '', '', '', '', '', '']),
      ],
      note: 'Model: the bytes of the snapshot\'s sharing units every block of which the live file overwrote (XFS: each 4 KiB block; Btrfs: each extent, whole). Btrfs frees a deleted subvolume in its cleaner (waited for); XFS frees an unlinked file in background inactivation (drained with a freeze and thaw of the scratch file system).',
    }],
  };
}

export default defineExperiment<Raw>({
  number: 17,
  name: 'snapshot-lifetime',
  title: 'A snapshot holds the distinct blocks overwritten since',
  claim: 'The space a snapshot holds alone grows with the distinct blocks the live file overwrote after it (the storage form of BGSAVE\'s distinct pages), counted at the file system\'s sharing unit (a block on XFS, a whole extent on Btrfs), and deleting the snapshot frees exactly that.',
  short: 'snapshot holds distinct blocks overwritten, frees on delete',
  measures: 'On scratch Btrfs (quotas on) and XFS (reflink=1): a 64 MiB file (quick: 32 MiB; 16 MiB on an emulated CPU) snapshotted (btrfs subvolume snapshot -r; XFS FICLONE), then 0, 10, 50, 100 % of its blocks (random, distinct) overwritten with fsync, and 50 % written twice; held from the file system\'s counters (btrfs quota rescan -w + qgroup show --raw exclusive; XFS FIEMAP of the clone), predicted by an extent model from the snapshot\'s FIEMAP; the snapshot deleted and the free space it gave back read (statfs, after the Btrfs cleaner / an XFS freeze); both files read back.',
  rule: 'Confirmed when, for each measured backing and case, the held bytes are within 1 MiB + 2 % of the file of the extent model (the units of the snapshot whose every block was overwritten: so the twice case holds what the once case holds), deleting the snapshot frees the held bytes within the same tolerance, and the snapshot reads back the old bytes and the live file the new ones; refuted otherwise; not measurable without root or the tools (btrfs-progs, xfsprogs, util-linux fsfreeze).',
  requirements: {},
  guest: { modules: ['loop', 'btrfs', 'xfs'], tools: ['losetup', 'mkfs.btrfs', 'mkfs.xfs', 'btrfs'] },
  budgetMs: { full: 30_000, quick: 15_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
