/**
 * The kernel engine without root (uid nobody): PFNs read as zero, /proc/kpage* is closed. What
 * the present and exclusive bits (and PAGEMAP_SCAN's zero-page category) still show is
 * reported; what needs PFNs is null and listed in `unavailable`, never guessed.
 */
import { describe, expect, it } from 'vitest';

import { DIST_INDEX, runAsNobody } from '../helpers/cli.js';

interface Summary {
  uid: number;
  unavailable: Record<string, string>;
  steps: {
    op: string;
    events: Record<string, { copies: number | null; reuses: number | null; zeroFills: number | null; faults: number | null }>;
    frames: Record<string, number | null>;
    procs: Record<string, Record<string, { present: number; exclusive: number | null; zeroPage: number | null }>>;
  }[];
}

describe('the kernel engine as an unprivileged user', () => {
  it('reports present, exclusive and zero-page bits, infers copies and reuses from them, and marks frames unavailable', () => {
    const script = `
      const { KernelEngine } = await import(${JSON.stringify(DIST_INDEX)});
      const region = (id, pages, populate) => ({ id, pages, map: 'private', backing: 'anon', thp: false, advice: [], populate });
      const obs = await new KernelEngine().run({
        name: 'unprivileged',
        regions: [region('m', 32, 'write'), region('z', 8, 'read')],
        steps: [
          { op: 'fork', proc: 'p0', child: 'c1' },
          { op: 'write', proc: 'c1', region: 'm', pages: { start: 0, end: 16 } },
          { op: 'exit', proc: 'c1' },
          { op: 'write', proc: 'p0', region: 'm', pages: { start: 0, end: 32 } },
          { op: 'write', proc: 'p0', region: 'z', pages: { start: 0, end: 8 } },
        ],
      });
      const sum = (a) => (a === null ? null : a.reduce((x, y) => x + y, 0));
      console.log(JSON.stringify({
        uid: process.getuid(),
        unavailable: obs.unavailable,
        steps: obs.steps.map((s) => ({
          op: s.op, events: s.events, frames: s.frames,
          procs: Object.fromEntries(Object.entries(s.processes).map(([p, rs]) => [p, Object.fromEntries(
            Object.entries(rs).map(([id, o]) => [id, { present: sum(o.present), exclusive: sum(o.exclusive), zeroPage: sum(o.zeroPage) }]))])),
        })),
      }));`;
    const r = runAsNobody(script);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as Summary;
    expect(out.uid).toBe(65534);
    expect(out.unavailable.frames).toMatch(/CAP_SYS_ADMIN/);
    for (const s of out.steps) expect(s.frames).toEqual({ m: null, z: null });
    const [setup, fork, childWrite, , parentWrite, zeroWrite] = out.steps;
    expect(setup!.procs.p0!.z).toEqual({ present: 8, exclusive: 0, zeroPage: 8 });
    expect(fork!.procs.c1!.m).toEqual({ present: 32, exclusive: 0, zeroPage: 0 });
    expect(childWrite!.events.m).toEqual({ copies: 16, reuses: 0, zeroFills: 0, faults: 16 });
    expect(childWrite!.procs.c1!.m).toEqual({ present: 32, exclusive: 16, zeroPage: 0 });
    expect(parentWrite!.events.m).toEqual({ copies: 0, reuses: 32, zeroFills: 0, faults: 32 });
    expect(zeroWrite!.events.z).toEqual({ copies: 0, reuses: 0, zeroFills: 8, faults: 8 });
    expect(zeroWrite!.procs.p0!.z).toEqual({ present: 8, exclusive: 8, zeroPage: 0 });
  });
});
