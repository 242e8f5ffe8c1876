/**
 * Randomized snapshot / write / read / prepareWrite / release sequences against a plain
 * model: every view is an independent copy of bytes (what COW must look like), plus the
 * algorithm's bookkeeping (which pages share a frame, page states, counters). After every
 * operation: every byte of every live view, every page state, every reference count, the
 * sharing structure (pages share a frame exactly when the model says they share one), frames
 * in use and the counters must equal the model's.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { CowRegion, PAGE_STATE, type CowView, type RegionPopulate } from '../../src/internal.js';
import { mulberry32 } from '../../src/util/prng.js';
import { firstDiff } from './helpers.js';

const PS = 4096;
const { untouched: UNTOUCHED, zeroPage: ZERO, cow: COW, writable: WRITABLE } = PAGE_STATE;

interface ModelView {
  view: CowView;
  /** Some page ever got a frame (the kernel's anon_vma): only then does fork copy zero pages. */
  anon: boolean;
  state: Uint8Array;
  /** view.protect(…, 'r'): a store there would kill the process, so the test makes none. */
  readOnly: Uint8Array;
  token: Int32Array; // -1: no frame
  bytes: Uint8Array;
}

class Model {
  readonly views: ModelView[] = [];
  readonly count = new Map<number, number>();
  readonly counters = { copies: 0, reuses: 0, zeroFills: 0, zeroMaps: 0, faults: 0 };
  #next = 0;

  constructor(
    readonly pages: number,
    readonly policy: 'lazy' | 'eager' | number, // number: faultAround K
  ) {}

  root(view: CowView, populate: RegionPopulate): void {
    const m: ModelView = { view, anon: populate === 'write', state: new Uint8Array(this.pages), readOnly: new Uint8Array(this.pages), token: new Int32Array(this.pages).fill(-1), bytes: new Uint8Array(this.pages * PS) };
    for (let p = 0; p < this.pages; p++) {
      if (populate === 'read') m.state[p] = ZERO;
      if (populate === 'write') {
        m.state[p] = WRITABLE;
        m.token[p] = this.#newToken();
      }
    }
    this.views.push(m);
  }

  #newToken(): number {
    const t = this.#next++;
    this.count.set(t, 1);
    return t;
  }

  #drop(t: number): void {
    const c = this.count.get(t)! - 1;
    if (c === 0) this.count.delete(t);
    else this.count.set(t, c);
  }

  #copy(m: ModelView, p: number): void {
    m.anon = true;
    this.#drop(m.token[p]!);
    m.token[p] = this.#newToken();
    m.state[p] = WRITABLE;
    this.counters.copies++;
  }

  #fill(m: ModelView, p: number): void {
    m.anon = true;
    m.token[p] = this.#newToken();
    m.state[p] = WRITABLE;
    this.counters.zeroFills++;
  }

  /** One page made writable as prepareWrite does (no fault, no fault-around). */
  #breakOne(m: ModelView, p: number): void {
    const s = m.state[p]!;
    if (s === WRITABLE) return;
    if (s === UNTOUCHED || s === ZERO) this.#fill(m, p);
    else if (this.count.get(m.token[p]!) === 1) {
      m.state[p] = WRITABLE;
      this.counters.reuses++;
    } else this.#copy(m, p);
  }

  /** fork({ wipe: true }): nothing shared, every page untouched, the protection inherited. */
  wipeFork(src: ModelView, view: CowView): ModelView {
    const m: ModelView = { view, anon: false, state: new Uint8Array(this.pages), readOnly: src.readOnly.slice(), token: new Int32Array(this.pages).fill(-1), bytes: new Uint8Array(this.pages * PS) };
    this.views.push(m);
    return m;
  }

  fork(src: ModelView, view: CowView): ModelView {
    const m: ModelView = { view, anon: src.anon, state: new Uint8Array(this.pages), readOnly: src.readOnly.slice(), token: new Int32Array(this.pages).fill(-1), bytes: src.bytes.slice() };
    for (let p = 0; p < this.pages; p++) {
      const s = src.state[p]!;
      if (s === UNTOUCHED || s === ZERO) {
        m.state[p] = s === ZERO && src.anon ? ZERO : UNTOUCHED;
      } else if (this.policy === 'eager') {
        m.token[p] = this.#newToken();
        m.state[p] = WRITABLE;
        this.counters.copies++;
      } else {
        src.state[p] = COW;
        m.state[p] = COW;
        m.token[p] = src.token[p]!;
        this.count.set(m.token[p]!, this.count.get(m.token[p]!)! + 1);
      }
    }
    this.views.push(m);
    return m;
  }

  /** A one-byte store into page p at offset off. */
  store(m: ModelView, p: number, off: number, value: number): void {
    m.bytes[p * PS + off] = value;
    const s = m.state[p]!;
    if (s === WRITABLE) return;
    this.counters.faults++;
    if (s === COW && this.count.get(m.token[p]!)! > 1 && typeof this.policy === 'number') {
      // faultAround: the following shared COW pages of this view, up to K, in the same fault.
      let end = p + 1;
      while (end < this.pages && end - p <= this.policy && m.state[end] === COW && m.readOnly[end] === 0 && this.count.get(m.token[end]!)! > 1) end++;
      for (let q = p; q < end; q++) this.#copy(m, q);
      return;
    }
    this.#breakOne(m, p);
  }

  load(m: ModelView, p: number): void {
    if (m.state[p] !== UNTOUCHED) return;
    m.state[p] = ZERO;
    this.counters.faults++;
    this.counters.zeroMaps++;
  }

  /** False (and nothing changes) when the range holds a read-only page. */
  prepareWrite(m: ModelView, start: number, end: number): boolean {
    if (m.readOnly.subarray(start, end).some((x) => x === 1)) return false;
    for (let p = start; p < end; p++) this.#breakOne(m, p);
    return true;
  }

  protect(m: ModelView, start: number, end: number, readOnly: boolean): void {
    m.readOnly.fill(readOnly ? 1 : 0, start, end);
  }

  release(m: ModelView): void {
    for (let p = 0; p < this.pages; p++) if (m.token[p]! >= 0) this.#drop(m.token[p]!);
    this.views.splice(this.views.indexOf(m), 1);
  }
}

/** Compares everything the model predicts with what the region says and holds. */
function check(region: CowRegion, model: Model, where: string): void {
  const problems: string[] = [];
  const tokenToFrame = new Map<number, number>();
  const frameToToken = new Map<number, number>();
  for (const m of model.views) {
    const t = m.view.pageTable();
    const v = `view ${m.view.handle}`;
    const u = new Uint8Array(m.view.buffer);
    for (let p = 0; p < model.pages; p++) {
      if (t.state[p] !== m.state[p]) problems.push(`${v} page ${p}: state ${t.state[p]}, model ${m.state[p]}`);
      if (t.readOnly[p] !== m.readOnly[p]) problems.push(`${v} page ${p}: read-only ${t.readOnly[p]}, model ${m.readOnly[p]}`);
      const tok = m.token[p]!;
      if (tok < 0) {
        if (t.refcount[p] !== 0) problems.push(`${v} page ${p}: has a frame, model has none`);
      } else {
        const f = t.frame[p]!;
        if (t.refcount[p] !== model.count.get(tok)) problems.push(`${v} page ${p}: count ${t.refcount[p]}, model ${model.count.get(tok)}`);
        if (tokenToFrame.has(tok) && tokenToFrame.get(tok) !== f) problems.push(`${v} page ${p}: the model shares it, the frames differ`);
        if (frameToToken.has(f) && frameToToken.get(f) !== tok) problems.push(`${v} page ${p}: shares frame ${f}, the model does not share it`);
        tokenToFrame.set(tok, f);
        frameToToken.set(f, tok);
      }
      if (m.state[p] === UNTOUCHED) continue; // a load there would map the zero page
      const diff = firstDiff(u.subarray(p * PS, (p + 1) * PS), m.bytes.subarray(p * PS, (p + 1) * PS));
      if (diff >= 0) problems.push(`${v} page ${p}: byte ${diff} differs from the model`);
    }
  }
  const s = region.stats();
  if (s.framesInUse !== model.count.size) problems.push(`frames in use ${s.framesInUse}, model ${model.count.size}`);
  if (s.views.length !== model.views.length) problems.push(`${s.views.length} views, model ${model.views.length}`);
  const { copies, reuses, zeroFills, zeroMaps, faults } = s;
  expect({ problems: problems.slice(0, 10), counters: { copies, reuses, zeroFills, zeroMaps, faults } }, where).toEqual({
    problems: [],
    counters: model.counters,
  });
}

const POLICIES = [
  { name: 'lazy', policy: 'lazy' as const, model: 'lazy' as const },
  { name: 'eager', policy: 'eager' as const, model: 'eager' as const },
  { name: 'faultAround:3', policy: 'faultAround:3' as const, model: 3 },
];
const POPULATE: RegionPopulate[] = ['none', 'read', 'write'];
const CASES = POLICIES.flatMap((p) => POPULATE.map((populate) => ({ ...p, populate })));

let live: CowRegion | undefined;
afterEach(() => {
  live?.close();
  live = undefined;
});

describe('randomized sequences against a copying model', () => {
  it.each(CASES)('$name, populate $populate: content, states, counts, frames and counters after every operation', ({ policy, model: mp, populate }) => {
    const pages = 24;
    for (const seed of [1, 2, 3]) {
      const rnd = mulberry32(seed * 7919 + pages);
      const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      const int = (n: number) => Math.floor(rnd() * n);
      const region = (live = CowRegion.create({ pages, policy, populate, batchFrames: 8 }));
      const model = new Model(pages, mp);
      let loadMismatches = 0;
      model.root(region.root, populate);
      check(region, model, `seed ${seed} start`);
      for (let op = 0; op < 160; op++) {
        const m = pick(model.views);
        const r = rnd();
        let what: string;
        if (r < 0.02 && model.views.length < 7) {
          what = 'fork (wipe)';
          model.wipeFork(m, m.view.fork({ wipe: true }));
        } else if (r < 0.15 && model.views.length < 7) {
          what = 'fork';
          model.fork(m, m.view.fork());
        } else if (r < 0.55) {
          // Stores: one byte per page, pages in a random order or an ascending run.
          const run = rnd() < 0.5;
          const start = int(pages);
          const n = 1 + int(run ? 8 : 4);
          const u = new Uint8Array(m.view.buffer);
          what = `store ${run ? 'run' : 'scatter'}`;
          for (let i = 0; i < n; i++) {
            const p = run ? Math.min(start + i, pages - 1) : int(pages);
            if (m.readOnly[p] === 1) continue; // it would kill the process (tested apart)
            const off = int(PS);
            const value = 1 + int(255);
            u[p * PS + off] = value;
            model.store(m, p, off, value);
          }
        } else if (r < 0.7) {
          what = 'load';
          const p = int(pages);
          const off = int(PS);
          // The loaded value is used (compared), so the JIT cannot drop the load.
          const value = new Uint8Array(m.view.buffer)[p * PS + off];
          if (value !== m.bytes[p * PS + off]) loadMismatches++;
          model.load(m, p);
        } else if (r < 0.8) {
          const a = int(pages + 1);
          const b = int(pages + 1);
          const [lo, hi] = [Math.min(a, b), Math.max(a, b)];
          what = `prepareWrite ${lo}..${hi}`;
          let threw = false;
          try {
            m.view.prepareWrite(lo, hi);
          } catch (err) {
            threw = true;
            expect(err).toMatchObject({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/was made read-only with view\.protect\(\)/) });
          }
          expect(threw, `${what}: throws exactly when the range holds a read-only page`).toBe(!model.prepareWrite(m, lo, hi));
          if (!threw) {
            // Bulk writes into the prepared range take no fault.
            new Uint8Array(m.view.buffer, lo * PS, (hi - lo) * PS).fill(op & 0xff);
            m.bytes.fill(op & 0xff, lo * PS, hi * PS);
          }
        } else if (r < 0.86) {
          const a = int(pages);
          const b = Math.min(pages, a + 1 + int(6));
          const ro = rnd() < 0.5;
          what = `protect ${a}..${b} ${ro ? 'r' : 'rw'}`;
          m.view.protect(a, b, ro ? 'r' : 'rw');
          model.protect(m, a, b, ro);
        } else if (model.views.length > 1) {
          what = 'release';
          m.view.release();
          model.release(m);
        } else {
          what = 'nothing';
        }
        check(region, model, `seed ${seed} op ${op} (${what})`);
        expect(loadMismatches, `seed ${seed} op ${op}: loaded values that differ from the model`).toBe(0);
      }
      region.close();
      live = undefined;
    }
  });
});
