/**
 * `cowlab validate --tap` read back by a small TAP 13 parser (the plan, `ok` / `not ok` lines,
 * SKIP directives, YAML diagnostic blocks), and validate's CSV and markdown exports. Every
 * built-in scenario runs on the simulator and the kernel engine (under a second here).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { listScenarios } from '../../src/trace/scenarios.js';
import { runCli } from '../helpers/cli.js';

interface TapTest { ok: boolean; number: number; description: string; directive: string | null; yaml: string[] }
interface TapDocument { version: number; plan: { from: number; to: number }; tests: TapTest[] }

/** Parses TAP version 13; throws on any line it does not understand. */
function parseTap(text: string): TapDocument {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const version = /^TAP version (\d+)$/.exec(lines[0] ?? '');
  if (!version) throw new Error(`first line is not a TAP version: ${lines[0]}`);
  let plan: TapDocument['plan'] | null = null;
  const tests: TapTest[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const p = /^1\.\.(\d+)$/.exec(line);
    if (p) {
      if (plan) throw new Error('two plans');
      plan = { from: 1, to: Number(p[1]) };
      continue;
    }
    const t = /^(not ok|ok) (\d+)(?: - ((?:[^#\\]|\\.)*?))?(?: # (.*))?$/.exec(line);
    if (t) {
      tests.push({ ok: t[1] === 'ok', number: Number(t[2]), description: t[3] ?? '', directive: t[4] ?? null, yaml: [] });
      continue;
    }
    if (line === '  ---') {
      const last = tests.at(-1);
      if (!last) throw new Error('a YAML block before any test');
      for (i++; i < lines.length && lines[i] !== '  ...'; i++) {
        if (!lines[i]!.startsWith('  ')) throw new Error(`YAML line not indented: ${lines[i]}`);
        last.yaml.push(lines[i]!.slice(2));
      }
      if (i === lines.length) throw new Error('a YAML block without its end (  ...)');
      continue;
    }
    throw new Error(`not a TAP line: ${JSON.stringify(line)}`);
  }
  if (!plan) throw new Error('no plan');
  return { version: Number(version[1]), plan, tests };
}

const dir = mkdtempSync(join(tmpdir(), 'cowlab-tap-'));
const csv = join(dir, 'validate.csv');
const md = join(dir, 'validate.md');
let all: ReturnType<typeof runCli>;

beforeAll(() => {
  all = runCli(['validate', '--all', '--tap', '--export-csv', csv, '--export-markdown', md]);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cowlab validate --tap', () => {
  it('prints TAP 13 whose plan counts every test, one per built-in scenario on this kernel, numbered in order', () => {
    expect(all.status).toBe(0);
    const tap = parseTap(all.stdout);
    expect(tap.version).toBe(13);
    const scenarios = listScenarios().map((s) => s.name);
    expect(tap.plan.to).toBe(scenarios.length);
    expect(tap.tests).toHaveLength(tap.plan.to);
    expect(tap.tests.map((t) => t.number)).toEqual(scenarios.map((_, i) => i + 1));
    expect(tap.tests.map((t) => t.description)).toEqual(scenarios.map((s) => `host/${s}`));
    // Here every scenario matches (a trace this kernel cannot run would be `ok ... # SKIP why`).
    expect(tap.tests.filter((t) => t.ok)).toHaveLength(tap.plan.to);
    for (const t of tap.tests) if (t.directive !== null) expect(t.directive).toMatch(/^SKIP /);
  });

  it('makes a mismatch `not ok` with a YAML block naming the step, and exits 1', () => {
    const r = runCli(['validate', 'fork-parent-writes-after-exit', 'fork-child-writes-none', '--reuse', 'off', '--tap']);
    expect(r.status).toBe(1);
    const tap = parseTap(r.stdout);
    expect(tap.plan.to).toBe(2);
    const [bad, good] = tap.tests;
    expect(bad).toMatchObject({ ok: false, number: 1, description: 'host/fork-parent-writes-after-exit' });
    expect(good).toMatchObject({ ok: true, number: 2, description: 'host/fork-child-writes-none' });
    expect(bad!.yaml[0]).toMatch(/^message: "sim vs kernel: step 2 \(write 0\.\.1024 by p0\): copies@heap sim=1024 kernel=0; reuses@heap sim=0 kernel=1024"$/);
    expect(bad!.yaml).toContain('severity: fail');
    expect(bad!.yaml).toContain('trace: "fork-parent-writes-after-exit"');
    expect(bad!.yaml).toContain('    firstMismatchStep: 2');
    expect(good!.yaml).toEqual([]);
  });

  it('exits 2 when asked for --tap and --json together', () => {
    const r = runCli(['validate', '--all', '--tap', '--json']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('cowlab: --tap: give --tap or --json, not both: each is the whole of stdout\n');
    expect(r.stdout).toBe('');
  });
});

describe('cowlab validate --export-csv / --export-markdown', () => {
  it('writes a CSV row per scenario, with every step matched', () => {
    const lines = readFileSync(csv, 'utf8').split('\r\n');
    expect(lines[0]).toBe('kernel,release,trace,status,predicted,observed,steps_matched,steps,first_mismatch_step,mismatch,write_predicted_ns,write_observed_ns,write_rel_error,reason');
    const rows = lines.slice(1, -1).map((l) => l.split(','));
    expect(rows.map((r) => r[2])).toEqual(listScenarios().map((s) => s.name));
    for (const r of rows.filter((x) => x[3] === 'matched')) {
      expect([r[0], r[4], r[5]]).toEqual(['host', 'sim', 'kernel']);
      expect(r[6]).toBe(r[7]); // every step matched
    }
    expect(rows.every((r) => r[3] === 'matched' || r[3] === 'not-measurable')).toBe(true);
  });

  it('writes a markdown table with a row per scenario', () => {
    const text = readFileSync(md, 'utf8');
    expect(text).toMatch(/^# cowlab validate\n\nKernel host \(.+\): \d+ matched, 0 mismatched, \d+ not measurable\.\n/);
    expect(text).toContain('| kernel | trace | status | steps matched | first mismatch, or why not measurable |');
    expect(text).toMatch(/^\| host \| fork-exec \| matched \| 5\/5 \| - \|$/m);
  });
});
