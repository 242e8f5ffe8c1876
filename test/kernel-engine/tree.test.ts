/**
 * The process tree as the kernel engine drives it (src/engines/kernel/tree.ts over
 * native/proctree*.cc): the native tree states what happened to a trace process, and the
 * failure reads as the trace names it, with the wait status decoded. Real processes.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { CowlabError } from '../../src/errors.js';
import { ProcessTree } from '../../src/engines/kernel/tree.js';
import { describeWaitStatus, readProcStat } from '../../src/util/procStat.js';
import { killUntilZombie } from '../helpers/processes.js';
import { expectNoProcessesLeft } from './helpers.js';

afterEach(() => expectNoProcessesLeft());

const DEADLINE_MS = 10_000;

/** p0 and one child c1, over one private anonymous region of 4 pages. */
function twoProcesses(execPath = '/bin/cat'): ProcessTree {
  return new ProcessTree(
    {
      regions: [{ pages: 4, backing: 0, thp: false, dontfork: false, wipeonfork: false, anywhere: false }],
      parents: Int32Array.from([-1, 0]),
      capacity: Uint32Array.from([4, 4]),
      execPath,
    },
    ['p0', 'c1'],
  );
}

async function rejection(p: Promise<unknown>): Promise<CowlabError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CowlabError);
    return err as CowlabError;
  }
  throw new Error('expected a rejection');
}

describe('a command a trace process refuses', () => {
  it("is ERR_SYSCALL naming the process, the command and the syscall, and the tree goes on", async () => {
    const tree = twoProcesses('/nonexistent/cat');
    try {
      await tree.start(DEADLINE_MS);
      const c1 = await tree.fork(0, 1, DEADLINE_MS);
      const err = await rejection(tree.exec(1, DEADLINE_MS));
      expect({ code: err.code, errno: err.errno, syscall: err.syscall, message: err.message }).toEqual({
        code: 'ERR_SYSCALL',
        errno: 'ENOENT',
        syscall: 'execve',
        message: `trace process 'c1' (pid ${c1.pid}) failed while exec'ing: execve() failed: ENOENT (No such file or directory)`,
      });
      // c1 still runs its loop: it writes, exits and is reaped by p0 with its exit status.
      await tree.access(1, true, 0, Uint32Array.from([0, 1]), 1n << 32n, DEADLINE_MS);
      await tree.exit(1, DEADLINE_MS);
      expect(await tree.reap(0, c1.pid, DEADLINE_MS)).toEqual({ status: 0, exitCode: 0, signal: null });
    } finally {
      await tree.destroy(DEADLINE_MS);
    }
  });
});

describe('a trace process that died', () => {
  it('fails the next command with ERR_CHILD_FAILED naming it and its signal, and the whole tree is killed and reaped', async () => {
    const tree = twoProcesses();
    try {
      await tree.start(DEADLINE_MS);
      const c1 = await tree.fork(0, 1, DEADLINE_MS);
      killUntilZombie(c1.pid); // p0 does not reap it: its status stays in /proc until the teardown
      const err = await rejection(tree.access(1, true, 0, Uint32Array.from([0]), 1n << 32n, DEADLINE_MS));
      expect({ code: err.code, message: err.message }).toEqual({
        code: 'ERR_CHILD_FAILED',
        message: `trace process 'c1' (pid ${c1.pid}) was killed by signal 9 (SIGKILL) while writing; every trace process was killed and reaped`,
      });
      expect(readProcStat(c1.pid)).toBeNull();
    } finally {
      await tree.destroy(DEADLINE_MS);
    }
  });
});

describe('reaping', () => {
  it("decodes the wait status of p0 killed by a signal and reaped by Node", async () => {
    const tree = twoProcesses();
    try {
      const p0 = await tree.start(DEADLINE_MS);
      killUntilZombie(p0.pid);
      const r = await tree.reap(-1, p0.pid, DEADLINE_MS);
      expect(r).toEqual({ status: 9, exitCode: null, signal: 9 });
      expect(describeWaitStatus(r.status)).toBe('was killed by signal 9 (SIGKILL)');
    } finally {
      await tree.destroy(DEADLINE_MS);
    }
  });
});
