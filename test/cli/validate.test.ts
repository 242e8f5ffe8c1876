/** validate, run-trace and calibrate as users run them. */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { listScenarios } from '../../src/trace/scenarios.js';
import { runCli, runCliAsNobody } from '../helpers/cli.js';

// No calibrated model from the user's config: outputs must not depend on it.
const env = { ...process.env, COWLAB_COST_MODEL: '', XDG_CONFIG_HOME: join(os.tmpdir(), 'cowlab-test-no-config') };
const cli = (args: string[]) => runCli(args, { env });

describe('cowlab validate', () => {
  it('matches every built-in scenario against real processes and exits 0', () => {
    const r = cli(['validate', '--all']);
    expect(r.stderr, r.stdout + r.stderr).not.toMatch(/cowlab:/);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    for (const s of listScenarios()) expect(r.stdout).toMatch(new RegExp(`^${s.name}\\s+matched`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`${listScenarios().length} matched, 0 mismatched`));
  });

  it('matches every scenario without root too, where PFNs are hidden (frames are listed as not compared)', () => {
    const r = runCliAsNobody(['validate', '--all', '--verbose'], { env });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${listScenarios().length} matched, 0 mismatched`));
    expect(r.stdout).toMatch(/not compared: frames: /);
  });

  it('compares all three engines: the region engine matches where it applies and says why where it does not', () => {
    const r = cli(['validate', '--all', '--engines', 'sim,kernel,region']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^fork-child-writes-all \(region\)\s+matched/m);
    expect(r.stdout).toMatch(/^shared-anon\s+matched .*region not applicable: .*map 'shared' is not modeled/m);
    expect(r.stdout).toMatch(/0 mismatched/);
  });

  it('fails with exit 1 on a deliberately wrong model and names the step and the field', () => {
    // --reuse off models a kernel that copies on every write fault; the parent's writes after
    // the child exited are reuses on this kernel, so step 2 must be the first mismatch.
    const r = cli(['validate', 'fork-parent-writes-after-exit', '--reuse', 'off']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/MISMATCH/);
    expect(r.stdout).toMatch(/step 2 \(write 0\.\.1024 by p0\): copies@heap sim=1024 kernel=0/);
    expect(r.stdout).toMatch(/reuses@heap sim=0 kernel=1024/);
    expect(r.stdout).toMatch(/1,024\/0 ✗/); // the step table marks the cell
  });

  it('prints a machine-readable diff with --json', () => {
    const r = cli(['validate', 'fork-parent-writes-after-exit', '--reuse', 'off', '--json']);
    expect(r.status).toBe(1);
    const doc = JSON.parse(r.stdout) as {
      summary: { mismatched: number };
      kernels: {
        kernel: string;
        overrides: Record<string, string>;
        traces: { status: string; comparisons: { firstMismatchStep: number; steps: { step: number; diffs: { field: string }[] }[] }[] }[];
      }[];
    };
    expect(doc.summary.mismatched).toBe(1);
    expect(doc.kernels.map((k) => k.kernel)).toEqual(['host']);
    expect(doc.kernels[0]!.overrides).toEqual({ reuse: 'off' });
    const c = doc.kernels[0]!.traces[0]!.comparisons[0]!;
    expect(c.firstMismatchStep).toBe(2);
    expect(c.steps.find((s) => s.step === 2)!.diffs.map((d) => d.field)).toEqual(expect.arrayContaining(['copies', 'reuses']));
  });

  it.each([
    { args: ['validate', '--engines', 'sim,bogus', 'fork-exec'], message: /--engines: unknown engine 'bogus'/ },
    { args: ['validate', '--engines', 'sim', 'fork-exec'], message: /--engines: needs at least 2 engines/ },
    { args: ['validate', '--all', 'fork-exec'], message: /--all: give trace names or --all, not both/ },
    { args: ['validate'], message: /name a trace or scenario, or use --all/ },
    { args: ['validate', 'no-such-scenario'], message: /no-such-scenario/ },
    { args: ['validate', 'fork-exec', '--reuse', 'maybe'], message: /--reuse: must be one of on, off/ },
    { args: ['run-trace', 'fork-exec', '--step-deadline-ms', '0'], message: /--step-deadline-ms: must be a positive integer/ },
    { args: ['calibrate', '--pages', '3'], message: /--pages: must be at least 16/ },
  ].map((c) => ({ ...c, command: `cowlab ${c.args.join(' ')}` })))('$command exits 2', ({ args, message }) => {
    const r = cli(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe('cowlab run-trace', () => {
  it('runs a scenario in real processes and prints the measured step table', () => {
    const r = cli(['run-trace', 'fork-child-writes-half']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/write 0\.\.512\s+c1\s+heap\s+512\s+0\s+0\s+512/);
    expect(r.stdout).toMatch(/time: measured/);
  });

  it('prints observations as JSON', () => {
    const r = cli(['run-trace', 'fork-exec', '--json']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as { engine: string; steps: { op: string }[] };
    expect(doc.engine).toBe('kernel');
    expect(doc.steps.map((s) => s.op)).toEqual(['setup', 'fork', 'exec', 'write', 'exit']);
  });
});

describe('cowlab calibrate', () => {
  it('measures every event kind and writes a cost model the simulator loads', () => {
    const out = join(mkdtempSync(join(os.tmpdir(), 'cowlab-cal-')), 'model.json');
    const r = cli(['calibrate', '--pages', '256', '--repeats', '1', '--warmup', '0', '--out', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/write fault: COW copy/);
    const model = JSON.parse(readFileSync(out, 'utf8')) as { measuredAt: string; constants: Record<string, number> };
    expect(model.measuredAt).toMatch(/^\d{4}-/);
    for (const k of ['forkBaseNs', 'copyNs', 'reuseNs', 'zeroFillNs', 'faultNs', 'accessNs']) expect(model.constants[k]).toBeGreaterThan(0);
    const sim = cli(['simulate', 'fork-child-writes-all', '--cost-model', out]);
    expect(sim.status).toBe(0);
    expect(sim.stdout).toMatch(new RegExp(`cost model: calibrated .* \\(${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
  });
});
