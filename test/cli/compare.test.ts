/**
 * `cowlab compare` on results files built from a recorded run, with metrics whose samples we
 * choose: same distribution, 3x apart, 1.5x apart (a time against a count), too few samples, exact counts; --fail-on-difference,
 * --only-differences, the CSV and markdown exports, and bad input.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { environment } from '../../src/env/environment.js';
import { bandOf } from '../../src/suite/measure.js';
import { RESULTS_VERSION, type ResultsDocument } from '../../src/suite/schema.js';
import type { Metric } from '../../src/suite/types.js';
import { packageRoot } from '../../src/util/package.js';
import { mulberry32 } from '../../src/util/prng.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-compare-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const copyout = EXPERIMENTS.find((e) => e.name === 'copyout')!;
const raw = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'verdicts', 'copyout.confirmed.json'), 'utf8')) as unknown;

function samplesAround(center: number, n: number, seed: number, spread = 0.05): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => center * (1 + spread * (2 * r() - 1)));
}

/** A results file whose copyout experiment has exactly these metrics. */
function resultsFile(name: string, metrics: Metric[], startedAt = '2026-11-21T16:00:00.000Z'): string {
  const doc: ResultsDocument = {
    version: RESULTS_VERSION,
    tool: 'cowlab',
    startedAt,
    finishedAt: startedAt,
    durationMs: 5000,
    options: { names: ['copyout'], quick: true },
    interrupted: false,
    environment: environment(),
    experiments: [{
      number: copyout.number, name: copyout.name, title: copyout.title, claim: copyout.claim, short: copyout.short, rule: copyout.rule,
      status: 'completed', verdict: { ...copyout.verdict(raw), metrics }, notes: [], durationMs: 300, budgetMs: 3000, raw, error: null,
    }],
  };
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

const ns = (key: string, values: number[]): Metric => ({ key, label: `${key} label`, unit: 'ns', value: bandOf(values) });
const count = (key: string, values: number[]): Metric => ({ key, label: `${key} label`, unit: 'count', value: bandOf(values) });

const base = resultsFile('base.json', [ns('store-p50', samplesAround(5000, 20, 1)), count('pages', [65536])]);
const same = resultsFile('same.json', [ns('store-p50', samplesAround(5000, 20, 2)), count('pages', [65536])], '2026-11-21T16:05:00.000Z');
const tripled = resultsFile('tripled.json', [ns('store-p50', samplesAround(15000, 20, 2)), count('pages', [65536])]);
// 1.5x: beyond the 10 % a count or size needs, within the 2x a time needs.
const halfAgain = resultsFile('half-again.json', [ns('store-p50', samplesAround(7500, 20, 2)), count('pages', samplesAround(98304, 20, 3))]);
const pagesBase = resultsFile('pages-base.json', [ns('store-p50', samplesAround(5000, 20, 1)), count('pages', samplesAround(65536, 20, 4))]);
const fewA = resultsFile('few-a.json', [ns('store-p50', [822]), count('pages', [59392])]);
const fewB = resultsFile('few-b.json', [ns('store-p50', [961]), count('pages', [59392])]);

interface MetricJson { key: string; outcome: string; different: boolean; ratio: number; interval: { low: number; high: number; level: number } | null; samples: { a: number; b: number }; why: string }
const metricsOf = (stdout: string) => (JSON.parse(stdout) as { experiments: { metrics: MetricJson[] }[] }).experiments[0]!.metrics;

describe('cowlab compare: the test', () => {
  it('reports no difference between two sample sets from the same distribution, and exits 0 with --fail-on-difference', () => {
    const r = runCli(['compare', base, same, '--fail-on-difference']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^store-p50 label .* 1\.0\dx +0\.9\dx-1\.\d\dx +20 \/ 20 +no difference/m);
    expect(r.stdout).toMatch(/^0 metrics different, 0 with not enough samples to judge; 0 verdicts changed$/m);
    expect(r.stdout).toMatch(/^rule: a metric differs when, over its raw samples \(at least 3 per host\), the 95 %/m);
    const lines = r.stdout.split('\n');
    const from = lines.findIndex((l) => l.startsWith('rule: '));
    const rule = lines.slice(from, lines.indexOf('', from));
    expect(rule.length).toBeGreaterThan(1); // wrapped, not one 600-character line
    for (const l of rule) expect(l.length).toBeLessThanOrEqual(120);
  });

  it('calls times 3x apart with 20 samples different: exit 1 with --fail-on-difference, 0 without', () => {
    const r = runCli(['compare', base, tripled, '--fail-on-difference']);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^store-p50 label .* 3\.0\dx +2\.\d\dx-3\.\d\dx +20 \/ 20 +DIFFERENT/m);
    expect(r.stdout).toMatch(/^1 metric different, 0 with not enough samples to judge; 0 verdicts changed \(exit 1: --fail-on-difference\)$/m);
    expect(runCli(['compare', base, tripled]).status).toBe(0);
    const m = metricsOf(runCli(['compare', base, tripled, '--json']).stdout).find((x) => x.key === 'store-p50')!;
    expect(m.outcome).toBe('different');
    expect(m.interval!.level).toBe(0.95);
    expect(m.interval!.low).toBeGreaterThan(1.1);
    expect(m.samples).toEqual({ a: 20, b: 20 });
  });

  it('calls a count 1.5x apart different but a time 1.5x apart not (a time must move beyond 2x)', () => {
    const ms = metricsOf(runCli(['compare', pagesBase, halfAgain, '--json']).stdout);
    const time = ms.find((x) => x.key === 'store-p50')!;
    expect(time.outcome).toBe('no-difference');
    expect(time.interval!.low).toBeGreaterThan(1.1); // beyond 10 %, but not beyond 2x
    expect(time.why).toMatch(/is not wholly beyond a 100 % change/);
    expect(ms.find((x) => x.key === 'pages')!.outcome).toBe('different');
  });

  it('gives the same answer every time (the bootstrap is seeded)', () => {
    expect(runCli(['compare', base, tripled, '--json']).stdout).toBe(runCli(['compare', base, tripled, '--json']).stdout);
  });

  it('says "not enough samples" for single figures (822 against 961 ns), never different, and exits 0 with --fail-on-difference', () => {
    const r = runCli(['compare', fewA, fewB, '--fail-on-difference']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^store-p50 label +822 ns +961 ns +1\.17x +- +1 \/ 1 +not enough samples/m);
    expect(r.stdout).not.toMatch(/DIFFERENT/);
    expect(r.stdout).toMatch(/^0 metrics different, 1 with not enough samples to judge; 0 verdicts changed$/m);
    const m = metricsOf(runCli(['compare', fewA, fewB, '--json']).stdout).find((x) => x.key === 'store-p50')!;
    expect(m.why).toMatch(/^only 1 and 1 samples \(a test needs 3 per host\)/);
  });

  it("takes a metric's resolution from the results file: medians closer than it are no difference, exit 0 with --fail-on-difference", () => {
    const MiB = 2 ** 20;
    const drop = (values: number[]): Metric => ({ key: 'available-drop', label: 'available-drop label', unit: 'bytes', value: bandOf(values), resolution: 25.6 * MiB });
    const a = resultsFile('drop-a.json', [drop(samplesAround(8 * MiB, 5, 5, 0.01))]);
    const b = resultsFile('drop-b.json', [drop(samplesAround(5 * MiB, 5, 6, 0.01))]);
    const r = runCli(['compare', a, b, '--fail-on-difference']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^available-drop label +8\.\d\d MiB .* 0\.6\dx .* no difference/m);
    const m = metricsOf(runCli(['compare', a, b, '--json']).stdout)[0]!;
    expect(m.why).toMatch(/less than the 25\.6 MiB its experiment's rule resolves$/);
    // The same figures without the resolution: different.
    const plain = (name: string, from: string) => {
      const d = JSON.parse(readFileSync(from, 'utf8')) as ResultsDocument;
      for (const e of d.experiments) for (const x of e.verdict.metrics) delete x.resolution;
      return resultsFileRaw(name, JSON.stringify(d));
    };
    expect(runCli(['compare', plain('drop-a0.json', a), plain('drop-b0.json', b), '--fail-on-difference']).status).toBe(1);
  });

  it('prints counts exactly: 65,536 and 59,392, not 65540 and 59390', () => {
    const r = runCli(['compare', base, fewA]);
    expect(r.stdout).toMatch(/^pages label +65,536 +59,392 +0\.91x/m);
    expect(r.stdout).not.toMatch(/6554|5939[^2]/);
  });
});

describe('cowlab compare and report: results files written before samples were kept', () => {
  it('read them, and judge their metrics "not enough samples" unless the bands are far apart', () => {
    const strip = (name: string, from: string) => {
      const d = JSON.parse(readFileSync(from, 'utf8')) as ResultsDocument;
      for (const e of d.experiments) for (const m of e.verdict.metrics) delete m.value.samples;
      return resultsFileRaw(name, JSON.stringify(d));
    };
    const oldA = strip('old-a.json', base);
    const oldB = strip('old-b.json', same);
    const m = metricsOf(runCli(['compare', oldA, oldB, '--json']).stdout).find((x) => x.key === 'store-p50')!;
    expect(m.outcome).toBe('not-enough-samples');
    expect(m.why).toMatch(/^samples not recorded \(an older results file\)/);
    expect(runCli(['compare', oldA, oldB, '--fail-on-difference']).status).toBe(0);
    const r = runCli(['report', oldA, '--out', join(dir, 'old.html')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`report: ${join(dir, 'old.html')}\n`);
  });
});

describe('cowlab compare: two runs of one kernel whose scenarios differ only by placement', () => {
  // Recorded by two quick runs an hour apart: the kernel put the shm region of
  // shared-anon-placed-by-kernel 355 pages past a 2 MiB boundary once, on one the other time.
  const fx = (side: string) => join(packageRoot(), 'test', 'fixtures', 'compare', `placement.${side}.json`);

  it('lists those observations as the two runs\' (not kernels\'), explained by placement', () => {
    const r = runCli(['compare', fx('a'), fx('b')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^What the two runs showed differently in the built-in scenarios \(4 observations\):$/m);
    expect(r.stdout).toMatch(/^shared-anon-placed-by-kernel +1 read by c1 +shared@p0\/shm +525 +512 +where the kernel put shm \(page 355 \/ page 0\)/m);
  });

  it('with --only-differences counts them without listing them, and reports no differences', () => {
    const r = runCli(['compare', fx('a'), fx('b'), '--only-differences', '--fail-on-difference']);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/showed differently/);
    expect(r.stdout).toMatch(/^4 observations of the built-in scenarios differ only by where the kernel placed a region \(not listed: see the full compare\)$/m);
    expect(r.stdout).toMatch(/^no differences$/m);
  });
});

describe('cowlab compare: --only-differences', () => {
  it('shows only the experiments and metrics that differ', () => {
    const r = runCli(['compare', base, tripled, '--only-differences']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/store-p50 label/);
    expect(r.stdout).not.toMatch(/pages label/);
  });

  it('says "no differences" when nothing differs', () => {
    const r = runCli(['compare', base, same, '--only-differences']);
    expect(r.stdout).not.toMatch(/copyout/);
    expect(r.stdout).toMatch(/^no differences$/m);
  });
});

describe('cowlab compare: exports', () => {
  it('writes CSV with the header and one row per metric, numbers in full', () => {
    const csv = join(dir, 'c.csv');
    const r = runCli(['compare', fewA, fewB, '--export-csv', csv]);
    expect(r.status).toBe(0);
    const lines = readFileSync(csv, 'utf8').split('\r\n');
    expect(lines[0]).toBe('number,experiment,metric,label,unit,a_median,a_min,a_max,a_n,b_median,b_min,b_max,b_n,ratio,ci_low,ci_high,ci_level,outcome,why');
    expect(lines).toHaveLength(4); // header, 2 metrics, the final CRLF
    expect(lines[1]).toMatch(/^9,copyout,store-p50,store-p50 label,ns,822,822,822,1,961,961,961,1,1\.169\d*,,,,not-enough-samples,only 1 and 1 samples \(a test needs 3 per host\): a time needs the test/);
    expect(lines[2]).toBe('9,copyout,pages,pages label,count,59392,59392,59392,1,59392,59392,59392,1,1,,,,no-difference,the same figure on both hosts');
  });

  it('writes markdown with the two runs, the rule and a metrics table', () => {
    const md = join(dir, 'c.md');
    expect(runCli(['compare', base, tripled, '--export-markdown', md]).status).toBe(0);
    const text = readFileSync(md, 'utf8');
    expect(text).toMatch(/^# cowlab compare\n\n- \*\*a\*\* = `.*base\.json`: kernel /);
    expect(text).toContain('| experiment | metric | a | b | b/a | 95 % CI of b/a | n a / b | judged |');
    expect(text).toMatch(/^\| copyout \| store-p50 label \| .* \| 3\.0\dx \| 2\.\d\dx-3\.\d\dx \| 20 \/ 20 \| DIFFERENT \|$/m);
    expect(text).toMatch(/^\| copyout \| pages label \| 65,536 \| 65,536 \| 1\.00x \| - \| 1 \/ 1 \| no difference \|$/m);
  });
});

describe('cowlab compare: bad input exits 2 with the field named', () => {
  it.each([
    { what: 'a file that is not a results file', args: () => ['compare', base, resultsFileRaw('empty.json', '{}')], error: /^cowlab: .*empty\.json: version: /m },
    { what: 'an export over one of the results files', args: () => ['compare', base, same, '--export-csv', same], error: /^cowlab: --export-csv: .*same\.json is an input file of this command; give another file$/m },
    { what: 'an export path that is a directory', args: () => ['compare', base, same, '--export-markdown', dir], error: /^cowlab: --export-markdown: .* is a directory; give a file name/m },
    { what: 'an unknown option', args: () => ['compare', base, same, '--only-diff'], error: /unknown option '--only-diff'/ },
  ])('$what', ({ args, error }) => {
    const r = runCli(args());
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(error);
  });

  it('--help teaches the test and the exit status', () => {
    const r = runCli(['compare', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/percentile bootstrap \(2000 resamples, seeded/);
    expect(r.stdout).toMatch(/--fail-on-difference/);
    expect(r.stdout).toMatch(/Exit status: 0, or with --fail-on-difference 1 when anything differs; 2 on bad input/);
  });
});

function resultsFileRaw(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('cowlab compare of real runs: a run forced to THP against one on 4 KiB pages', () => {
  it('reports fork() of the THP run different (its page tables hold a PMD per 2 MiB, not a PTE per 4 KiB): exit 1 with --fail-on-difference', () => {
    const small = join(dir, 'run-4k');
    const huge = join(dir, 'run-thp');
    expect(runCli(['run', '--quick', 'fork-write-latency', '--out', small]).status).toBe(0);
    const r = runCli(['run', '--quick', 'fork-write-latency', '--thp', 'always', '--out', huge, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as ResultsDocument;
    expect(doc.options.thp).toBe('always');
    const e = doc.experiments[0]!;
    const thp = environment().thp.enabled;
    if (thp === 'never' || thp === null) {
      // THP off here: the forced run says so instead of measuring 4 KiB pages under its name.
      expect(e.status).toBe('not-measurable');
      expect(e.verdict.reason).toMatch(/^--thp always: THP is /);
      return;
    }
    expect((e.raw as { sweepThp: string }).sweepThp).toBe('always');
    const c = runCli(['compare', small, huge, '--json', '--fail-on-difference']);
    expect(c.status, c.stderr).toBe(1);
    const cmp = JSON.parse(c.stdout) as { experiments: { metrics: { key: string; outcome: string; ratio: number }[] }[] };
    const fork = cmp.experiments[0]!.metrics.find((m) => m.key.startsWith('fork@'))!;
    expect(fork.outcome).toBe('different');
    expect(fork.ratio).toBeLessThan(1);
  }, 180_000);

  it('refuses a --thp that is not never or always before running anything (exit 2)', () => {
    const r = runCli(['run', 'fork-write-latency', '--thp', 'huge', '--out', join(dir, 'never-made')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--thp: must be never or always, got 'huge'/);
  });
});
