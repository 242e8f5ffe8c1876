/**
 * The process tree as the kernel engine drives it (src/engines/kernel/tree.ts over
 * native/proctree*.cc): the native tree states what happened to a trace process, and the
 * failure reads as the trace names it, with the wait status decoded. Real processes.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { ProcessTree } from '../../src/engines/kernel/tree.js';
import { describeWaitStatus, readProcStat } from '../../src/util/procStat.js';
import { rejection } from '../helpers/errors.js';
import { killUntilZombie } from '../helpers/processes.js';
import { expectNoProcessesLeft } from './helpers.js';

afterEach(() => expectNoProcessesLeft());

const DEADLINE_MS = 10_000;

/** Runs `body` on a started tree of p0 and one child slot c1 (not forked yet), over one private
 *  anonymous region of 4 pages; destroys the tree after, whatever happened. */
async function withTree(execPath: string, body: (tree: ProcessTree, p0: number) => Promise<void>): Promise<void> {
  const tree = new ProcessTree(
    {
      regions: [{ pages: 4, backing: 0, thp: false, dontfork: false, wipeonfork: false, anywhere: false }],
      parents: Int32Array.from([-1, 0]),
      capacity: Uint32Array.from([4, 4]),
      execPath,
    },
    ['p0', 'c1'],
  );
  try {
    await body(tree, (await tree.start(DEADLINE_MS)).pid);
  } finally {
    await tree.destroy(DEADLINE_MS);
  }
}

const write = (tree: ProcessTree, slot: number) => tree.access(slot, true, 0, Uint32Array.from([0, 1]), 1n << 32n, DEADLINE_MS);

describe('a command a trace process refuses', () => {
  it('is ERR_SYSCALL naming the process, the command and the syscall, and the tree goes on', () =>
    withTree('/nonexistent/cat', async (tree) => {
      const c1 = await tree.fork(0, 1, DEADLINE_MS);
      const err = await rejection(tree.exec(1, DEADLINE_MS));
      expect({ code: err.code, errno: err.errno, syscall: err.syscall, message: err.message }).toEqual({
        code: 'ERR_SYSCALL',
        errno: 'ENOENT',
        syscall: 'execve',
        message: `trace process 'c1' (pid ${c1.pid}) failed while exec'ing: execve() failed: ENOENT (No such file or directory)`,
      });
      // c1 still runs its loop: it writes, exits and is reaped by p0 with its exit status.
      await write(tree, 1);
      await tree.exit(1, DEADLINE_MS);
      expect(await tree.reap(0, c1.pid, DEADLINE_MS)).toEqual({ status: 0, exitCode: 0, signal: null });
    }));
});

describe('a trace process that died', () => {
  it('fails the next command with ERR_CHILD_FAILED naming it and its signal, and the whole tree is killed and reaped', () =>
    withTree('/bin/cat', async (tree) => {
      const c1 = await tree.fork(0, 1, DEADLINE_MS);
      killUntilZombie(c1.pid); // p0 does not reap it: its status stays in /proc until the teardown
      const err = await rejection(write(tree, 1));
      expect({ code: err.code, message: err.message }).toEqual({
        code: 'ERR_CHILD_FAILED',
        message: `trace process 'c1' (pid ${c1.pid}) was killed by signal 9 (SIGKILL) while writing; every trace process was killed and reaped`,
      });
      expect(readProcStat(c1.pid)).toBeNull();
    }));
});

describe('reaping', () => {
  it('decodes the wait status of p0 killed by a signal and reaped by Node', () =>
    withTree('/bin/cat', async (tree, p0) => {
      killUntilZombie(p0);
      const r = await tree.reap(-1, p0, DEADLINE_MS);
      expect(r).toEqual({ status: 9, exitCode: null, signal: 9 });
      expect(describeWaitStatus(r.status)).toBe('was killed by signal 9 (SIGKILL)');
    }));
});
