/** The cost model file and the simulator options: checked with the field named. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { DEFAULT_COST_MODEL, describeCostModel, isCalibrated, loadCostModel, parseCostModel } from '../../src/engines/sim/cost.js';
import { DEFAULT_SIM_OPTIONS, resolveSimOptions } from '../../src/engines/sim/options.js';
import { profileFor } from '../../src/engines/sim/profiles.js';

const calibrated = {
  version: 1,
  env: { kernel: '6.18.44', thp: 'madvise' },
  constants: { forkBaseNs: 100_000, forkPerPageNs: 10, copyNs: 5000, reuseNs: 1200, zeroFillNs: 3000, faultNs: 1000, accessNs: 20 },
  measuredAt: '2026-11-22T10:00:00Z',
};

describe('cost model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cowlab-cost-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the default is marked uncalibrated, and says so', () => {
    expect(isCalibrated(DEFAULT_COST_MODEL)).toBe(false);
    expect(describeCostModel(DEFAULT_COST_MODEL)).toMatch(/uncalibrated/);
  });

  it('loads a calibration file, filling hugeZeroFillNs when it has none', () => {
    const file = join(dir, 'cost.json');
    writeFileSync(file, JSON.stringify(calibrated));
    const m = loadCostModel(file);
    expect(isCalibrated(m)).toBe(true);
    expect(m.constants.copyNs).toBe(5000);
    expect(m.constants.hugeZeroFillNs).toBe(DEFAULT_COST_MODEL.constants.hugeZeroFillNs);
    expect(describeCostModel(m)).toBe('calibrated 2026-11-22T10:00:00Z on kernel 6.18.44');
  });

  it.each([
    { name: 'a missing constant', input: { ...calibrated, constants: { ...calibrated.constants, copyNs: undefined } }, message: /^costModel\.constants\.copyNs: is required/ },
    { name: 'a negative constant', input: { ...calibrated, constants: { ...calibrated.constants, faultNs: -1 } }, message: /^costModel\.constants\.faultNs: must be at least 0/ },
    { name: 'another version', input: { ...calibrated, version: 2 }, message: /^costModel\.version: must be 1, got 2/ },
  ])('rejects $name naming the field', ({ input, message }) => {
    expect(() => parseCostModel(input)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(message) }));
  });

  it('rejects a file that is missing or not JSON', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, 'not json');
    expect(() => loadCostModel(bad)).toThrow(/^costModel: not valid JSON/);
    expect(() => loadCostModel(join(dir, 'none.json'))).toThrow(/^costModel: cannot read .*no such file/);
  });
});

describe('simulator options', () => {
  it("default to the 6.18 profile (CONFIG_PAGE_MAPCOUNT, the huge zero page on)", () => {
    expect(resolveSimOptions()).toEqual(DEFAULT_SIM_OPTIONS);
    expect(DEFAULT_SIM_OPTIONS).toMatchObject(profileFor('6.18').options);
  });

  it.each([
    { options: { faultAroundPages: 3 }, message: /^faultAroundPages: must be a power of two, got 3/ },
    { options: { faultAroundPages: 1024 }, message: /^faultAroundPages: must be at most 512/ },
    { options: { thpPteReuse: 'sometimes' }, message: /^thpPteReuse: must be one of per-page, never, sole-reference, got 'sometimes'/ },
    { options: { reuse: 'yes' }, message: /^reuse: must be true or false/ },
    { options: { pmdExclusive: 'by-head' }, message: /^pmdExclusive: must be one of head-page, per-page, got 'by-head'/ },
    { options: { hugeZeroWrite: 'copy' }, message: /^hugeZeroWrite: must be one of huge-page, split, got 'copy'/ },
    { options: { mprotectUpgrade: 'all' }, message: /^mprotectUpgrade: must be one of pte-and-pmd, dirty-pte, none, got 'all'/ },
  ])('reject $options', ({ options, message }) => {
    expect(() => resolveSimOptions(options as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(message) }));
  });

  it('name CLI flags in errors when asked to', () => {
    expect(() => resolveSimOptions({ faultAroundPages: 0 }, (k) => `--${k}`)).toThrow(/^--faultAroundPages: must be a positive integer/);
  });
});
