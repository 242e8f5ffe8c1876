/**
 * `cowlab compare --html`: results files built from recorded fixtures (real raw measurements
 * of several experiments), compared as two files and as the kernels of one several-kernel run
 * directory (DIR/<kernel>/results.json, as `run --kernel` writes it). The page is checked for
 * what it must hold (paired charts on shared axes, the metric tests, the kernel matrix, no
 * script, nothing loaded) and, in headless Chromium, for overlapping text.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { environment } from '../../src/env/environment.js';
import { shareAxes } from '../../src/report/compareHtml.js';
import { htmlTable } from '../../src/report/html.js';
import { RESULTS_VERSION, type ResultsDocument } from '../../src/suite/schema.js';
import { packageRoot } from '../../src/util/package.js';
import { chartLayouts, HAVE_CHROMIUM, CHROMIUM, withPage } from '../helpers/chartLayout.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-compare-html-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NAMES = ['fork-write-latency', 'fork-exec', 'model-validation', 'write-tracking'];

function fixture(name: string, kind: string): unknown {
  return JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'verdicts', `${name}.${kind}.json`), 'utf8'));
}

/** A results document of the recorded experiments (`kind` fixtures), on kernel `kernel`. */
function doc(kind: 'confirmed' | 'refuted', kernel: string): ResultsDocument {
  const env = environment();
  return {
    version: RESULTS_VERSION,
    tool: 'cowlab',
    startedAt: '2026-12-01T10:00:00.000Z',
    finishedAt: '2026-12-01T10:01:00.000Z',
    durationMs: 60_000,
    options: { names: NAMES, quick: true },
    interrupted: false,
    environment: { ...env, kernel },
    experiments: NAMES.map((name) => {
      const e = EXPERIMENTS.find((x) => x.name === name)!;
      const raw = e.raw.parse(fixture(name, kind));
      return { number: e.number, name, title: e.title, claim: e.claim, short: e.short, rule: e.rule, status: 'completed' as const, verdict: e.verdict(raw), notes: [], durationMs: 1000, budgetMs: 10_000, raw, error: null };
    }),
  };
}

function write(path: string, d: ResultsDocument): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, JSON.stringify(d));
  return path;
}

const a = write(join(dir, 'a', 'results.json'), doc('confirmed', '6.18.44'));
const b = write(join(dir, 'b', 'results.json'), doc('refuted', '6.18.44'));
// A run on several kernels: no results.json at the top, one per kernel below it.
const matrix = join(dir, 'matrix');
write(join(matrix, 'host', 'results.json'), doc('confirmed', '6.18.44'));
write(join(matrix, 'debian-6.12', 'results.json'), doc('refuted', '6.12.117+deb12-cloud-amd64'));
const matrix3 = join(dir, 'matrix3');
write(join(matrix3, 'host', 'results.json'), doc('confirmed', '6.18.44'));
write(join(matrix3, 'debian-6.1', 'results.json'), doc('refuted', '6.1.0-57-cloud-amd64'));
write(join(matrix3, 'debian-6.12', 'results.json'), doc('confirmed', '6.12.117+deb12-cloud-amd64'));

/** The `.pair` blocks of a page, each as the SVGs it holds. */
function pairs(html: string): string[][] {
  return html.split('<div class="pair">').slice(1).map((p) => p.split('</div>')[0]!.match(/<svg [\s\S]*?<\/svg>/g) ?? []);
}

/** The y tick labels of a chart (right-anchored texts, left of the plot). */
const yTicks = (svg: string) => [...svg.matchAll(/class="tick" text-anchor="end"[^>]*>([^<]*)</g)].map((m) => m[1]);

describe('cowlab compare --html', () => {
  it('writes one self-contained, script-free page with each experiment\'s charts paired on shared axes', () => {
    const out = join(dir, 'ab.html');
    const r = runCli(['compare', a, b, '--html', out]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`cowlab: html: ${out}`);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toMatch(/<script|<link|@import|url\(|https?:\/\/|javascript:/i);
    expect(html).toContain("default-src 'none'");
    for (const n of NAMES) expect(html).toContain(`<section class="experiment" id="${n}">`);
    expect(html).toContain('verdict changed');
    expect(html).toMatch(/<h3>Headline metrics<\/h3>/);
    const paired = pairs(html).filter((p) => p.length === 2);
    expect(paired.length).toBeGreaterThanOrEqual(NAMES.length);
    // The same axis on both sides of a pair: identical y tick labels.
    for (const [x, y] of paired) expect(yTicks(x!)).toEqual(yTicks(y!));
    expect(html).not.toContain('Kernels side by side'); // one kernel: no matrix
    // The "why" of a metric is a sentence even when it starts with a number: left-aligned,
    // while the figures beside it are right-aligned.
    expect(html).toMatch(/<td>(only \d+ and \d+ samples|\d+ % CI of b\/a|the same figure)[^<]*<\/td>/);
    const rightAligned = [...html.matchAll(/<td class="num">([^<]*)<\/td>/g)].map((m) => m[1]!);
    expect(rightAligned).toContainEqual(expect.stringMatching(/^\d[\d.]*x$/));
    for (const cell of rightAligned) expect(cell).not.toMatch(/samples\)|wholly beyond/);
  });

  it('takes the directory of a run on two kernels as a and b, with the kernel matrix on the page', () => {
    const out = join(dir, 'matrix.html');
    const r = runCli(['compare', matrix, '--html', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^host = .*host\/results\.json: kernel 6\.18\.44/m);
    expect(r.stdout).toMatch(/^debian-6\.12 = .*debian-6\.12\/results\.json: kernel 6\.12\.117/m);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<h2>Kernels side by side</h2>');
    expect(html).toContain('<figcaption>debian-6.12</figcaption>');
  });

  it('puts three kernels side by side with --html only, and says why without it', () => {
    const bad = runCli(['compare', matrix3]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/3 runs given \(host, debian-6\.1, debian-6\.12\): the printed comparison is of two runs; name two results files .* or give --html alone for all of them/);
    expect(runCli(['compare', matrix3, '--json', '--html', join(dir, 'x.html')]).stderr).toMatch(/--json compares two runs/);
    const out = join(dir, 'matrix3.html');
    const r = runCli(['compare', matrix3, '--html', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`3 runs side by side (host, debian-6.1, debian-6.12): ${out}`);
    const html = readFileSync(out, 'utf8');
    expect(pairs(html).some((p) => p.length === 3)).toBe(true);
    expect(html).toContain('<h2>Kernels side by side</h2>');
  });

  it('refuses an --html path that is an input, a directory without results, and one run alone', () => {
    expect(runCli(['compare', a, b, '--html', a]).stderr).toMatch(/--html: .* is an input file of this command/);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(runCli(['compare', empty, b]).stderr).toMatch(/<a>: .* is a directory with no results\.json, and no <kernel>\/results\.json/);
    const one = runCli(['compare', join(dir, 'a')]);
    expect(one.status).toBe(2);
    expect(one.stderr).toMatch(/holds one run: give a second results file/);
  });

  it.skipIf(!HAVE_CHROMIUM)(`renders with no overlapping text in any chart (needs ${CHROMIUM})`, async () => {
    const charts = await withPage(async (p) => {
      await p.goto(pathToFileURL(join(dir, 'matrix3.html')).href);
      return chartLayouts(p);
    });
    expect(charts.length).toBeGreaterThan(NAMES.length * 3);
    for (const c of charts) {
      expect(c.overlaps, c.title).toEqual([]);
      expect(c.outside, c.title).toEqual([]);
    }
  }, 60_000);
});

describe('htmlTable alignment', () => {
  it('right-aligns figures and leaves a sentence that starts with a number left-aligned', () => {
    const html = htmlTable({ title: 't', head: ['a', 'b', 'c'], rows: [['2.53 µs (2.42 µs–2.55 µs) noisy', '95 % CI of b/a 0.97x-1.19x (3 and 3 samples) is not wholly beyond a 100 % change', 'no difference']] });
    expect(html).toContain('<td class="num">2.53 µs (2.42 µs–2.55 µs) noisy</td>');
    expect(html).toContain('<td>95 % CI of b/a 0.97x-1.19x (3 and 3 samples) is not wholly beyond a 100 % change</td>');
    expect(html).toContain('<td>no difference</td>');
  });
});

describe('shareAxes', () => {
  it('gives every chart of a pair the extent of all of them', () => {
    const bar = (v: number) => ({ kind: 'bar' as const, title: 't', categories: ['x'], y: { label: 'y', unit: 'µs' }, series: [{ name: 's', values: [v] }] });
    const [p, q] = shareAxes([bar(1), bar(40)]);
    expect(p!.kind === 'bar' && p!.y.max).toBe(40);
    expect(q!.kind === 'bar' && q!.y.min).toBe(0); // a linear bar axis keeps its zero
    const [r] = shareAxes([{ ...bar(3), y: { label: 'y', unit: 'µs', scale: 'log' } }, { ...bar(300), y: { label: 'y', unit: 'µs', scale: 'log' } }]);
    expect(r!.kind === 'bar' && [r!.y.min, r!.y.max]).toEqual([3, 300]);
    // Charts of different kinds are left as they are.
    const line = { kind: 'line' as const, title: 't', x: { label: 'x', unit: 'pages' }, y: { label: 'y', unit: 'µs' }, series: [] };
    expect(shareAxes([bar(1), line])).toEqual([bar(1), line]);
  });
});
