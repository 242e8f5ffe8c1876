/**
 * What a trace can ask of the kernel engine besides COW state: where p0 lives (a process of its
 * own, or the Node process itself), every access's latency (timing 'each'), a paced schedule,
 * writes the kernel does (pread), and a hold before an exit. Real processes, real pagemaps; the
 * COW outcome is the simulator's for the kernel under test in every case.
 */
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { compareObservations } from '../../src/validate/compare.js';
import { observationsFromJson, observationsToJson, RegionEngine, type Step, type Trace } from '../../src/index.js';
import { DEFAULT_COST_MODEL } from '../../src/engines/sim/cost.js';
import { SimEngine } from '../../src/engines/sim/index.js';
import { all, engine, events, expectAsPredicted, expectNoProcessesLeft, obs, predict, profile, readValues, region, trace } from './helpers.js';

const PAGES = 256;

/** p0 forks c1; c1 writes half, timed each; p0 writes the other half; c1 reads its half back. */
function forkAndWrite(p0: 'process' | 'node', write: Partial<Extract<Step, { op: 'write' }>> = {}): Trace {
  const t = trace(`capabilities-${p0}`, [region({ pages: PAGES })], [
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'write', proc: 'c1', region: 'm', pages: { start: 0, end: PAGES / 2 }, timing: 'each', ...write },
    { op: 'write', proc: 'p0', region: 'm', pages: { start: PAGES / 2, end: PAGES } },
    { op: 'read', proc: 'c1', region: 'm', pages: { start: 0, end: PAGES / 2 } },
    { op: 'exit', proc: 'c1' },
  ]);
  return p0 === 'node' ? { ...t, p0: 'node' } : t;
}

describe("where p0 lives: a process of its own, or the Node process itself ('node')", () => {
  it('gives the same COW outcome both ways, the one the profile predicts', async () => {
    const own = await engine.runDetailed(forkAndWrite('process'));
    const node = await engine.runDetailed(forkAndWrite('node'));
    const cmp = compareObservations(own.observations, node.observations);
    expect(cmp.matched, `the two runs disagree from step ${cmp.firstMismatch}: ${JSON.stringify(cmp.steps[cmp.firstMismatch ?? 0]?.diffs)}`).toBe(true);
    const p = predict(forkAndWrite('node'));
    for (let i = 0; i < 4; i++) expectAsPredicted(node, p, i, ['p0', 'c1'], `the profile of ${profile.version}`);
    expectNoProcessesLeft();
  });

  it("is this process with 'node': p0's pid is Node's, and the child maps Node's heap, which p0 'process' sheds", async () => {
    const childMaps = async (p0: 'process' | 'node') => {
      let maps = '';
      const r = await engine.runDetailed(forkAndWrite(p0), {
        onLive: (l) => {
          if (l.done === 1) maps = readFileSync(`/proc/${l.pids.c1}/maps`, 'utf8');
        },
      });
      return { r, maps };
    };
    const own = await childMaps('process');
    const node = await childMaps('node');
    expect(node.r.details[0]!.pids.p0).toBe(process.pid);
    expect(own.r.details[0]!.pids.p0).not.toBe(process.pid);
    // Node's malloc heap: a fork of Node copies it; a p0 of its own marked it MADV_DONTFORK.
    expect(readFileSync('/proc/self/maps', 'utf8')).toContain('[heap]');
    expect(node.maps).toContain('[heap]');
    expect(own.maps).not.toContain('[heap]');
    expectNoProcessesLeft();
  });

  it("leaves Node's own memory alone: the region is unmapped and Node still runs after the teardown", async () => {
    let address = 0n;
    await engine.runDetailed(forkAndWrite('node'), { onLive: (l) => (address = l.addresses.m!) });
    const maps = readFileSync('/proc/self/maps', 'utf8');
    const start = address.toString(16);
    expect(maps.split('\n').some((l) => l.startsWith(`${start}-`))).toBe(false);
  });
});

describe("timing 'each': every access's latency, carried in the observation and never compared", () => {
  it('measures one latency per access of the step that asked, and none for the others', async () => {
    const r = await engine.runDetailed(forkAndWrite('process'));
    const timed = obs(r, 1).accessNs!;
    expect(timed).toHaveLength(PAGES / 2);
    expect(timed.every((ns) => ns > 0)).toBe(true);
    expect(timed.reduce((a, b) => a + b, 0)).toBe(obs(r, 1).timeNs);
    expect(obs(r, 2).accessNs).toBeUndefined();
    expect(obs(r, 3).accessNs).toBeUndefined();
  });

  it('is predicted per access by the simulator from its cost model (a copy each, here)', async () => {
    const sim = new SimEngine(profile.options);
    const p = await sim.run(forkAndWrite('process'));
    const predicted = obs(p, 1).accessNs!;
    expect(predicted).toHaveLength(PAGES / 2);
    // The profile predicts a copy per store (the parent still maps every page), so each
    // access costs the model's copy.
    expect(events(p, 1).copies).toBe(PAGES / 2);
    const c = DEFAULT_COST_MODEL.constants; // the SimEngine above was given no cost model
    expect(Array.from(new Set(predicted))).toEqual([c.copyNs]);
    expect(predicted.reduce((a, b) => a + b, 0)).toBe(obs(p, 1).timeNs);
  });

  it('survives JSON and is measured by the region engine too', async () => {
    const r = await new RegionEngine().run(forkAndWrite('process'));
    expect(obs(r, 1).accessNs).toHaveLength(PAGES / 2);
    const back = observationsFromJson(observationsToJson(r, { pages: true }));
    expect(Array.from(obs(back, 1).accessNs!)).toEqual(Array.from(obs(r, 1).accessNs!));
  });
});

describe('paceNs: a writer at a set rate', () => {
  it('starts access i no earlier than i intervals after the first, on the clock of process.hrtime', async () => {
    const pace = 2_000_000;
    const t = trace('paced', [region({ pages: 16 })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'p0', region: 'm', pages: all(16), paceNs: pace, timing: 'each' },
      { op: 'exit', proc: 'c1' },
    ]);
    const before = Number(process.hrtime.bigint());
    const r = await engine.runDetailed(t);
    const start = r.details[2]!.access[0]!.startNs;
    const forkedAt = r.details[1]!.forkedAtNs!;
    expect(forkedAt).toBeGreaterThan(before);
    // Absolute sleeps never wake early: access i starts at least i intervals after the step
    // began, which was after the fork. (Lateness is load, and not asserted.)
    for (let i = 1; i < 16; i++) {
      expect(start[i]!).toBeGreaterThan(start[i - 1]!);
      expect(start[i]! - forkedAt).toBeGreaterThanOrEqual(i * pace);
    }
    expect(events(r, 1)).toEqual(events(predict(t), 1)); // pacing changes no COW outcome
  });
});

describe("via 'pread': the kernel writes the page", () => {
  it.each(['process', 'node'] as const)('breaks COW in the kernel like a store (p0 %s), with the same value in the page', async (p0) => {
    const t = forkAndWrite(p0, { via: 'pread' });
    const r = await engine.runDetailed(t);
    expectAsPredicted(r, predict(t), 1, ['p0', 'c1'], `the profile of ${profile.version}`);
    const values = readValues(r, 3);
    const tag = BigInt(1 + 2) << 32n; // the value a write at step 1 stores: kernelWriteValue(1, page)
    expect(values).toEqual(Array.from({ length: PAGES / 2 }, (_, p) => tag + BigInt(p)));
  });

  it('is refused by the region engine, which says why', () => {
    expect(new RegionEngine().supports(forkAndWrite('process', { via: 'pread' }))).toMatch(/pread\(2\) is the kernel writing into the page/);
    expect(new RegionEngine().supports(forkAndWrite('process', { paceNs: 1000 }))).toMatch(/paced accesses \(paceNs\) are the kernel engine's/);
  });
});

describe('afterMs: a process holds its memory before it exits', () => {
  it('keeps the child alive that long after the previous step', async () => {
    const t = trace('hold', [region({ pages: 8 })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'exit', proc: 'c1', afterMs: 150 },
    ]);
    const t0 = Date.now();
    await engine.runDetailed(t);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expectNoProcessesLeft();
  });
});
