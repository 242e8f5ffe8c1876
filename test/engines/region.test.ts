/**
 * The region engine on small traces: processes become views, observations come from the
 * manager's tables and counters, and what it cannot mirror is refused with the reason.
 */
import { describe, expect, it } from 'vitest';

import { RegionEngine } from '../../src/index.js';
import { loadScenario } from '../../src/trace/scenarios.js';
import type { RegionSpec, Step, Trace } from '../../src/trace/types.js';
import type { StepObservation } from '../../src/engines/types.js';

function spec(over: Partial<RegionSpec> = {}): RegionSpec {
  return { id: 'a', pages: 8, map: 'private', backing: 'anon', thp: false, advice: [], populate: 'write', ...over };
}

function trace(steps: Step[], regions: RegionSpec[] = [spec()]): Trace {
  return { name: 'test', regions, steps };
}

const bits = (a: Uint8Array | null) => (a === null ? null : Array.from(a).join(''));

function pages(o: StepObservation, proc: string, region = 'a') {
  const r = o.processes[proc]![region]!;
  return { present: bits(r.present), exclusive: bits(r.exclusive), zeroPage: bits(r.zeroPage) };
}

describe('region engine', () => {
  it('runs fork, writes, exit and reuse like the kernel: copies in the writer, reuse after the sharer exits', async () => {
    const obs = await new RegionEngine().run(
      trace([
        { op: 'fork', proc: 'p0', child: 'p1' },
        { op: 'write', proc: 'p1', region: 'a', pages: { start: 0, end: 4 } },
        { op: 'write', proc: 'p0', region: 'a', pages: { pages: [4, 5] } },
        { op: 'exit', proc: 'p1' },
        { op: 'write', proc: 'p0', region: 'a', pages: { pages: [0, 7] } },
      ]),
    );
    const [setup, fork, w1, w0, exit, reuse] = obs.steps;
    expect(obs.engine).toBe('region');
    expect(obs.unavailable).toEqual({});
    expect(setup).toMatchObject({ step: -1, op: 'setup', proc: 'p0', events: { a: { zeroFills: 8, faults: 8, copies: 0 } }, frames: { a: 8 } });
    expect(pages(setup!, 'p0')).toEqual({ present: '11111111', exclusive: '11111111', zeroPage: '00000000' });
    expect(fork!.events.a).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(fork!.frames.a).toBe(8);
    expect(fork!.timeNs).toBeGreaterThan(0);
    for (const p of ['p0', 'p1']) expect(pages(fork!, p)).toEqual({ present: '11111111', exclusive: '00000000', zeroPage: '00000000' });
    expect(w1!.events.a).toEqual({ copies: 4, reuses: 0, zeroFills: 0, faults: 4 });
    expect(w1!.frames.a).toBe(12);
    expect(pages(w1!, 'p1').exclusive).toBe('11110000');
    expect(pages(w1!, 'p0').exclusive).toBe('11110000'); // p0's old frames are no longer shared
    expect(w0!.events.a).toEqual({ copies: 2, reuses: 0, zeroFills: 0, faults: 2 });
    expect(w0!.frames.a).toBe(14);
    expect(Object.keys(exit!.processes)).toEqual(['p0']);
    expect(exit!.frames.a).toBe(8);
    expect(exit!.timeNs).toBeNull();
    expect(pages(exit!, 'p0').exclusive).toBe('11111111');
    // Page 0's frame lost its sharer when p1 copied it; page 7's when p1 exited: both reuse.
    expect(reuse!.events.a).toEqual({ copies: 0, reuses: 2, zeroFills: 0, faults: 2 });
  });

  it('mirrors untouched memory: a read maps the zero page, a write zero-fills; a fork copies zero pages only once the parent allocated', async () => {
    const obs = await new RegionEngine().run(
      trace(
        [
          { op: 'read', proc: 'p0', region: 'a', pages: { start: 0, end: 2 } },
          { op: 'fork', proc: 'p0', child: 'p1' },
          { op: 'write', proc: 'p1', region: 'a', pages: { pages: [0, 3] } },
          { op: 'write', proc: 'p0', region: 'a', pages: { pages: [3] } },
          { op: 'fork', proc: 'p0', child: 'p2' },
        ],
        [spec({ pages: 4, populate: 'none' })],
      ),
    );
    const [setup, read, fork, write, write0, fork2] = obs.steps;
    expect(setup!.events.a).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(pages(setup!, 'p0').present).toBe('0000');
    expect(read!.events.a).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 2 });
    expect(pages(read!, 'p0')).toEqual({ present: '1100', exclusive: '0000', zeroPage: '1100' });
    expect(read!.frames.a).toBe(0);
    // p0 never allocated: like a VMA without anon_vma, the child starts with nothing mapped.
    expect(pages(fork!, 'p1')).toEqual({ present: '0000', exclusive: '0000', zeroPage: '0000' });
    expect(write!.events.a).toEqual({ copies: 0, reuses: 0, zeroFills: 2, faults: 2 });
    expect(pages(write!, 'p1')).toEqual({ present: '1001', exclusive: '1001', zeroPage: '0000' });
    expect(pages(write!, 'p0').present).toBe('1100');
    expect(write0!.events.a).toEqual({ copies: 0, reuses: 0, zeroFills: 1, faults: 1 });
    // Now p0 has allocated: its next child gets the zero pages and shares the frame.
    expect(pages(fork2!, 'p2')).toEqual({ present: '1101', exclusive: '0000', zeroPage: '1100' });
  });

  it('exec releases every view of the process; it stays alive and reports every region with nothing present', async () => {
    const obs = await new RegionEngine().run(
      trace([
        { op: 'fork', proc: 'p0', child: 'p1' },
        { op: 'exec', proc: 'p1' },
        { op: 'fork', proc: 'p1', child: 'p2' },
      ]),
    );
    const exec = obs.steps[2]!;
    expect(pages(exec, 'p1')).toEqual({ present: '00000000', exclusive: '00000000', zeroPage: '00000000' });
    expect(exec.frames.a).toBe(8);
    expect(exec.timeNs).toBeNull();
    expect(pages(exec, 'p0').exclusive).toBe('11111111'); // mapped once: exclusive, though still read-only
    expect(pages(obs.steps[3]!, 'p2').present).toBe('00000000');
  });

  it('reports the setup time as the populate time', async () => {
    const obs = await new RegionEngine().run(trace([], [spec(), spec({ id: 'b', populate: 'none' })]));
    expect(obs.steps[0]!.timeNs).toBeGreaterThan(0);
  });

  it('reports events for every region, zeros where the step did not touch it', async () => {
    const obs = await new RegionEngine().run(
      trace(
        [
          { op: 'fork', proc: 'p0', child: 'p1' },
          { op: 'write', proc: 'p1', region: 'b', pages: { random: 3, seed: 9 } },
        ],
        [spec(), spec({ id: 'b', pages: 16, populate: 'read' })],
      ),
    );
    const w = obs.steps[2]!;
    expect(w.events).toEqual({ a: { copies: 0, reuses: 0, zeroFills: 0, faults: 0 }, b: { copies: 0, reuses: 0, zeroFills: 3, faults: 3 } });
    expect(w.frames).toEqual({ a: 8, b: 3 });
  });

  it.each([
    [{ map: 'shared' as const }, /region 'a': map 'shared' is not modeled/],
    [{ backing: 'memfd' as const }, /region 'a': backing 'memfd' is not modeled/],
    [{ thp: true }, /region 'a': thp is not modeled/],
  ])('refuses %j with the reason, and run() throws it', async (over, reason) => {
    const t = trace([], [spec(over)]);
    expect(new RegionEngine().supports(t)).toMatch(reason);
    await expect(new RegionEngine().run(t)).rejects.toThrow(reason);
  });

  it("mprotect rw makes writable again only pages the process alone maps (Linux >= 6.0)", async () => {
    const obs = await new RegionEngine().run(
      trace([
        { op: 'fork', proc: 'p0', child: 'p1' },
        { op: 'write', proc: 'p1', region: 'a', pages: { start: 0, end: 2 } },
        { op: 'mprotect', proc: 'p1', region: 'a', prot: 'r', pages: { start: 0, end: 4 } },
        { op: 'mprotect', proc: 'p1', region: 'a', prot: 'rw' },
        { op: 'write', proc: 'p1', region: 'a', pages: { start: 0, end: 4 } },
      ]),
    );
    expect(obs.steps[3]!.events.a).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(obs.steps[3]!.timeNs).toBeNull();
    // Pages 0-1 were p1's own copies: writable again, no fault. Pages 2-3 are shared: copies.
    expect(obs.steps[5]!.events.a).toEqual({ copies: 2, reuses: 0, zeroFills: 0, faults: 2 });
  });

  it('dontfork: the child does not get the region and the parent writes it without a fault; wipeonfork: the child gets it empty', async () => {
    const obs = await new RegionEngine().run(
      trace(
        [
          { op: 'fork', proc: 'p0', child: 'p1' },
          { op: 'write', proc: 'p0', region: 'd', pages: { start: 0, end: 4 } },
          { op: 'read', proc: 'p1', region: 'w', pages: { start: 0, end: 2 } },
          { op: 'write', proc: 'p1', region: 'w', pages: { start: 0, end: 4 } },
          { op: 'write', proc: 'p0', region: 'w', pages: { start: 0, end: 4 } },
        ],
        [spec({ id: 'd', pages: 4, advice: ['dontfork'] }), spec({ id: 'w', pages: 4, advice: ['wipeonfork'] })],
      ),
    );
    const [, fork, wd, rw, ww, pw] = obs.steps;
    expect(pages(fork!, 'p1', 'd').present).toBe('0000');
    expect(pages(fork!, 'p1', 'w').present).toBe('0000');
    expect(pages(fork!, 'p0', 'd').exclusive).toBe('1111');
    expect(wd!.events.d).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(rw!.events.w).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 2 });
    expect(ww!.events.w).toEqual({ copies: 0, reuses: 0, zeroFills: 4, faults: 4 });
    expect(pw!.events.w).toEqual({ copies: 0, reuses: 0, zeroFills: 0, faults: 0 });
    expect(pw!.frames).toEqual({ d: 4, w: 8 });
  });

  it.each([
    ['a partial mprotect before anything is allocated, then fork', [], /region 'a': mprotect at step 0 splits it before anything is allocated in it, so each piece gets its own anon_vma, and fork at step 1 copies only/],
    ['the same in a child', [{ op: 'fork', proc: 'p0', child: 'p1' }], /mprotect at step 1 .* fork at step 2/],
  ] as const)('refuses %s (the kernel keeps an anon_vma per piece)', (_, before, reason) => {
    const steps: Step[] = [
      ...before,
      { op: 'mprotect', proc: before.length ? 'p1' : 'p0', region: 'a', prot: 'r', pages: { start: 4, end: 8 } },
      { op: 'fork', proc: before.length ? 'p1' : 'p0', child: 'c' },
    ];
    expect(new RegionEngine().supports(trace(steps, [spec({ populate: 'read' })]))).toMatch(reason);
  });

  it('refuses the built-in mprotect-split-anon-vma, whose read-only piece never gets an anon_vma', () => {
    expect(new RegionEngine().supports(loadScenario('mprotect-split-anon-vma'))).toMatch(/mprotect at step 0 splits it .* fork at step 3/);
  });

  it.each([
    ['the region was written at setup', 'write' as const, [{ op: 'mprotect', proc: 'p0', region: 'a', prot: 'r', pages: { start: 4, end: 8 } }]],
    ['a write came before the split', 'none' as const, [
      { op: 'write', proc: 'p0', region: 'a', pages: { pages: [0] } },
      { op: 'mprotect', proc: 'p0', region: 'a', prot: 'r', pages: { start: 4, end: 8 } },
    ]],
    ['the mprotect covers the whole region', 'read' as const, [{ op: 'mprotect', proc: 'p0', region: 'a', prot: 'r', pages: { start: 0, end: 8 } }]],
    ['the split process never forks', 'read' as const, [
      { op: 'fork', proc: 'p0', child: 'p1' },
      { op: 'mprotect', proc: 'p1', region: 'a', prot: 'r', pages: { start: 4, end: 8 } },
    ]],
  ] as [string, 'none' | 'read' | 'write', Step[]][])('accepts a split when %s', (_, populate, steps) => {
    const t = trace([...steps, { op: 'fork', proc: 'p0', child: 'c' }], [spec({ populate })]);
    expect(new RegionEngine().supports(t)).toBeNull();
  });

  it('accepts everything else', () => {
    expect(new RegionEngine().supports(trace([{ op: 'fork', proc: 'p0', child: 'p1' }]))).toBeNull();
  });

  it('refuses a step on a process without the region', async () => {
    await expect(
      new RegionEngine().run(trace([{ op: 'write', proc: 'p9', region: 'a', pages: { pages: [0] } }])),
    ).rejects.toThrow(/steps\[0\]: process 'p9' is not alive/);
  });

  it('with policy eager, copies at fork and writes take no fault', async () => {
    const obs = await new RegionEngine({ policy: 'eager' }).run(
      trace([
        { op: 'fork', proc: 'p0', child: 'p1' },
        { op: 'write', proc: 'p1', region: 'a', pages: { start: 0, end: 8 } },
      ]),
    );
    expect(obs.steps[1]!.events.a).toMatchObject({ copies: 8, faults: 0 });
    expect(obs.steps[2]!.events.a).toMatchObject({ copies: 0, faults: 0 });
  });
});
