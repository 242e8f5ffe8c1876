/**
 * The experiments' measuring loop (Steps, sized) inside the real runner: the progress lines
 * it reports, the checkpoint Ctrl-C keeps, and where the time budget stops a sweep, as the
 * results document records them.
 */
import { z } from 'zod';
import { describe, expect, it } from 'vitest';

import { runSuite, type SuiteProgress } from '../../src/suite/runner.js';
import { sized, STOP, Steps, type SweepOptions } from '../../src/suite/steps.js';
import { defineExperiment, type AnyExperiment, type RunContext } from '../../src/suite/types.js';

const Raw = z.object({ points: z.array(z.number()) });
type Raw = z.infer<typeof Raw>;

function exp(run: (ctx: RunContext) => Promise<Raw>, budgetMs = 60_000): AnyExperiment {
  return defineExperiment<Raw>({
    number: 1,
    name: 'steps',
    title: 'steps',
    claim: 'the loop works',
    short: 'steps',
    rule: 'Confirmed when it ran.',
    measures: 'nothing',
    requirements: {},
    budgetMs: { full: budgetMs, quick: budgetMs },
    raw: Raw,
    run,
    verdict: (raw) => ({ verdict: 'confirmed', figure: `${raw.points.length} points`, reason: 'it ran', metrics: [] }),
    present: () => ({ charts: [], tables: [] }),
  });
}

type Then = (x: number) => void | typeof STOP;

/** Runs a sweep over `items` as an experiment, each item recorded into raw.points and then
 *  passed to `then`; returns the result and its progress lines. */
async function sweepRun(
  items: number[],
  o: Omit<Partial<SweepOptions<number>>, 'measure'> & { then?: Then } = {},
  extra: { budgetMs?: number; signal?: AbortSignal } = {},
) {
  const lines: string[] = [];
  const onProgress = (p: SuiteProgress) => lines.push(`${p.done}/${p.total} ${p.detail}`);
  const e = exp(async (ctx) => {
    const raw: Raw = { points: [] };
    const steps = new Steps(ctx, items.length + 1);
    steps.next('setup');
    steps.keep(raw);
    const { then, ...rest } = o;
    await steps.sweep(items, raw, {
      detail: (x) => `item ${x}`,
      measure: (x) => {
        raw.points.push(x);
        return then?.(x);
      },
      ...rest,
    });
    steps.finish();
    return raw;
  }, extra.budgetMs);
  const doc = await runSuite([e], { onProgress, ...(extra.signal ? { signal: extra.signal } : {}) });
  return { result: doc.experiments[0]!, lines };
}

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('Steps', () => {
  it('reports one progress line per step, in order, then the end', async () => {
    const { result, lines } = await sweepRun([10, 20, 30]);
    expect(result.raw).toEqual({ points: [10, 20, 30] });
    // The runner's own 0/1 line first.
    expect(lines).toEqual(['0/1 ', '0/4 setup', '1/4 item 10', '2/4 item 20', '3/4 item 30', '4/4 ']);
  });

  it('ends a sweep after an item whose measure returns STOP, keeping what it recorded', async () => {
    const { result, lines } = await sweepRun([1, 2, 3], { then: (x) => (x === 2 ? STOP : undefined) });
    expect(result.status).toBe('completed');
    expect(result.raw).toEqual({ points: [1, 2] });
    expect(lines.at(-1)).toBe('4/4 ');
  });

  it('stops before the next item once the budget is spent, with a note naming it', async () => {
    const { result } = await sweepRun(
      [1, 2, 3],
      { stopBefore: { what: 'sweep', item: (x) => `${x} pages` }, then: (x) => busy(x === 1 ? 300 : 0) },
      { budgetMs: 200 },
    );
    expect(result.status).toBe('completed');
    expect(result.raw).toEqual({ points: [1] });
    expect(result.notes).toEqual(['sweep stopped before 2 pages: the 0.2 s budget was spent']);
  });

  it('with stopAfter, measures at least minItems before the budget may stop it', async () => {
    const { result } = await sweepRun(
      [1, 2, 3, 4, 5],
      { stopAfter: { minItems: 3, note: (done) => `stopped after ${done}` }, then: () => busy(5) },
      { budgetMs: 1 },
    );
    expect(result.raw).toEqual({ points: [1, 2, 3] });
    expect(result.notes).toEqual(['stopped after 3']);
  });

  it('on abort stops before the next step; the results keep the last checkpoint', async () => {
    const controller = new AbortController();
    const { result, lines } = await sweepRun([1, 2, 3], { then: (x) => void (x === 2 && controller.abort()) }, { signal: controller.signal });
    expect(result.status).toBe('interrupted');
    // Ctrl-C came during item 2: it is kept, item 3 never began.
    expect(result.raw).toEqual({ points: [1, 2] });
    expect(lines.at(-1)).toBe('2/4 item 2');
  });
});

describe('sized', () => {
  it('picks the quick or the full value', () => {
    const table = { full: [1, 2, 3], quick: [1] };
    expect(sized({ quick: true }, table)).toBe(table.quick);
    expect(sized({ quick: false }, table)).toBe(table.full);
  });
});
