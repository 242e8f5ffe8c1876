/**
 * What first-write-cost and second-write share: the overwrite sweep (src/storage/overwrite.ts)
 * on scratch Btrfs and XFS and on a dm-snapshot (src/storage/dmsnapshot.ts), its schema, and
 * what a guest needs for it. Not an experiment.
 */
import { z } from 'zod';

import { formatBytes } from '../src/report/format.js';
import { deviceMapperMissing, measureDmOverwrite } from '../src/storage/dmsnapshot.js';
import { measureOverwrite, type OverwriteObservation } from '../src/storage/overwrite.js';
import { SECTOR_BYTES } from '../src/storage/blockdev.js';
import { BLOCK_BYTES } from '../src/storage/files.js';
import { checkpointTurn, clampForEmulatedCpu, clampToDisk, unlessNotMeasurable, withStorage } from '../src/storage/session.js';
import { formatPercent } from '../src/suite/present.js';
import { sized, Steps, type BySize } from '../src/suite/steps.js';
import type { RunContext } from '../src/suite/types.js';

const MiB = 2 ** 20;
export const SECTORS_PER_BLOCK = BLOCK_BYTES / SECTOR_BYTES;

export const CountersSchema = z.object({
  readIos: z.number(), readSectors: z.number(), writeIos: z.number(), writtenSectors: z.number(), discardSectors: z.number(), flushIos: z.number(),
});

export const ObservationSchema = z.object({
  writeNs: z.number(),
  fsyncNs: z.number(),
  io: z.object({ untilReturn: CountersSchema, total: CountersSchema, freeDeltaBytes: z.number() }),
  writtenStillShared: z.number().int(),
  othersNotShared: z.number().int(),
  relocated: z.number().int(),
  liveMismatches: z.number().int(),
  cloneMismatches: z.number().int(),
});

export const PointSchema = z.object({
  fraction: z.number(),
  fileBytes: z.number().int(),
  blocks: z.number().int(),
  written: z.number().int(),
  plain: ObservationSchema,
  plainSecond: ObservationSchema,
  first: ObservationSchema,
  second: ObservationSchema,
  cloneSharedAfterFirst: z.number(),
});
export type OverwritePoint = z.infer<typeof PointSchema>;

export const ROW_BACKINGS = ['btrfs-reflink', 'xfs-reflink', 'dm-snapshot'] as const;
export type RowBacking = (typeof ROW_BACKINGS)[number];
export const ROW_LABEL: Record<RowBacking, string> = {
  'btrfs-reflink': 'Btrfs reflink (redirect-on-write)',
  'xfs-reflink': 'XFS reflink (redirect-on-write)',
  'dm-snapshot': 'dm-snapshot (copy-on-first-write)',
};

export const RowSchema = z.object({
  backing: z.enum(ROW_BACKINGS),
  points: z.array(PointSchema),
  /** Why this row was not measured here (dm-snapshot without device-mapper, a missing tool). */
  notMeasured: z.string().nullable(),
});
export const OverwriteRawSchema = z.object({ blockBytes: z.number().int(), rows: z.array(RowSchema) });
export type OverwriteRaw = z.infer<typeof OverwriteRawSchema>;

/** Why the dm-snapshot row is not measured here, or null when device-mapper can be used. */
export function dmSnapshotReason(): string | null {
  const missing = deviceMapperMissing();
  if (missing === null) return null;
  return `copy-on-first-write needs dm-snapshot, and ${missing}; the host kernel is not to be changed: run it in a guest of a Debian kernel that ships dm-snapshot as a module (\`cowlab run first-write-cost --kernel debian:6.12\`)`;
}

/** The modules and tools a guest needs for the overwrite sweep's rows (dm-snapshot, Btrfs, XFS). */
export const OVERWRITE_GUEST = { modules: ['loop', 'dm_snapshot', 'btrfs', 'xfs'], tools: ['losetup', 'dmsetup', 'mkfs.btrfs', 'mkfs.xfs'] } as const;

/** Under an emulated CPU (a TCG guest) the file is clamped: every block write is a syscall
 *  the emulator runs slowly. */
const TCG_FILE_BYTES = 8 * MiB;
// (The images there are the smallest each mkfs takes, in the guest's RAM.)

/** Device blocks written per block overwritten (syncfs included). */
export function writesPerBlock(o: OverwriteObservation | z.infer<typeof ObservationSchema>, written: number): number {
  return o.io.total.writtenSectors / SECTORS_PER_BLOCK / written;
}

export function readsPerBlock(o: z.infer<typeof ObservationSchema>, written: number): number {
  return o.io.total.readSectors / SECTORS_PER_BLOCK / written;
}

/** (writes + fsync) per block written, ns. */
export function nsPerBlock(o: z.infer<typeof ObservationSchema>, written: number): number {
  return (o.writeNs + o.fsyncNs) / written;
}

/** The time a point of `count` blocks will take: a line (fixed cost + per block) through the
 *  last two points, or the last point's time when there is one. */
function predictMs(took: readonly { count: number; ms: number }[], count: number): number {
  const b = took.at(-1);
  const a = took.at(-2);
  if (b === undefined) return 0;
  if (a === undefined || b.count === a.count) return b.ms;
  const perBlock = Math.max(0, (b.ms - a.ms) / (b.count - a.count));
  return Math.max(b.ms, b.ms + perBlock * (count - b.count));
}

/** The sweep: for btrfs, xfs and dm-snapshot, each fraction of a file's blocks overwritten
 *  (plain, first, second). A row that cannot be made here says why, the others are measured. */
export async function runOverwriteSweep(ctx: RunContext, sizes: { file: BySize<number>; fractions: BySize<number[]> }): Promise<OverwriteRaw> {
  const raw: OverwriteRaw = { blockBytes: BLOCK_BYTES, rows: [] };
  const fractions = sized(ctx, sizes.fractions);
  return withStorage(ctx, async (s) => {
    const { bytes: wanted, emulated } = clampForEmulatedCpu(ctx, sized(ctx, sizes.file), TCG_FILE_BYTES, 'file');
    const fileBytes = clampToDisk(ctx, s, wanted, 1 / 16, 'file');
    const steps = new Steps(ctx, 3 * fractions.length);
    const dmMissing = dmSnapshotReason();
    const start = performance.now();
    for (const backing of ROW_BACKINGS) {
      const kind = backing === 'dm-snapshot' ? null : backing === 'btrfs-reflink' ? 'btrfs' : 'xfs';
      const fs = kind === null ? dmMissing : unlessNotMeasurable(() => s.filesystem(kind, Math.max(4 * fileBytes, emulated ? 0 : 1024 * MiB)));
      const row: OverwriteRaw['rows'][number] = { backing, points: [], notMeasured: typeof fs === 'string' ? fs : null };
      raw.rows.push(row);
      if (typeof fs === 'string') continue;
      const name = kind ?? 'dm-snapshot';
      // Each row its share of what is left of the budget to start points in, so the last row
      // is measured too (a dm-snapshot row that cannot be made here takes none).
      const left = ROW_BACKINGS.slice(ROW_BACKINGS.indexOf(backing)).filter((b) => b !== 'dm-snapshot' || dmMissing === null).length;
      const deadline = performance.now() + (start + ctx.budgetMs - performance.now()) / left;
      const took: { count: number; ms: number }[] = [];
      for (const [i, fraction] of fractions.entries()) {
        const count = Math.max(1, Math.round(fraction * (fileBytes / BLOCK_BYTES)));
        // A row past its share stops; so does one whose next point would end past the budget.
        const now = performance.now();
        if (i > 0 && (ctx.overBudget() || now > deadline || now + predictMs(took, count) > start + ctx.budgetMs)) {
          ctx.note(`${name}: stopped before ${formatPercent(fraction, 1)} of the blocks: its share of the ${ctx.budgetMs / 1000} s budget was spent`);
          break;
        }
        steps.next(`${name}, ${formatPercent(fraction, 1)} of ${formatBytes(fileBytes)} overwritten`);
        const t0 = performance.now();
        // dm-snapshot's tables are first made here: a kernel that refuses them leaves the row
        // not measured, with its reason, and the file system rows stand.
        const m = fs === null ? unlessNotMeasurable(() => measureDmOverwrite(s, fileBytes, count, 1000 + i)) : measureOverwrite(s, fs, fileBytes, count, 1000 + i);
        if (typeof m === 'string') {
          row.notMeasured = m;
          break;
        }
        row.points.push({ fraction: m.written / m.blocks, fileBytes: m.fileBytes, blocks: m.blocks, written: m.written, plain: m.plain, plainSecond: m.plainSecond, first: m.first, second: m.second, cloneSharedAfterFirst: m.cloneSharedAfterFirst });
        took.push({ count, ms: performance.now() - t0 });
        steps.keep(raw);
        await checkpointTurn(ctx.signal);
      }
    }
    steps.finish();
    return raw;
  });
}
