/**
 * `cowlab run --quick` for real (real forks, real pages), then what it wrote: results.json
 * against its schema, report.html with a chart per measured experiment, the report in
 * headless Chromium; and `report`, `list`, `compare` on those files, including bad input.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { pfnAccess } from '../../src/pagemap/access.js';
import { parseResults, type ResultsDocument } from '../../src/suite/schema.js';
import { runCli } from '../helpers/cli.js';
import { descendants } from '../helpers/processes.js';

const access = pfnAccess();
const asRoot = access.pfnVisible && access.kpagecount && access.kpageflags;

const CHROMIUM = '/usr/bin/chromium';
const dir = mkdtempSync(join(tmpdir(), 'cowlab-suite-'));
const results = join(dir, 'results.json');
let run: ReturnType<typeof runCli>;
let doc: ResultsDocument;
let html: string;

/** The HTML of each experiment's section, by name. */
function sections(page: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of page.matchAll(/<section class="experiment" id="([^"]+)">([\s\S]*?)<\/section>/g)) out.set(m[1]!, m[2]!);
  return out;
}

beforeAll(() => {
  run = runCli(['run', '--quick', '--out', dir], { timeout: 120_000 });
  doc = parseResults(readFileSync(results, 'utf8'), results, EXPERIMENTS);
  html = readFileSync(join(dir, 'report.html'), 'utf8');
}, 130_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cowlab run --quick', () => {
  it('exits 0, prints one summary line per experiment, and leaves no child behind', () => {
    expect(run.status).toBe(0);
    for (const e of EXPERIMENTS) expect(run.stdout).toMatch(new RegExp(`^\\s*${e.number}\\s+${e.name}\\s+(confirmed|refuted|not measurable)\\s`, 'm'));
    expect(run.stdout).toContain(`results: ${results}`);
    expect(run.stderr).toMatch(/cowlab run: 10 snapshot-load: /); // plain progress lines: stderr is not a terminal
    expect(descendants()).toEqual([]);
  });

  it('writes results.json that passes the schema, with the environment and every raw measurement', () => {
    expect(doc.interrupted).toBe(false);
    expect(doc.options.quick).toBe(true);
    expect(doc.environment.kernel.length).toBeGreaterThan(0);
    expect(doc.experiments.map((e) => e.number)).toEqual(EXPERIMENTS.map((e) => e.number));
    for (const e of doc.experiments) {
      if (e.status === 'completed') expect(e.raw).not.toBeNull();
      else expect(e.status).toBe('not-measurable');
    }
    // Everything runs here (this VM has THP in madvise mode), except what needs root (kpagecount;
    // loop devices for the storage experiments) and KSM, a global setting changed only in a guest.
    const ROOT_ONLY = new Set(['refcounts', 'ksm', 'fragmentation', 'snapshot-instant', 'first-write-cost', 'second-write', 'overlay-copy-up', 'snapshot-lifetime']);
    for (const e of doc.experiments) {
      // KSM and the mTHP sizes are global settings, changed only in a guest.
      if ((e.name === 'ksm' || e.name === 'mthp-cow') && doc.environment.guest == null) {
        expect(e.status).toBe('not-measurable');
        expect(e.verdict.reason).toMatch(/a global setting cowlab changes only inside a guest it booted|needs root/);
      } else if (!ROOT_ONLY.has(e.name) || asRoot) {
        expect(e.status, e.name).toBe('completed');
      } else {
        expect(e.verdict.reason, e.name).toMatch(/root/);
      }
    }
    for (const e of doc.experiments) expect(e.verdict.reason).not.toMatch(/not available|not implemented/);
  });

  it('writes a self-contained report.html with a chart per measured experiment', () => {
    expect(html).not.toMatch(/<script|<link|@import|url\(|https?:\/\//);
    expect(html).toContain("default-src 'none'");
    const s = sections(html);
    expect([...s.keys()]).toEqual(doc.experiments.map((e) => e.name));
    for (const e of doc.experiments) {
      const svgs = (s.get(e.name)!.match(/<svg /g) ?? []).length;
      if (e.status === 'completed') expect(svgs, e.name).toBeGreaterThan(0);
      else expect(svgs, e.name).toBe(0);
      expect(s.get(e.name)).toContain(e.verdict.figure.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&#39;').replace(/"/g, '&quot;'));
    }
  });

  // The experiments on kernel-engine traces run the same traces on the simulator, with the profile
  // of this kernel, and show the claim's counts measured against predicted.
  const PREDICTED: { name: string; keys: string[] }[] = [
    { name: 'fork-exec', keys: ['fork.copies', 'exec.copies', 'exec.childPresent', 'write.copies', 'write.reuses', 'write.frames'] },
    { name: 'zero-page', keys: ['4k.read.zeroPage', '4k.read.frames', '4k.write.zeroFills', '4k.write.copies'] },
    { name: 'shared-vs-private', keys: ['private-anon.childWrite.copies', 'shared-anon.childWrite.copies', 'shared-memfd.framesAfterChildWrite'] },
    { name: 'refcounts', keys: ['chain.-1.frames', 'chain.5.frames', 'tree.4.frames'] },
  ];
  it.each(PREDICTED)('$name: records the simulator\'s counts beside the measured ones, they agree here, and its section shows them', ({ name, keys }) => {
    const e = doc.experiments.find((x) => x.name === name)!;
    if (name === 'refcounts' && !asRoot) return; // kpagecount is root-only: nothing measured to predict
    const p = (e.raw as { predicted?: { profile: string; counts: { key: string; measured: number | null; predicted: number | null }[] } }).predicted!;
    expect(p.profile).toBe(doc.kernel?.version?.split('.').slice(0, 2).join('.') ?? p.profile);
    for (const k of keys) expect(p.counts.map((c) => c.key), k).toContain(k);
    for (const c of p.counts) if (c.measured !== null && c.predicted !== null) expect(c.measured, c.key).toBe(c.predicted);
    expect(p.counts.some((c) => c.measured !== null && c.predicted !== null)).toBe(true);
    const section = sections(html).get(name)!;
    expect(section).toContain(`predicted (simulator, profile ${p.profile})`);
    expect(section).not.toContain('DIFFERS');
    expect(e.verdict.reason).not.toContain('predicted otherwise');
  });

  it.skipIf(!existsSync(CHROMIUM))(`renders every chart in headless Chromium with plotted marks (needs ${CHROMIUM}: apt-get install chromium)`, async () => {
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'cowlab-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      const errors: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(pathToFileURL(join(dir, 'report.html')).href);
      const charts = await page.$$eval('svg.chart', (svgs) =>
        svgs.map((svg) => {
          const box = svg.getBoundingClientRect();
          // (tsconfig has no DOM lib: the SVG element is typed by what is used)
          const marks = [...svg.querySelectorAll('.mark')].map((m) => (m as unknown as { getBBox(): { width: number; height: number } }).getBBox());
          return {
            title: svg.querySelector('title')?.textContent ?? '',
            width: box.width,
            height: box.height,
            marks: marks.length,
            visibleMarks: marks.filter((b) => b.width > 0 || b.height > 0).length,
          };
        }),
      );
      const expected = (html.match(/<svg /g) ?? []).length;
      expect(charts.length).toBe(expected);
      expect(charts.length).toBeGreaterThanOrEqual(5);
      for (const c of charts) {
        expect(c.width, c.title).toBeGreaterThan(100);
        expect(c.height, c.title).toBeGreaterThan(100);
        expect(c.marks, c.title).toBeGreaterThan(0);
        expect(c.visibleMarks, c.title).toBeGreaterThan(0);
      }
      expect(requests.filter((u) => !u.startsWith('file:'))).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });

  it('prints the results document with --json', () => {
    const out = join(dir, 'json');
    const r = runCli(['run', 'copyout', '--quick', '--json', '--out', out]);
    expect(r.status).toBe(0);
    const printed = parseResults(r.stdout, 'stdout', EXPERIMENTS);
    expect(printed.experiments.map((e) => e.name)).toEqual(['copyout']);
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'))).toEqual(JSON.parse(r.stdout));
  });
});

describe('cowlab report', () => {
  it('rebuilds the same report from results.json', () => {
    const out = join(dir, 'rebuilt.html');
    const r = runCli(['report', results, '--out', out]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(out);
    expect(readFileSync(out, 'utf8')).toBe(html);
  });

  it.each([
    { what: 'a missing file', file: () => join(dir, 'nope.json'), message: /nope\.json: cannot read: ENOENT/ },
    { what: 'a file that is not JSON', file: () => write('bad.json', '{'), message: /bad\.json: not JSON: / },
    { what: 'a raw measurement of the wrong type', file: () => write('typed.json', JSON.stringify(edit((d) => { (d.experiments[8]!.raw as { pages: unknown }).pages = 'many'; }))), message: /typed\.json: experiments\[8\]\.raw\.pages: / },
    { what: 'a missing environment field', file: () => write('env.json', JSON.stringify(edit((d) => { delete (d.environment as Partial<typeof d.environment>).pageSize; }))), message: /env\.json: environment\.pageSize: / },
  ])('exits 2 on $what, naming the problem', ({ file, message }) => {
    const r = runCli(['report', file()]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function edit(change: (d: ResultsDocument) => void): ResultsDocument {
  const d = JSON.parse(readFileSync(results, 'utf8')) as ResultsDocument;
  change(d);
  return d;
}

describe('cowlab list', () => {
  it('describes every experiment: claim, what it measures, what it needs, whether it runs here', () => {
    const r = runCli(['list']);
    expect(r.status).toBe(0);
    for (const e of EXPERIMENTS) expect(r.stdout).toContain(`${e.name}: ${e.title}`);
    expect(r.stdout).toMatch(/claim: {4}/);
    expect(r.stdout).toMatch(/needs: {4}the kernel engine, >= 64\.0 MiB memory/);
    expect(r.stdout).not.toMatch(/not available/);
  });

  it('prints JSON with --json', () => {
    const r = runCli(['list', '--json']);
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; claim: string; rule: string; measures: string; requirements: object; notMeasurableHere: string | null }[];
    expect(rows.map((x) => x.name)).toEqual(EXPERIMENTS.map((e) => e.name));
    const refcounts = rows.find((x) => x.name === 'refcounts')!.notMeasurableHere;
    if (asRoot) expect(refcounts).toBeNull();
    else expect(refcounts).toMatch(/^needs root: /);
    expect(rows.find((x) => x.name === 'copyout')!.notMeasurableHere).toBeNull();
  });
});

describe('cowlab compare', () => {
  it('finds no difference between a run and itself', () => {
    const r = runCli(['compare', results, results]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('environment: no differences');
    expect(r.stdout).toMatch(/^0 metrics different, 0 with not enough samples to judge; 0 verdicts changed$/m);
    expect(r.stdout).toMatch(/rule: a metric differs when, over its raw samples/);
  });

  it('flags a time 3x away over three samples a side, a changed verdict and a different kernel', () => {
    const times = (x: number) => ({ median: x, min: x * 0.98, max: x * 1.02, noisy: false, samples: [x * 0.98, x, x * 1.02] });
    const base = write('base3.json', JSON.stringify(edit((d) => {
      d.experiments.find((x) => x.name === 'copyout')!.verdict.metrics.find((x) => x.key === 'read-p50')!.value = times(1000);
    })));
    const other = write('other.json', JSON.stringify(edit((d) => {
      d.environment.kernel = '6.1.0-elsewhere';
      const e = d.experiments.find((x) => x.name === 'copyout')!;
      e.verdict.verdict = 'refuted';
      e.verdict.metrics.find((x) => x.key === 'read-p50')!.value = times(3000);
    })));
    const results = base;
    const r = runCli(['compare', results, other, '--json']);
    expect(r.status).toBe(0);
    const c = JSON.parse(r.stdout) as { environment: { field: string }[]; flagged: number; experiments: { name: string; verdictChanged: boolean; metrics: { key: string; outcome: string }[] }[] };
    expect(c.environment.map((x) => x.field)).toContain('kernel');
    const copyout = c.experiments.find((x) => x.name === 'copyout')!;
    expect(copyout.verdictChanged).toBe(true);
    expect(copyout.metrics.find((m) => m.key === 'read-p50')!.outcome).toBe('different');
    expect(c.flagged).toBeGreaterThanOrEqual(1);
    const text = runCli(['compare', results, other]);
    expect(text.stdout).toMatch(/9\. copyout: a confirmed, b refuted {2}<- verdict changed/);
    expect(text.stdout).toMatch(/DIFFERENT/);
  });

  it('exits 2 when a file is not a results file', () => {
    const r = runCli(['compare', results, write('empty.json', '{}')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/empty\.json: version: /);
  });
});

describe('cowlab run: bad input', () => {
  it('exits 2 for an unknown experiment, before running anything', () => {
    const r = runCli(['run', 'fork-cost', 'nope', '--out', join(dir, 'never')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^cowlab: names: unknown experiment 'nope'; have: fork-write-latency, /);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });
});
