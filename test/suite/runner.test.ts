/**
 * The runner's contract, with small experiments written for the test: requirements decide
 * "not measurable" before anything runs, a failing experiment does not stop the others,
 * Ctrl-C keeps the last checkpoint and skips the rest, every raw is checked against its schema.
 */
import { z } from 'zod';
import { describe, expect, it, onTestFinished } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { CowlabError } from '../../src/errors.js';
import { engineAvailable, registerEngine, unregisterEngine } from '../../src/suite/engines.js';
import { runSuite, selectExperiments } from '../../src/suite/runner.js';
import { ResultsSchema } from '../../src/suite/schema.js';
import { defineExperiment, type AnyExperiment, type RunContext } from '../../src/suite/types.js';

const Raw = z.object({ points: z.array(z.number()) });
type Raw = z.infer<typeof Raw>;

function exp(name: string, number: number, run: (ctx: RunContext) => Promise<Raw>, extra: Partial<AnyExperiment> = {}): AnyExperiment {
  return defineExperiment<Raw>({
    number,
    name,
    title: name,
    claim: `the claim of ${name}`,
    short: name,
    rule: 'Confirmed when it ran.',
    measures: 'nothing',
    requirements: {},
    budgetMs: { full: 60_000, quick: 60_000 },
    raw: Raw,
    run,
    verdict: (raw) => ({ verdict: 'confirmed', figure: `${raw.points.length} points`, reason: 'it ran', metrics: [] }),
    present: () => ({ charts: [], tables: [] }),
    ...extra,
  });
}

const ok = (name: string, n: number) => exp(name, n, () => Promise.resolve({ points: [1, 2] }));

describe('runSuite', () => {
  it('runs every experiment in order and records its verdict, raw, notes and timing', async () => {
    const a = exp('a', 1, (ctx) => {
      ctx.note('a note');
      return Promise.resolve({ points: [ctx.clamp(10, 'x'), ctx.clamp(ctx.memoryLimitBytes * 2, 'the region')] });
    });
    const doc = await runSuite([a, ok('b', 2)], { quick: true });
    expect(ResultsSchema.parse(doc)).toBeTruthy();
    expect(doc.experiments.map((e) => [e.name, e.status, e.verdict.verdict])).toEqual([['a', 'completed', 'confirmed'], ['b', 'completed', 'confirmed']]);
    const [ra] = doc.experiments;
    const [small, big] = (ra!.raw as Raw).points;
    expect(small).toBe(10); // within the limit: unchanged
    expect(big).toBeLessThan(2 ** 53); // clamped to half of MemAvailable
    expect(ra!.notes[0]).toBe('a note');
    expect(ra!.notes[1]).toMatch(/^the region: clamped from .* to .* \(half of MemAvailable\)$/);
    expect(doc.options.quick).toBe(true);
    expect(doc.interrupted).toBe(false);
  });

  it('reports unmet requirements as not measurable without running, and the rest still run', async () => {
    // Importing the suite registered every engine; take them away for this test.
    const saved = (['sim', 'kernel', 'region'] as const).map((n) => [n, unregisterEngine(n)] as const);
    onTestFinished(() => {
      for (const [n, create] of saved) if (create) registerEngine(n, create);
    });
    let ran = false;
    const needsKernel = exp('k', 1, () => { ran = true; return Promise.resolve({ points: [] }); }, { requirements: { engines: ['kernel'] } });
    const needsSim = exp('s', 2, () => { ran = true; return Promise.resolve({ points: [] }); }, { requirements: { engines: ['sim', 'region'] } });
    const tooBig = exp('m', 3, () => { ran = true; return Promise.resolve({ points: [] }); }, { requirements: { minMemoryBytes: 2 ** 60 } });
    const doc = await runSuite([needsKernel, needsSim, tooBig, ok('b', 4)]);
    expect(ran).toBe(false);
    expect(doc.experiments.map((e) => [e.status, e.verdict.verdict])).toEqual([
      ['not-measurable', 'not-measurable'], ['not-measurable', 'not-measurable'], ['not-measurable', 'not-measurable'], ['completed', 'confirmed'],
    ]);
    expect(doc.experiments[0]!.verdict.reason).toBe('needs the kernel engine (not available)');
    expect(doc.experiments[1]!.verdict.reason).toBe('needs the simulator and the region manager (not available)');
    expect(doc.experiments[2]!.verdict.reason).toMatch(/^needs .* of memory; half of MemAvailable is /);
  });

  it('records a failing experiment as failed (with its checkpoint) and runs the next', async () => {
    const bad = exp('bad', 1, (ctx) => {
      ctx.checkpoint({ points: [7] });
      return Promise.reject(new CowlabError('ERR_CHILD_FAILED', 'the child died'));
    });
    const doc = await runSuite([bad, ok('b', 2)]);
    expect(doc.experiments[0]).toMatchObject({ status: 'failed', raw: { points: [7] }, error: { code: 'ERR_CHILD_FAILED', message: 'the child died' } });
    expect(doc.experiments[0]!.verdict).toMatchObject({ verdict: 'not-measurable', reason: 'the child died' });
    expect(doc.experiments[1]!.status).toBe('completed');
  });

  it('turns ERR_NOT_MEASURABLE from run into a not-measurable result with that reason', async () => {
    const nm = exp('nm', 1, () => Promise.reject(new CowlabError('ERR_NOT_MEASURABLE', 'no /bin/true here')));
    const doc = await runSuite([nm]);
    expect(doc.experiments[0]).toMatchObject({ status: 'not-measurable', verdict: { verdict: 'not-measurable', reason: 'no /bin/true here' } });
  });

  it('rejects a raw that does not match the schema as a failure, never as data', async () => {
    const wrong = exp('wrong', 1, () => Promise.resolve({ points: ['x'] } as unknown as Raw));
    const doc = await runSuite([wrong]);
    expect(doc.experiments[0]).toMatchObject({ status: 'failed', error: { code: 'ERR_VERIFY' } });
  });

  it('on abort keeps the running experiment\'s last checkpoint, marks it interrupted, and skips the rest', async () => {
    const controller = new AbortController();
    const slow = exp('slow', 1, async (ctx) => {
      ctx.checkpoint({ points: [1] });
      controller.abort();
      ctx.signal.throwIfAborted();
      return { points: [1, 2] };
    });
    const doc = await runSuite([ok('first', 1), slow, ok('after', 3)], { signal: controller.signal });
    expect(doc.interrupted).toBe(true);
    expect(doc.experiments.map((e) => e.status)).toEqual(['completed', 'interrupted', 'skipped']);
    expect(doc.experiments[1]!.raw).toEqual({ points: [1] });
    expect(ResultsSchema.parse(doc).interrupted).toBe(true);
  });

  it('tells an experiment when its budget is spent', async () => {
    const b = exp('b', 1, async (ctx) => {
      const before = ctx.overBudget();
      await new Promise((r) => setTimeout(r, 30));
      return { points: [Number(before), Number(ctx.overBudget())] };
    }, { budgetMs: { full: 10, quick: 10 } });
    const doc = await runSuite([b]);
    expect(doc.experiments[0]!.raw).toEqual({ points: [0, 1] });
  });
});

describe('selectExperiments', () => {
  it('selects by name or number, in suite order', () => {
    expect(selectExperiments(EXPERIMENTS, ['copyout', '1', 'thp-cow']).map((e) => e.number)).toEqual([1, 8, 9]);
    expect(selectExperiments(EXPERIMENTS, []).length).toBe(13);
  });

  it('rejects an unknown name with the list of names', () => {
    expect(() => selectExperiments(EXPERIMENTS, ['nope'])).toThrow(/names: unknown experiment 'nope'; have: fork-write-latency, fork-cost/);
  });
});

describe('the suite', () => {
  it('numbers its 12 experiments 1 to 12 with unique kebab-case names', () => {
    expect(EXPERIMENTS.map((e) => e.number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(new Set(EXPERIMENTS.map((e) => e.name)).size).toBe(12);
    for (const e of EXPERIMENTS) expect(e.name).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
  });

  it('has the engines every experiment needs available', () => {
    const needed = new Set(EXPERIMENTS.flatMap((e) => e.requirements.engines ?? []));
    expect([...needed].sort()).toEqual(['kernel', 'region', 'sim']);
    for (const n of needed) expect(engineAvailable(n), n).toBe(true);
  });
});
