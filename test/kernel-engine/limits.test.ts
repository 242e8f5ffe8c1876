/**
 * What the kernel engine refuses before anything runs (issue 11, rows 5 and 8): a trace whose
 * predicted peak memory does not fit the machine (ERR_TOO_LARGE, exit 2, the peak and the limit
 * in the message), and a trace the parser rejects, in the parser's words.
 *
 * The large traces here would need several times this machine's memory. None of them may ever
 * run for real: every run below has a 1 ms step deadline as well, so even an engine without the
 * check would be stopped before it had touched more than a few pages.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { meminfo } from '../../src/env/environment.js';
import { CowlabError } from '../../src/errors.js';
import { KernelEngine } from '../../src/engines/kernel/engine.js';
import { RegionEngine } from '../../src/engines/region/engine.js';
import { simulateTrace } from '../../src/engines/sim/engine.js';
import { predictPeak, simulatePeak, traceBounds } from '../../src/engines/sim/peak.js';
import { formatBytes } from '../../src/report/format.js';
import { parseTrace } from '../../src/trace/parse.js';
import type { Step, Trace } from '../../src/trace/types.js';
import { runCli } from '../helpers/cli.js';
import { descendants } from '../helpers/processes.js';
import { randomTrace } from '../helpers/randomTrace.js';
import { thrownCowlabError } from '../helpers/errors.js';

const PAGE = 4096;
const engine = new KernelEngine();
const dir = mkdtempSync(join(tmpdir(), 'cowlab-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const all = (n: number) => ({ start: 0, end: n });

/** One region of `fraction` of MemAvailable, `children` forks of p0, each writing all of it. */
function childrenWriteAll(fraction: number, children: number, populate: 'none' | 'write'): { trace: Trace; pages: number } {
  const pages = Math.floor((fraction * meminfo().availableBytes) / PAGE);
  const steps: Step[] = [];
  for (let i = 1; i <= children; i++) steps.push({ op: 'fork', proc: 'p0', child: `c${i}` });
  for (let i = 1; i <= children; i++) steps.push({ op: 'write', proc: `c${i}`, region: 'heap', pages: all(pages) });
  const doc = { name: `${children}-children-write-all`, regions: [{ id: 'heap', pages, populate }], steps };
  return { trace: parseTrace(doc), pages };
}


const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('a trace whose predicted peak does not fit', () => {
  // 4 children zero-fill 40 % of MemAvailable each: 1.6 x MemAvailable at the end.
  const { trace: big, pages } = childrenWriteAll(0.4, 4, 'none');
  const peak = 4 * pages;

  it('is refused by checkMemory with ERR_TOO_LARGE, the predicted peak and the limit', () => {
    const err = thrownCowlabError(() => engine.checkMemory(big));
    expect(err.code).toBe('ERR_TOO_LARGE');
    expect(err.field).toBe('trace');
    expect(err.message).toMatch(
      new RegExp(
        `^the kernel engine cannot run trace '${big.name}': it needs about \\S+ \\S+: the simulator predicts a peak of ${escape(peak.toLocaleString('en-US'))} frames \\(${escape(formatBytes(peak * PAGE))}\\) after steps\\[7\\] \\(c4: write heap\\)`,
      ),
    );
    expect(err.message).toMatch(/; that is more than half of MemAvailable \(\S+ \S+ of \S+ \S+\)$/);
  });

  it('is refused by run() before any process exists', async () => {
    const before = descendants().length;
    const t0 = Date.now();
    const err = await engine.run(big, { stepDeadlineMs: 1 }).then(
      () => null,
      (e: unknown) => e as CowlabError,
    );
    expect(err?.code, String(err)).toBe('ERR_TOO_LARGE');
    expect(descendants().length).toBe(before);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('the issue\'s case: populated, then 4 children write all of it (5 x the region)', () => {
    const { trace, pages: n } = childrenWriteAll(0.45, 4, 'write');
    const err = thrownCowlabError(() => engine.checkMemory(trace));
    expect(err.code).toBe('ERR_TOO_LARGE');
    expect(err.message).toMatch(new RegExp(`a peak of ${escape((5 * n).toLocaleString('en-US'))} frames \\(${escape(formatBytes(5 * n * PAGE))}\\)`));
  });

  it('is not runnable on the region engine either (it says why)', () => {
    expect(new RegionEngine().supports(big)).toMatch(/needs about .* more than half of MemAvailable/);
  });

  it('gives exit 2 with the same message in run-trace and validate', () => {
    const file = join(dir, 'big.json');
    writeFileSync(file, JSON.stringify(big));
    for (const args of [['run-trace', file], ['validate', file]]) {
      const r = runCli([...args, '--step-deadline-ms', '1']);
      expect(r.status, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^cowlab: the kernel engine cannot run trace '${big.name}': it needs about .* a peak of ${escape(peak.toLocaleString('en-US'))} frames .*more than half of MemAvailable`));
    }
  });
});

describe('a 64 GiB trace (valid, and more than this machine has)', () => {
  // p0 writes 16,777,216 pages, forks, the child writes them all: 128 GiB at the peak. The
  // parser accepts it and the simulator predicts it (test/sim/large.test.ts); the kernel engine
  // refuses it before anything is allocated, with the peak and the limit.
  const PAGES = 1 << 24;
  const whole = all(PAGES);
  const doc = {
    name: 'fork-write-64g',
    regions: [{ id: 'heap', pages: PAGES, populate: 'none' }],
    steps: [
      { op: 'write', proc: 'p0', region: 'heap', pages: whole },
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'heap', pages: whole },
      { op: 'exit', proc: 'c1' },
    ],
  };
  const fitsHere = meminfo().availableBytes / 2 >= 2 * PAGES * PAGE;
  // The simulator's peak when it could afford to simulate, else the bound: both are 2 x PAGES here.
  const peakText = new RegExp(`(a peak of|a simple bound allows) ${escape((2 * PAGES).toLocaleString('en-US'))} frames \\(128\\.0 GiB\\)`);

  it.skipIf(fitsHere)('is refused by the kernel engine with ERR_TOO_LARGE, the peak and the limit (skipped where 128 GiB fits)', () => {
    const err = thrownCowlabError(() => engine.checkMemory(parseTrace(doc)));
    expect(err.code).toBe('ERR_TOO_LARGE');
    expect(err.message).toMatch(new RegExp(`^the kernel engine cannot run trace 'fork-write-64g': it (needs about|may need up to) `));
    expect(err.message).toMatch(peakText);
    expect(err.message).toMatch(/ after steps\[2\] \(c1: write heap\)|by steps\[2\] \(c1: write heap\)/);
    expect(err.message).toMatch(/; that is more than half of MemAvailable \(\S+ \S+ of \S+ \S+\)$/);
  });

  it.skipIf(fitsHere)('gives exit 2 with that message in run-trace and validate (skipped where 128 GiB fits)', () => {
    const file = join(dir, 'fork-write-64g.json');
    writeFileSync(file, JSON.stringify(doc));
    for (const args of [['run-trace', file], ['validate', file]]) {
      const r = runCli([...args, '--step-deadline-ms', '1']);
      expect(r.status, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/^cowlab: the kernel engine cannot run trace 'fork-write-64g': /);
      expect(r.stderr).toMatch(peakText);
      expect(r.stdout).toBe('');
    }
  });
});

describe('the prediction', () => {
  const t = (regions: unknown[], steps: Step[]) => parseTrace({ name: 'p', regions, steps });

  it('is the simulator\'s most frames in use at once, with the step where it is reached', () => {
    const forkWrite = t([{ id: 'heap', pages: 64 }], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'heap', pages: all(64) },
      { op: 'exit', proc: 'c1' },
      { op: 'write', proc: 'p0', region: 'heap', pages: all(64) },
    ]);
    expect(simulatePeak(forkWrite)).toEqual({ frames: 128, step: 1 });
    // A huge page stays whole while one of its pages is copied: 1024 + 1 frames.
    const thp = t([{ id: 'huge', pages: 1024, thp: true }], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'huge', pages: { pages: [5] } },
    ]);
    expect(simulatePeak(thp)).toEqual({ frames: 1025, step: 1 });
    // Page-cache pages count although nobody maps them any more (fork copies no shared entry).
    const shared = t([{ id: 'shm', pages: 32, map: 'shared' }], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'exit', proc: 'p0' },
    ]);
    expect(simulateTrace(shared).steps.at(-1)!.frames.shm).toBe(0);
    expect(simulatePeak(shared)).toEqual({ frames: 32, step: -1 });
  });

  it('is never above the cheap upper bound, over random traces of every kind', () => {
    let checked = 0;
    for (let seed = 1; seed <= 300; seed++) {
      let trace: Trace;
      try {
        trace = parseTrace(randomTrace(seed, { cowHeavy: seed % 3 === 0 }));
      } catch {
        continue; // a shape the parser rejects
      }
      const bound = traceBounds(trace).upperFrames;
      const { frames } = simulatePeak(trace);
      expect(frames, `seed ${seed}`).toBeLessThanOrEqual(bound);
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('needs no simulation when the upper bound fits', () => {
    const small = t([{ id: 'heap', pages: 64 }], [{ op: 'fork', proc: 'p0', child: 'c1' }, { op: 'write', proc: 'c1', region: 'heap', pages: all(64) }]);
    const p = predictPeak(small, { limitFrames: 1000 });
    expect(p).toMatchObject({ exact: false, frames: 128, fits: true });
  });

  it('simulates when the bound does not fit, and falls back to the bound when simulating would cost too much', () => {
    const trace = t([{ id: 'huge', pages: 1024, thp: true }], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'huge', pages: { pages: [5] } },
    ]);
    // The bound lets c1's store allocate a whole huge page; the simulator copies 4 KiB.
    expect(traceBounds(trace).upperFrames).toBe(1536);
    expect(predictPeak(trace, { limitFrames: 1100 })).toMatchObject({ exact: true, frames: 1025, step: 1, fits: true });
    expect(predictPeak(trace, { limitFrames: 1000 })).toMatchObject({ exact: true, frames: 1025, step: 1, fits: false });
    const capped = predictPeak(trace, { limitFrames: 1100, simBudgetBytes: 1 });
    expect(capped.exact).toBe(false);
    expect(capped.fits).toBe(false);
    expect(capped.why).toMatch(/simulating it would take about/);
  });

  it('lets an ordinary trace run: checkMemory passes and supports() says nothing of memory', () => {
    const ok = t([{ id: 'heap', pages: 1024 }], [{ op: 'fork', proc: 'p0', child: 'c1' }, { op: 'write', proc: 'c1', region: 'heap', pages: all(1024) }]);
    expect(() => engine.checkMemory(ok)).not.toThrow();
    expect(engine.supports(ok)).toBeNull();
  });
});

describe('an unchecked trace is checked by the parser, in its words', () => {
  it("an exec'd process that forks", async () => {
    const trace: Trace = {
      name: 'exec-fork',
      regions: [{ id: 'm', pages: 8, map: 'private', backing: 'anon', thp: false, advice: [], populate: 'write' }],
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'exec', proc: 'c1' },
        { op: 'fork', proc: 'c1', child: 'c2' },
      ],
    };
    const before = descendants().length;
    const err = await engine.run(trace, { stepDeadlineMs: 1000 }).then(
      () => null,
      (e: unknown) => e as CowlabError,
    );
    expect(err?.code).toBe('ERR_TRACE_INVALID');
    expect(err?.field).toBe('steps[2].proc');
    expect(err?.message).toMatch(/^steps\[2\]\.proc: process 'c1' exec'd at steps\[1\] and runs another program: it cannot fork/);
    expect(descendants().length).toBe(before);
  });
});
