/**
 * vmsplicePin against the real kernel: the vmsplice cases of cow.c on every backing, checked byte
 * by byte, and the MAP_SHARED control showing that the probe does see a write through a pin.
 */
import { describe, expect, it } from 'vitest';

import { environment } from '../../src/index.js';
import { PIN_CASES, vmsplicePin, type PinBacking } from '../../src/probes/pins.js';
import { descendants } from '../helpers/processes.js';

const thp = environment().thp.enabled !== 'never' && environment().thp.enabled !== null;
const PRIVATE: PinBacking[] = ['base', ...(thp ? (['thp', 'thp-pte'] as const) : [])];

describe('a vmsplice pin of private memory', () => {
  it.each(PIN_CASES.flatMap((c) => PRIVATE.map((b) => ({ c, b }))))('never shows the other process\'s later write: $c on $b', async ({ c, b }) => {
    const r = await vmsplicePin({ case: c, backing: b });
    expect(r.transferred).toBeGreaterThan(0);
    expect(r.transferred).toBeLessThanOrEqual(r.size);
    expect(r.garbled).toBe(0);
    if (r.hugePage) expect(r.leaked).toBe(0);
    expect(descendants()).toEqual([]);
  });
});

describe('the MAP_SHARED control', () => {
  it.each(PIN_CASES)('shows every byte of the other process\'s write through the pin: %s', async (c) => {
    const r = await vmsplicePin({ case: c, backing: 'shared' });
    expect(r.leaked).toBe(r.transferred);
    expect(r.transferred).toBe(r.size);
  });
});

describe('bad input', () => {
  it('names the field', async () => {
    await expect(vmsplicePin({ case: 'sideways' as never, backing: 'base' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', field: 'case' });
    await expect(vmsplicePin({ case: 'in-child', backing: 'hugetlb' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION', field: 'backing' });
  });
});
