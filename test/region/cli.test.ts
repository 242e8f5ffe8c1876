/** `cowlab region-bench` as users run it: the JSON shape, the ratio line, bad input. */
import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';

describe('region-bench: bad input exits 2 with one line', () => {
  it.each([
    { args: ['--pages', '-5'], message: /--pages: must be a positive integer, got '-5'/ },
    { args: ['--pages', 'x'], message: /--pages: must be an integer, got 'x'/ },
    { args: ['--pages', '999999999'], message: /--pages: must be at most/ },
    { args: ['--pages', '16', '--pattern', 'zigzag'], message: /--pattern: must be seq, rand or stride:N/ },
    { args: ['--pages', '16', '--policy', 'sometimes'], message: /--policy: must be lazy, eager or faultAround:K, got 'sometimes'/ },
    { args: ['--pages', '16', '--policy', 'faultAround:0'], message: /--policy: faultAround needs K between 1 and 256/ },
    { args: ['--pages', '16', '--policy', 'faultAround:x'], message: /--policy: faultAround needs K/ },
    { args: ['--pages', '16', '--repeats', '0'], message: /--repeats: must be a positive integer, got '0'/ },
    { args: [], message: /required option '--pages <n>' not specified/ },
  ].map((c) => ({ ...c, command: `cowlab region-bench ${c.args.join(' ')}` })))('$command', ({ args, message }) => {
    const r = runCli(['region-bench', ...args]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('region-bench', () => {
  it('prints { env, kernel: { perPageNs }, region: { perPageNs }, ratio } with --json', () => {
    const r = runCli(['region-bench', '--pages', '256', '--pattern', 'rand', '--repeats', '2', '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      env: { kernel: string };
      options: Record<string, unknown>;
      perPage: string;
      kernel: { perPageNs: Record<string, number>; faults: { median: number } };
      region: { perPageNs: Record<string, number>; faults: { median: number }; copies: { median: number } };
      ratio: number;
    };
    expect(doc.env.kernel).toMatch(/\d+\.\d+/);
    expect(doc.options).toMatchObject({ pages: 256, pattern: 'rand', policy: 'lazy', repeats: 2 });
    expect(doc.perPage).toBe('store');
    for (const side of [doc.kernel, doc.region]) {
      expect(Object.keys(side.perPageNs).sort()).toEqual(['max', 'p50', 'p90', 'p99']);
      expect(side.perPageNs.p50).toBeGreaterThan(0);
      expect(side.faults.median).toBe(256); // one fault per page on both sides
    }
    expect(doc.region.copies.median).toBe(256);
    expect(doc.ratio).toBeCloseTo(doc.region.perPageNs.p50! / doc.kernel.perPageNs.p50!, 10);
  });

  it('with faultAround:K, amortizes: one fault per K+1 pages, the ratio on the last line', () => {
    const r = runCli(['region-bench', '--pages', '340', '--policy', 'faultAround:16', '--repeats', '1', '--warmup', '0']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^ratio region\/kernel \(p50 per-page cost\): \d+\.\d\d$/);
    expect(r.stdout).toMatch(/per-page cost: amortized/);
    expect(r.stdout).toMatch(/^region .* 20\s*$/m); // 340 pages / 17 per fault
  });
});

describe('region-bench against the other write-tracking mechanisms', () => {
  it('prints ratioToFloor, ratioToCheapest and ratioToKernel with --json, and the three ratios in text', () => {
    const r = runCli(['region-bench', '--pages', '256', '--pattern', 'rand', '--repeats', '1', '--warmup', '0', '--json']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      region: { perPageNs: { p50: number } };
      kernel: { perPageNs: { p50: number } };
      mechanisms: { mechanism: string; available: boolean; reason: string | null; perPageNs: { p50: number } | null }[];
      floor: string;
      cheapest: string;
      ratioToFloor: number;
      ratioToCheapest: number;
      ratioToKernel: number;
    };
    expect(doc.floor).toBe('sigsegv-remap');
    const floor = doc.mechanisms.find((m) => m.mechanism === 'sigsegv-remap')!;
    expect(doc.ratioToFloor).toBeCloseTo(doc.region.perPageNs.p50 / floor.perPageNs!.p50, 10);
    expect(doc.ratioToKernel).toBeCloseTo(doc.region.perPageNs.p50 / doc.kernel.perPageNs.p50, 10);
    const costs = [doc.kernel.perPageNs.p50, ...doc.mechanisms.flatMap((m) => (m.perPageNs ? [m.perPageNs.p50] : []))];
    expect(doc.ratioToCheapest).toBeCloseTo(doc.region.perPageNs.p50 / Math.min(...costs), 10);
    for (const m of doc.mechanisms) if (!m.available) expect(m.reason!.length).toBeGreaterThan(20);

    const text = runCli(['region-bench', '--pages', '128', '--repeats', '1', '--warmup', '0']);
    expect(text.status).toBe(0);
    const lines = text.stdout.trim().split('\n').slice(-3);
    expect(lines[0]).toMatch(/^ratio region\/floor \(SIGSEGV \+ copy \+ mmap \(bare C\)\): \d+\.\d\d \(goal <= 1\.1\)$/);
    expect(lines[1]).toMatch(/^ratio region\/cheapest \(.+\): \d+\.\d\d$/);
    expect(lines[2]).toMatch(/^ratio region\/kernel \(p50 per-page cost\): \d+\.\d\d$/);
  });
});
