/**
 * One timed write run on a region, shared by region-bench (src/region/bench.ts) and the
 * write-tracking comparison (src/tracking/tracker.ts, mechanism `region`): fork the root, time
 * one 8-byte store per listed page into the fork in native code, and check every byte of both
 * views. It lives apart from both so neither imports the other.
 */
import { CowlabError } from '../errors.js';
import { pageSize } from '../memory/mapping.js';
import { native } from '../native.js';
import type { CowPolicyInput } from './policy.js';
import { CowRegion, PAGE_STATE, type CowView } from './region.js';

/** One region repeat: fork the root, time a store per page into the fork, check content. */
export interface RegionWriteRun {
  latencyNs: Float64Array;
  snapshotNs: number;
  faults: number;
  copies: number;
  /** With `collect`: ns of reading the fork's page table (which pages it wrote), and the pages
   *  it reports writable (1 per page); otherwise null. */
  collectNs: number | null;
  reported: Uint8Array | null;
}

/** Every word of page p holds fill(p) until a store writes `tag + p` over its first 8 bytes. */
function fill(p: number): number {
  return (Math.imul(p + 1, 0x85eb_ca6b) ^ 0x3c3c_3c3c) >>> 0;
}

function fillRegion(view: CowView): void {
  const words = new Uint32Array(view.buffer);
  const wpp = pageSize() / 4;
  for (let p = 0; p < view.pages; p++) words.fill(fill(p), p * wpp, (p + 1) * wpp);
}

/** Pages of `view` whose bytes differ from the fill pattern, except words 0-1 of `written`
 *  pages, which must hold `tagHigh:p`. */
function mismatches(view: CowView, written: Uint8Array | null, tagHigh: number): number {
  const words = new Uint32Array(view.buffer);
  const wpp = pageSize() / 4;
  let bad = 0;
  for (let p = 0; p < view.pages; p++) {
    const base = p * wpp;
    const w = fill(p);
    const stored = written !== null && written[p] === 1;
    let ok = stored ? words[base] === p && words[base + 1] === tagHigh : words[base] === w && words[base + 1] === w;
    for (let i = base + 2; ok && i < base + wpp; i++) ok = words[i] === w;
    if (!ok) bad++;
  }
  return bad;
}

/** A region for regionWriteRun: `pages` populated pages, each filled with its pattern. */
export function createBenchRegion(pages: number, policy: CowPolicyInput): CowRegion {
  const region = CowRegion.create({ pages, policy });
  try {
    fillRegion(region.root);
  } catch (err) {
    region.close();
    throw err;
  }
  return region;
}

/**
 * Runs one region repeat on a region made by createBenchRegion.
 * Throws ERR_VERIFY when a byte of either view is not what was written to it.
 */
export function regionWriteRun(region: CowRegion, order: Uint32Array, run: number, collect = false): RegionWriteRun {
  const tagHigh = (0xd0_00_00_00 | (run & 0xff_ffff)) >>> 0;
  const child = region.root.fork();
  try {
    const before = region.stats().views.find((v) => v.handle === child.handle)!;
    const latencyNs = native().regionTimedAccess(child.handle, order, true, BigInt(tagHigh) << 32n);
    let collectNs: number | null = null;
    let reported: Uint8Array | null = null;
    if (collect) {
      const t0 = process.hrtime.bigint();
      const table = child.pageTable();
      collectNs = Number(process.hrtime.bigint() - t0);
      reported = table.state.map((s) => (s === PAGE_STATE.writable ? 1 : 0));
    }
    const after = region.stats().views.find((v) => v.handle === child.handle)!;
    const written = new Uint8Array(region.pages);
    for (const p of order) written[p] = 1;
    const badChild = mismatches(child, written, tagHigh);
    const badRoot = mismatches(region.root, null, 0);
    if (badChild + badRoot > 0) {
      throw new CowlabError(
        'ERR_VERIFY',
        `region run ${run}: ${badChild} pages of the fork and ${badRoot} of the root differ from what was written to them`,
      );
    }
    return {
      latencyNs,
      snapshotNs: child.forkNs!,
      faults: after.faults - before.faults,
      // Eager copies inside fork(), which made the view: its whole count is this run's.
      copies: region.policy.kind === 'eager' ? after.copies : after.copies - before.copies,
      collectNs,
      reported,
    };
  } finally {
    child.release();
  }
}
