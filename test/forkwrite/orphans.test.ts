/**
 * A forked child dies with the Node process that forked it. `cowlab fork-write --hold-ms N`
 * keeps its child alive for N ms after the writes; killing only the Node pid (SIGKILL, or
 * SIGTERM / SIGINT / SIGHUP, whose default action ends Node) used to leave that child
 * reparented and holding for the rest of N. The same holds for the spawn probe's fork and
 * vfork children, which exec a program. Real processes, polled in /proc.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import type { CowlabError } from '../../src/errors.js';
import { native } from '../../src/native.js';
import { packageRoot } from '../../src/util/package.js';
import { CLI } from '../helpers/cli.js';
import { descendants } from '../helpers/processes.js';

const SIGNALS = ['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** Far longer than the bound below: a child that outlives its parent is still holding. */
const HOLD_MS = 30_000;
/** How long a child may take to die once its parent is gone (it is SIGKILLed at once). */
const GONE_WITHIN_MS = 3_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, poll: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = poll();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * Gone: no longer in /proc, or exited and reaped here (this process is a child subreaper
 * during the test, so the orphans of the killed Node come to it).
 */
function gone(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return true;
  try {
    return native().reapChild(pid) !== null;
  } catch (err) {
    if ((err as CowlabError).errno === 'ECHILD') return false; // alive, and not (yet) ours
    throw err;
  }
}

/**
 * Starts node with `args`, waits until `ready(pid of a live descendant)` holds for one of
 * its descendants, kills the Node pid alone with `signal`, and returns the descendants still
 * alive GONE_WITHIN_MS later (each then SIGKILLed and reaped, so a failure leaves nothing).
 */
async function survivorsOfKilledNode(
  args: string[],
  signal: (typeof SIGNALS)[number],
  ready: (pid: number) => boolean,
): Promise<{ watched: number[]; left: number[] }> {
  const before = native().setChildSubreaper(true);
  let watched: number[] = [];
  try {
    const node = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: packageRoot() });
    let stderr = '';
    node.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((resolve) => node.once('exit', resolve));
    let ended = false;
    node.once('exit', () => (ended = true));
    watched = await until('the forked child to be ready', () => {
      if (ended) throw new Error(`node ended before its child was ready: ${stderr}`);
      const live = descendants(node.pid!).filter((p) => p.state !== 'Z').map((p) => p.pid);
      return live.length > 0 && live.every(ready) ? live : undefined;
    });
    node.kill(signal);
    await exited;
    let left = watched;
    const deadline = Date.now() + GONE_WITHIN_MS;
    while (left.length > 0 && Date.now() < deadline) {
      left = left.filter((pid) => !gone(pid));
      if (left.length > 0) await sleep(10);
    }
    return { watched, left };
  } finally {
    for (const pid of watched) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const pid of watched) await until(`pid ${pid} to be reaped`, () => (gone(pid) ? true : undefined), 10_000);
    native().setChildSubreaper(before);
  }
}

/** In its hold: asleep. The child waits on its command pipe between commands (wchan
 *  pipe_read or the like), and holds its snapshot there until the hold ends. */
function holding(pid: number): boolean {
  return read(`/proc/${pid}/stat`)?.includes(') S ') ?? false;
}

describe('fork-write --hold-ms with the Node pid killed', () => {
  it.each(SIGNALS)('kills the holding child with its parent: %s', async (signal) => {
    const { watched, left } = await survivorsOfKilledNode(
      [CLI, 'fork-write', '--pages', '1024', '--hold-ms', String(HOLD_MS), '--repeats', '1', '--warmup', '0'],
      signal,
      holding,
    );
    expect(watched).toHaveLength(1);
    expect(left, `still alive ${GONE_WITHIN_MS} ms after ${signal} to Node`).toEqual([]);
  }, 90_000);
});

describe('spawn probe children with the Node pid killed', () => {
  const script = (kind: number) => `
    const { native } = await import(${JSON.stringify(join(packageRoot(), 'dist', 'src', 'native.js'))});
    await native().spawnProbe({ kind: ${kind}, path: '/bin/sleep', args: ['${HOLD_MS / 1000}'], deadlineMs: ${HOLD_MS * 2} });`;
  const execd = (pid: number) => read(`/proc/${pid}/cmdline`)?.startsWith('/bin/sleep\0') ?? false;

  it.each([
    { kind: 0, name: 'fork + exec' },
    { kind: 1, name: 'vfork + exec' },
  ])('kills the exec’d program with its parent: $name', async ({ kind }) => {
    const { watched, left } = await survivorsOfKilledNode(['--input-type=module', '-e', script(kind)], 'SIGKILL', execd);
    expect(watched).toHaveLength(1);
    expect(left, `still alive ${GONE_WITHIN_MS} ms after SIGKILL to Node`).toEqual([]);
  }, 90_000);
});
