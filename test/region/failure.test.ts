/**
 * What must still go wrong, and how: faults that are not cowlab's crash the process as they
 * would without it (in child processes), WebAssembly traps stay V8's, a COW break that cannot
 * be done is a CowlabError in JS or a documented fatal message in the handler (never a wrong
 * value), and a real fork()ed child cannot reach the parent's region.
 */
import { describe, expect, it } from 'vitest';

import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';

import { CowRegion, Mapping, pageSize } from '../../src/index.js';
import { forkAndStore } from '../../src/probes/spawn.js';
import { DIST_INDEX } from '../helpers/cli.js';
import { runScript } from './helpers.js';

const FATAL = /cowlab: fatal: a store to 0x[0-9a-f]+ \(page \d+ of \d+ in a cowlab region view\) needs a copy-on-write break that failed: /;

describe('faults that are not cowlab\'s still crash the process', () => {
  it.each([
    {
      name: 'a store to a shared (COW) page the user made read-only with view.protect',
      body: `const r = cowlab.CowRegion.create({ pages: 4 });
        const snap = r.root.fork();
        snap.protect(1, 2, 'r');
        new Uint8Array(snap.buffer)[0] = 1;
        console.log('before');
        new Uint8Array(snap.buffer)[4096] = 1;`,
    },
    {
      name: 'a store to a writable page the user made read-only with view.protect, in an eager copy of it',
      body: `const r = cowlab.CowRegion.create({ pages: 4, policy: 'eager' });
        r.root.protect(0, 4, 'r');
        const copy = r.root.fork();
        console.log('before');
        new Uint8Array(copy.buffer)[8192] = 1;`,
    },
    {
      name: 'a store to a region page the user made read-only with a raw mprotect',
      body: `const r = cowlab.CowRegion.create({ pages: 4 });
        native().protectMemory(r.root.address + 4096n, 4096, native().constants.PROT_READ);
        console.log('before');
        new Uint8Array(r.root.buffer)[4096] = 1;`,
    },
    {
      name: 'a load from a COW page the user made inaccessible',
      body: `const r = cowlab.CowRegion.create({ pages: 4 });
        r.root.fork();
        native().protectMemory(r.root.address, 4096, native().constants.PROT_NONE);
        console.log('before');
        console.log(new Uint8Array(r.root.buffer)[0]);`,
    },
    {
      name: 'a store to a read-only mapping outside any region',
      body: `const r = cowlab.CowRegion.create({ pages: 4 });
        r.root.fork();
        const m = cowlab.Mapping.create({ pages: 1 });
        m.protect('r');
        console.log('before');
        new Uint8Array(m.buffer)[0] = 1;`,
    },
    {
      name: 'a store to an address nothing maps',
      body: `cowlab.CowRegion.create({ pages: 4 }).root.fork();
        console.log('before');
        native().touchPages(0x1000n, 1, true);`,
    },
  ])('$name: killed by SIGSEGV', ({ body }) => {
    const r = runScript(body);
    expect(r.signal).toBe('SIGSEGV');
    expect(r.stdout).toBe('before\n');
  });

  it('without a previous handler (node --disable-wasm-trap-handler): COW works, a bad store still kills by SIGSEGV', () => {
    const r = runScript(
      `const region = cowlab.CowRegion.create({ pages: 4 });
       const snap = region.root.fork();
       new Uint8Array(snap.buffer)[0] = 7;
       console.log(JSON.stringify(native().regionHandlerInfo()), new Uint8Array(snap.buffer)[0], new Uint8Array(region.root.buffer)[0]);
       const m = cowlab.Mapping.create({ pages: 1 });
       m.protect('r');
       new Uint8Array(m.buffer)[0] = 1;
       console.log('survived');`,
      ['--disable-wasm-trap-handler'],
    );
    expect(r.stdout).toBe('{"installed":true,"previous":"default"} 7 0\n');
    expect(r.signal).toBe('SIGSEGV');
  });

  it('a WebAssembly out-of-bounds access still raises RuntimeError in a process that faults through regions', () => {
    const r = runScript(
      `const region = cowlab.CowRegion.create({ pages: 64 });
       const snap = region.root.fork();
       const u = new Uint8Array(snap.buffer);
       for (let p = 0; p < 64; p += 2) u[p * 4096] = 1;
       const wasm = new Uint8Array([0,97,115,109,1,0,0,0,1,6,1,96,1,127,1,127,3,2,1,0,5,3,1,0,1,7,5,1,1,102,0,0,10,9,1,7,0,32,0,40,2,0,11]);
       const f = new WebAssembly.Instance(new WebAssembly.Module(wasm)).exports.f;
       let caught = 'none';
       try { f(1 << 20); } catch (e) { caught = e.constructor.name + ': ' + e.message; }
       for (let p = 1; p < 64; p += 2) u[p * 4096] = 1;
       console.log(caught, region.stats().faults);`,
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('RuntimeError: memory access out of bounds 64\n');
  });
});

describe('a COW break that cannot be done', () => {
  it('by a plain store, with the frame pool full: the documented fatal message, then SIGABRT', () => {
    const r = runScript(
      `const region = cowlab.CowRegion.create({ pages: 16, maxFrames: 20, batchFrames: 4 });
       const u = new Uint8Array(region.root.fork().buffer);
       for (let p = 0; p < 16; p++) { u[p * 4096] = 1; console.log('stored', p); }`,
    );
    expect(r.signal).toBe('SIGABRT');
    expect(r.stdout.trim().split('\n').pop()).toBe('stored 3');
    expect(r.stderr).toMatch(FATAL);
    expect(r.stderr).toMatch(/\(page 4 of 16 in a cowlab region view\).*the region's frame pool is full \(maxFrames 20\)\. The store cannot complete without a wrong value, so the process aborts\. Break COW from JS first with view\.prepareWrite\(start, end\)/);
  });

  // Fills this child's VMA table to a few mappings below vm.max_map_count (one page per
  // mapping, alternating protections), then breaks COW on scattered pages, each of which
  // splits a mapping.
  const FILL_MAP_COUNT = `
    const fs = await import('node:fs');
    const maxMap = Number(fs.readFileSync('/proc/sys/vm/max_map_count', 'utf8'));
    const count = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').length - 1;
    const region = cowlab.CowRegion.create({ pages: 512 });
    const root = new Uint8Array(region.root.buffer);
    for (let p = 0; p < 512; p++) root[p * 4096 + 9] = p & 0xff;
    const snap = region.root.fork();
    const other = region.root.fork();
    const c = native().constants;
    const span = maxMap * 2;
    const { address } = native().mapMemory(span * 4096, c.BACKING_ANON_PRIVATE, 4096);
    let i = 0;
    const protect = () => { native().protectMemory(address + BigInt(2 * i * 4096), 4096, c.PROT_NONE); i++; };
    // The first protect splits the mapping in two, each later one splits off two more. Near
    // the limit nothing may read /proc/self/maps (malloc needs mappings for its buffer).
    const c0 = count();
    while (c0 + 2 * i - 1 < maxMap - 200) protect();
    const c1 = count();
    if (HEADROOM > 0) for (let k = 0; k < Math.floor((maxMap - HEADROOM - c1) / 2); k++) protect();
    else for (;;) { try { protect(); } catch { break; } } // until mprotect itself hits the limit
    const intact = (v) => { const u = new Uint8Array(v.buffer); for (let p = 0; p < 512; p++) if (u[p * 4096 + 9] !== (p & 0xff)) return false; return true; };
  `;

  it('at vm.max_map_count, prepareWrite and fork throw ERR_TOO_LARGE naming it; every view stays intact', () => {
    const r = runScript(
      `const HEADROOM = 30;
       ${FILL_MAP_COUNT}
       const out = {};
       try { for (let p = 0; p < 512; p += 4) snap.prepareWrite(p, p + 1); out.prepare = 'no error'; }
       catch (e) { out.prepare = [e.code, e.errno, e.message]; }
       try { for (let k = 0; k < 40; k++) snap.fork(); out.fork = 'no error'; }
       catch (e) { out.fork = [e.code, e.errno, e.message]; }
       out.intact = [intact(region.root), intact(snap), intact(other)];
       native().unmapMemory(address, span * 4096);
       const u = new Uint8Array(snap.buffer);
       for (let p = 0; p < 512; p++) u[p * 4096] = 1;
       out.after = [intact(region.root), intact(snap), intact(other), u[4096]];
       console.log(JSON.stringify(out));`,
    );
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out.prepare).toEqual(['ERR_TOO_LARGE', 'ENOMEM', expect.stringMatching(/^breaking copy-on-write for pages \d+\.\.\d+ \(vm\.max_map_count reached: \d+ of \d+ mappings.*\): mmap\(\) failed: ENOMEM/)]);
    expect(out.fork).toEqual(['ERR_TOO_LARGE', 'ENOMEM', expect.stringMatching(/^forking a view \(vm\.max_map_count reached.*failed: ENOMEM/)]);
    expect(out.intact).toEqual([true, true, true]);
    expect(out.after).toEqual([true, true, true, 1]);
  });

  it('at vm.max_map_count, a plain store: the documented fatal message, then SIGABRT', () => {
    const r = runScript(
      `const order = Uint32Array.from({ length: 128 }, (_, k) => 4 * k);
       const HEADROOM = 0;
       ${FILL_MAP_COUNT}
       native().regionTimedAccess(other.handle, order, true, 0n); // the stores, with no JS in between
       console.log('survived');`,
    );
    expect(r.signal).toBe('SIGABRT');
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(FATAL);
    expect(r.stderr).toMatch(/mmap\(\) failed: ENOMEM \(vm\.max_map_count reached, or out of memory\)/);
  });
});

describe('a real fork cannot reach the region (MADV_DONTFORK)', () => {
  it("a child forked while another thread holds the region lock still dies of its own bad store (it does not wait for the lock)", async () => {
    const region = CowRegion.create({ pages: 16384 });
    const readOnly = Mapping.create({ pages: 4 });
    readOnly.protect('r');
    const stopFlag = new SharedArrayBuffer(4);
    // A worker keeps the region lock busy (prepareWrite in a loop), so forks often copy it held.
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.index).then(({ CowView }) => {
         const v = CowView.attach(workerData.handle);
         const stop = new Int32Array(workerData.stop);
         parentPort.postMessage('running');
         while (Atomics.load(stop, 0) === 0) v.prepareWrite(0, 16384); // ~50 µs under the lock each
         v.release();
       });`,
      { eval: true, workerData: { index: DIST_INDEX, handle: region.root.handle, stop: stopFlag } },
    );
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    try {
      await new Promise((resolve) => worker.once('message', resolve));
      for (let i = 0; i < 8; i++) {
        const probe = forkAndStore([readOnly.address]);
        await expect(probe).rejects.toMatchObject({ code: 'ERR_CHILD_FAILED', message: expect.stringMatching(/killed by signal 11/) });
      }
    } finally {
      Atomics.store(new Int32Array(stopFlag), 0, 1);
      await exited;
      readOnly.unmap();
      region.close();
    }
  }, 120_000);

  it("Node's own fork() (child_process, which runs the region's pthread_atfork hooks) waits for the lock and releases it in the parent: a writer thread keeps going", async () => {
    const region = CowRegion.create({ pages: 16384 });
    const shared = new SharedArrayBuffer(8); // [0] stop, [1] writer iterations
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.index).then(({ CowView }) => {
         const v = CowView.attach(workerData.handle);
         const s = new Int32Array(workerData.shared);
         parentPort.postMessage('running');
         while (Atomics.load(s, 0) === 0) { v.prepareWrite(0, 16384); Atomics.add(s, 1, 1); }
         v.release();
       });`,
      { eval: true, workerData: { index: DIST_INDEX, handle: region.root.handle, shared } },
    );
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    const s = new Int32Array(shared);
    try {
      await new Promise((resolve) => worker.once('message', resolve));
      for (let i = 0; i < 10; i++) {
        const before = Atomics.load(s, 1);
        const r = spawnSync(process.execPath, ['-e', 'process.exit(7)']);
        expect(r.status).toBe(7);
        // The writer takes the lock again after the fork: its count moves on.
        const t0 = Date.now();
        while (Atomics.load(s, 1) <= before + 1 && Date.now() - t0 < 20_000) await new Promise((resolve) => setTimeout(resolve, 1));
        expect(Atomics.load(s, 1)).toBeGreaterThan(before + 1);
      }
    } finally {
      Atomics.store(s, 0, 1);
      await exited;
      region.close();
    }
  }, 120_000);

  it.each(['a view', 'the staging mapping'])("a forked child storing into %s dies; the parent's bytes are unchanged", async (target) => {
    const region = CowRegion.create({ pages: 8 });
    try {
      const u = new Uint8Array(region.root.buffer);
      u.fill(0x33);
      const address = target === 'a view' ? region.root.address : region.stagingAddress();
      const probe = forkAndStore([0n, 1n, 2n, 3n].map((i) => address + i * BigInt(pageSize())), 0xdead_beefn << 32n, 20_000);
      await expect(probe).rejects.toMatchObject({ code: 'ERR_CHILD_FAILED', message: expect.stringMatching(/killed by signal 11/) });
      expect(u.every((b) => b === 0x33)).toBe(true);
      expect(region.stats().faults).toBe(0);
    } finally {
      region.close();
    }
  });
});
