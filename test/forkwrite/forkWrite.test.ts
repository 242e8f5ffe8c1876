/**
 * forkWrite against the real kernel: real forks, real stores, real pagemap. Checked by PFN
 * (as root) and by content, never by trusting the counters alone.
 */
import { describe, expect, it } from 'vitest';

import { forkWrite, pfnAccess, readVmstat, type ForkWriteResult, type PatternSpec } from '../../src/index.js';
import { CowlabError } from '../../src/errors.js';
import { DIST_INDEX, runNode } from '../helpers/cli.js';
import { openFdCount, zombieChildren, descendants } from '../helpers/processes.js';

const access = pfnAccess();
const asRoot = access.pfnVisible && access.kpagecount;
const NEEDS_ROOT = 'needs root: pagemap PFNs and /proc/kpagecount are hidden otherwise';

function lastRun(r: ForkWriteResult) {
  return r.runs[r.runs.length - 1]!;
}

describe('fork then the child writes', () => {
  it('shares every populated page after fork: same PFN in both, neither exclusive', async () => {
    const r = await forkWrite({ pages: 1024, repeats: 1, warmup: 0 });
    const run = lastRun(r);
    expect(run.verify.sharedAfterFork).toBe(1024);
    if (asRoot) expect(run.kpagecountTwoAfterFork).toBe(1024);
  });

  it.skipIf(!asRoot)(`copies exactly the written pages: new PFN in the child, old PFN kept in the parent (${NEEDS_ROOT})`, async () => {
    const r = await forkWrite({ pages: 1024, pattern: 'stride:3', repeats: 2, warmup: 0 });
    for (const run of r.runs) {
      const written = Math.ceil(1024 / 3);
      expect(run.child!.written).toBe(written);
      expect(run.verify.pfnChangedInWriter).toBe(written);
      expect(run.verify.pfnKeptInOther).toBe(written);
      expect(run.verify.exclusiveAfterWrite).toBe(written);
      expect(run.child!.faults).toBe(written);
    }
  });

  it("leaves the parent's bytes unchanged and reads back the child's stores in the child", async () => {
    // forkWrite checks every byte of the parent's region against its model and every
    // child store by reading it back; a mismatch throws ERR_VERIFY, so completing is the check.
    const r = await forkWrite({ pages: 512, pattern: 'rand', seed: 7, repeats: 3, warmup: 0 });
    for (const run of r.runs) {
      expect(run.parent).toBeNull();
      expect(run.child!.contentMismatches).toBe(0);
    }
  });

  it.each<{ pattern: PatternSpec; written: number }>([
    { pattern: 'seq', written: 2048 },
    { pattern: 'rand', written: 2048 },
    { pattern: 'stride:16', written: 128 },
  ])('takes exactly one fault per page written with pattern $pattern', async ({ pattern, written }) => {
    const r = await forkWrite({ pages: 2048, pattern, repeats: 1, warmup: 1 });
    for (const run of r.runs) {
      expect(run.child!.written).toBe(written);
      expect(run.child!.faults).toBe(written);
      expect(run.child!.latencyNs.length).toBe(written);
      expect(run.child!.perPageNs!.p50).toBeGreaterThan(0);
    }
    expect(r.runs[0]!.warmup).toBe(true);
    expect(r.runs[1]!.warmup).toBe(false);
  });
});

describe('the parent writes', () => {
  it('after the child exited: one fault per page but no copy (the page is reused in place)', async () => {
    const before = readVmstat().get('pgreuse') ?? 0;
    const r = await forkWrite({ pages: 1024, writer: 'parent', parentWhen: 'child-exited', repeats: 2, warmup: 0 });
    for (const run of r.runs) {
      expect(run.parent!.faults).toBe(1024);
      if (asRoot) expect(run.parent!.pfnChanged).toBe(0);
      expect(run.parent!.exclusiveAfter).toBe(1024);
      expect(run.verify.pfnKeptInOther).toBeNull(); // the other process is gone
      expect(run.parent!.vmstat!.pgreuse).toBeGreaterThanOrEqual(1024);
    }
    expect((readVmstat().get('pgreuse') ?? 0) - before).toBeGreaterThanOrEqual(2048);
  });

  it.skipIf(!asRoot)(`while the child lives: copies in the parent, the child keeps the old frames (${NEEDS_ROOT})`, async () => {
    const r = await forkWrite({ pages: 1024, writer: 'parent', repeats: 1, warmup: 0 });
    const run = lastRun(r);
    expect(run.parent!.faults).toBe(1024);
    expect(run.verify.pfnChangedInWriter).toBe(1024);
    expect(run.verify.pfnKeptInOther).toBe(1024);
  });

  it.skipIf(!asRoot)(`after the child copied (writer both): the parent's faults are reuses (${NEEDS_ROOT})`, async () => {
    const r = await forkWrite({ pages: 512, writer: 'both', repeats: 1, warmup: 0 });
    const run = lastRun(r);
    expect(run.child!.pfnChanged).toBe(512);
    expect(run.parent!.faults).toBe(512);
    expect(run.parent!.pfnChanged).toBe(0);
  });
});

describe('transparent huge pages', () => {
  it.skipIf(!asRoot)(`a COW write into a shared THP copies 4 KiB, not 2 MiB (${NEEDS_ROOT})`, async () => {
    // 2048 pages = 4 huge pages; the child writes the first page of each.
    const r = await forkWrite({ pages: 2048, thp: 'always', pattern: 'stride:512', repeats: 1, warmup: 0 });
    expect(r.thp.thpPages).toBe(2048); // populated as huge pages before the fork
    const run = lastRun(r);
    expect(run.child!.written).toBe(4);
    expect(run.verify.pfnChangedInWriter).toBe(4); // only the written 4 KiB pages moved
    expect(run.verify.sharedAfterFork).toBe(2048); // and every other page stayed shared
    expect(run.child!.faults).toBe(4);
    expect(run.child!.vmstat!.thp_split_pmd).toBeGreaterThanOrEqual(4);
  });
});

describe('failure and hygiene', () => {
  it('kills a child that misses its deadline and rejects with ERR_CHILD_DEADLINE, leaving no process behind', async () => {
    const p = forkWrite({ pages: 64, repeats: 1, warmup: 0, holdMs: 30_000, deadlineMs: 300 });
    await expect(p).rejects.toMatchObject({ code: 'ERR_CHILD_DEADLINE' });
    await expect(p).rejects.toThrow(/past the 300 ms step deadline; every trace process was killed and reaped/);
    expect(descendants()).toEqual([]);
  });

  it('rejects bad options before mapping anything', async () => {
    await expect(forkWrite({ pages: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    // @ts-expect-error: not a pattern (the type says so too); the run refuses it
    await expect(forkWrite({ pages: 16, pattern: 'zigzag' })).rejects.toThrow(CowlabError);
    await expect(forkWrite({ pages: 2 ** 31 })).rejects.toMatchObject({ code: 'ERR_TOO_LARGE' });
  });

  it('forks 1000 times without leaking file descriptors, zombies or memory', () => {
    // A fresh Node process with V8's young generation pinned at 1 MiB (V8 otherwise grows it
    // by 16 MiB at a moment of its choosing) and a full gc() every 100 forks (otherwise old
    // space fills with garbage before V8 collects it, and those pages stay in RSS). Both are
    // heap sizing policy, not leaks; with them fixed, RSS can only grow by what cowlab leaks.
    const script = `
      import { readdirSync, readFileSync } from 'node:fs';
      const { forkWrite } = await import(${JSON.stringify(DIST_INDEX)});
      const rss = () => Number(/^VmRSS:\\s+(\\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const fds = () => readdirSync('/proc/self/fd').length;
      const run = () => forkWrite({ pages: 4, repeats: 10, warmup: 0 });
      const forks = async (n) => { for (let i = 0; i < n / 10; i++) { await run(); if (i % 10 === 9) gc(); } };
      await forks(500); // let V8 and the allocator settle
      gc();
      const before = { rss: rss(), fds: fds() };
      await forks(1000);
      gc();
      console.log(JSON.stringify({ before, after: { rss: rss(), fds: fds() } }));`;
    const r = runNode(['--expose-gc', '--min-semi-space-size=1', '--max-semi-space-size=1'], script);
    expect(r.stderr).toBe('');
    const { before, after } = JSON.parse(r.stdout) as { before: { rss: number; fds: number }; after: { rss: number; fds: number } };
    expect(after.fds).toBe(before.fds);
    expect(after.rss - before.rss).toBeLessThan(5 * 1024 * 1024);
    expect(zombieChildren()).toEqual([]);
    expect(descendants()).toEqual([]);
  }, 300_000);

  it('leaves no file descriptor or zombie behind in this process either', async () => {
    const fds = openFdCount();
    for (let i = 0; i < 20; i++) await forkWrite({ pages: 4, repeats: 10, warmup: 0 });
    expect(openFdCount()).toBe(fds);
    expect(zombieChildren()).toEqual([]);
    expect(descendants()).toEqual([]);
  });
});
