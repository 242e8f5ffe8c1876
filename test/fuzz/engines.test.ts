/**
 * Fuzz: generated valid traces on the simulator (with the running kernel's profile) and the
 * kernel engine (real processes). Every trace the kernel engine can run must match the
 * prediction at every step, and leave no process behind.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { KernelEngine } from '../../src/engines/kernel/engine.js';
import { SimEngine } from '../../src/engines/sim/engine.js';
import { profileFor } from '../../src/engines/sim/profiles.js';
import { environment } from '../../src/env/environment.js';
import { runningKernelFacts } from '../../src/kernels/facts.js';
import { describeMismatch } from '../../src/validate/report.js';
import { validateTrace } from '../../src/validate/validate.js';
import { descendants } from '../helpers/processes.js';
import { randomTrace } from '../helpers/randomTrace.js';
import { budget, Tally, timeoutOf } from './budget.js';

const tally = new Tally('sim-vs-kernel');
afterAll(() => tally.write());

const engines = [new SimEngine(profileFor(runningKernelFacts(environment())).options), new KernelEngine()];

describe('fuzz: the simulator against the kernel on generated traces', () => {
  it(
    'every trace the kernel engine runs matches the prediction at every step, and no process is left',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: 2 ** 31 }), fc.boolean(), async (seed, cowHeavy) => {
          const trace = randomTrace(seed, { steps: 10, maxPages: 300, cowHeavy });
          const v = await validateTrace(trace, engines, { stepDeadlineMs: 30_000 });
          tally.add(v.status);
          for (const c of v.comparisons) {
            const ref = v.engines.find((e) => e.engine === v.reference)!.observations!;
            expect(c.matched, `seed ${seed}${cowHeavy ? ' (cowHeavy)' : ''}: ${describeMismatch(c, ref)}`).toBe(true);
          }
          expect(descendants().filter((p) => p.state !== 'Z')).toEqual([]);
        }),
        budget('sim-vs-kernel', 12),
      );
    },
    timeoutOf('sim-vs-kernel', 120_000),
  );
});
