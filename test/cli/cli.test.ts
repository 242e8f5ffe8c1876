/** The CLI as users run it: exit codes, one-line errors, JSON shapes. */
import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';

describe('bad input exits 2 with one line, before anything is allocated', () => {
  it.each([
    { args: ['fork-write', '--pages', '-5'], message: /--pages: must be a positive integer, got '-5'/ },
    { args: ['fork-write', '--pages', '0'], message: /--pages: must be a positive integer, got '0'/ },
    { args: ['fork-write', '--pages', 'abc'], message: /--pages: must be an integer, got 'abc'/ },
    { args: ['fork-write', '--pages', '4k'], message: /--pages: must be an integer, got '4k'/ },
    { args: ['fork-write', '--pages', '999999999'], message: /--pages: 999999999 pages \(.*\) is more than half of MemAvailable/ },
    { args: ['fork-write', '--pages', '16', '--pattern', 'zigzag'], message: /--pattern: must be seq, rand or stride:N/ },
    { args: ['fork-write', '--pages', '16', '--pattern', 'stride:0'], message: /--pattern: must be seq, rand or stride:N with N >= 1/ },
    { args: ['fork-write', '--pages', '16', '--repeats', 'x'], message: /--repeats: must be an integer, got 'x'/ },
    { args: ['fork-write', '--pages', '16', '--thp', 'sometimes'], message: /--thp: must be one of never, always/ },
    { args: ['fork-write', '--pages', '16', '--writer', 'nobody'], message: /--writer: must be one of child, parent, both/ },
    { args: ['fork-write'], message: /required option '--pages <n>' not specified/ },
    { args: ['fork-write', '--pages', '16', '--bogus'], message: /unknown option '--bogus'/ },
    { args: ['no-such-command'], message: /unknown command 'no-such-command'/ },
    { args: ['pagemap', '--pid', '999999999', '--address', '0x1000'], message: /--pid: no process with pid 999999999/ },
    { args: ['pagemap', '--pid', String(process.pid), '--address', '0x1001'], message: /--address: must be page-aligned/ },
    { args: ['pagemap', '--pid', String(process.pid), '--address', 'nowhere'], message: /--address: must be an address \(0x\.\.\.\) or a mapping name/ },
  ].map((c) => ({ ...c, command: `cowlab ${c.args.join(' ')}` })))('$command', ({ args, message }) => {
    const r = runCli(args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')[0]).toMatch(/^cowlab: /);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('fork-write', () => {
  it('prints the documented JSON document', () => {
    const r = runCli(['fork-write', '--pages', '256', '--repeats', '2', '--json']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      env: { kernel: string; privileges: { pfnVisible: boolean } };
      runs: {
        pages: number; pattern: string; thp: string; forkNs: number; warmup: boolean;
        child: { faults: number; perPageNs: Record<string, number> };
        parent: null;
        verify: Record<string, number | null>;
      }[];
    };
    expect(doc.env.kernel).toMatch(/\d+\.\d+/);
    expect(doc.runs).toHaveLength(3); // 1 warm-up + 2
    for (const run of doc.runs) {
      expect(run).toMatchObject({ pages: 256, pattern: 'seq', thp: 'never', parent: null });
      expect(run.forkNs).toBeGreaterThan(0);
      expect(run.child.faults).toBe(256);
      expect(Object.keys(run.child.perPageNs)).toEqual(expect.arrayContaining(['p50', 'p90', 'p99', 'max']));
      expect(Object.keys(run.verify)).toEqual(
        expect.arrayContaining(['sharedAfterFork', 'pfnChangedInWriter', 'pfnKeptInOther', 'exclusiveAfterWrite']),
      );
      if (doc.env.privileges.pfnVisible) expect(run.verify.pfnChangedInWriter).toBe(256);
    }
  });

  it('prints a readable table with the verification counts', () => {
    const r = runCli(['fork-write', '--pages', '128', '--repeats', '1', '--pattern', 'rand']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/child p50/);
    expect(r.stdout).toMatch(/warm median/);
    expect(r.stdout).toMatch(/shared after fork\s+128 of 128 pages/);
  });

  it('explains itself in --help', () => {
    const r = runCli(['fork-write', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--pattern <p>/);
    expect(r.stdout).toMatch(/Examples:/);
  });
});

describe('pagemap and env', () => {
  it('dumps decoded entries of a mapping named in /proc/<pid>/maps', () => {
    const r = runCli(['pagemap', '--pid', String(process.pid), '--address', '[stack]', '--pages', '4', '--json']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as { entries: { present: boolean; exclusive: boolean }[]; mapping: string };
    expect(doc.mapping).toBe('[stack]');
    expect(doc.entries).toHaveLength(4);
  });

  it('prints the environment as JSON with privileges and noise sources', () => {
    const r = runCli(['env', '--json']);
    expect(r.status).toBe(0);
    const env = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(env).toHaveProperty('kernel');
    expect(env).toHaveProperty('thp.enabled');
    expect(env).toHaveProperty('privileges.pfnVisible');
    expect(env).toHaveProperty('noise.damon');
    expect(env).toHaveProperty('maxMapCount');
  });
});
