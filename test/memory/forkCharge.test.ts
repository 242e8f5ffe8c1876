/**
 * forkChargeBytes: what a fork of a process adds to Committed_AS, from its smaps VmFlags. Real
 * mappings of this process: a private writable one counts whole, a shared one not at all, and
 * MADV_DONTFORK takes it out again (a fork does not copy it).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { Mapping } from '../../src/memory/mapping.js';
import { forkChargeBytes } from '../../src/memory/smaps.js';

const MiB = 2 ** 20;
const PAGES = (16 * MiB) / 4096;
/** Node's own heap may grow a little between two reads: a 16 MiB change stands well above it. */
const SLACK = 2 * MiB;
let maps: Mapping[] = [];
// The first mapping loads the addon, whose writable data segments count too (2.7 MiB here).
beforeAll(() => Mapping.create({ pages: 1 }).unmap());
afterEach(() => {
  for (const m of maps) m.unmap();
  maps = [];
});

describe('forkChargeBytes', () => {
  it('counts a private writable mapping whole, untouched pages too (the charge is of the promise)', () => {
    const before = forkChargeBytes('self');
    maps.push(Mapping.create({ pages: PAGES, backing: 'anon-private' }));
    expect(Math.abs(forkChargeBytes('self') - before - 16 * MiB)).toBeLessThan(SLACK);
  });

  it('does not count a shared mapping: a fork shares it, promising nothing', () => {
    const before = forkChargeBytes('self');
    maps.push(Mapping.create({ pages: PAGES, backing: 'anon-shared' }));
    expect(Math.abs(forkChargeBytes('self') - before)).toBeLessThan(SLACK);
  });

  it('leaves out a MADV_DONTFORK mapping: the fork does not copy it', () => {
    const m = Mapping.create({ pages: PAGES, backing: 'anon-private' });
    maps.push(m);
    const counted = forkChargeBytes('self');
    m.advise('dontfork');
    expect(Math.abs(counted - forkChargeBytes('self') - 16 * MiB)).toBeLessThan(SLACK);
  });
});
