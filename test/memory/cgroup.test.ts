/**
 * A memory cgroup of the run's own (src/memory/cgroup.ts): made below this process's cgroup,
 * limiting what its processes may hold, counting its own OOM kills, and gone after remove().
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { createMemoryCgroup } from '../../src/memory/cgroup.js';

describe('a memory cgroup of the run', () => {
  it('holds a process moved into it, starts with no OOM kill, and is removed once the process is gone', async () => {
    const cg = createMemoryCgroup('cowlab-test', 64 * 2 ** 20);
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise((r) => sleeper.once('exit', r));
    try {
      expect(existsSync(cg.path)).toBe(true);
      const limit = readFileSync(join(cg.path, cg.version === 2 ? 'memory.max' : 'memory.limit_in_bytes'), 'utf8').trim();
      expect(Number(limit)).toBe(64 * 2 ** 20);
      cg.add(sleeper.pid!);
      expect(readFileSync(join(cg.path, 'cgroup.procs'), 'utf8').split('\n')).toContain(String(sleeper.pid));
      expect(cg.oomKills()).toBe(0);
    } finally {
      sleeper.kill('SIGKILL');
      await exited;
      await cg.remove();
    }
    expect(existsSync(cg.path)).toBe(false);
  });
});
