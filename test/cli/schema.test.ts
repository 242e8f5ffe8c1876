/**
 * `cowlab schema` against real results files: a quick zero-page run (with its CSV and markdown
 * exports), and a document holding every experiment's recorded raw measurements. The schema
 * is checked by a JSON Schema validator (test/helpers/jsonSchema.ts), which must also reject
 * broken documents, so a vacuous schema cannot pass.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { environment } from '../../src/env/environment.js';
import { parseResults, RESULTS_VERSION, type ResultsDocument } from '../../src/suite/schema.js';
import { packageRoot } from '../../src/util/package.js';
import { runCli } from '../helpers/cli.js';
import { validateJsonSchema } from '../helpers/jsonSchema.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-schema-'));
const out = join(dir, 'run');
const csvFile = join(dir, 'zero-page.csv');
const mdFile = join(dir, 'zero-page.md');
let run: ReturnType<typeof runCli>;
let schema: Record<string, unknown>;
let results: unknown;

beforeAll(() => {
  run = runCli(['run', '--quick', 'zero-page', '--out', out, '--export-csv', csvFile, '--export-markdown', mdFile]);
  const s = runCli(['schema']);
  expect(s.status).toBe(0);
  schema = JSON.parse(s.stdout) as Record<string, unknown>;
  results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every experiment, completed, with its recorded (confirmed) raw measurements. */
function everyExperiment(): ResultsDocument {
  return {
    version: RESULTS_VERSION,
    tool: 'cowlab',
    startedAt: '2026-11-21T16:00:00.000Z',
    finishedAt: '2026-11-21T16:00:05.000Z',
    durationMs: 5000,
    options: { names: [], quick: true },
    interrupted: false,
    environment: environment(),
    experiments: EXPERIMENTS.map((e) => {
      const raw = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'verdicts', `${e.name}.confirmed.json`), 'utf8')) as unknown;
      return { number: e.number, name: e.name, title: e.title, claim: e.claim, short: e.short, rule: e.rule, status: 'completed' as const, verdict: e.verdict(raw), notes: [], durationMs: 1, budgetMs: 1, raw, error: null };
    }),
  };
}

describe('cowlab schema', () => {
  it('prints a draft 2020-12 JSON Schema with every experiment\'s raw measurements tied to its name', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.title).toBe(`cowlab results.json, version ${RESULTS_VERSION}`);
    expect(Object.keys(schema.$defs as object).sort()).toEqual(EXPERIMENTS.map((e) => `raw-${e.name}`).sort());
  });

  it('accepts the results.json of a real quick run, whose metric bands carry their samples', () => {
    expect(run.status).toBe(0);
    expect(validateJsonSchema(schema as never, results)).toEqual([]);
    const zero = (results as ResultsDocument).experiments[0]!;
    expect(zero.name).toBe('zero-page');
    for (const m of zero.verdict.metrics) expect(m.value.samples).toEqual([m.value.median]);
  });

  it('accepts a document with every experiment\'s recorded raw measurements (which the zod reader accepts too)', () => {
    const d = everyExperiment();
    expect(() => parseResults(JSON.stringify(d), 'all.json', EXPERIMENTS)).not.toThrow();
    expect(validateJsonSchema(schema as never, JSON.parse(JSON.stringify(d)))).toEqual([]);
  });

  it.each([
    { what: 'a verdict that is not one', change: (d: any) => { d.experiments[0].verdict.verdict = 'maybe'; }, error: /^\$\.experiments\[0\]\.verdict\.verdict: "maybe" is not one of/ },
    { what: 'another results version', change: (d: any) => { d.version = 2; }, error: /^\$\.version: expected 1$/ },
    { what: 'a sample that is not a number', change: (d: any) => { d.experiments[0].verdict.metrics[0].value.samples = ['fast']; }, error: /samples\[0\]: expected number, got string/ },
    { what: 'an unknown experiment', change: (d: any) => { d.experiments[0].name = 'from-the-future'; }, error: /^\$\.experiments\[0\]\.name: "from-the-future" is not one of/ },
    { what: 'zero-page under another number', change: (d: any) => { d.experiments[0].number = 4; }, error: /^\$\.experiments\[0\]\.number: expected 5$/ },
    { what: 'a bad raw measurement', change: (d: any) => { d.experiments[0].raw.variants[0].pages = 'many'; }, error: /raw: matches none of anyOf/ },
    { what: 'a missing environment field', change: (d: any) => { delete d.environment.kernel; }, error: /^\$\.environment: missing required kernel$/ },
  ])('rejects $what', ({ change, error }) => {
    const d = structuredClone(results) as any;
    change(d);
    const errors = validateJsonSchema(schema as never, d);
    expect(errors.some((e) => error.test(e)), errors.join('\n')).toBe(true);
  });

  it('explains itself with --help', () => {
    const r = runCli(['schema', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/generated from the zod schemas/);
    expect(r.stdout).toMatch(/cowlab schema > results\.schema\.json/);
  });
});

describe('cowlab run --export-csv / --export-markdown', () => {
  it('writes a CSV with the header and one row per headline metric, numbers in full', () => {
    const lines = readFileSync(csvFile, 'utf8').split('\r\n');
    expect(lines[0]).toBe('number,experiment,status,verdict,metric,label,unit,median,min,max,noisy,n,samples');
    expect(lines.at(-1)).toBe(''); // ends with CRLF
    const metrics = (results as ResultsDocument).experiments[0]!.verdict.metrics;
    expect(lines.slice(1, -1)).toHaveLength(metrics.length);
    const read = metrics.find((m) => m.key === 'zero-page-read-p50')!;
    expect(lines[1]).toBe(`5,zero-page,completed,confirmed,zero-page-read-p50,"read fault mapping the zero page, p50",ns,${read.value.median},${read.value.min},${read.value.max},false,1,${read.value.median}`);
    expect(run.stderr).toContain(`cowlab: csv: ${csvFile}`);
  });

  it('writes markdown with the summary table and the headline metrics', () => {
    const md = readFileSync(mdFile, 'utf8');
    expect(md).toMatch(/^# cowlab results\n/);
    expect(md).toContain('| # | experiment | verdict | claim | measured here (or why not) |');
    expect(md).toMatch(/^\| 5 \| zero-page \| confirmed \| /m);
    expect(md).toContain('| experiment | metric | median | min | max | n |');
    expect(md).toMatch(/^\| zero-page \| distinct PFNs after reading every page \| 1 \| 1 \| 1 \| 1 \|$/m);
  });

  it('exits 2 before running anything when an export path is a directory, or both exports are one file', () => {
    const a = runCli(['run', '--quick', 'zero-page', '--out', join(dir, 'never'), '--export-csv', dir]);
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/^cowlab: --export-csv: .* is a directory; give a file name \(e\.g\. .*results\.csv\)$/m);
    const b = runCli(['run', '--quick', 'zero-page', '--out', join(dir, 'never'), '--export-csv', join(dir, 'x'), '--export-markdown', join(dir, 'x')]);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/^cowlab: --export-markdown: .*x is also the --export-csv file; give two files$/m);
    expect(() => readFileSync(join(dir, 'never', 'results.json'))).toThrow();
  });
});

