/**
 * Fuzz: random sequences of calls on the userspace COW region, checked against a plain model
 * (a copy of every view's bytes). After every call each live view holds exactly what the model
 * says; bad calls throw a CowlabError; closing the region leaves no mapping and no fd behind.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { CowlabError } from '../../src/errors.js';
import type { CowPolicyInput } from '../../src/region/policy.js';
import { CowRegion, type CowView } from '../../src/region/region.js';
import { budget, Tally, timeoutOf } from './budget.js';

const tally = new Tally('region');
afterAll(() => tally.write());

const PAGE = 4096;

type Op =
  | { op: 'write'; view: number; offset: number; byte: number }
  | { op: 'fill'; view: number; page: number; byte: number }
  | { op: 'fork'; view: number; wipe: boolean }
  | { op: 'release'; view: number }
  | { op: 'prepareWrite'; view: number; start: number; end: number }
  | { op: 'bad'; view: number; start: number; end: number };

const opArb = (pages: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('write' as const), view: fc.nat(), offset: fc.nat({ max: pages * PAGE - 1 }), byte: fc.integer({ min: 0, max: 255 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('fill' as const), view: fc.nat(), page: fc.nat({ max: pages - 1 }), byte: fc.integer({ min: 0, max: 255 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('fork' as const), view: fc.nat(), wipe: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('release' as const), view: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('prepareWrite' as const), view: fc.nat(), start: fc.nat({ max: pages }), end: fc.nat({ max: pages }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('bad' as const), view: fc.nat(), start: fc.integer({ min: -3, max: pages + 3 }), end: fc.integer({ min: -3, max: pages + 3 }) }) },
  );

/** The region's own mappings and fds: its frames live in a memfd named cowlab-region. */
const mappings = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('memfd:cowlab-region')).length;
const fds = () =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).includes('memfd:cowlab-region');
    } catch {
      return false;
    }
  }).length;

function run(pages: number, policy: CowPolicyInput, populate: 'none' | 'write', ops: Op[]): void {
  const region = CowRegion.create({ pages, policy, populate });
  const live: { view: CowView; model: Uint8Array }[] = [{ view: region.root, model: new Uint8Array(region.root.buffer).slice() }];
  try {
    for (const o of ops) {
      const slot = live[o.view % live.length]!;
      switch (o.op) {
        case 'write':
          new Uint8Array(slot.view.buffer)[o.offset] = o.byte;
          slot.model[o.offset] = o.byte;
          break;
        case 'fill':
          new Uint8Array(slot.view.buffer, o.page * PAGE, PAGE).fill(o.byte);
          slot.model.fill(o.byte, o.page * PAGE, (o.page + 1) * PAGE);
          break;
        case 'fork': {
          const child = slot.view.fork({ wipe: o.wipe });
          live.push({ view: child, model: o.wipe ? new Uint8Array(pages * PAGE) : slot.model.slice() });
          break;
        }
        case 'release':
          if (live.length === 1) break; // keep one view to write into
          slot.view.release();
          live.splice(live.indexOf(slot), 1);
          expect(() => slot.view.buffer).toThrow(CowlabError);
          break;
        case 'prepareWrite':
          slot.view.prepareWrite(Math.min(o.start, o.end), Math.max(o.start, o.end));
          break;
        case 'bad': {
          const valid = o.start >= 0 && o.end <= pages && o.start <= o.end;
          if (valid) slot.view.prepareWrite(o.start, o.end);
          else expect(() => slot.view.prepareWrite(o.start, o.end)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
          break;
        }
      }
      tally.add(o.op);
      for (const l of live) expect(Buffer.compare(Buffer.from(l.view.buffer), Buffer.from(l.model))).toBe(0);
    }
  } finally {
    region.close();
  }
}

describe('fuzz: the userspace COW region', () => {
  it(
    'every view holds what a copy-per-view model says after every call, and close() leaves nothing',
    () => {
      const before = { maps: mappings(), fds: fds() };
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 12 }).chain((pages) =>
            fc.tuple(
              fc.constant(pages),
              fc.constantFrom('lazy', 'eager', 'faultAround:2', 'faultAround:4'),
              fc.constantFrom('none' as const, 'write' as const),
              fc.array(opArb(pages), { minLength: 1, maxLength: 40 }),
            ),
          ),
          ([pages, policy, populate, ops]) => run(pages, policy, populate, ops),
        ),
        budget('region', 150),
      );
      expect(mappings(), 'mappings of closed regions').toBe(before.maps);
      expect(fds(), 'memfds of closed regions').toBe(before.fds);
    },
    timeoutOf('region', 60_000),
  );
});
