/**
 * Fuzz: results files, mutated from a valid one that holds every experiment's recorded raw
 * measurements. `report` and `compare` read them: the reader returns a document or rejects it
 * with a usage error naming the field; every document it accepts renders and compares.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { environment } from '../../src/env/environment.js';
import { CowlabError, isUsageError } from '../../src/errors.js';
import { renderReport } from '../../src/report/html.js';
import { compareResults } from '../../src/suite/compare.js';
import { parseResults, RESULTS_VERSION, type ResultsDocument } from '../../src/suite/schema.js';
import { packageRoot } from '../../src/util/package.js';
import { budget, Tally, timeoutOf } from './budget.js';
import { mutate, mutation } from './mutate.js';

const tally = new Tally('results');
afterAll(() => tally.write());

const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'verdicts');

/** One experiment per recorded raw (the confirmed ones), as `cowlab run` writes them. */
function validDocument(): ResultsDocument {
  const experiments = readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.confirmed.json'))
    .flatMap((f) => {
      const e = EXPERIMENTS.find((x) => x.name === f.replace('.confirmed.json', ''));
      if (!e) return [];
      const raw = JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as unknown;
      return [{
        number: e.number, name: e.name, title: e.title, claim: e.claim, short: e.short, rule: e.rule,
        status: 'completed' as const, verdict: e.verdict(raw), notes: [], durationMs: 100, budgetMs: 1000, raw, error: null,
      }];
    })
    .sort((a, b) => a.number - b.number);
  return {
    version: RESULTS_VERSION, tool: 'cowlab', startedAt: '2026-12-01T20:00:00.000Z', finishedAt: '2026-12-01T20:01:00.000Z', durationMs: 60_000,
    options: { names: [], quick: true }, interrupted: false, environment: environment(), experiments,
  };
}

const base = validDocument();

function judge(text: string): void {
  let doc: ResultsDocument;
  try {
    doc = parseResults(text, 'fuzzed.json', EXPERIMENTS);
  } catch (err) {
    if (!(err instanceof CowlabError) || !isUsageError(err)) throw new Error(`parseResults threw a non-usage error: ${(err as Error)?.stack ?? err}`);
    expect(err.message).toMatch(/^fuzzed\.json: /);
    tally.add('rejected');
    return;
  }
  tally.add('accepted');
  expect(renderReport(doc, EXPERIMENTS)).toMatch(/<\/html>\n$/);
  expect(compareResults(doc, base).experiments.length).toBeGreaterThan(0);
}

describe('fuzz: results files', () => {
  it('the valid document the fuzzer starts from is accepted', () => {
    expect(() => parseResults(JSON.stringify(base), 'base.json', EXPERIMENTS)).not.toThrow();
    expect(base.experiments.length).toBeGreaterThanOrEqual(10);
  });

  it(
    'every mutated file is read or rejected naming the field, and what is read renders and compares',
    () => {
      const texts = fc.oneof(
        { weight: 6, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }).map((ms) => JSON.stringify(ms.reduce<unknown>((d, m) => mutate(d, m), base))) },
        { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
        { weight: 1, arbitrary: fc.tuple(fc.nat(), fc.string()).map(([cut, junk]) => { const t = JSON.stringify(base); return t.slice(0, cut % t.length) + junk; }) },
      );
      fc.assert(fc.property(texts, (t) => judge(t)), budget('results', 150));
    },
    timeoutOf('results', 90_000),
  );
});
