/**
 * A trace larger than the machine (issue 10): one private anonymous region of 64 GiB
 * (16,777,216 pages, the largest a trace may have) that p0 writes, forks, and the child writes
 * again (all of it, or half). The parser accepts it, and `cowlab simulate` predicts it, text
 * and JSON, within 1 GiB of memory: a bit per page per observation (engines/pageBits.ts), frame
 * tables without head and folio-size columns for small folios, ranges walked without page
 * lists. That the kernel engine refuses the same trace is test/kernel-engine/limits.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import type { TraceObservationsJson } from '../../src/engines/observations.js';
import { CLI, runNode } from '../helpers/cli.js';

const PAGES = 1 << 24;
const GiB = 1024 * 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'cowlab-large-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** p0 writes all of the region, forks c1, c1 writes `childPages` of it and exits. */
function forkWrite64G(childPages: number): string {
  const file = join(dir, `fork-write-${childPages}.json`);
  const doc = {
    name: `fork-write-64g-${childPages}`,
    regions: [{ id: 'heap', pages: PAGES, populate: 'none' }],
    steps: [
      { op: 'write', proc: 'p0', region: 'heap', pages: { start: 0, end: PAGES } },
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'heap', pages: { start: 0, end: childPages } },
      { op: 'exit', proc: 'c1' },
    ],
  };
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

/** `cowlab simulate <args>` in a fresh Node, and its peak resident memory (getrusage ru_maxrss). */
function simulate(args: string[]): { status: number | null; stdout: string; stderr: string; maxRssBytes: number } {
  const script = `
    process.argv = [process.argv[0], 'cowlab', ...${JSON.stringify(['simulate', ...args])}];
    process.on('exit', () => process.stderr.write('\\nmaxrss ' + process.resourceUsage().maxRSS + '\\n'));
    await import(${JSON.stringify(CLI)});`;
  const r = runNode([], script, { maxBuffer: 64 * 1024 * 1024 });
  const rss = /\nmaxrss (\d+)\n$/.exec(r.stderr);
  return { ...r, stderr: r.stderr.replace(/\nmaxrss \d+\n$/, ''), maxRssBytes: rss ? Number(rss[1]) * 1024 : NaN };
}

describe('cowlab simulate of a 64 GiB fork-and-write trace', () => {
  it('predicts the child writing all of it, as JSON, within 1 GiB', () => {
    const r = simulate([forkWrite64G(PAGES), '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as TraceObservationsJson;
    const heap = (step: number, proc: string) => doc.steps[step + 1]!.processes[proc]!.heap!;
    const all = `0-${PAGES - 1}`;
    expect(doc.steps.map((s) => s.frames.heap)).toEqual([0, PAGES, PAGES, 2 * PAGES, PAGES]);
    expect(doc.steps[1]!.events.heap).toEqual({ copies: 0, reuses: 0, zeroFills: PAGES, faults: PAGES });
    expect(heap(1, 'c1')).toEqual({ present: PAGES, shared: PAGES, exclusive: 0, zeroPage: 0, pages: { present: all, shared: all, exclusive: '', zeroPage: '' } });
    expect(doc.steps[3]!.events.heap).toEqual({ copies: PAGES, reuses: 0, zeroFills: 0, faults: PAGES });
    for (const proc of ['p0', 'c1']) expect(heap(2, proc)).toMatchObject({ present: PAGES, shared: 0, exclusive: PAGES });
    expect(Object.keys(doc.steps[4]!.processes)).toEqual(['p0']);
    expect(heap(3, 'p0')).toMatchObject({ exclusive: PAGES, pages: { exclusive: all } });
    expect(r.maxRssBytes).toBeLessThan(GiB);
  });

  it('predicts the child writing half of it, as the text table, within 1 GiB', () => {
    const half = PAGES / 2;
    const r = simulate([forkWrite64G(half)]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\nregion heap: 16,777,216 pages, private anon, populate none\n/);
    // c1 copies the half it writes; the other half stays shared by both.
    expect(r.stdout).toMatch(
      /\n\s+2\s+write 0\.\.8388608\s+c1\s+heap\s+8,388,608\s+0\s+0\s+8,388,608\s+25,165,824\s+\S+ \S+\s+16777216\/8388608\/8388608\/0\s+16777216\/8388608\/8388608\/0\s*\n/,
    );
    expect(r.stdout).toMatch(/\n\s+3\s+exit\s+c1\s+heap\s+0\s+0\s+0\s+0\s+16,777,216\s+-\s+16777216\/0\/16777216\/0\s+-\s*\n/);
    expect(r.maxRssBytes).toBeLessThan(GiB);
  });
});
