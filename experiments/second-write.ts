/**
 * Experiment 15 (issue 14, storage 3): the second overwrite of a block after a snapshot costs
 * a plain write, because the block is already private to the live file: the storage analogue
 * of reuse. Measured on the device's own counters; FIEMAP shows the blocks stay private and
 * (on XFS) where they are, since a private block is overwritten in place.
 */
import { formatBytes, formatNs, formatRatio } from '../src/report/format.js';
import { pointBand } from '../src/suite/measure.js';
import { formatPercent } from '../src/suite/present.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';
import { nsPerBlock, OVERWRITE_GUEST, OverwriteRawSchema, ROW_LABEL, runOverwriteSweep, writesPerBlock, type OverwritePoint, type OverwriteRaw } from './storage-overwrite.js';

type Raw = OverwriteRaw;
const MiB = 2 ** 20;
/** A second write "costs a plain write" when it writes at most this much more than one. */
const MAX_SECOND_OVER_PLAIN = 1.33;

async function run(ctx: RunContext): Promise<Raw> {
  return runOverwriteSweep(ctx, { file: { full: 64 * MiB, quick: 32 * MiB }, fractions: { full: [0.01, 0.1, 0.5], quick: [0.01, 0.1] } });
}

/** The second write after a clone over the second overwrite of a file never cloned. */
const ratio = (p: OverwritePoint) => writesPerBlock(p.second, p.written) / writesPerBlock(p.plainSecond, p.written);
/** ... and over the first overwrite of it (shown, not judged). */
const overFirstPlain = (p: OverwritePoint) => writesPerBlock(p.second, p.written) / writesPerBlock(p.plain, p.written);

function problems(p: OverwritePoint): string[] {
  const at = `at ${formatPercent(p.fraction, 1)}`;
  const out: string[] = [];
  if (ratio(p) > MAX_SECOND_OVER_PLAIN) out.push(`${at} the second write wrote ${formatRatio(ratio(p))} the same overwrite of a file never cloned`);
  if (p.second.writtenStillShared > 0) out.push(`${at} FIEMAP shows ${p.second.writtenStillShared} written blocks shared again`);
  if (p.second.liveMismatches + p.second.cloneMismatches > 0) out.push(`${at} ${p.second.liveMismatches} live and ${p.second.cloneMismatches} clone blocks read back wrong`);
  return out;
}

function verdict(raw: Raw) {
  const measured = raw.rows.filter((r) => r.points.length > 0);
  const metrics: Metric[] = measured.flatMap((r) => r.points.flatMap((p) => [
    { key: `${r.backing}@${formatPercent(p.fraction, 1)}:second-over-plain`, label: `${ROW_LABEL[r.backing]}: second write's device writes over a plain overwrite's, ${formatPercent(p.fraction, 1)}`, unit: 'ratio', value: pointBand(ratio(p)) },
    { key: `${r.backing}@${formatPercent(p.fraction, 1)}:second-ns-per-block`, label: `${ROW_LABEL[r.backing]}: second write + fsync per block, ${formatPercent(p.fraction, 1)}`, unit: 'ns', value: pointBand(nsPerBlock(p.second, p.written)), timed: true },
  ]));
  if (measured.length === 0) return { verdict: 'not-measurable' as const, figure: 'nothing measured', reason: 'No backing was measured.', metrics };
  const bad = measured.flatMap((r) => r.points.flatMap(problems).map((x) => `${ROW_LABEL[r.backing]} ${x}`));
  const last = measured[0]!.points.at(-1)!;
  const figure = `${formatPercent(last.fraction)} of ${formatBytes(last.fileBytes)}, device blocks per block written: ` + measured.map((r) => {
    const p = r.points.at(-1)!;
    return `${r.backing.replace('-reflink', '')} first ${writesPerBlock(p.first, p.written).toFixed(2)}, second ${writesPerBlock(p.second, p.written).toFixed(2)} (never cloned: ${writesPerBlock(p.plain, p.written).toFixed(2)}, ${writesPerBlock(p.plainSecond, p.written).toFixed(2)})`;
  }).join('; ');
  const reason = bad.length ? `${bad.join('; ')}.` : measured.map((r) => {
    const p = r.points.at(-1)!;
    return `${ROW_LABEL[r.backing]}: the second write wrote ${formatRatio(ratio(p))} the second overwrite of a file never cloned (${formatRatio(overFirstPlain(p))} its first), its blocks stayed private, ${p.second.relocated} of ${p.written} moved again (${p.second.relocated === 0 ? 'overwritten in place' : 'the file system redirects every write'}), content as written.`;
  }).join(' ');
  const unmeasured = raw.rows.filter((r) => r.notMeasured !== null).map((r) => ` The ${r.backing} row was not measured: ${r.notMeasured}.`).join('');
  return { verdict: bad.length ? ('refuted' as const) : ('confirmed' as const), figure, reason: reason + unmeasured, metrics };
}

function present(raw: Raw) {
  const measured = raw.rows.filter((r) => r.points.length > 0);
  const cats = measured.flatMap((r) => r.points.map((p) => `${r.backing.replace('-reflink', '')} ${formatPercent(p.fraction, 1)}`));
  const pts = measured.flatMap((r) => r.points);
  return {
    charts: [{
      kind: 'bar' as const,
      title: 'Device blocks written per block: first and second write after a clone, and a plain overwrite',
      categories: cats,
      y: { label: 'device writes per block', unit: 'blocks' },
      series: [
        { name: 'first write after the clone', values: pts.map((p) => writesPerBlock(p.first, p.written)) },
        { name: 'second write of the same blocks', values: pts.map((p) => writesPerBlock(p.second, p.written)) },
        { name: 'never cloned: first overwrite', values: pts.map((p) => writesPerBlock(p.plain, p.written)) },
        { name: 'never cloned: second overwrite', values: pts.map((p) => writesPerBlock(p.plainSecond, p.written)) },
      ],
    }],
    tables: [{
      title: 'Second overwrite of the same blocks after a reflink clone',
      head: ['backing', 'written', 'first writes/block', 'second writes/block', 'never cloned: 1st, 2nd', 'second / never cloned 2nd', 'first per block', 'second per block', 'never cloned 2nd per block', 'moved (first, second)', 'content'],
      rows: [
        ...measured.flatMap((r) => r.points.map((p) => [
          ROW_LABEL[r.backing], `${formatPercent(p.fraction, 1)} (${p.written})`,
          writesPerBlock(p.first, p.written).toFixed(2), writesPerBlock(p.second, p.written).toFixed(2), `${writesPerBlock(p.plain, p.written).toFixed(2)}, ${writesPerBlock(p.plainSecond, p.written).toFixed(2)}`, formatRatio(ratio(p)),
          formatNs(nsPerBlock(p.first, p.written)), formatNs(nsPerBlock(p.second, p.written)), formatNs(nsPerBlock(p.plainSecond, p.written)),
          `${p.first.relocated}, ${p.second.relocated} of ${p.written}`,
          p.second.liveMismatches + p.second.cloneMismatches === 0 ? 'as written' : 'DIFFERS',
        ])),
        ...raw.rows.filter((r) => r.notMeasured !== null).map((r) => [ROW_LABEL[r.backing], r.notMeasured!, '', '', '', '', '', '', '', '', '']),
      ],
      note: 'Loop device sectors over the writes, one fsync and a syncfs, in 4 KiB blocks (metadata and journal included). Btrfs writes every block elsewhere (moved) even when it is private; XFS overwrites a private block in place. The reference is the second overwrite of a never-cloned file: on Btrfs a second overwrite frees the first one\'s extents (more extent-tree work than the first overwrite, which leaves the old extent referenced), with or without a clone.',
    }],
  };
}

export default defineExperiment<Raw>({
  number: 15,
  name: 'second-write',
  title: 'Second write after a snapshot costs a plain write',
  claim: 'After the first write unshared a block, a second overwrite of it costs a plain write: what the same overwrite of a never-cloned file costs; nothing is unshared any more (the storage analogue of reuse).',
  short: 'second write after a clone costs a plain write',
  measures: 'On scratch Btrfs and XFS, and a dm-snapshot where the kernel has device-mapper (a guest): a 64 MiB file (quick: 32 MiB; 8 MiB on an emulated CPU) cloned with FICLONE or snapshotted, 1 % to 50 % of its blocks overwritten twice (one fsync each), against the same two overwrites of a file never cloned; loop device sectors written per block (syncfs included), FIEMAP (sharing and physical address of each written block), both files read back.',
  rule: `Confirmed when, for each measured backing and fraction, the second write's device writes are at most ${MAX_SECOND_OVER_PLAIN}x those of the second overwrite of a never-cloned file (the same blocks, written twice), FIEMAP shows its blocks still private and both files read back as written; refuted otherwise; not measurable without root or the tools.`,
  requirements: {},
  guest: OVERWRITE_GUEST,
  budgetMs: { full: 24_000, quick: 9_000 },
  raw: OverwriteRawSchema,
  run,
  verdict,
  present,
});
