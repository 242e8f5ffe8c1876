/** results.json: its schema, and errors that name the bad field. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { environment } from '../../src/env/environment.js';
import { runningKernelFacts } from '../../src/kernels/facts.js';
import { compareResults } from '../../src/suite/compare.js';
import { parseResults, RESULTS_VERSION, type ResultsDocument } from '../../src/suite/schema.js';
import { packageRoot } from '../../src/util/package.js';

const confirmedRaw = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'verdicts', 'copyout.confirmed.json'), 'utf8')) as unknown;
const copyout = EXPERIMENTS.find((e) => e.name === 'copyout')!;
const modelValidation = EXPERIMENTS.find((e) => e.name === 'model-validation')!;
const modelValidationRaw = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'verdicts', 'model-validation.confirmed.json'), 'utf8')) as unknown;

/** A fresh document each time (tests edit it). */
function doc(): ResultsDocument {
  return structuredClone({
    version: RESULTS_VERSION,
    tool: 'cowlab',
    startedAt: '2026-11-21T16:00:00.000Z',
    finishedAt: '2026-11-21T16:00:05.000Z',
    durationMs: 5000,
    options: { names: ['copyout'], quick: true },
    interrupted: false,
    environment: environment(),
    experiments: [{
      number: 9, name: 'copyout', title: copyout.title, claim: copyout.claim, short: copyout.short, rule: copyout.rule,
      status: 'completed', verdict: copyout.verdict(confirmedRaw), notes: [], durationMs: 300, budgetMs: 3000, raw: confirmedRaw, error: null,
    }],
  } satisfies ResultsDocument);
}

const parse = (d: unknown) => parseResults(JSON.stringify(d), 'r.json', EXPERIMENTS);

describe('parseResults', () => {
  it('accepts a document as cowlab run writes it', () => {
    expect(parse(doc()).experiments[0]!.raw).toEqual(confirmedRaw);
  });

  it.each([
    { what: 'not JSON', text: '{ nope', message: /^r\.json: not JSON: / },
    { what: 'a missing field', change: (d: any) => { delete d.environment.kernel; }, message: /^r\.json: environment\.kernel: / },
    { what: 'a wrong verdict', change: (d: any) => { d.experiments[0].verdict.verdict = 'maybe'; }, message: /^r\.json: experiments\[0\]\.verdict\.verdict: / },
    { what: 'a bad raw measurement', change: (d: any) => { d.experiments[0].raw.read[1].p50Ns = 'fast'; }, message: /^r\.json: experiments\[0\]\.raw\.read\[1\]\.p50Ns: / },
    { what: 'another version', change: (d: any) => { d.version = 99; }, message: /^r\.json: version: this cowlab reads results version 1, the file is version 99/ },
    { what: 'not a results file', text: '[]', message: /^r\.json: \(document\): / },
    // Found by the fuzzer: an empty start time passed the schema and crashed the report.
    { what: 'a start time that is not a date', change: (d: any) => { d.startedAt = ''; }, message: /^r\.json: startedAt: expected a date and time/ },
    { what: 'version "1" (a string)', change: (d: any) => { d.version = '1'; }, message: /^r\.json: version: this cowlab reads results version 1, the file has the string "1" \(a version is a number\)$/ },
    { what: 'an experiment this cowlab does not know', change: (d: any) => { d.experiments[0].name = 'from-the-future'; }, message: /^r\.json: experiments\[0\]\.name: unknown experiment 'from-the-future': this cowlab knows fork-write-latency, / },
    { what: 'an experiment under another number', change: (d: any) => { d.experiments[0].number = 99; }, message: /^r\.json: experiments\[0\]\.number: copyout is experiment 9, the file says 99$/ },
    { what: 'a completed experiment with raw: null', change: (d: any) => { d.experiments[0].raw = null; }, message: /^r\.json: experiments\[0\]\.raw: a completed experiment records its raw measurements, got null$/ },
    { what: 'a completed experiment without raw', change: (d: any) => { delete d.experiments[0].raw; }, message: /^r\.json: experiments\[0\]\.raw: / },
    { what: 'the experiment list repeated', change: (d: any) => { d.experiments = Array.from({ length: 50 }, () => d.experiments[0]); }, message: /^r\.json: experiments\[1\]\.name: 'copyout' is listed twice \(also experiments\[0\]\)$/ },
    { what: 'a negative durationMs', change: (d: any) => { d.durationMs = -1; }, message: /^r\.json: durationMs: Too small/ },
    { what: "a negative experiment's durationMs", change: (d: any) => { d.experiments[0].durationMs = -1; }, message: /^r\.json: experiments\[0\]\.durationMs: Too small/ },
    { what: 'experiment number 0', change: (d: any) => { d.experiments[0].number = 0; }, message: /^r\.json: experiments\[0\]\.number: Too small/ },
  ])('rejects $what naming the field', ({ text, change, message }) => {
    let input: string;
    if (text !== undefined) input = text;
    else {
      const d = doc() as unknown;
      change!(d);
      input = JSON.stringify(d);
    }
    expect(() => parseResults(input, 'r.json', EXPERIMENTS)).toThrow(message);
    try {
      parseResults(input, 'r.json', EXPERIMENTS);
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_INVALID_OPTION');
    }
  });
});

describe('parseResults: what a results file may hold', () => {
  it('keeps the optional fields of recent versions valid: kernel facts, a guest, timed metrics, model-validation profile and kernel', () => {
    const d = doc() as any;
    d.kernel = runningKernelFacts(environment());
    d.environment.guest = { accel: 'tcg', kernel: 'debian:6.1' };
    d.experiments[0].verdict.metrics[0].timed = true;
    const raw = structuredClone(modelValidationRaw) as any;
    raw.profile = { name: '6.18', version: '6.18', options: { reuse: true } };
    raw.scenarios[0].kernel = null;
    d.experiments.push({
      number: 12, name: 'model-validation', title: modelValidation.title, claim: modelValidation.claim, short: modelValidation.short, rule: modelValidation.rule,
      status: 'completed', verdict: modelValidation.verdict(raw), notes: [], durationMs: 0, budgetMs: 3000, raw, error: null,
    });
    const parsed = parse(d);
    expect(parsed.kernel).toEqual(d.kernel);
    expect(parsed.environment.guest).toEqual({ accel: 'tcg', kernel: 'debian:6.1' });
    expect(parsed.experiments[0]!.verdict.metrics[0]!.timed).toBe(true);
    expect((parsed.experiments[1]!.raw as any).profile.name).toBe('6.18');
  });

  it.each(['not-measurable', 'skipped', 'failed', 'interrupted'] as const)('accepts raw: null when the status is %s', (status) => {
    const d = doc();
    d.experiments[0]!.status = status;
    d.experiments[0]!.raw = null;
    expect(parse(d).experiments[0]!.raw).toBeNull();
  });
});

describe('compareResults', () => {
  it('puts two documents side by side: environment differences, verdicts, metrics judged different', () => {
    const a = doc();
    const b = doc();
    b.environment = { ...b.environment, kernel: '6.1.0-other' };
    const m = b.experiments[0]!.verdict.metrics.find((x) => x.key === 'read-p50')!;
    m.value = { median: m.value.median * 3, min: m.value.max * 2.9, max: m.value.max * 3.1, noisy: false };
    b.experiments[0]!.verdict.verdict = 'refuted';
    // A count 3x apart, b's band without samples (as in an older file).
    const count = (v: number) => ({ key: 'pages', label: 'pages', unit: 'count', value: { median: v, min: v, max: v, noisy: false } });
    a.experiments[0]!.verdict.metrics.push({ ...count(1000), value: { ...count(1000).value, samples: [1000] } });
    b.experiments[0]!.verdict.metrics.push(count(3000));
    const c = compareResults(a, b);
    expect(c.environment).toContainEqual({ field: 'kernel', a: a.environment.kernel, b: '6.1.0-other' });
    const e = c.experiments[0]!;
    expect(e.verdictChanged).toBe(true);
    // Without samples on b: a count 3x apart with no overlap still differs; a time does not
    // (one run of a time moves that much with the load).
    const pages = e.metrics.find((x) => x.key === 'pages')!;
    expect(pages.outcome).toBe('different');
    expect(pages.why).toMatch(/samples not recorded.*3\.00x apart/);
    expect(pages.ratio).toBeCloseTo(3, 6);
    const read = e.metrics.find((x) => x.key === 'read-p50')!;
    expect(read.outcome).toBe('not-enough-samples');
    expect(read.why).toMatch(/samples not recorded.*a time needs the test/);
    expect(read.ratio).toBeCloseTo(3, 6);
    expect(e.metrics.find((x) => x.key === 'store-p50')!.outcome).toBe('no-difference');
    expect(c.flagged).toBe(1);
  });
});
