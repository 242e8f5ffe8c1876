/** Process hygiene checks: descendants, zombies, open fds. Read from /proc, no mocks. */
import { readdirSync, readFileSync } from 'node:fs';

import { readProcStat, type ProcStat } from '../../src/util/procStat.js';

function allProcesses(): ProcStat[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProcStat(Number(d)))
    .filter((s): s is ProcStat => s !== null);
}

/** Every live or zombie process below `root` (children, grandchildren, ...). */
export function descendants(root = process.pid): ProcStat[] {
  const all = allProcesses();
  const out: ProcStat[] = [];
  let frontier = [root];
  while (frontier.length > 0) {
    const next = all.filter((p) => frontier.includes(p.ppid));
    out.push(...next);
    frontier = next.map((p) => p.pid);
  }
  return out;
}

/** Every process whose command line (NUL-separated argv) passes `test`; exited ones are skipped. */
export function processesWhoseCommand(test: (cmdline: string) => boolean): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (test(readFileSync(`/proc/${d}/cmdline`, 'utf8'))) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function zombieChildren(root = process.pid): ProcStat[] {
  return descendants(root).filter((p) => p.state === 'Z');
}

/**
 * SIGKILLs `pid` (a child of a process that does not reap it) and blocks until it is a zombie:
 * kill() only marks it, and it dies when next scheduled, which on a loaded machine is later.
 */
export function killUntilZombie(pid: number, timeoutMs = 10_000): void {
  process.kill(pid, 'SIGKILL');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + timeoutMs;
  while (readProcStat(pid)?.state !== 'Z') {
    if (Date.now() > end) throw new Error(`pid ${pid} was not a zombie ${timeoutMs} ms after SIGKILL`);
    Atomics.wait(nap, 0, 0, 1);
  }
}

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Calls gc() when the test process was started with --expose-gc (vitest.config.ts does). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}
