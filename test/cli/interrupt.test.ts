/**
 * Ctrl-C during `cowlab run`: the running probe's child is killed (killAllChildren), the probe
 * rejects, results.json and report.html are written with what was collected and marked
 * interrupted, the exit status is 130, and no process of the run is left.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { parseResults } from '../../src/suite/schema.js';
import { CLI } from '../helpers/cli.js';
import { descendants } from '../helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-interrupt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every process whose command line names `marker` (forked children keep their parent's). */
function processesNaming(marker: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker)) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
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

describe('Ctrl-C during cowlab run', () => {
  it('kills the children, keeps the results so far (marked interrupted) and exits 130', async () => {
    const out = join(dir, 'run');
    // copyout finishes in well under a second; snapshot-load then holds a forked child for
    // 1.5 s of paced writes: SIGINT lands while that child is alive.
    const child = spawn(process.execPath, [CLI, 'run', '--quick', 'copyout', 'snapshot-load', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await until('copyout to finish', () => (/cowlab run: 9 copyout: /.test(stderr) ? true : undefined), 60_000);
    const alive = await until('a forked child of the run', () => {
      const d = descendants(child.pid!).filter((p) => p.state !== 'Z');
      return d.length > 0 ? d.map((p) => p.pid) : undefined;
    }, 30_000);
    child.kill('SIGINT');
    const code = await exited;

    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted: stopping the running experiment/);
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
});
