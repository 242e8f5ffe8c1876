/**
 * timeSpawn against real processes: each kind really runs the program (it leaves a file
 * behind naming its pid), waits for its exit, reaps it, and reports a failing exit as one.
 */
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { CowlabError, Mapping, SPAWN_KINDS, timeSpawn } from '../../src/index.js';
import { forkAndStore } from '../../src/probes/spawn.js';
import { DIST_INDEX, runAsNobody, runCliAsNobody } from '../helpers/cli.js';
import { descendants } from '../helpers/processes.js';

const SH = '/bin/sh';
const dir = mkdtempSync(join(tmpdir(), 'cowlab-spawn-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** A regular file without an execute bit (not executable even for root). */
const plainFile = join(dir, 'plain');
writeFileSync(plainFile, '#!/bin/sh\n', { mode: 0o644 });

describe.each(SPAWN_KINDS)('timeSpawn, kind %s', (kind) => {
  it('runs the program with its arguments, resolves once it has exited, and leaves no process', async () => {
    const out = join(dir, `${kind}.pid`);
    // The program writes its own pid: the file proves it ran, the pid that it was a new process.
    const t = await timeSpawn({ kind, program: SH, args: ['-c', `echo $$ > ${out}`] });
    expect(t.kind).toBe(kind);
    const pid = Number(readFileSync(out, 'utf8').trim());
    expect(pid).toBeGreaterThan(0);
    expect(pid).not.toBe(process.pid);
    // Reaped before the promise resolved: the pid is no longer a process (not even a zombie).
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(t.callNs).toBeGreaterThan(0);
    expect(t.totalNs).toBeGreaterThanOrEqual(t.callNs);
    expect(descendants()).toEqual([]);
  });

  it("reports the child's exit status when the program fails", async () => {
    const p = timeSpawn({ kind, program: SH, args: ['-c', 'exit 3'] });
    await expect(p).rejects.toMatchObject({ code: 'ERR_CHILD_FAILED' });
    await expect(p).rejects.toThrow(/exited with status 3/);
    expect(descendants()).toEqual([]);
  });

  it('reports a child killed by a signal', async () => {
    await expect(timeSpawn({ kind, program: SH, args: ['-c', 'kill -9 $$'] })).rejects.toThrow(/killed by signal 9/);
    expect(descendants()).toEqual([]);
  });

  it('kills and reaps a child that outlives its deadline', async () => {
    const p = timeSpawn({ kind, program: '/bin/sleep', args: ['30'], deadlineMs: 100 });
    await expect(p).rejects.toMatchObject({ code: 'ERR_CHILD_DEADLINE' });
    expect(descendants()).toEqual([]);
  });
});

/** The scheduling policy field of /proc/<pid>[/task/<tid>]/stat (0 normal, 1 SCHED_FIFO). */
const policyOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
const asRoot = process.getuid?.() === 0;

describe('timeSpawn at real-time priority', () => {
  it.runIf(asRoot).each(SPAWN_KINDS)('%s: the child starts as a normal task, and every thread of this process is normal again afterwards', async (kind) => {
    const out = join(dir, `${kind}.policy`);
    // The program reads its own policy before anything else: reset on fork, not inherited.
    const t = await timeSpawn({ kind, program: SH, args: ['-c', `cat /proc/$$/stat > ${out}`], realtime: true });
    expect(t.callNs).toBeGreaterThan(0);
    expect(policyOf(readFileSync(out, 'utf8'))).toBe(0);
    const tasks = readdirSync('/proc/self/task');
    expect(tasks.length).toBeGreaterThan(1); // the call ran on a worker thread, which is among them
    for (const tid of tasks) expect(policyOf(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'))).toBe(0);
  });

  it.runIf(asRoot)('is refused with EPERM for a user without CAP_SYS_NICE, nothing started (as nobody; needs root to switch user)', () => {
    const r = runAsNobody(
      `import { timeSpawn } from ${JSON.stringify(DIST_INDEX)};
       try { await timeSpawn({ kind: 'posix_spawn', program: '/bin/true', realtime: true }); console.log('started'); }
       catch (e) { console.log(e.code, e.errno); }`,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ERR_SYSCALL EPERM');
  });

  it.runIf(asRoot)("fork-cost without CAP_SYS_NICE times the calls at normal priority and says so (as nobody)", () => {
    const out = mkdtempSync(join(tmpdir(), 'cowlab-spawn-nobody-'));
    try {
      chmodSync(out, 0o777);
      const r = runCliAsNobody(['run', 'fork-cost', '--quick', '--out', join(out, 'r')], { timeout: 60_000 });
      expect([0, 1]).toContain(r.status); // a verdict either way: the run itself did not fail
      const doc = JSON.parse(readFileSync(join(out, 'r', 'results.json'), 'utf8')) as { experiments: { raw: { scheduling: string }; notes: string[] }[] };
      const e = doc.experiments[0]!;
      expect(e.raw.scheduling).toBe('normal');
      expect(e.notes.join('\n')).toMatch(/normal priority \(no CAP_SYS_NICE for SCHED_FIFO\)/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('refuses a realtime that is not a boolean', async () => {
    await expect(timeSpawn({ kind: 'vfork', program: SH, realtime: 'yes' as never })).rejects.toThrow(/^realtime: must be a boolean, got yes$/);
  });
});

describe('timeSpawn option checks (nothing is started)', () => {
  it.each([
    [{ kind: 'clone', program: SH }, /^kind: must be one of fork, vfork, posix_spawn, got 'clone'$/],
    [{ kind: 'fork', program: 'sh' }, /^program: must be an absolute path \(execve does not search PATH\), got 'sh'$/],
    [{ kind: 'fork', program: '/nonexistent/program' }, /^program: '\/nonexistent\/program' is not an executable file \(ENOENT\)$/],
    [{ kind: 'fork', program: plainFile }, /is not an executable file \(EACCES\)$/],
    [{ kind: 'fork', program: '/tmp' }, /^program: '\/tmp' is not an executable file/],
    [{ kind: 'fork', program: SH, args: ['-c', 1] }, /^args: must be an array of strings$/],
    [{ kind: 'fork', program: SH, args: ['a\0b'] }, /^args: must not contain a NUL byte$/],
    [{ kind: 'fork', program: SH, deadlineMs: 0 }, /^deadlineMs: must be a positive integer, got 0$/],
  ])('refuses %o', async (options, message) => {
    const p = timeSpawn(options as never);
    await expect(p).rejects.toBeInstanceOf(CowlabError);
    await expect(p).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await expect(p).rejects.toThrow(message);
    expect(descendants()).toEqual([]);
  });
});

describe('forkAndStore', () => {
  it("stores into the child's copy only: private memory keeps the parent's word, MAP_SHARED shows the child's", async () => {
    const priv = Mapping.create({ pages: 1, backing: 'anon-private' });
    const shared = Mapping.create({ pages: 1, backing: 'anon-shared' });
    try {
      new BigUint64Array(priv.buffer)[0] = 1n;
      new BigUint64Array(shared.buffer)[0] = 1n;
      await forkAndStore([priv.address, shared.address], 42n);
      expect(new BigUint64Array(priv.buffer)[0]).toBe(1n);
      expect(new BigUint64Array(shared.buffer)[0]).toBe(42n);
      expect(descendants()).toEqual([]);
    } finally {
      priv.unmap();
      shared.unmap();
    }
  });

  it("moves the offset of the descriptor the child inherited: the parent's next read starts where the child stopped", async () => {
    const path = join(dir, 'offsets');
    writeFileSync(path, Buffer.from('0123456789abcdef'));
    const fd = openSync(path, 'r');
    try {
      await forkAndStore([], 0n, 10_000, { fd, bytes: 10 });
      const next = Buffer.alloc(6);
      expect(readSync(fd, next, 0, 6, null)).toBe(6);
      expect(next.toString()).toBe('abcdef');
    } finally {
      closeSync(fd);
    }
  });

  it('reports a child that could not read as how it ended, and a store into MADV_DONTFORK memory as SIGSEGV', async () => {
    const path = join(dir, 'short');
    writeFileSync(path, Buffer.from('abc'));
    const fd = openSync(path, 'r');
    try {
      await expect(forkAndStore([], 0n, 10_000, { fd, bytes: 100 })).rejects.toThrow(/^the forked child exited with status 3$/);
    } finally {
      closeSync(fd);
    }
    const m = Mapping.create({ pages: 1 });
    try {
      m.advise('dontfork');
      await expect(forkAndStore([m.address])).rejects.toMatchObject({ code: 'ERR_CHILD_FAILED', message: expect.stringMatching(/killed by signal 11/) });
    } finally {
      m.unmap();
    }
  });
});
