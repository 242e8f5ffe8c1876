/**
 * What first-write-cost and second-write share: the overwrite sweep (src/storage/overwrite.ts)
 * on scratch Btrfs and XFS, its schema, and the dm-snapshot row's reason. Not an experiment.
 */
import { z } from 'zod';

import { formatBytes } from '../src/report/format.js';
import { readSmallFile } from '../src/util/sysfs.js';
import { measureOverwrite, type OverwriteObservation } from '../src/storage/overwrite.js';
import { SECTOR_BYTES } from '../src/storage/blockdev.js';
import { BLOCK_BYTES } from '../src/storage/files.js';
import { checkpointTurn, clampToDisk, withStorage } from '../src/storage/session.js';
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
  /** Why this row was not measured (dm-snapshot here). */
  notMeasured: z.string().nullable(),
});
export const OverwriteRawSchema = z.object({ blockBytes: z.number().int(), rows: z.array(RowSchema) });
export type OverwriteRaw = z.infer<typeof OverwriteRawSchema>;

/** Why the dm-snapshot row is not measured on this host. */
export function dmSnapshotReason(): string {
  const misc = readSmallFile('/proc/misc') ?? '';
  const why = /\bdevice-mapper\b/.test(misc)
    ? 'this kernel has device-mapper, but cowlab does not yet make dm-snapshot targets on the host'
    : 'this kernel has no device-mapper (no device-mapper in /proc/misc), and the host kernel is not to be changed';
  return `not measured here: copy-on-first-write needs dm-snapshot; ${why}. The route is a guest of a Debian kernel that ships dm-snapshot as a module (the --kernel guest runner), not yet wired for the storage experiments`;
}

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

/** The sweep: for btrfs and xfs, each fraction of a file's blocks overwritten (plain, first, second). */
export async function runOverwriteSweep(ctx: RunContext, sizes: { file: BySize<number>; fractions: BySize<number[]> }): Promise<OverwriteRaw> {
  const raw: OverwriteRaw = { blockBytes: BLOCK_BYTES, rows: [] };
  const fractions = sized(ctx, sizes.fractions);
  return withStorage(ctx, async (s) => {
    const fileBytes = clampToDisk(ctx, s, sized(ctx, sizes.file), 1 / 16, 'file');
    const steps = new Steps(ctx, 2 * fractions.length);
    for (const kind of ['btrfs', 'xfs'] as const) {
      const fs = s.filesystem(kind, Math.max(4 * fileBytes, 1024 * MiB));
      const row = { backing: `${kind}-reflink` as RowBacking, points: [] as OverwritePoint[], notMeasured: null };
      raw.rows.push(row);
      for (const [i, fraction] of fractions.entries()) {
        if (i > 0 && ctx.overBudget()) {
          ctx.note(`${kind}: stopped before ${formatPercent(fraction, 1)} of the blocks: the ${ctx.budgetMs / 1000} s budget was spent`);
          break;
        }
        steps.next(`${kind}, ${formatPercent(fraction, 1)} of ${formatBytes(fileBytes)} overwritten`);
        const count = Math.max(1, Math.round(fraction * (fileBytes / BLOCK_BYTES)));
        const m = measureOverwrite(s, fs, fileBytes, count, 1000 + i);
        row.points.push({ fraction: m.written / m.blocks, fileBytes: m.fileBytes, blocks: m.blocks, written: m.written, plain: m.plain, plainSecond: m.plainSecond, first: m.first, second: m.second, cloneSharedAfterFirst: m.cloneSharedAfterFirst });
        steps.keep(raw);
        await checkpointTurn(ctx.signal);
      }
    }
    raw.rows.push({ backing: 'dm-snapshot', points: [], notMeasured: dmSnapshotReason() });
    steps.finish();
    return raw;
  });
}
