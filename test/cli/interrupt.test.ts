/**
 * Ctrl-C during `cowlab run`: the running probe's child, or the kernel engine's whole process
 * tree, is killed (killAllChildren), the probe or the engine rejects, results.json and
 * report.html are written with what was collected and marked interrupted, the exit status is
 * 130, and no process of the run is left.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { parseResults } from '../../src/suite/schema.js';
import { CLI } from '../helpers/cli.js';
import { descendants, processesWhoseCommand } from '../helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-interrupt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every process whose command line names `marker` (forked children keep their parent's). */
function processesNaming(marker: string): number[] {
  return processesWhoseCommand((cmd) => cmd.includes(marker));
}

async function until<T>(what: string, poll: () => T | undefined, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = poll();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `cowlab run ...args` in a child process: its stderr so far, and its exit code. */
function startRun(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run = { child, stderr: '', exited: new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))) };
  child.stderr.on('data', (b: Buffer) => (run.stderr += b.toString()));
  child.stdout.resume();
  return run;
}

describe('Ctrl-C during cowlab run', () => {
  it('kills the children, keeps the results so far (marked interrupted) and exits 130', async () => {
    const out = join(dir, 'run');
    // copyout finishes in well under a second; snapshot-load then holds a forked child for
    // 1.5 s of paced writes: SIGINT lands while that child is alive.
    const run = startRun(['--quick', 'copyout', 'snapshot-load', '--out', out]);
    const { child } = run;
    await until('copyout to finish', () => (/cowlab run: 9 copyout: /.test(run.stderr) ? true : undefined), 60_000);
    const alive = await until('a forked child of the run', () => {
      const d = descendants(child.pid!).filter((p) => p.state !== 'Z');
      return d.length > 0 ? d.map((p) => p.pid) : undefined;
    }, 30_000);
    child.kill('SIGINT');
    const code = await run.exited;

    expect(code).toBe(130);
    expect(run.stderr).toMatch(/interrupted: stopping the running experiment/);
    for (const pid of alive) expect(existsSync(`/proc/${pid}`), `pid ${pid} is gone`).toBe(false);
    expect(processesNaming(out)).toEqual([]);

    const doc = parseResults(readFileSync(join(out, 'results.json'), 'utf8'), 'results.json', EXPERIMENTS);
    expect(doc.interrupted).toBe(true);
    expect(doc.experiments.map((e) => [e.name, e.status])).toEqual([['copyout', 'completed'], ['snapshot-load', 'interrupted']]);
    expect(doc.experiments[0]!.raw).not.toBeNull();
    expect(doc.experiments[1]!.error?.code).toMatch(/^ERR_(INTERRUPTED|CHILD_FAILED)$/);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('This run was interrupted');
    expect(html).toContain('<svg '); // copyout's chart survives
  }, 90_000);

  it("kills the kernel engine's process tree mid-trace and keeps the results so far", async () => {
    const out = join(dir, 'kernel');
    // fork-exec (--quick: a 256 MiB parent, its tree alive for about a second) runs after
    // fork-write-latency; SIGINT lands once the engine's p0 (a process group leader) exists.
    const run = startRun(['--quick', 'fork-write-latency', 'fork-exec', '--out', out]);
    const { child } = run;
    await until('fork-write-latency to finish', () => (/cowlab run: 1 fork-write-latency: /.test(run.stderr) ? true : undefined), 60_000);
    const tree = await until('the kernel engine\'s process tree', () => {
      const d = descendants(child.pid!).filter((p) => p.state !== 'Z');
      const p0 = d.find((p) => p.pgrp === p.pid && p.ppid === child.pid);
      return p0 ? d.filter((p) => p.pgrp === p0.pid).map((p) => p.pid) : undefined;
    }, 30_000);
    child.kill('SIGINT');
    const code = await run.exited;

    expect(code).toBe(130);
    for (const pid of tree) expect(existsSync(`/proc/${pid}`), `pid ${pid} is gone`).toBe(false);
    expect(processesNaming(out)).toEqual([]);
    const doc = parseResults(readFileSync(join(out, 'results.json'), 'utf8'), 'results.json', EXPERIMENTS);
    expect(doc.interrupted).toBe(true);
    expect(doc.experiments.map((e) => [e.name, e.status])).toEqual([['fork-write-latency', 'completed'], ['fork-exec', 'interrupted']]);
    expect(doc.experiments[0]!.raw).not.toBeNull();
    // Killed in the middle of the trace (not stopped after it): the engine saw its tree die.
    // Wherever the kill lands (a native step, or Node reading a dead process's pagemap), the
    // error names the death; the whole error is compared so a failure shows its message.
    expect(doc.experiments[1]!.error).toMatchObject({ code: 'ERR_CHILD_FAILED', message: expect.stringMatching(/killed by signal 9/) });
  }, 90_000);
});
