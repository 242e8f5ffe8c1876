/**
 * The kernel engine without root (uid nobody): PFNs read as zero, /proc/kpage* is closed. What
 * the present and exclusive bits (and PAGEMAP_SCAN's zero-page and huge categories, Linux >=
 * 6.7) still show is reported; what needs PFNs, or PAGEMAP_SCAN where the kernel lacks it, is
 * null and listed in `unavailable`, never guessed.
 */
import { describe, expect, it } from 'vitest';

import { readPageCategories, type Trace } from '../../src/index.js';
import { DIST_INDEX, runAsNobody } from '../helpers/cli.js';
import { because, events, predict, region } from './helpers.js';

/** Whether this kernel has the PAGEMAP_SCAN ioctl (6.7+), probed as the engine probes it. */
function hasPagemapScan(): boolean {
  try {
    readPageCategories(0, 0x10000n, 1);
    return true;
  } catch {
    return false;
  }
}

const scan = hasPagemapScan();
/** What an unprivileged reader sees of `v`: itself with PAGEMAP_SCAN, null without. */
const scanned = <T>(v: T): T | null => (scan ? v : null);

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
    // Without PAGEMAP_SCAN (and kpageflags) the zero page is not seen, so a write to a shared
    // page may be a copy or a zero-fill: both are null (the reuses, of exclusive pages, are not).
    const unclear = { copies: null, zeroFills: null };
    expect(setup!.procs.p0!.z).toEqual({ present: 8, exclusive: 0, zeroPage: scanned(8) });
    expect(fork!.procs.c1!.m).toEqual({ present: 32, exclusive: 0, zeroPage: scanned(0) });
    expect(childWrite!.events.m).toEqual({ copies: 16, reuses: 0, zeroFills: 0, faults: 16, ...(scan ? {} : unclear) });
    expect(childWrite!.procs.c1!.m).toEqual({ present: 32, exclusive: 16, zeroPage: scanned(0) });
    expect(parentWrite!.events.m).toEqual({ copies: 0, reuses: 32, zeroFills: 0, faults: 32 });
    expect(zeroWrite!.events.z).toEqual({ copies: 0, reuses: 0, zeroFills: 8, faults: 8, ...(scan ? {} : unclear) });
    expect(zeroWrite!.procs.p0!.z).toEqual({ present: 8, exclusive: 8, zeroPage: scanned(0) });
    if (!scan) {
      expect(out.unavailable.zeroPage).toMatch(/PAGEMAP_SCAN/);
      expect(out.unavailable['events.copies']).toMatch(/zero page/);
    }
  });

  it("classifies writes to huge pages by PAGEMAP_SCAN's huge flag, as the kernel's profile predicts, or leaves them null without it", () => {
    // c1's writes split its PMDs and copy 4 KiB; after c1 left, p0 reuses each PMD whole.
    const t: Trace = {
      name: 'unprivileged-thp',
      regions: [region({ id: 't', pages: 1024, thp: true })],
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'c1', region: 't', pages: { pages: [0, 600] } },
        { op: 'exit', proc: 'c1' },
        { op: 'write', proc: 'p0', region: 't', pages: { pages: [0, 600] } },
      ],
    };
    const script = `
      const { KernelEngine } = await import(${JSON.stringify(DIST_INDEX)});
      const obs = await new KernelEngine().run(${JSON.stringify(t)});
      console.log(JSON.stringify({ unavailable: obs.unavailable, events: obs.steps.map((s) => s.events.t) }));`;
    const r = runAsNobody(script);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { unavailable: Record<string, string>; events: Summary['steps'][number]['events'][string][] };
    const p = predict(t);
    expect(out.events[0], 'the region must be backed by 2 huge pages').toEqual(events(p, -1, 't'));
    for (const i of [1, 3]) {
      const unknown = { copies: null, reuses: null, zeroFills: null };
      expect(out.events[i + 1], `step ${i}, as ${because('reuse')}`).toEqual(scan ? events(p, i, 't') : { ...unknown, faults: events(p, i, 't').faults });
    }
    if (!scan) {
      for (const k of ['copies', 'reuses', 'zeroFills']) expect(out.unavailable[`events.${k}`]).toMatch(/PAGEMAP_SCAN.*PFNs/);
    }
  });
});
