/**
 * Writers in worker threads store into their own views of one region while the main thread
 * snapshots those views, writes into the snapshots, snapshots the snapshots and releases them.
 * Every snapshot of a writer's view must equal the writer's view after some prefix of its
 * stores (the fork guarantee: the snapshot is the view at one instant during fork()); every
 * view must end equal to its model, byte for byte. Zero mismatches over a long randomized run.
 */
import { Worker } from 'node:worker_threads';

import { describe, expect, it } from 'vitest';

import { CowRegion, type CowView } from '../../src/index.js';
import { mulberry32 } from '../../src/util/prng.js';
import { DIST_INDEX } from '../helpers/cli.js';

const PRNG = DIST_INDEX.replace(/index\.js$/, 'util/prng.js');

/** Replays a writer's stores: op i writes value(i) at word(i). */
class Writer {
  readonly words: Int32Array;
  readonly state: Uint32Array;
  applied = 0;

  constructor(
    readonly id: number,
    seed: number,
    ops: number,
    initial: Uint32Array,
  ) {
    const rnd = mulberry32(seed);
    this.words = new Int32Array(ops);
    for (let i = 0; i < ops; i++) this.words[i] = Math.floor(rnd() * initial.length);
    this.state = initial.slice();
  }

  value(i: number): number {
    return ((this.id << 24) | i) >>> 0;
  }

  advanceTo(k: number): void {
    for (; this.applied < k; this.applied++) this.state[this.words[this.applied]!] = this.value(this.applied);
  }

  /**
   * The model of the snapshot: the writer's state after ops [0, k) for the one k in
   * [from, to] that matches it exactly; null when none does.
   */
  prefixMatching(snapshot: Uint32Array, from: number, to: number): Uint32Array | null {
    this.advanceTo(from);
    const state = this.state.slice();
    const diff = new Set<number>();
    for (let w = 0; w < state.length; w++) if (snapshot[w] !== state[w]) diff.add(w);
    for (let k = from; ; k++) {
      if (diff.size === 0) return state;
      if (k >= Math.min(to, this.words.length)) return null;
      const w = this.words[k]!;
      state[w] = this.value(k);
      if (snapshot[w] === state[w]) diff.delete(w);
      else diff.add(w);
    }
  }
}

interface Snapshot {
  view: CowView;
  model: Uint32Array;
}

function mismatchedWords(view: CowView, model: Uint32Array): number {
  const words = new Uint32Array(view.buffer);
  let bad = 0;
  for (let w = 0; w < model.length; w++) if (words[w] !== model[w]) bad++;
  return bad;
}

describe('concurrency', () => {
  it.each(['lazy', 'faultAround:4', 'eager'] as const)(
    'policy %s: workers write their views while the main thread forks, writes and releases snapshots; zero mismatches',
    async (policy) => {
      const pages = 32;
      const writers = 3;
      const ops = 3_000_000;
      const region = CowRegion.create({ pages, policy });
      try {
        const root = new Uint32Array(region.root.buffer);
        for (let w = 0; w < root.length; w++) root[w] = (w * 2654435761) >>> 0;
        const progress = new SharedArrayBuffer(4 * writers);
        const done = new Int32Array(progress);
        const views = Array.from({ length: writers }, () => region.root.fork());
        const models = views.map((v, id) => new Writer(id, 1000 + id, ops, new Uint32Array(v.buffer).slice()));
        const workers = views.map(
          (v, id) =>
            new Worker(new URL('./writer.worker.mjs', import.meta.url), {
              workerData: { index: DIST_INDEX, prng: PRNG, handle: v.handle, progress, id, seed: 1000 + id, ops },
            }),
        );
        const exited = workers.map((w) => new Promise<number>((resolve, reject) => { w.once('exit', resolve); w.once('error', reject); }));

        const rnd = mulberry32(7);
        const int = (n: number) => Math.floor(rnd() * n);
        const snapshots: Snapshot[] = [];
        let bad = 0;
        let forks = 0;
        const running = () => Array.from(done).some((d) => d < ops);
        while (running() || forks < 50) {
          const r = rnd();
          if (r < 0.35 || snapshots.length === 0) {
            // Snapshot a writer's view while its worker stores into it.
            const id = int(writers);
            const before = Atomics.load(done, id);
            const view = views[id]!.fork();
            const after = Atomics.load(done, id);
            forks++;
            const model = models[id]!.prefixMatching(new Uint32Array(view.buffer), before, after + 1);
            if (model === null) bad++;
            snapshots.push({ view, model: model ?? new Uint32Array(view.buffer).slice() });
          } else if (r < 0.5) {
            const s = snapshots[int(snapshots.length)]!;
            snapshots.push({ view: s.view.fork(), model: s.model.slice() });
          } else if (r < 0.8) {
            const s = snapshots[int(snapshots.length)]!;
            const words = new Uint32Array(s.view.buffer);
            for (let i = 0; i < 16; i++) {
              const w = int(words.length);
              words[w] = s.model[w] = int(0xffff_ffff);
            }
          } else if (r < 0.85) {
            const s = snapshots[int(snapshots.length)]!;
            const p = int(pages);
            s.view.prepareWrite(p, Math.min(pages, p + 1 + int(4)));
          } else {
            const [s] = snapshots.splice(int(snapshots.length), 1);
            bad += mismatchedWords(s!.view, s!.model);
            s!.view.release();
          }
          if (snapshots.length > 12) {
            const [s] = snapshots.splice(0, 1);
            bad += mismatchedWords(s!.view, s!.model);
            s!.view.release();
          }
          if ((forks & 7) === 0) await new Promise((resolve) => setImmediate(resolve));
        }
        expect(await Promise.all(exited)).toEqual(new Array(writers).fill(0));
        for (const s of snapshots) bad += mismatchedWords(s.view, s.model);
        models.forEach((m, id) => {
          m.advanceTo(ops);
          bad += mismatchedWords(views[id]!, m.state);
        });
        expect(forks).toBeGreaterThanOrEqual(50);
        expect(bad).toBe(0);
        expect(region.stats().views.every((v) => v.attached === 0)).toBe(true);
      } finally {
        region.close();
      }
    },
    120_000,
  );

  it('the owner cannot release a view another thread has attached (ERR_BUSY)', async () => {
    const region = CowRegion.create({ pages: 4 });
    try {
      const view = region.root.fork();
      const worker = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
         import(workerData.index).then(({ CowView }) => {
           const v = CowView.attach(workerData.handle);
           new Uint8Array(v.buffer)[0] = 42;
           parentPort.postMessage('attached');
           parentPort.once('message', () => { v.release(); parentPort.postMessage('released'); });
         });`,
        { eval: true, workerData: { index: DIST_INDEX, handle: view.handle } },
      );
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      const next = () => new Promise((resolve) => worker.once('message', resolve));
      expect(await next()).toBe('attached');
      expect(new Uint8Array(view.buffer)[0]).toBe(42);
      expect(() => view.release()).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
      expect(() => region.close()).toThrow(expect.objectContaining({ code: 'ERR_BUSY' }));
      worker.postMessage('release');
      expect(await next()).toBe('released');
      await exited;
      view.release();
      expect(region.stats().views).toHaveLength(1);
    } finally {
      region.close();
    }
  });
});
