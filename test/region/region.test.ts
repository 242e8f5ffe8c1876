/**
 * The userspace COW region through its public API: real views, real SIGSEGV faults, real
 * frames. Checked by content, by the manager's own page tables and, as root, by pagemap PFNs.
 */
import { closeSync, openSync, readFileSync, readSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { CowlabError, CowRegion, NO_FRAME, PAGE_STATE, pageRuns, pfnAccess, readPagemap, smapsFor, type CowView } from '../../src/internal.js';
import { native } from '../../src/native.js';
import { collectGarbage, openFdCount } from '../helpers/processes.js';

const PS = 4096;
const access = pfnAccess();
const NEEDS_ROOT = 'needs root: pagemap PFNs are hidden otherwise';

const open: CowRegion[] = [];
function region(options: Parameters<typeof CowRegion.create>[0]): CowRegion {
  const r = CowRegion.create(options);
  open.push(r);
  return r;
}
afterEach(() => {
  for (const r of open.splice(0)) r.close();
});

function bytes(v: CowView): Uint8Array {
  return new Uint8Array(v.buffer);
}

function frames(v: CowView): number[] {
  return Array.from(v.pageTable().frame);
}

describe('fork and write, lazy (the kernel algorithm)', () => {
  it('shares every frame after fork: same frames, count 2, no copy', () => {
    const r = region({ pages: 8 });
    bytes(r.root).set([1, 2, 3], 5 * PS);
    const snap = r.root.fork();
    expect(frames(snap)).toEqual(frames(r.root));
    expect(Array.from(snap.pageTable().refcount)).toEqual(new Array(8).fill(2));
    expect(Array.from(r.root.pageTable().state)).toEqual(new Array(8).fill(PAGE_STATE.cow));
    expect(Array.from(bytes(snap).subarray(5 * PS, 5 * PS + 3))).toEqual([1, 2, 3]);
    const s = r.stats();
    expect(s).toMatchObject({ framesInUse: 8, copies: 0, faults: 0 });
    expect(s.views.map((v) => [v.present, v.shared, v.exclusive])).toEqual([[8, 8, 0], [8, 8, 0]]);
  });

  it('copies only the written page, in the writer only: the other view keeps its bytes and frame', () => {
    const r = region({ pages: 8 });
    bytes(r.root)[3 * PS] = 7;
    const snap = r.root.fork();
    const before = frames(r.root);
    bytes(r.root)[3 * PS] = 9;
    expect(bytes(r.root)[3 * PS]).toBe(9);
    expect(bytes(snap)[3 * PS]).toBe(7);
    const after = frames(r.root);
    expect(after.filter((f, i) => f !== before[i])).toHaveLength(1);
    expect(after[3]).not.toBe(before[3]);
    expect(frames(snap)).toEqual(before);
    expect(r.root.pageTable().state[3]).toBe(PAGE_STATE.writable);
    expect(r.stats()).toMatchObject({ framesInUse: 9, copies: 1, reuses: 0, faults: 1 });
  });

  it('reuses a page whose frame is no longer shared: a fault but no copy, same frame', () => {
    const r = region({ pages: 4 });
    const snap = r.root.fork();
    const before = frames(r.root);
    snap.release();
    expect(r.root.pageTable().state[2]).toBe(PAGE_STATE.cow); // still read-only, like the kernel
    bytes(r.root)[2 * PS] = 1;
    expect(frames(r.root)).toEqual(before);
    expect(r.stats()).toMatchObject({ framesInUse: 4, copies: 0, reuses: 1, faults: 1 });
  });

  it('lets a page be written once per fault: a second store to it takes no fault', () => {
    const r = region({ pages: 4 });
    r.root.fork();
    const u = bytes(r.root);
    u[PS] = 1;
    u[PS + 100] = 2;
    u[PS + 4095] = 3;
    expect(r.stats().faults).toBe(1);
  });

  it('gives adjacent copies adjacent frames, so their mappings merge', () => {
    const r = region({ pages: 256 });
    const snap = r.root.fork();
    const u = bytes(snap);
    for (let p = 0; p < 256; p++) u[p * PS] = 1;
    const f = frames(snap);
    for (let p = 1; p < 256; p++) expect(f[p]).toBe(f[p - 1]! + 1);
    expect(smapsFor('self', snap.address, snap.address + BigInt(256 * PS)).vmas).toBeLessThanOrEqual(2);
  });
});

describe('untouched and zero pages behave like private anonymous memory', () => {
  it('populate none: a read maps the zero page (no frame), a write allocates a zeroed frame', () => {
    const r = region({ pages: 4, populate: 'none' });
    const u = bytes(r.root);
    expect(r.root.pageTable().present[1]).toBe(0);
    expect(u[PS + 10]).toBe(0);
    let t = r.root.pageTable();
    expect(t.state[1]).toBe(PAGE_STATE.zeroPage);
    expect(t.frame[1]).toBe(NO_FRAME);
    expect(r.stats()).toMatchObject({ zeroMaps: 1, faults: 1, framesInUse: 0 });
    u[PS + 10] = 5;
    u[3 * PS] = 6;
    t = r.root.pageTable();
    expect([t.state[1], t.state[3], t.state[0]]).toEqual([PAGE_STATE.writable, PAGE_STATE.writable, PAGE_STATE.untouched]);
    expect(r.stats()).toMatchObject({ zeroFills: 2, faults: 3, framesInUse: 2 });
    expect(u[PS + 10]).toBe(5);
    expect(u[PS + 11]).toBe(0);
  });

  it('a fork shares zero pages and keeps untouched pages untouched', () => {
    const r = region({ pages: 3, populate: 'none' });
    expect(bytes(r.root)[0]).toBe(0); // page 0: a load maps the zero page
    bytes(r.root)[PS] = 1; // page 1: a frame
    const snap = r.root.fork();
    expect(Array.from(snap.pageTable().state)).toEqual([PAGE_STATE.zeroPage, PAGE_STATE.cow, PAGE_STATE.untouched]);
    bytes(snap)[0] = 4; // writing the zero page allocates, in the writer only
    expect(bytes(r.root)[0]).toBe(0);
    expect(r.stats()).toMatchObject({ zeroFills: 2, copies: 0 });
  });

  it('a fork of a view that never had a frame starts empty (Linux copies no entry of a VMA without anon_vma)', () => {
    const r = region({ pages: 4, populate: 'read' });
    const snap = r.root.fork();
    expect(Array.from(snap.pageTable().present)).toEqual([0, 0, 0, 0]);
    expect(new Uint8Array(snap.buffer)[PS]).toBe(0); // a read maps the zero page again
    expect(Array.from(snap.pageTable().present)).toEqual([0, 1, 0, 0]);
    bytes(r.root)[0] = 1; // now the root has a frame: its forks copy zero pages
    expect(Array.from(r.root.fork().pageTable().zeroPage)).toEqual([0, 1, 1, 1]);
  });

  it('populate read: every page is the zero page until written', () => {
    const r = region({ pages: 16, populate: 'read' });
    expect(r.stats().views[0]).toMatchObject({ present: 16, zeroPage: 16, shared: 16, exclusive: 0 });
    bytes(r.root)[9 * PS] = 1;
    expect(r.stats()).toMatchObject({ zeroFills: 1, framesInUse: 1 });
  });
});

describe('policies', () => {
  it('eager copies every page at fork; writes afterwards take no fault', () => {
    const r = region({ pages: 32, policy: 'eager' });
    bytes(r.root)[0] = 3;
    const snap = r.root.fork();
    expect(r.stats()).toMatchObject({ copies: 32, framesInUse: 64 });
    expect(Array.from(snap.pageTable().refcount)).toEqual(new Array(32).fill(1));
    bytes(snap)[0] = 4;
    bytes(r.root)[PS] = 5;
    expect(r.stats().faults).toBe(0);
    expect([bytes(r.root)[0], bytes(snap)[0], bytes(snap)[PS]]).toEqual([3, 4, 0]);
  });

  it.each([1, 4, 16])('faultAround:%i copies the faulting page and up to K following shared pages in one fault', (k) => {
    const pages = 64;
    const r = region({ pages, policy: `faultAround:${k}` });
    const snap = r.root.fork();
    const u = bytes(snap);
    for (let p = 0; p < pages; p++) u[p * PS] = p;
    expect(r.stats()).toMatchObject({ copies: pages, faults: Math.ceil(pages / (k + 1)) });
    expect(smapsFor('self', snap.address, snap.address + BigInt(pages * PS)).vmas).toBeLessThanOrEqual(2);
    for (let p = 0; p < pages; p++) expect(bytes(r.root)[p * PS]).toBe(0);
  });

  it('faultAround stops at a page that is not shared (it is reused by its own fault)', () => {
    const r = region({ pages: 8, policy: 'faultAround:4' });
    const a = r.root.fork();
    bytes(r.root)[2 * PS] = 1; // root copies 2..6
    expect(r.stats().copies).toBe(5);
    bytes(a)[0] = 1; // a: page 0 copies; 1 shared -> copied; 2..6 count 1 now -> stop
    expect(r.stats().copies).toBe(7);
    expect(Array.from(a.pageTable().state)).toEqual([3, 3, 2, 2, 2, 2, 2, 2]);
  });
});

describe('protect', () => {
  it("'rw' makes writable again only the pages the view alone maps; shared ones fault and copy", () => {
    const r = region({ pages: 4 });
    const snap = r.root.fork();
    bytes(snap)[0] = 1; // snap's own copy of page 0
    snap.protect(0, 4, 'r');
    expect(Array.from(snap.pageTable().readOnly)).toEqual([1, 1, 1, 1]);
    expect(() => snap.prepareWrite(0, 1)).toThrow(/page 0 was made read-only with view\.protect\(\)/);
    snap.protect(0, 4, 'rw');
    const before = r.stats();
    bytes(snap).fill(2);
    const after = r.stats();
    expect(after.faults - before.faults).toBe(3);
    expect(after.copies - before.copies).toBe(3);
    expect(bytes(r.root)[PS]).toBe(0);
  });

  it('is inherited by a fork', () => {
    const r = region({ pages: 4 });
    r.root.protect(1, 3, 'r');
    expect(Array.from(r.root.fork().pageTable().readOnly)).toEqual([0, 1, 1, 0]);
  });
});

describe('prepareWrite', () => {
  it('breaks COW for a range without a fault: copies shared pages, reuses unshared ones, fills untouched ones', () => {
    const r = region({ pages: 6, populate: 'none' });
    bytes(r.root).fill(1, 0, 4 * PS); // pages 0-3 have frames
    const snap = r.root.fork();
    snap.release();
    const mid = r.root.fork(); // pages 0-3 shared again
    bytes(mid)[0] = 2; // mid copies page 0: root's page 0 is now unshared
    const before = r.stats();
    r.root.prepareWrite(0, 6);
    const after = r.stats();
    expect(after.faults - before.faults).toBe(0);
    expect(after.reuses - before.reuses).toBe(1); // page 0
    expect(after.copies - before.copies).toBe(3); // pages 1-3
    expect(after.zeroFills - before.zeroFills).toBe(2); // pages 4-5
    expect(Array.from(r.root.pageTable().state)).toEqual(new Array(6).fill(PAGE_STATE.writable));
    bytes(r.root).fill(9);
    expect(r.stats().faults).toBe(before.faults);
    expect(bytes(mid)[0]).toBe(2);
    expect(bytes(mid)[PS]).toBe(1);
  });

  it('rejects a range outside the view', () => {
    const r = region({ pages: 4 });
    expect(() => r.root.prepareWrite(0, 5)).toThrow(/endPage: must be at most 4/);
    expect(() => r.root.prepareWrite(3, 2)).toThrow(/endPage: must not be below startPage/);
  });
});

describe('prepareWritePages (a known write set)', () => {
  it('coalesces the listed pages into ascending runs of adjacent pages, each page once', () => {
    expect(pageRuns(Uint32Array.from([9, 3, 4, 4, 0, 5, 8, 12]))).toEqual([[0, 1], [3, 6], [8, 10], [12, 13]]);
    expect(pageRuns(new Uint32Array(0))).toEqual([]);
  });

  it('breaks COW for exactly the listed pages, without a fault, with the bytes they shared', () => {
    const r = region({ pages: 16 });
    for (let p = 0; p < 16; p++) bytes(r.root).fill(p + 1, p * PS, (p + 1) * PS);
    const snap = r.root.fork();
    const listed = Uint32Array.from([11, 2, 3, 7, 2, 15]);
    const before = r.stats();
    snap.prepareWritePages(listed);
    const after = r.stats();
    expect(after.faults - before.faults).toBe(0);
    expect(after.copies - before.copies).toBe(new Set(listed).size);
    const state = snap.pageTable().state;
    for (let p = 0; p < 16; p++) {
      expect(state[p]).toBe(listed.includes(p) ? PAGE_STATE.writable : PAGE_STATE.cow);
      expect(bytes(snap).subarray(p * PS, (p + 1) * PS).every((b) => b === p + 1)).toBe(true);
    }
    for (const p of listed) bytes(snap)[p * PS] = 0xee; // no fault: the pages are the snapshot's own
    expect(r.stats().faults).toBe(after.faults);
    for (let p = 0; p < 16; p++) expect(bytes(r.root)[p * PS]).toBe(p + 1);
  });

  it('rejects a list that is not a Uint32Array of pages inside the view, naming the field, before breaking anything', () => {
    const r = region({ pages: 4 });
    const snap = r.root.fork();
    expect(() => snap.prepareWritePages(Uint32Array.from([1, 4]))).toThrow(/^pages: page 4 \(entry 1\) is outside the view/);
    expect(() => snap.prepareWritePages([1, 2] as unknown as Uint32Array)).toThrow(/^pages: must be a Uint32Array/);
    expect(r.stats().copies).toBe(0);
  });
});

describe('syscalls writing into a COW page (the xv6 copyout case)', () => {
  const file = join(tmpdir(), `cowlab-region-${process.pid}.bin`);
  afterEach(() => {
    try {
      unlinkSync(file);
    } catch {
      // not created
    }
  });

  it('fs.readSync into a COW page fails with EFAULT; view.readSync breaks COW first and reads', () => {
    writeFileSync(file, Buffer.alloc(100, 0x5a));
    const r = region({ pages: 2 });
    const snap = r.root.fork();
    const fd = openSync(file, 'r');
    try {
      expect(() => readSync(fd, new Uint8Array(snap.buffer), 0, 100, 0)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
      expect(snap.readSync(fd, 0, 100, 0)).toBe(100);
      expect(bytes(snap)[99]).toBe(0x5a);
      expect(bytes(r.root)[99]).toBe(0);
    } finally {
      closeSync(fd);
    }
  });

  it('explains EFAULT in the error our API gives', async () => {
    const { copyoutError } = await import('../../src/internal.js');
    const efault = Object.assign(new Error('EFAULT: bad address in system call argument, read'), { code: 'EFAULT', syscall: 'read' });
    const e = copyoutError(efault) as CowlabError;
    expect(e).toBeInstanceOf(CowlabError);
    expect(e.code).toBe('ERR_COW_EFAULT');
    expect(e.message).toMatch(
      /the page is copy-on-write in a cowlab region: call view\.prepareWrite\(start, end\) before handing it to a syscall \(the xv6 copyout case\)/,
    );
    const other = new Error('x');
    expect(copyoutError(other)).toBe(other);
  });
});

describe('release and close', () => {
  it('a released view throws ERR_RELEASED and its old buffer is detached (never reaches freed memory)', () => {
    const r = region({ pages: 4 });
    const snap = r.root.fork();
    const old = new Uint8Array(snap.buffer);
    snap.release();
    expect(snap.released).toBe(true);
    expect(old.length).toBe(0);
    old[0] = 1; // a no-op on a detached buffer
    for (const use of [() => snap.buffer, () => snap.fork(), () => snap.prepareWrite(), () => snap.release(), () => snap.pageTable()]) {
      expect(use).toThrow(expect.objectContaining({ code: 'ERR_RELEASED' }));
    }
    expect(r.stats().views).toHaveLength(1);
  });

  it('close releases every view; the region then refuses stats', () => {
    const r = CowRegion.create({ pages: 4 });
    const a = r.root.fork();
    const b = a.fork();
    r.close();
    expect([r.root.released, a.released, b.released]).toEqual([true, true, true]);
    expect(() => r.stats()).toThrow(expect.objectContaining({ code: 'ERR_RELEASED' }));
    r.close(); // idempotent
  });

  it('leaks no file descriptor and no mapping over many regions', () => {
    const memfdMappings = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('memfd:cowlab-region')).length;
    const fds = openFdCount();
    const before = memfdMappings();
    for (let i = 0; i < 50; i++) {
      const r = CowRegion.create({ pages: 16 });
      bytes(r.root.fork())[0] = 1;
      expect(memfdMappings()).toBeGreaterThan(before);
      r.close();
    }
    expect(openFdCount()).toBe(fds);
    expect(memfdMappings()).toBe(before);
  });
});

describe('garbage collection', () => {
  it('frees a region and its views once nothing references them (no close needed)', async () => {
    const fds = openFdCount();
    (() => {
      const r = CowRegion.create({ pages: 16 });
      bytes(r.root.fork())[0] = 1;
    })();
    expect(openFdCount()).toBe(fds + 1); // the memfd
    for (let i = 0; i < 50 && openFdCount() !== fds; i++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(openFdCount()).toBe(fds);
  });

  it('keeps a view alive while its buffer is reachable, even when the region object is gone', async () => {
    let buf: ArrayBuffer | undefined = (() => {
      const r = CowRegion.create({ pages: 4 });
      new Uint8Array(r.root.buffer)[0] = 5;
      return r.root.fork().buffer;
    })();
    for (let i = 0; i < 5; i++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(new Uint8Array(buf)[0]).toBe(5);
    new Uint8Array(buf)[0] = 6; // still a live COW view
    expect(new Uint8Array(buf)[0]).toBe(6);
    buf = undefined;
  });
});

describe('the frame pool', () => {
  it('grows in batches and gives free frames back with PUNCH_HOLE when trimmed', () => {
    const r = region({ pages: 1024, batchFrames: 64 });
    expect(r.stats().poolFrames).toBe(1024);
    const snap = r.root.fork();
    bytes(snap).fill(1);
    let s = r.stats();
    expect(s.poolFrames % 64).toBe(0);
    expect(s.framesInUse).toBe(2048);
    snap.release();
    s = r.stats();
    expect(s.framesInUse).toBe(1024);
    expect(s.freeFrames).toBeGreaterThanOrEqual(1024); // kept warm for the next copies
    const staging = r.stagingAddress();
    const rss = () => smapsFor('self', staging, staging + BigInt(s.maxFrames * PS)).rssBytes;
    const rssBefore = rss();
    r.trim();
    const t = r.stats();
    expect(t.freeFrames).toBe(64);
    expect(t.poolFrames + t.holeFrames).toBeLessThan(s.poolFrames);
    expect(rssBefore - rss()).toBeGreaterThanOrEqual((s.freeFrames - 64) * PS);
    // Copies after the trim populate frames again and stay correct.
    const again = r.root.fork();
    bytes(again).fill(2);
    expect(bytes(r.root)[5]).toBe(0);
    expect(bytes(again)[5 * PS + 5]).toBe(2);
  });

  it('reports a full pool to JS-facing calls as ERR_TOO_LARGE, changing nothing', () => {
    const r = region({ pages: 16, maxFrames: 24, batchFrames: 8 });
    bytes(r.root)[0] = 1;
    const snap = r.root.fork();
    expect(() => snap.prepareWrite(0, 16)).toThrow(
      expect.objectContaining({ code: 'ERR_TOO_LARGE', message: expect.stringMatching(/frame pool is full \(maxFrames 24\)/) }),
    );
    expect(Array.from(snap.pageTable().state)).toEqual(new Array(16).fill(PAGE_STATE.cow));
    expect(bytes(snap)[0]).toBe(1);
    snap.prepareWrite(0, 8); // what fits still works
    expect(r.stats().framesInUse).toBe(24);
  });

  it('an eager fork that does not fit throws ERR_TOO_LARGE and leaves the source writable', () => {
    const r = region({ pages: 16, maxFrames: 20, policy: 'eager', batchFrames: 4 });
    expect(() => r.root.fork()).toThrow(expect.objectContaining({ code: 'ERR_TOO_LARGE' }));
    expect(r.stats()).toMatchObject({ framesInUse: 16, faults: 0 });
    bytes(r.root)[0] = 1;
    expect(r.stats().faults).toBe(0);
    expect(r.stats().views).toHaveLength(1);
  });
});

describe('options', () => {
  it.each([
    [{ pages: 0 }, /pages: must be a positive integer, got 0/],
    [{ pages: 1.5 }, /pages: must be an integer/],
    [{ pages: 4, policy: 'bogus' }, /policy: must be lazy, eager or faultAround:K, got 'bogus'/],
    [{ pages: 4, policy: 'faultAround:0' }, /policy: faultAround needs K between 1 and 256/],
    [{ pages: 4, populate: 'some' }, /populate: must be one of none, read, write/],
    [{ pages: 4, maxFrames: 2 }, /maxFrames: must be at least 4/],
  ])('%j is refused', (options, message) => {
    expect(() => CowRegion.create(options as never)).toThrow(message);
  });

  it('accepts { faultAround: K }', () => {
    expect(region({ pages: 2, policy: { faultAround: 3 } }).stats().policy).toBe('faultAround:3');
  });
});

describe('the SIGSEGV handler', () => {
  it("chains to Node's handler (SA_SIGINFO), installed before cowlab's", () => {
    region({ pages: 1 });
    expect(native().regionHandlerInfo()).toEqual({ installed: true, previous: 'siginfo' });
  });

  it('leaves WebAssembly out-of-bounds traps to V8: RuntimeError with a region active', () => {
    const r = region({ pages: 4 });
    r.root.fork();
    // (module (memory 1) (func (export "f") (param i32) (result i32) local.get 0 i32.load))
    const wasm = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 3, 2, 1, 0, 5, 3, 1, 0, 1, 7, 5, 1, 1, 102, 0, 0, 10, 9, 1, 7, 0, 32, 0, 40, 2, 0, 11]);
    const WA = WebAssemblyApi();
    const f = new WA.Instance(new WA.Module(wasm)).exports.f as (x: number) => number;
    expect(f(8)).toBe(0);
    expect(() => f(70_000)).toThrow(WA.RuntimeError);
    bytes(r.root)[0] = 1; // the region still works after the trap
    expect(r.stats().faults).toBe(1);
  });
});

/** The WebAssembly global (tsconfig has no DOM lib, which declares it). */
function WebAssemblyApi(): {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object) => { exports: Record<string, unknown> };
  RuntimeError: new () => Error;
} {
  return (globalThis as unknown as { WebAssembly: ReturnType<typeof WebAssemblyApi> }).WebAssembly;
}

describe('pagemap agrees with the manager', () => {
  it.skipIf(!access.pfnVisible)(`views sharing a frame show one PFN; a copy shows a new one (${NEEDS_ROOT})`, () => {
    const pages = 32;
    const r = region({ pages });
    const snap = r.root.fork();
    bytes(snap)[7 * PS] = 1;
    const c = native().constants;
    for (const v of [r.root, snap]) native().adviseMemory(v.address, pages * PS, c.MADV_POPULATE_READ);
    const a = readPagemap(0, r.root.address, pages);
    const b = readPagemap(0, snap.address, pages);
    for (let p = 0; p < pages; p++) {
      expect(a.present[p]).toBe(1);
      if (p === 7) expect(b.pfn[p]).not.toBe(a.pfn[p]);
      else expect(b.pfn[p]).toBe(a.pfn[p]);
    }
    // The staging mapping shows the same frames at their memfd offsets.
    const staging = readPagemap(0, r.stagingAddress(), r.stats().poolFrames);
    const f = frames(snap);
    expect(staging.pfn[f[7]!]).toBe(b.pfn[7]);
    expect(staging.pfn[f[0]!]).toBe(a.pfn[0]);
  });
});
