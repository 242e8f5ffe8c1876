/**
 * Measured against predicted (src/suite/predict.ts): the table and the words an experiment's
 * section gets from a prediction, and the results schema for it (older results have none).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { describeDisagreements, disagreements, predictionTable, type Prediction } from '../../src/suite/predict.js';
import { packageRoot } from '../../src/util/package.js';

const agreeing: Prediction = {
  profile: '6.18',
  counts: [
    { key: 'fork.copies', what: 'pages copied at the fork', measured: 0, predicted: 0 },
    { key: 'exec.frames', what: 'frames after the exec', measured: null, predicted: 512 },
  ],
};
const differing: Prediction = { ...agreeing, counts: [...agreeing.counts, { key: 'write.copies', what: "copies among the parent's writes", measured: 512, predicted: 0 }] };

describe('predictionTable', () => {
  it('puts each count measured beside predicted, with the profile in the head, and n/a where one side is unknown', () => {
    const t = predictionTable(agreeing);
    expect(t.title).toBe('Measured against predicted (simulator, profile 6.18)');
    expect(t.head).toEqual(['count', 'measured (kernel engine)', 'predicted (simulator, profile 6.18)', 'agree']);
    expect(t.rows).toEqual([
      ['pages copied at the fork', '0', '0', 'yes'],
      ['frames after the exec', 'n/a', '512', 'n/a'],
    ]);
    expect(disagreements(agreeing)).toEqual([]);
    expect(describeDisagreements(agreeing)).toBe('');
  });

  it('names every count where measured and predicted differ, in the title, the rows and the note', () => {
    const t = predictionTable(differing);
    expect(t.title).toContain('1 of 3 counts differ');
    expect(t.rows[2]).toEqual(["copies among the parent's writes", '512', '0', 'DIFFERS']);
    expect(t.note).toContain("copies among the parent's writes");
    expect(describeDisagreements(differing)).toBe(" The simulator (profile 6.18) predicted otherwise: copies among the parent's writes 512 measured, 0 predicted.");
  });
});

describe('experiments with predictions', () => {
  const fixture = (name: string) => JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'verdicts', `${name}.confirmed.json`), 'utf8')) as Record<string, unknown>;
  const exp = (name: string) => EXPERIMENTS.find((e) => e.name === name)!;

  it.each(['fork-exec', 'zero-page', 'shared-vs-private', 'refcounts'])('%s: reads older raws without a prediction, and shows a differing one without changing the verdict', (name) => {
    const old = fixture(name);
    expect(exp(name).raw.parse(old)).not.toHaveProperty('predicted');
    expect(exp(name).present(old).tables.some((t: { title: string }) => t.title.includes('predicted'))).toBe(false);
    const withPrediction = { ...old, predicted: differing };
    const raw = exp(name).raw.parse(withPrediction);
    const v = exp(name).verdict(raw);
    expect(v.verdict).toBe(exp(name).verdict(old).verdict);
    expect(v.reason).toContain('predicted otherwise');
    const table = exp(name).present(raw).tables.find((t: { title: string }) => t.title.includes('predicted'))!;
    expect(table.rows.some((r: string[]) => r.includes('DIFFERS'))).toBe(true);
    expect(exp(name).raw.safeParse({ ...old, predicted: { profile: '6.18', counts: [{ key: 'x', measured: 1 }] } }).success).toBe(false);
  });
});
