/**
 * Write tracking (src/tracking/, native/track_*.cc) on real pages: every mechanism this kernel
 * offers reports exactly the pages written, keeps what was stored, and (where it copies) holds
 * the old bytes in its snapshot; a mechanism the kernel lacks is refused with the reason; the
 * signal trackers leave SIGSEGV to the handler that was there before.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { EXPERIMENTS } from '../../experiments/index.js';
import { CowRegion } from '../../src/region/region.js';
import { decideAvailability, mechanismAvailability, type Mechanism } from '../../src/tracking/mechanisms.js';
import { checkTrackRaw, compareTracking, fillWord, storeTag, WriteTracker } from '../../src/tracking/tracker.js';
import { packageRoot } from '../../src/util/package.js';
import { runAsNobody } from '../helpers/cli.js';

const TRACKERS: Mechanism[] = ['sigsegv-mprotect', 'sigsegv-remap', 'region', 'uffd-wp-sync', 'uffd-wp-async', 'soft-dirty'];
const unavailable = (m: Mechanism) => {
  const a = mechanismAvailability(m);
  return a.available ? null : a.reason;
};

describe.each(TRACKERS)('%s', (m) => {
  it.skipIf(unavailable(m) !== null)(`reports exactly the pages a strided writer stored to, with their content checked (skipped when not available here: ${unavailable(m) ?? ''})`, async () => {
    const t = WriteTracker.create({ pages: 300, pattern: 'stride:7' });
    try {
      for (let i = 0; i < 2; i++) {
        const r = await t.run(m); // throws ERR_VERIFY on any content or set mismatch
        expect(r.written).toBe(43);
        expect(r.latencyNs).toHaveLength(43);
        expect(r.armNs).toBeGreaterThan(0);
        expect(r.collectNs).not.toBeNull();
        expect(r.checked.pages).toBe(300);
        if (r.faults !== null && m !== 'uffd-wp-async') expect(r.faults).toBe(43);
      }
    } finally {
      t.close();
    }
  });

  it.skipIf(unavailable(m) === null)('is refused with ERR_KERNEL_FEATURE and the reason where the kernel lacks it', async () => {
    const t = WriteTracker.create({ pages: 8 });
    await expect(t.run(m)).rejects.toMatchObject({ code: 'ERR_KERNEL_FEATURE', message: expect.stringMatching(/is not available here: .{20,}/) });
    t.close();
  });
});

describe('the content check', () => {
  const pages = 4;
  const order = new Uint32Array([1, 3]);
  const tag = storeTag(5);
  function page(words: (i: number) => number): Uint32Array {
    return new Uint32Array(1024).map((_, i) => words(i));
  }
  function live(): ArrayBuffer {
    const out = new Uint32Array(pages * 1024);
    for (let p = 0; p < pages; p++) {
      out.set(page(() => fillWord(p)), p * 1024);
      if (p === 1 || p === 3) {
        out[p * 1024] = p;
        out[p * 1024 + 1] = Number(tag >> 32n);
      }
    }
    return out.buffer;
  }
  const snapshot = () => {
    const s = new Uint32Array(pages * 1024);
    for (let p = 0; p < pages; p++) s.set(page(() => fillWord(p)), p * 1024);
    return s;
  };

  it('passes a run that reported and kept exactly what was written', () => {
    const raw = { reported: new Uint8Array([0, 1, 0, 1]), live: live(), snapshot: snapshot().buffer };
    expect(checkTrackRaw(raw, order, pages, tag)).toEqual({ missed: 0, extra: 0, liveBad: 0, snapshotBad: 0 });
  });

  it('counts a written page the collection missed and an unwritten page it reported', () => {
    const raw = { reported: new Uint8Array([1, 0, 0, 1]), live: live(), snapshot: null };
    expect(checkTrackRaw(raw, order, pages, tag)).toMatchObject({ missed: 1, extra: 1 });
    expect(checkTrackRaw(raw, order, pages, tag, true)).toMatchObject({ missed: 1, extra: 0 });
  });

  it('counts a live page with a wrong byte and a snapshot copy that lost the old bytes', () => {
    const l = new Uint32Array(live());
    l[2 * 1024 + 700] = l[2 * 1024 + 700]! ^ 1;
    const s = snapshot();
    s[3 * 1024 + 9] = 0;
    const raw = { reported: new Uint8Array([0, 1, 0, 1]), live: l.buffer, snapshot: s.buffer };
    expect(checkTrackRaw(raw, order, pages, tag)).toEqual({ missed: 0, extra: 0, liveBad: 1, snapshotBad: 1 });
  });
});

describe('availability, decided from the probes', () => {
  const uffd = (openErrno: string, features = 0) => decideAvailability('uffd-wp-async', { uffd: { openErrno, apiErrno: '', features } });
  it('names vm.unprivileged_userfaultfd when userfaultfd is refused with EPERM', () => {
    expect(uffd('EPERM')).toMatchObject({ available: false, reason: expect.stringMatching(/vm\.unprivileged_userfaultfd/) });
  });
  it('says the kernel lacks userfaultfd on ENOSYS, and WP_ASYNC when only sync write-protect is there', () => {
    expect(uffd('ENOSYS')).toMatchObject({ reason: expect.stringMatching(/CONFIG_USERFAULTFD/) });
    expect(uffd('', 1)).toMatchObject({ reason: expect.stringMatching(/UFFD_FEATURE_WP_ASYNC \(Linux 6\.7/) });
    expect(decideAvailability('uffd-wp-sync', { uffd: { openErrno: '', apiErrno: '', features: 1 } })).toEqual({ available: true });
  });
  it('reads soft-dirty from pagemap bit 55 of a page written after clear_refs 4', () => {
    const sd = (cleared: bigint, rewritten: bigint) => decideAvailability('soft-dirty', { softDirty: { clearErrno: '', pagemapErrno: '', cleared, rewritten } });
    const present = 1n << 63n;
    const dirty = 1n << 55n;
    expect(sd(present, present | dirty)).toEqual({ available: true });
    expect(sd(present, present)).toMatchObject({ available: false, reason: expect.stringMatching(/CONFIG_MEM_SOFT_DIRTY/) });
    expect(sd(present | dirty, present | dirty)).toMatchObject({ available: false, reason: expect.stringMatching(/did not clear/) });
  });

  it('finds userfaultfd refused for an unprivileged user when vm.unprivileged_userfaultfd is 0, and says so', () => {
    const r = runAsNobody(
      "const { mechanismAvailability } = await import('./dist/src/tracking/mechanisms.js');" +
        "console.log(JSON.stringify([mechanismAvailability('uffd-wp-sync'), mechanismAvailability('sigsegv-mprotect')]));",
    );
    expect(r.stderr).toBe('');
    const [uf, sig] = JSON.parse(r.stdout) as [{ available: boolean; reason?: string }, { available: boolean }];
    expect(sig.available).toBe(true);
    // The knob is read, never changed: what it says decides what the unprivileged user gets.
    let knob = '';
    try {
      knob = readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim();
    } catch {
      knob = ''; // no such knob (a kernel without userfaultfd, or before 5.2)
    }
    if (knob === '0') expect(uf).toMatchObject({ available: false, reason: expect.stringMatching(/EPERM.*vm\.unprivileged_userfaultfd/) });
    else expect(typeof uf.available).toBe('boolean');
  });
});

describe('the signal trackers and the process SIGSEGV handler', () => {
  it('leave WebAssembly traps and the region working after a run', async () => {
    const t = WriteTracker.create({ pages: 64, pattern: 'rand' });
    try {
      await t.run('sigsegv-mprotect');
      await t.run('sigsegv-remap');
      await t.run('region');
      await t.run('sigsegv-mprotect');
    } finally {
      t.close();
    }
    // Wasm out-of-bounds (Node's SIGSEGV trap handler) still becomes a RuntimeError.
    const wasm = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 3, 2, 1, 0, 5, 3, 1, 0, 1, 7, 5, 1, 1, 102, 0, 0, 10, 9, 1, 7, 0, 32, 0, 40, 2, 0, 11]);
    const W = (globalThis as unknown as { WebAssembly: { Instance: new (m: unknown) => { exports: { f: (a: number) => number } }; Module: new (b: Uint8Array) => unknown; RuntimeError: new () => Error } }).WebAssembly;
    const f = new W.Instance(new W.Module(wasm)).exports.f;
    expect(f(0)).toBe(0);
    expect(() => f(0x7fff_fff0)).toThrow(W.RuntimeError);
    // And the region's handler still resolves its own faults.
    const region = CowRegion.create({ pages: 4 });
    try {
      const live = new Uint8Array(region.root.buffer);
      live[0] = 1;
      const snap = region.root.fork();
      live[0] = 2;
      expect(new Uint8Array(snap.buffer)[0]).toBe(1);
      expect(region.stats().copies).toBe(1);
    } finally {
      region.close();
    }
  });
});

describe('compareTracking', () => {
  it('measures every available mechanism over the same pages and lists a missing one with its reason', async () => {
    const c = await compareTracking({ pages: 128, pattern: 'seq', repeats: 2, warmup: 0 });
    expect(c.mechanisms.map((m) => m.mechanism)).toEqual(['kernel-cow', 'sigsegv-mprotect', 'sigsegv-remap', 'region', 'uffd-wp-sync', 'uffd-wp-async', 'soft-dirty']);
    for (const m of c.mechanisms) {
      if (m.available) {
        expect(m.samples.storeP50Ns).toHaveLength(2);
        expect(m.storeP50Ns!.median).toBeGreaterThan(0);
        expect(m.checkedPages).toBe(256);
      } else {
        expect(m.reason!.length).toBeGreaterThan(20);
        expect(m.storeP50Ns).toBeNull();
      }
    }
  });

  it('checks its options before mapping anything, naming the field', async () => {
    await expect(compareTracking({ pages: -5 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/^pages: /) });
    // @ts-expect-error: not a pattern (the type says so too); the comparison refuses it
    await expect(compareTracking({ pages: 8, pattern: 'zigzag' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/^pattern: /) });
    await expect(compareTracking({ pages: 8, mechanisms: ['telepathy' as Mechanism] })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });
});

describe('the bare remap tracker with fault-around', () => {
  it('copies following pages too: reports a superset, every store and old byte intact', async () => {
    const t = WriteTracker.create({ pages: 200, pattern: 'stride:10' });
    try {
      const r = await t.run('sigsegv-remap', { around: 4 });
      expect(r.faults).toBe(20);
    } finally {
      t.close();
    }
  });
});

describe('the write-tracking experiment on an emulated CPU', () => {
  // Recorded by `cowlab run write-tracking --kernel debian:6.12` (and debian:6.1) in TCG guests (2026-12).
  const exp = EXPERIMENTS.find((e) => e.name === 'write-tracking')!;
  const recorded = (kernel = '6.12') => exp.raw.parse(JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'verdicts', `write-tracking.emulated-${kernel}.json`), 'utf8'))) as {
    emulated?: boolean;
    cases: { mechanisms: { mechanism: string; available: boolean; reason: string | null }[] }[];
  };

  it("still runs in a TCG guest and reports what the kernel offers; the verdict says the times are the emulator's", () => {
    const raw = recorded();
    expect(raw.emulated).toBe(true);
    const all = raw.cases[0]!.mechanisms;
    const v = exp.verdict(raw);
    expect(v.verdict).toBe('not-measurable');
    expect(v.figure).toContain(`${all.filter((m) => m.available).length} of ${all.length} mechanisms available`);
    for (const m of all) expect(v.reason).toContain(m.available ? 'available' : m.reason!);
    expect(v.reason).toMatch(/emulated CPU/);
    const p = exp.present(raw);
    expect(p.charts.length).toBeGreaterThan(0);
    expect(p.tables[0]!.note).toMatch(/emulated CPU/);
  });

  it('names a mechanism the guest kernel lacks, with its reason (debian:6.1: no UFFD_FEATURE_WP_ASYNC)', () => {
    const raw = recorded('6.1');
    const missing = raw.cases[0]!.mechanisms.filter((m) => !m.available);
    expect(missing.length).toBeGreaterThan(0);
    const v = exp.verdict(raw);
    expect(v.verdict).toBe('not-measurable');
    expect(v.figure).toMatch(new RegExp(`, not ${missing.map((m) => m.mechanism).join(', ')}$`));
    for (const m of missing) expect(v.reason).toContain(m.reason!);
  });

  it('the same recording without the emulated mark gets a timed verdict (the mark is what withholds it)', () => {
    const raw = recorded();
    delete raw.emulated;
    expect(exp.verdict(raw).figure).not.toMatch(/emulated/);
  });
});
