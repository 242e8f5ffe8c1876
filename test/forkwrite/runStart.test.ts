/**
 * forkWrite's onRunStart: the run's region and its live child, for watching the snapshot
 * while the run holds it (snapshot-load samples both processes' smaps this way). Checked on
 * the real child: its parent, its mapping of the region, and the snapshot's bytes in it.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { forkWrite, pageSize, smapsFor, type ForkWriteRunStart } from '../../src/index.js';
import { descendants } from '../helpers/processes.js';

/** `length` bytes of process `pid`'s memory at `address` (/proc/<pid>/mem). */
function readMemory(pid: number | 'self', address: bigint, length: number): Buffer {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    const out = Buffer.alloc(length);
    expect(readSync(fd, out, 0, length, address)).toBe(length);
    return out;
  } finally {
    closeSync(fd);
  }
}

const ppidOf = (pid: number) => Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

async function untilChild(start: () => ForkWriteRunStart | null): Promise<number> {
  for (let i = 0; i < 2000; i++) {
    const pid = start()?.childPid() ?? null;
    if (pid !== null) return pid;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('the run never showed a live child');
}

describe('forkWrite onRunStart', () => {
  it("names the run's live child, which holds the region's pre-fork bytes while the parent overwrites its own", async () => {
    const pages = 16;
    let start: ForkWriteRunStart | null = null;
    let preFork: Buffer | null = null;
    const p = forkWrite({
      pages,
      writer: 'parent',
      parentWhen: 'child-alive',
      holdMs: 1500,
      repeats: 1,
      warmup: 0,
      onRunStart: (r) => {
        start = r;
        expect(r.childPid()).toBeNull(); // not forked yet
        preFork = readMemory('self', r.address, pageSize());
      },
    });
    const pid = await untilChild(() => start);
    const run = start!;
    expect(ppidOf(pid)).toBe(process.pid);
    // The child maps the whole populated region at the same address.
    expect(smapsFor(pid, run.address, run.address + BigInt(run.bytes)).rssBytes).toBe(pages * pageSize());
    // Its copy of page 0 is the snapshot: the bytes from before the fork.
    expect(readMemory(pid, run.address, pageSize()).equals(preFork!)).toBe(true);
    const r = await p;
    expect(r.runs[0]!.childPid).toBe(pid);
    expect(r.runs[0]!.parent!.written).toBe(pages);
    expect(run.childPid()).toBeNull(); // reaped: the run is over
    expect(descendants()).toEqual([]);
  });

  it('gives each run its own child', async () => {
    const pids: number[] = [];
    const starts: ForkWriteRunStart[] = [];
    const p = forkWrite({ pages: 8, holdMs: 300, repeats: 2, warmup: 0, onRunStart: (r) => starts.push(r) });
    for (let i = 0; i < 2; i++) {
      const pid = await untilChild(() => (starts.length > i ? starts[i]! : null));
      pids.push(pid);
      expect(starts[i]!.index).toBe(i);
    }
    const r = await p;
    expect(r.runs.map((x) => x.childPid)).toEqual(pids);
    expect(starts.map((s) => s.childPid())).toEqual([null, null]);
  });
});
