/**
 * Fuzz: trace documents, random and mutated from valid ones. The parser is the one judge of a
 * trace for every command, so its contract is checked: it returns a trace or throws a
 * CowlabError with a usage code (exit 2) naming the field, never anything else, and quickly;
 * and every trace it accepts (small enough to simulate here) the simulator runs to the end.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { KernelEngine } from '../../src/engines/kernel/engine.js';
import { simulateTrace } from '../../src/engines/sim/engine.js';
import { CowlabError, isUsageError } from '../../src/errors.js';
import { parseTrace } from '../../src/trace/parse.js';
import { listScenarios, loadScenario } from '../../src/trace/scenarios.js';
import type { Trace } from '../../src/trace/types.js';
import { randomTrace } from '../helpers/randomTrace.js';
import { budget, Tally, timeoutOf } from './budget.js';
import { mutate, mutation } from './mutate.js';

const tally = new Tally('traces');
afterAll(() => tally.write());

const scenarios = listScenarios().map((s) => loadScenario(s.name));
const kernel = new KernelEngine();

/** A valid trace to start from: a built-in scenario or a generated one. */
const seedTrace = fc.oneof(
  fc.constantFrom(...scenarios).map((t) => structuredClone(t) as unknown),
  fc.nat({ max: 1_000_000 }).map((s) => structuredClone(randomTrace(s, { steps: 12, maxPages: 600 })) as unknown),
);

const documents = fc.oneof(
  { weight: 1, arbitrary: fc.jsonValue() },
  { weight: 1, arbitrary: fc.record({ name: fc.string(), regions: fc.jsonValue(), steps: fc.jsonValue() }) },
  { weight: 4, arbitrary: fc.tuple(seedTrace, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([doc, ms]) => ms.reduce((d, m) => mutate(d, m), doc)) },
);

function judge(doc: unknown): void {
  const t0 = performance.now();
  let trace: Trace;
  try {
    trace = parseTrace(doc);
  } catch (err) {
    if (!(err instanceof CowlabError) || !isUsageError(err)) throw new Error(`parseTrace threw a non-usage error for ${JSON.stringify(doc).slice(0, 300)}: ${(err as Error)?.stack ?? err}`);
    expect(err.message.length).toBeGreaterThan(0);
    tally.add(`rejected (${err.code})`);
    return;
  } finally {
    expect(performance.now() - t0, 'the parser answers quickly').toBeLessThan(2_000);
  }
  tally.add('accepted');
  // The engines' own check of what this machine can run must answer, not throw.
  const why = kernel.supports(trace);
  expect(why === null || typeof why === 'string').toBe(true);
  const pages = trace.regions.reduce((n, r) => n + r.pages, 0);
  if (pages > 65_536 || trace.steps.length > 200) return;
  const obs = simulateTrace(trace, { checkInvariants: true });
  expect(obs.steps.length).toBe(trace.steps.length + 1);
  tally.add('accepted and simulated');
}

describe('fuzz: trace documents', () => {
  it(
    'the parser accepts a trace or rejects it with a usage error, and the simulator runs what it accepts',
    () => {
      fc.assert(fc.property(documents, (doc) => judge(doc)), budget('traces', 300));
    },
    timeoutOf('traces', 60_000),
  );
});
