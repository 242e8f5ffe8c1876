/** `cowlab simulate` and `cowlab scenarios` as users run them (the built CLI, spawned). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import type { TraceObservationsJson } from '../../src/engines/observations.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-sim-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function traceFile(name: string, doc: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}

describe('cowlab simulate', () => {
  it('prints a table per step for a scenario and exits 0', () => {
    const r = runCli(['simulate', 'fork-child-writes-all']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^simulate: fork-child-writes-all\n/);
    expect(r.stdout).toMatch(/cost model: uncalibrated defaults/);
    expect(r.stdout).toMatch(/step\s+op\s+proc\s+region\s+copies\s+reuses\s+zeroFills\s+faults\s+frames\s+time\s+p0\s+c1/);
    expect(r.stdout).toMatch(/\n\s+1\s+write 0\.\.1024\s+c1\s+heap\s+1,024\s+0\s+0\s+1,024\s+2,048\s+\S+ ms\s+1024\/0\/1024\/0\s+1024\/0\/1024\/0/);
  });

  it('--json prints one document with counts and page lists', () => {
    const r = runCli(['simulate', 'thp-fork-write', '--json', '--thp-pte-reuse', 'never']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as TraceObservationsJson & { model: { thpPteReuse: string; costModel: { calibrated: boolean } } };
    expect(doc.engine).toBe('sim');
    expect(doc.model.thpPteReuse).toBe('never');
    expect(doc.model.costModel.calibrated).toBe(false);
    expect(doc.steps).toHaveLength(doc.trace.steps.length + 1);
    const write = doc.steps[2]!;
    expect(write.events.huge).toEqual({ copies: 4, reuses: 0, zeroFills: 0, faults: 4 });
    expect(write.processes.c1!.huge).toMatchObject({ present: 2048, exclusive: 4, pages: { exclusive: '0,512,1024,1536' } });
    expect(doc.steps[5]!.events.huge).toEqual({ copies: 4, reuses: 0, zeroFills: 0, faults: 4 });
  });

  it('takes a trace file, and --reuse off turns reuses into copies', () => {
    const file = traceFile('reuse.json', {
      name: 'reuse', regions: [{ id: 'heap', pages: 64 }],
      steps: [{ op: 'fork', proc: 'p0', child: 'c1' }, { op: 'exit', proc: 'c1' }, { op: 'write', proc: 'p0', region: 'heap', pages: { start: 0, end: 64 } }],
    });
    const on = JSON.parse(runCli(['simulate', file, '--json']).stdout) as TraceObservationsJson;
    const off = JSON.parse(runCli(['simulate', file, '--json', '--reuse', 'off']).stdout) as TraceObservationsJson;
    expect(on.steps[3]!.events.heap).toMatchObject({ copies: 0, reuses: 64 });
    expect(off.steps[3]!.events.heap).toMatchObject({ copies: 64, reuses: 0 });
  });

  it.each([
    {
      name: 'a bad trace names the step and field',
      args: () => ['simulate', traceFile('bad.json', { name: 'b', regions: [{ id: 'heap', pages: 1024 }], steps: [{ op: 'write', proc: 'p0', region: 'heap', pages: { start: 0, end: 2048 } }] })],
      message: /^cowlab: steps\[0\]\.pages\.end: 2048 is beyond region 'heap' \(1024 pages\)/,
    },
    {
      name: 'a process that exited',
      args: () => ['simulate', traceFile('exited.json', { name: 'e', regions: [{ id: 'heap', pages: 8 }], steps: [{ op: 'fork', proc: 'p0', child: 'c1' }, { op: 'exit', proc: 'c1' }, { op: 'read', proc: 'c1', region: 'heap', pages: { pages: [1] } }] })],
      message: /^cowlab: steps\[2\]\.proc: process 'c1' already exited at steps\[1\]/,
    },
    { name: 'a file that is not JSON', args: () => ['simulate', traceFile('broken.json', '{')], message: /^cowlab: trace: not valid JSON: .*\(in .*broken\.json\)$/m },
    { name: 'an unknown scenario', args: () => ['simulate', 'fork-child-writes-everything'], message: /^cowlab: trace: 'fork-child-writes-everything' is neither a trace file nor a scenario \(scenarios: .*fork-child-writes-all/ },
    { name: 'a bad --reuse', args: () => ['simulate', 'fork-exec', '--reuse', 'maybe'], message: /^cowlab: --reuse: must be one of on, off, got 'maybe'/ },
    { name: 'a bad --fault-around', args: () => ['simulate', 'fork-exec', '--fault-around', '3'], message: /^cowlab: --fault-around: must be a power of two, got 3/ },
    { name: 'a bad --thp-pte-reuse', args: () => ['simulate', 'fork-exec', '--thp-pte-reuse', 'always'], message: /^cowlab: --thp-pte-reuse: must be one of per-page, never/ },
    { name: 'a missing --cost-model file', args: () => ['simulate', 'fork-exec', '--cost-model', join(dir, 'none.json')], message: /^cowlab: --cost-model: cannot read/ },
  ])('$name: one line on stderr, exit 2', ({ args, message }) => {
    const r = runCli(args());
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('cowlab scenarios', () => {
  it('lists every scenario with its description', () => {
    const r = runCli(['scenarios']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^fork-child-writes-all\n {4}Fork over 1024 written pages/m);
    expect(r.stdout).toMatch(/\d+ scenarios\. Run one: cowlab simulate <name>/);
  });

  it('--json prints name, description and path', () => {
    const list = JSON.parse(runCli(['scenarios', '--json']).stdout) as { name: string; description: string; path: string }[];
    expect(list.map((s) => s.name)).toContain('wipeonfork');
    for (const s of list) expect(s.path.endsWith(`${s.name}.json`)).toBe(true);
  });
});
