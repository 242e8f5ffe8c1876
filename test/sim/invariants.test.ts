/**
 * The simulator keeps the kernel's books after every step of every built-in scenario and of
 * seeded random traces: references = mappings (+ page cache), frames freed exactly at zero,
 * no entry to a freed frame, writable private entries only on exclusive pages, and
 * observations consistent with the page tables.
 */
import { describe, expect, it } from 'vitest';

import type { StepObservation } from '../../src/engines/types.js';
import { checkInvariants } from '../../src/engines/sim/invariants.js';
import type { SimOptions } from '../../src/engines/sim/options.js';
import { FRAME_FREED, FRAME_USED } from '../../src/engines/sim/physmem.js';
import { Simulator, type SimState } from '../../src/engines/sim/simulator.js';
import { PTE_PRESENT, PTE_SPECIAL, PTE_WRITE } from '../../src/engines/sim/vm.js';
import { parseTrace } from '../../src/trace/parse.js';
import { listScenarios, loadScenario } from '../../src/trace/scenarios.js';
import type { Trace } from '../../src/trace/types.js';
import { randomTrace } from '../helpers/randomTrace.js';
import { SIM_VARIANTS } from './variants.js';

/** Observations agree with themselves and with the model's page tables. */
function checkObservation(o: StepObservation, s: SimState): string[] {
  const problems: string[] = [];
  for (const [proc, regions] of Object.entries(o.processes)) {
    const ps = s.processes.find((p) => p.name === proc);
    if (!ps?.alive) problems.push(`${proc} observed but not alive`);
    for (const [id, r] of Object.entries(regions)) {
      for (let i = 0; i < r.present.length; i++) {
        if (r.exclusive![i] && !r.present[i]) problems.push(`${proc}/${id} page ${i}: exclusive but not present`);
        if (r.zeroPage![i] && (!r.present[i] || r.exclusive![i])) problems.push(`${proc}/${id} page ${i}: zero page but not shared`);
      }
    }
  }
  for (const p of s.processes) if (p.alive && !o.processes[p.name]) problems.push(`${p.name} alive but not observed`);
  // frames: distinct pfns mapped by live processes, recounted from the state.
  s.regions.forEach((region, r) => {
    const seen = new Set<number>();
    for (const p of s.processes) {
      const v = p.alive ? p.vmas[r] : null;
      if (!v) continue;
      for (let i = 0; i < v.flags.length; i++) if ((v.flags[i]! & (PTE_PRESENT | PTE_SPECIAL)) === PTE_PRESENT) seen.add(v.pfn[i]!);
    }
    if (o.frames[region.id] !== seen.size) problems.push(`${region.id}: frames ${o.frames[region.id]} but ${seen.size} distinct mapped`);
  });
  return problems;
}

/** Frames are freed exactly when their count reaches zero: never resurrected, never lost. */
function checkFreeing(before: SimState | null, after: SimState): string[] {
  const problems: string[] = [];
  const f = after.frames;
  let used = 0;
  for (let p = 1; p <= f.top; p++) if (f.frameState[p] === FRAME_USED) used++;
  if (used !== f.inUse) problems.push(`inUse ${f.inUse} but ${used} frames in use`);
  if (before) {
    for (let p = 1; p <= before.frames.top; p++) {
      if (before.frames.frameState[p] === FRAME_FREED && f.frameState[p] !== FRAME_FREED) problems.push(`pfn ${p} came back after being freed`);
    }
  }
  return problems;
}

function runChecked(trace: Trace, options: SimOptions = {}): { steps: number } {
  const sim = new Simulator(trace, options);
  let before: SimState | null = null;
  const check = (o: StepObservation) => {
    const s = sim.state();
    const problems = [...checkInvariants(s), ...checkObservation(o, s), ...checkFreeing(before, s)];
    const where = o.step < 0 ? 'setup' : `steps[${o.step}] ${JSON.stringify(sim.trace.steps[o.step])}`;
    expect(problems, `${trace.name} after ${where}`).toEqual([]);
    before = s;
  };
  check(sim.setup());
  let n = 0;
  while (!sim.done) {
    check(sim.step());
    n++;
  }
  return { steps: n };
}


describe('invariants hold after every step of every built-in scenario', () => {
  const cases = listScenarios().flatMap((s) => SIM_VARIANTS.map((v) => ({ scenario: s.name, variant: v.name, options: v.options })));
  it.each(cases)('$scenario ($variant)', ({ scenario, options }) => {
    runChecked(loadScenario(scenario), options);
  });
});

describe('invariants hold after every step of seeded random traces', () => {
  const seeds = Array.from({ length: 60 }, (_, i) => i + 1);
  it.each(seeds)('seed %i', (seed) => {
    const trace = parseTrace(randomTrace(seed, { cowHeavy: seed % 2 === 0 }));
    const options = SIM_VARIANTS[seed % SIM_VARIANTS.length]!.options;
    const { steps } = runChecked(trace, options);
    expect(steps).toBe(trace.steps.length);
  });
});

describe('the checker catches broken books', () => {
  it('reports a refcount that does not match the mappings', () => {
    const sim = new Simulator(loadScenario('fork-child-writes-half'));
    sim.setup();
    sim.step();
    const s = sim.state();
    const pfn = s.processes[0]!.vmas[0]!.pfn[3]!;
    s.frames.refcount[pfn] = s.frames.refcount[pfn]! + 1;
    expect(checkInvariants(s)).toEqual([expect.stringMatching(new RegExp(`^folio ${pfn}: refcount 3 but 2 mappings`))]);
  });

  it('reports an entry pointing to a freed frame', () => {
    const sim = new Simulator(loadScenario('fork-child-writes-all'));
    sim.run();
    const s = sim.state();
    const freed = s.frames.frameState.findIndex((x) => x === FRAME_FREED);
    s.processes[0]!.vmas[0]!.pfn[0] = freed;
    expect(checkInvariants(s).join('\n')).toMatch(new RegExp(`points to freed frame ${freed}`));
  });

  it('reports a writable private entry on a shared page (a missed COW)', () => {
    const sim = new Simulator(loadScenario('fork-child-writes-none'));
    sim.setup();
    sim.step();
    const s = sim.state();
    const flags = s.processes[1]!.vmas[0]!.flags;
    flags[5] = flags[5]! | PTE_WRITE;
    expect(checkInvariants(s).join('\n')).toMatch(/c1\/heap page 5: writable entry .* not an anonymous page exclusive to c1/);
  });
});
