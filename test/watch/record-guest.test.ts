/**
 * record's soft-dirty method where the kernel has it: the host's 6.18 is built without
 * CONFIG_MEM_SOFT_DIRTY, Debian's cloud kernels with it. The experiment record-writes runs in
 * QEMU guests of both: a real process (a fork of cowlab running the native command loop) writes
 * known pages after each of record's reads (and clear_refs), and the recorded trace's write sets
 * come back. They are checked here against what the process wrote, by each method's own
 * definition, independently of the experiment's verdict.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { softDirtyAvailable } from '../../src/watch/record.js';
import { CLI } from '../helpers/cli.js';
import { processesWhoseCommand } from '../helpers/processes.js';

const KERNELS = ['debian:6.1', 'debian:6.12'];
const GUEST_TIMEOUT = 600_000;
const scratch = mkdtempSync(join(tmpdir(), 'cowlab-record-guest-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Interval {
  written: number[];
  faults: number[];
  recorded: number[];
}
interface MethodRun {
  method: 'soft-dirty' | 'fork';
  grow?: { recordedInOld: number; bufferPages: number; flaggedPages: number; merged: boolean; note: string } | null;
  notMeasured: string | null;
  intervals: Interval[];
  costs: { residentBytes: number; clearMs: number; readMs: number; intervals: number }[];
}
interface Doc {
  kernels: { kernel: string; results: { environment: { kernel: string; guest: { accel: string } | null }; experiments: { name: string; verdict: { verdict: string; reason: string }; raw: { kernel: string; runs: MethodRun[] } }[] } }[];
}

const sorted = (xs: Iterable<number>) => [...new Set(xs)].sort((a, b) => a - b);

describe('record by soft-dirty bits in Debian guests (CONFIG_MEM_SOFT_DIRTY=y)', () => {
  it('records, interval by interval, exactly the pages the process wrote, at one fault per page per interval; by fork only the first write of each page', () => {
    const r = spawnSync(process.execPath, [CLI, 'run', 'record-writes', '--quick', '--kernel', KERNELS.join(','), '--json', '--out', join(scratch, 'out')], { encoding: 'utf8', timeout: GUEST_TIMEOUT });
    expect(processesWhoseCommand((cmd) => cmd.includes('qemu-system') && cmd.includes(`cowlab-guest-${r.pid}-`)), 'no QEMU left').toEqual([]);
    expect(readdirSync(tmpdir()).filter((d) => d.startsWith(`cowlab-guest-${r.pid}-`)), 'no guest directory left').toEqual([]);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.kernels.map((k) => k.kernel)).toEqual(KERNELS);
    for (const k of doc.kernels) {
      const series = k.kernel.split(':')[1]!;
      expect(k.results.environment.kernel.startsWith(`${series}.`), k.results.environment.kernel).toBe(true);
      const e = k.results.experiments.find((x) => x.name === 'record-writes')!;
      expect(e.verdict.verdict, e.verdict.reason).toBe('confirmed');
      const soft = e.raw.runs.find((m) => m.method === 'soft-dirty')!;
      const fork = e.raw.runs.find((m) => m.method === 'fork')!;
      expect(soft.notMeasured, `${k.kernel} keeps soft-dirty bits`).toBeNull();
      expect(fork.notMeasured).toBeNull();
      expect(soft.intervals.length).toBeGreaterThanOrEqual(4);
      const ever = new Set<number>();
      soft.intervals.forEach((iv, i) => {
        // soft-dirty: each interval's set, repeats of earlier intervals included.
        expect(sorted(iv.recorded), `${k.kernel} soft-dirty interval ${i + 1}`).toEqual(sorted(iv.written));
        // Each clear_refs write-protected every page: the first store to a page in an interval faults once.
        const seen = new Set<number>();
        expect(iv.faults).toEqual(iv.written.map((p) => (seen.has(p) ? 0 : (seen.add(p), 1))));
        iv.written.forEach((p) => ever.add(p));
      });
      // The cases rewrite pages of earlier intervals: soft-dirty records them again, fork does not.
      const softTotal = soft.intervals.reduce((n, iv) => n + iv.recorded.length, 0);
      expect(softTotal).toBeGreaterThan(ever.size);
      const before = new Set<number>();
      fork.intervals.forEach((iv, i) => {
        expect(sorted(iv.recorded), `${k.kernel} fork interval ${i + 1}`).toEqual(sorted(iv.written.filter((p) => !before.has(p))));
        iv.written.forEach((p) => before.add(p));
      });
      expect(fork.intervals.reduce((n, iv) => n + iv.recorded.length, 0)).toBe(ever.size);
      // A VMA that merged with a new mapping after a clear reads soft-dirty as a whole: none of
      // the old buffer's pages was written, every one kept is among those record says it is unsure of.
      const g = soft.grow!;
      expect(g, `${k.kernel} ran the grow case`).toBeTruthy();
      if (g.merged) {
        expect(g.recordedInOld, `${k.kernel}: the kernel marks the merged VMA soft-dirty as a whole`).toBe(g.bufferPages);
        expect(g.flaggedPages).toBeGreaterThanOrEqual(g.recordedInOld);
        expect(g.note).toMatch(/VM_SOFTDIRTY/);
      }
            // The clearing was done and timed at both sizes, the larger one with more memory resident.
      expect(soft.costs).toHaveLength(2);
      for (const c of soft.costs) expect(c.clearMs).toBeGreaterThan(0);
      expect(soft.costs[1]!.residentBytes).toBeGreaterThan(soft.costs[0]!.residentBytes + 16 * 2 ** 20);
    }
  }, GUEST_TIMEOUT);
});

describe('record-writes on this host', () => {
  it('says soft-dirty is not measurable where the kernel keeps no soft-dirty bits, and the fork method records the first write of each page', () => {
    const r = spawnSync(process.execPath, [CLI, 'run', 'record-writes', '--quick', '--json', '--out', join(scratch, 'host')], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as Doc['kernels'][number]['results'];
    const e = doc.experiments.find((x) => x.name === 'record-writes')!;
    const soft = e.raw.runs.find((m) => m.method === 'soft-dirty')!;
    if (!softDirtyAvailable()) expect(soft.notMeasured).toMatch(/CONFIG_MEM_SOFT_DIRTY is off/);
    const fork = e.raw.runs.find((m) => m.method === 'fork')!;
    const before = new Set<number>();
    for (const iv of fork.intervals) {
      expect(sorted(iv.recorded)).toEqual(sorted(iv.written.filter((p) => !before.has(p))));
      iv.written.forEach((p) => before.add(p));
    }
    expect(before.size).toBeGreaterThan(100);
    expect(e.verdict.verdict, e.verdict.reason).toBe('confirmed');
  }, 120_000);
});
