/**
 * Experiment 16 (issue 14, storage 4): overlayfs is file-granular copy-on-write. The first
 * write of one byte into a file of the lower layer copies the whole file up into the upper
 * layer, so its cost grows with the file's size; an upper layer on the same reflink-capable
 * file system as the lower one lets the kernel clone instead of copy (ovl_copy_up tries
 * vfs_clone_file_range first). Measured on the upper layer's device.
 */
import { z } from 'zod';

import { formatBytes, formatNs } from '../src/report/format.js';
import { readFiemap, summarizeSharing } from '../src/storage/fiemap.js';
import { BLOCK_BYTES, checkContent, readByte, writeOneByte, writePatternFile } from '../src/storage/files.js';
import { SECTOR_BYTES } from '../src/storage/blockdev.js';
import { checkpointTurn, clampToDisk, durable, withStorage } from '../src/storage/session.js';
import { pointBand, toMs } from '../src/suite/measure.js';
import { formatPercent } from '../src/suite/present.js';
import { sized, Steps } from '../src/suite/steps.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const MiB = 2 ** 20;
const SIZES = { full: [1, 4, 16, 64, 256].map((m) => m * MiB), quick: [1, 8, 64].map((m) => m * MiB) };
/** "Copies the whole file": the upper's device wrote at least this share of the file's size. */
const WHOLE_FILE = 0.9;

const CASES = ['separate-fs', 'same-xfs'] as const;
type Case = (typeof CASES)[number];
const CASE_LABEL: Record<Case, string> = {
  'separate-fs': 'lower on Btrfs, upper on XFS (copy-up copies)',
  'same-xfs': 'lower and upper on one XFS (reflink=1: copy-up may clone)',
};

const PointSchema = z.object({
  bytes: z.number().int(),
  /** open(O_RDWR) (the copy-up) + 1-byte write + fsync, ns. */
  ns: z.number(),
  /** Sectors the upper layer's device wrote (syncfs included). */
  upperSectorsWritten: z.number(),
  /** The file's size in the upper layer after the write (the whole file, or nothing). */
  upperFileBytes: z.number(),
  /** FIEMAP of the upper file: bytes shared (with the lower file, when cloned). */
  upperSharedFraction: z.number(),
  /** The merged file reads the new byte and the old rest; the lower file is unchanged. */
  mergedOk: z.boolean(),
  lowerOk: z.boolean(),
});
const RawSchema = z.object({ rows: z.array(z.object({ case: z.enum(CASES), points: z.array(PointSchema) })) });
type Raw = z.infer<typeof RawSchema>;
type Point = z.infer<typeof PointSchema>;

async function run(ctx: RunContext): Promise<Raw> {
  const raw: Raw = { rows: [] };
  return withStorage(ctx, async (s) => {
    const largest = clampToDisk(ctx, s, Math.max(...sized(ctx, SIZES)), 1 / 16, 'largest file');
    const sizes = sized(ctx, SIZES).filter((b) => b <= largest);
    const total = sizes.reduce((a, b) => a + b, 0);
    const image = Math.max(3 * total + 256 * MiB, 1024 * MiB);
    const upperFs = s.filesystem('xfs', image, 'xfs-upper');
    const lowerFs = s.filesystem('btrfs', image, 'btrfs-lower');
    const steps = new Steps(ctx, CASES.length * sizes.length);
    for (const c of CASES) {
      const row = { case: c, points: [] as Point[] };
      raw.rows.push(row);
      const lowerDir = c === 'same-xfs' ? `${upperFs.mountpoint}/lower` : `${lowerFs.mountpoint}/lower`;
      s.mkdir(lowerDir.slice(s.dir.length + 1));
      for (const bytes of sizes) writePatternFile(`${lowerDir}/f-${bytes}`, bytes, 1);
      const upper = s.mkdir(`${upperFs.mountpoint.slice(s.dir.length + 1)}/upper-${c}`);
      const work = s.mkdir(`${upperFs.mountpoint.slice(s.dir.length + 1)}/work-${c}`);
      const merged = s.overlay(lowerDir, upper, work, `merged-${c}`);
      for (const bytes of sizes) {
        steps.next(`${CASE_LABEL[c]}, ${formatBytes(bytes)}`);
        const offset = Math.floor(bytes / 2) + 1; // inside a block, not on its boundary
        const file = `${merged}/f-${bytes}`;
        const { result, io } = durable(s, upperFs, () => writeOneByte(file, offset, 0x5a));
        const up = readByte(`${upper}/f-${bytes}`, 0);
        const shared = summarizeSharing(readFiemap(`${upper}/f-${bytes}`), 0, up.size).sharedBytes / Math.max(1, up.size);
        // The merged file: the new byte, every other byte as before (the block holding the
        // byte is checked apart from the others).
        const hit = Math.floor(offset / BLOCK_BYTES);
        const rest = checkContent(file, () => 1);
        const mergedOk = readByte(file, offset).byte === 0x5a && rest.mismatched === 1 && rest.first?.block === hit;
        const lower = checkContent(`${lowerDir}/f-${bytes}`, () => 1);
        row.points.push({ bytes, ns: result.ns, upperSectorsWritten: io.total.writtenSectors, upperFileBytes: up.size, upperSharedFraction: shared, mergedOk, lowerOk: lower.mismatched === 0 });
        steps.keep(raw);
        await checkpointTurn(ctx.signal);
      }
      s.unmount(merged);
    }
    steps.finish();
    return raw;
  });
}

const writtenShare = (p: Point) => (p.upperSectorsWritten * SECTOR_BYTES) / p.bytes;

function verdict(raw: Raw) {
  const metrics: Metric[] = raw.rows.flatMap((r) => r.points.flatMap((p) => [
    { key: `${r.case}@${p.bytes / MiB}MiB:upper-bytes-written`, label: `${CASE_LABEL[r.case]}: upper device bytes written for a 1-byte write, ${formatBytes(p.bytes)} file`, unit: 'bytes', value: pointBand(p.upperSectorsWritten * SECTOR_BYTES) },
    { key: `${r.case}@${p.bytes / MiB}MiB:ns`, label: `${CASE_LABEL[r.case]}: first 1-byte write (copy-up) + fsync, ${formatBytes(p.bytes)} file`, unit: 'ns', value: pointBand(p.ns), timed: true },
  ]));
  const sep = raw.rows.find((r) => r.case === 'separate-fs');
  if (!sep || sep.points.length < 2) return { verdict: 'not-measurable' as const, figure: 'fewer than two sizes measured', reason: 'The copy-up across file systems was measured at fewer than two sizes.', metrics };
  const problems: string[] = [];
  for (const p of sep.points) {
    if (writtenShare(p) < WHOLE_FILE) problems.push(`at ${formatBytes(p.bytes)} the upper device wrote only ${formatPercent(writtenShare(p))} of the file`);
    if (p.upperFileBytes !== p.bytes) problems.push(`at ${formatBytes(p.bytes)} the upper file holds ${formatBytes(p.upperFileBytes)}`);
  }
  for (const r of raw.rows) for (const p of r.points) {
    if (!p.mergedOk || !p.lowerOk) problems.push(`${r.case} at ${formatBytes(p.bytes)}: the ${p.mergedOk ? 'lower' : 'merged'} file does not read back as it should`);
  }
  const a = sep.points[0]!;
  const b = sep.points.at(-1)!;
  const same = raw.rows.find((r) => r.case === 'same-xfs')?.points.at(-1);
  const sameText = same
    ? `; with a reflink-capable upper on the lower's XFS: ${formatBytes(same.upperSectorsWritten * SECTOR_BYTES)} written, ${formatNs(same.ns)}, upper file ${formatPercent(same.upperSharedFraction)} shared (${writtenShare(same) < 0.1 ? 'cloned, not copied' : 'copied'})`
    : '';
  const figure = `a 1-byte write copies up the whole file: ${formatBytes(a.upperSectorsWritten * SECTOR_BYTES)} written, ${formatNs(a.ns)} for ${formatBytes(a.bytes)}; ${formatBytes(b.upperSectorsWritten * SECTOR_BYTES)}, ${formatNs(b.ns)} for ${formatBytes(b.bytes)}${sameText}`;
  const reason = problems.length ? `${problems.join('; ')}.` :
    `Across file systems the upper device wrote ${sep.points.map((p) => formatPercent(writtenShare(p))).join(', ')} of each file's size (${sep.points.map((p) => formatBytes(p.bytes)).join(', ')}), the upper file holds the whole file, the merged file reads the new byte and the old rest, the lower file is unchanged${sameText}.`;
  return { verdict: problems.length ? ('refuted' as const) : ('confirmed' as const), figure, reason, metrics };
}

function present(raw: Raw) {
  return {
    charts: [
      {
        kind: 'line' as const,
        title: 'First 1-byte write into a lower-layer file: bytes the upper device wrote',
        x: { label: 'file size', unit: 'MiB', scale: 'log' as const },
        y: { label: 'written on the upper device', unit: 'MiB' },
        series: raw.rows.map((r) => ({ name: CASE_LABEL[r.case], points: r.points.map((p) => ({ x: p.bytes / MiB, y: (p.upperSectorsWritten * SECTOR_BYTES) / MiB })) })),
      },
      {
        kind: 'line' as const,
        title: 'First 1-byte write into a lower-layer file: time (open + write + fsync)',
        x: { label: 'file size', unit: 'MiB', scale: 'log' as const },
        y: { label: 'time', unit: 'ms', scale: 'log' as const },
        series: raw.rows.map((r) => ({ name: CASE_LABEL[r.case], points: r.points.map((p) => ({ x: p.bytes / MiB, y: toMs(p.ns) })) })),
      },
    ],
    tables: [{
      title: 'overlayfs copy-up of a lower file on its first 1-byte write',
      head: ['case', 'file', 'time', 'upper device wrote', 'of the file', 'upper file size', 'upper shared (FIEMAP)', 'merged', 'lower'],
      rows: raw.rows.flatMap((r) => r.points.map((p) => [
        CASE_LABEL[r.case], formatBytes(p.bytes), formatNs(p.ns), formatBytes(p.upperSectorsWritten * SECTOR_BYTES), formatPercent(writtenShare(p)),
        formatBytes(p.upperFileBytes), formatPercent(p.upperSharedFraction), p.mergedOk ? 'new byte, old rest' : 'DIFFERS', p.lowerOk ? 'unchanged' : 'CHANGED',
      ])),
      note: 'Time is open(O_RDWR) of the merged file (which copies it up), the 1-byte pwrite and fsync. Bytes are the upper layer\'s loop device sectors, syncfs included.',
    }],
  };
}

export default defineExperiment<Raw>({
  number: 16,
  name: 'overlay-copy-up',
  title: 'overlayfs copy-up copies the whole file',
  claim: 'overlayfs is file-granular copy-on-write: the first write of one byte into a lower-layer file copies the whole file into the upper layer, so its cost grows with the file\'s size (a reflink-capable upper on the lower\'s file system can clone instead).',
  short: '1-byte write into a lower file copies it whole',
  measures: 'An overlayfs with the lower layer on a scratch Btrfs and the upper on a scratch XFS, and one with both on the XFS (reflink=1); files of 1 MiB to 256 MiB (quick: to 64 MiB) in the lower layer; one byte written (open + pwrite + fsync) through the merged directory; sectors written on the upper\'s loop device (syncfs included), the upper file\'s size and FIEMAP, the merged and lower files read back.',
  rule: `Confirmed when, across file systems, the upper device wrote at least ${formatPercent(WHOLE_FILE)} of the file's size at every size (two sizes or more), the upper file holds the whole file, the merged file reads the new byte and the old rest, and the lower file is unchanged; refuted otherwise. The same-file-system row is reported (clone or copy), not judged. Not measurable without root, the tools or overlay support.`,
  requirements: {},
  budgetMs: { full: 20_000, quick: 9_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
