/**
 * The native pieces the experiments add: the live-children registry, the spawn probe, the
 * eager copy, and the trace loop's copyout reads and paced writer (through forkWrite). Real
 * processes, real pages.
 */
import { describe, expect, it } from 'vitest';

import { forkWrite, Mapping, pfnAccess, type ForkWriteRunStart } from '../../src/index.js';
import { native, nativeFacts } from '../../src/native.js';
import { descendants } from '../helpers/processes.js';

const asRoot = pfnAccess().pfnVisible;

/** The run's child once forkWrite has forked it (onRunStart's childPid). */
async function liveChild(start: () => ForkWriteRunStart | null): Promise<number> {
  for (;;) {
    const pid = start()?.childPid() ?? null;
    if (pid !== null) return pid;
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('killAllChildren', () => {
  it('kills the holding child of a run, and the run rejects saying how it died', async () => {
    let start: ForkWriteRunStart | null = null;
    const p = forkWrite({ pages: 64, repeats: 1, warmup: 0, holdMs: 30_000, onRunStart: (r) => (start = r) });
    const pid = await liveChild(() => start);
    expect(descendants().map((d) => d.pid)).toContain(pid);
    expect(native().killAllChildren()).toBe(1);
    await expect(p).rejects.toMatchObject({ code: 'ERR_CHILD_FAILED' });
    await expect(p).rejects.toThrow(new RegExp(`\\(pid ${pid}\\) was killed by signal 9`));
    expect(native().liveChildren()).toEqual([]);
    expect(descendants()).toEqual([]);
  });

  it('stops a paced writer early with ERR_INTERRUPTED', async () => {
    let start: ForkWriteRunStart | null = null;
    const p = forkWrite({
      pages: 64,
      writer: 'parent',
      order: new Uint32Array(1000),
      parentPaceNs: 10_000_000,
      repeats: 1,
      warmup: 0,
      onRunStart: (r) => (start = r),
    });
    await liveChild(() => start);
    await new Promise((r) => setTimeout(r, 50));
    native().killAllChildren();
    await expect(p).rejects.toMatchObject({ code: 'ERR_INTERRUPTED' });
    await expect(p).rejects.toThrow(/interrupted \(killAllChildren\) after \d+ of 1000 stores/);
    expect(descendants()).toEqual([]);
  });

  it('kills nothing when nothing runs', () => {
    expect(native().killAllChildren()).toBe(0);
  });
});

describe('fork-write deadlines', () => {
  it('a child that outlives the deadline is killed and reaped: ERR_CHILD_DEADLINE naming it and what it was doing', async () => {
    // The child holds its snapshot far past the deadline (forkWrite() lets a caller ask for that).
    const p = forkWrite({ pages: 16, holdMs: 30_000, deadlineMs: 200, repeats: 1, warmup: 0 });
    await expect(p).rejects.toMatchObject({
      code: 'ERR_CHILD_DEADLINE',
      message: expect.stringMatching(
        /^steps\[3\] \(child: exit\): trace process 'child' \(pid \d+\) was to hold its memory 30000 ms before its exit, past the 200 ms step deadline; every trace process was killed and reaped$/,
      ),
    });
    expect(descendants()).toEqual([]);
  });
});

describe('spawnProbe', () => {
  it.each([
    { kind: 0 as const, name: 'fork + exec' },
    { kind: 1 as const, name: 'vfork + exec' },
    { kind: 2 as const, name: 'posix_spawn' },
  ])('times $name of /bin/true and reaps the child', async ({ kind }) => {
    const r = await native().spawnProbe({ kind, path: '/bin/true', deadlineMs: 10_000 });
    expect(r.callNs).toBeGreaterThan(0);
    expect(r.totalNs).toBeGreaterThanOrEqual(r.callNs);
    expect(descendants()).toEqual([]);
  });

  it.each([0, 1, 2] as const)('rejects when the program cannot be executed (kind %d)', async (kind) => {
    const p = native().spawnProbe({ kind, path: '/nonexistent/program', deadlineMs: 10_000 });
    await expect(p).rejects.toMatchObject({ code: kind === 2 ? 'ERR_SYSCALL' : 'ERR_CHILD_FAILED' });
    expect(descendants()).toEqual([]);
  });

  it.each([0, 1, 2] as const)('kills and reaps a child that misses its deadline (kind %d)', async (kind) => {
    const p = native().spawnProbe({ kind, path: '/bin/sleep', args: ['30'], deadlineMs: 100 });
    await expect(p).rejects.toMatchObject({ code: 'ERR_CHILD_DEADLINE' });
    await expect(p).rejects.toThrow(/did not exit within 100 ms and was killed/);
    expect(descendants()).toEqual([]);
  });

  it('reports a program that exits non-zero with its raw wait status (timeSpawn words it)', async () => {
    const err = await native().spawnProbe({ kind: 2, path: '/bin/false', deadlineMs: 10_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_CHILD_FAILED' });
    expect(nativeFacts(err)).toEqual({ status: 1 << 8 }); // exited, status 1
  });
});

describe('copyMemory', () => {
  it('copies a region into fresh and into populated memory, timed', () => {
    const m = Mapping.create({ pages: 256 });
    try {
      m.touch('write');
      for (const fresh of [true, false]) expect(native().copyMemory({ source: m.address, bytes: m.bytes, fresh }).ns).toBeGreaterThan(0);
    } finally {
      m.unmap();
    }
  });
});

describe('forkWrite extensions', () => {
  it('childAccess read: read(2) into COW pages succeeds, copies in the reader, one fault per page', async () => {
    // Completing is the content check: every value is read back in the child (ERR_VERIFY otherwise).
    const r = await forkWrite({ pages: 512, pattern: 'rand', childAccess: 'read', repeats: 1, warmup: 0 });
    const run = r.runs[0]!;
    expect(run.child!.written).toBe(512);
    expect(run.child!.faults).toBeGreaterThanOrEqual(512);
    expect(run.verify.exclusiveAfterWrite).toBe(512);
    if (asRoot) {
      expect(run.verify.pfnChangedInWriter).toBe(512);
      expect(run.verify.pfnKeptInOther).toBe(512);
    }
  });

  it('order: repeated pages fault once; unwrittenShared counts the pages left shared', async () => {
    const order = Uint32Array.from([5, 5, 9, 5, 9, 100]);
    const r = await forkWrite({ pages: 256, order, repeats: 1, warmup: 0 });
    const run = r.runs[0]!;
    expect(run.child!.written).toBe(6);
    expect(run.child!.faults).toBe(3);
    expect(run.verify.unwrittenShared).toBe(256 - 3);
  });

  it('parentPaceNs: stores start on schedule, each timestamped on the probe clock', async () => {
    const pace = 2_000_000;
    const r = await forkWrite({ pages: 64, writer: 'parent', order: Uint32Array.from({ length: 20 }, (_, i) => i), parentPaceNs: pace, repeats: 1, warmup: 0 });
    const run = r.runs[0]!;
    const start = run.parent!.startNs!;
    expect(start).toHaveLength(20);
    expect(start[0]!).toBeGreaterThan(run.forkedAtNs);
    // Absolute sleeps never wake early: store i starts at least i intervals after the writer
    // began, which was after the fork. (Lateness is load, and not asserted.)
    for (let i = 1; i < 20; i++) {
      expect(start[i]!).toBeGreaterThan(start[i - 1]!);
      expect(start[i]! - run.forkedAtNs).toBeGreaterThanOrEqual(i * pace);
    }
    expect(run.child!).toBeNull();
  });

  it('rejects an order that leaves the region, naming the field', async () => {
    await expect(forkWrite({ pages: 16, order: Uint32Array.from([3, 16]) })).rejects.toThrow(/^order: page 16 is outside the region \(pages: 16\)$/);
  });
});
