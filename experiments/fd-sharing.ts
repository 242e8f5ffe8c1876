/**
 * Experiment 19: what fork shares and what it copies. A child's private memory is a copy (COW):
 * its stores never reach the parent. A MAP_SHARED mapping is not copied: they do. And the file
 * descriptors it inherits are not copies either: they point at the parent's open file
 * descriptions, so the child's read(2) moves the offset the parent reads from next, the
 * "misunderstood shared state" pitfall of fork. Each case is one real fork of this process
 * (src/probes/spawn.ts forkAndStore), checked by content: the bytes the parent reads next, and
 * the words in both mappings.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { z } from 'zod';

import { Mapping, pageSize } from '../src/memory/mapping.js';
import { formatCount } from '../src/report/format.js';
import { forkAndStore } from '../src/probes/spawn.js';
import { pointBand } from '../src/suite/measure.js';
import { sized, Steps } from '../src/suite/steps.js';
import { defineExperiment, type Metric, type RunContext } from '../src/suite/types.js';

const FILE_BYTES = 65_536;
/** Bytes the child reads from the shared descriptor: one case per size. */
const READS = { full: [1, 100, 4096], quick: [1, 4096] };
const BEFORE = 0x0b5e_55ed_0000_0001n;
const CHILD = 0xc41d_0000_0000_0002n;
const RULE =
  "Confirmed when, for every read size K, the parent's next read(2) from the descriptor it shared with its child returns the file's bytes from offset K (the child's read moved the shared offset), " +
  "the child's store into private memory left the parent's word as it was (a COW copy), and its store into a MAP_SHARED page shows in the parent; refuted otherwise.";

/** Byte i of the file: a hash of i, so 64 bytes read anywhere name the one offset they start at. */
function fileByte(i: number): number {
  let x = Math.imul(i + 1, 0x9e3779b1);
  x ^= x >>> 15;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  return x & 0xff;
}

const CaseSchema = z.object({
  childReadBytes: z.number().int(),
  /** Where the parent's next read started, from the bytes it got (-1: they match no offset). */
  parentNextOffset: z.number().int(),
  /** The parent's private word after the child's store: unchanged when COW copied it. */
  privateKept: z.boolean(),
  /** The parent's MAP_SHARED word after the child's store: the child's value when shared. */
  sharedSeen: z.boolean(),
});
const RawSchema = z.object({ cases: z.array(CaseSchema) });
type Raw = z.infer<typeof RawSchema>;

/** The file offset the `bytes` the parent read start at, or -1. */
function offsetOf(bytes: Uint8Array): number {
  for (let off = 0; off + bytes.length <= FILE_BYTES; off++) {
    let ok = true;
    for (let i = 0; i < bytes.length && ok; i++) ok = bytes[i] === fileByte(off + i);
    if (ok) return off;
  }
  return -1;
}

async function oneCase(dir: string, k: number): Promise<Raw['cases'][number]> {
  const path = join(dir, `file-${k}`);
  writeFileSync(path, Uint8Array.from({ length: FILE_BYTES }, (_, i) => fileByte(i)));
  const priv = Mapping.create({ pages: 1, backing: 'anon-private' });
  const shared = Mapping.create({ pages: 1, backing: 'anon-shared' });
  const fd = openSync(path, 'r');
  try {
    const pw = new BigUint64Array(priv.buffer);
    const sw = new BigUint64Array(shared.buffer);
    pw[0] = BEFORE;
    sw[0] = BEFORE;
    await forkAndStore([priv.address, shared.address], CHILD, 10_000, { fd, bytes: k });
    // position null: read from the descriptor's current offset, the one the child moved.
    const next = new Uint8Array(64);
    const got = readSync(fd, next, 0, next.length, null);
    return { childReadBytes: k, parentNextOffset: offsetOf(next.subarray(0, got)), privateKept: pw[0] === BEFORE, sharedSeen: sw[0] === CHILD };
  } finally {
    closeSync(fd);
    priv.unmap();
    shared.unmap();
  }
}

async function run(ctx: RunContext): Promise<Raw> {
  const raw: Raw = { cases: [] };
  const dir = mkdtempSync(join(tmpdir(), 'cowlab-fd-sharing-'));
  try {
    const steps = new Steps(ctx, 0);
    await steps.sweep(sized(ctx, READS), raw, {
      detail: (k) => `the child reads ${k} bytes`,
      measure: async (k) => {
        raw.cases.push(await oneCase(dir, k));
      },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return raw;
}

function verdict(raw: Raw) {
  const moved = raw.cases.filter((c) => c.parentNextOffset === c.childReadBytes);
  const metrics: Metric[] = [
    { key: 'offset-moved-cases', label: "cases where the child's read moved the parent's offset", unit: 'count', value: pointBand(moved.length) },
    { key: 'cases', label: 'cases measured', unit: 'count', value: pointBand(raw.cases.length) },
  ];
  if (raw.cases.length === 0) return { verdict: 'not-measurable' as const, figure: 'no case measured', reason: 'No fork was measured.', metrics };
  const problems = raw.cases.flatMap((c) => [
    ...(c.parentNextOffset === c.childReadBytes ? [] : [`after the child read ${c.childReadBytes} bytes the parent read from ${c.parentNextOffset < 0 ? 'no offset of the file' : `offset ${c.parentNextOffset}`}`]),
    ...(c.privateKept ? [] : [`the child's store reached the parent's private memory (K = ${c.childReadBytes})`]),
    ...(c.sharedSeen ? [] : [`the child's store into MAP_SHARED memory did not show in the parent (K = ${c.childReadBytes})`]),
  ]);
  const ks = raw.cases.map((c) => formatCount(c.childReadBytes)).join(', ');
  return {
    verdict: problems.length === 0 ? ('confirmed' as const) : ('refuted' as const),
    figure:
      problems.length === 0
        ? `after the child read K = ${ks} bytes, the parent's next read started at offset K every time; its private word kept its value, its MAP_SHARED word showed the child's`
        : `${problems.length} of ${raw.cases.length * 3} checks failed`,
    reason: problems.length === 0 ? `Held in all ${raw.cases.length} forks.` : `Not so here: ${problems.join('; ')}.`,
    metrics,
  };
}

function present(raw: Raw) {
  return {
    charts: [
      {
        kind: 'bar' as const,
        title: "Where the parent's next read(2) starts after its child read K bytes from the descriptor they share",
        categories: raw.cases.map((c) => `K = ${formatCount(c.childReadBytes)}`),
        y: { label: 'file offset', unit: 'bytes' },
        series: [
          { name: 'bytes the child read (K)', values: raw.cases.map((c) => c.childReadBytes) },
          { name: "the parent's next offset", values: raw.cases.map((c) => (c.parentNextOffset < 0 ? null : c.parentNextOffset)) },
        ],
      },
    ],
    tables: [
      {
        title: 'After one fork: the descriptor, private memory and shared memory',
        head: ['child read (bytes)', "parent's next offset", 'private word (COW)', 'MAP_SHARED word'],
        rows: raw.cases.map((c) => [
          formatCount(c.childReadBytes),
          c.parentNextOffset < 0 ? 'no match' : formatCount(c.parentNextOffset),
          c.privateKept ? "the parent's (copied)" : "the child's: NOT copied",
          c.sharedSeen ? "the child's (shared)" : "the parent's: NOT shared",
        ]),
        note: `The file is ${formatCount(FILE_BYTES)} bytes of a known pattern; each case is one fork of this process whose child reads K bytes from the inherited descriptor, stores into one private and one MAP_SHARED page of ${formatCount(pageSize())} bytes, and exits.`,
      },
    ],
  };
}

export default defineExperiment<Raw>({
  number: 19,
  name: 'fd-sharing',
  title: 'What fork shares: descriptors and memory',
  claim:
    "After fork, the child's private memory is a copy (its stores never reach the parent), but its file descriptors share the parent's open file descriptions: the child's read(2) moves the offset the parent reads from next, as a MAP_SHARED mapping shares its pages.",
  short: 'fork copies memory but shares file offsets',
  measures:
    'One real fork of this process per read size K: the child reads K bytes from a descriptor it inherited, stores into a private and a MAP_SHARED page, and exits; the parent then reads from the same descriptor (where does it start?) and looks at both words.',
  rule: RULE,
  requirements: {},
  budgetMs: { full: 2_000, quick: 1_000 },
  raw: RawSchema,
  run,
  verdict,
  present,
});
