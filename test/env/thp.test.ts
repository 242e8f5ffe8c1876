/**
 * The one THP probe (src/env/thp.ts) and its three readers: environment() records it, the
 * kernel engine says from it whether a THP region can run, the suite whether an experiment's
 * THP requirement is met; each in the words it always used. The knobs of this host are never
 * changed: the probe is pointed at a directory of files written like sysfs writes them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { KernelEngine } from '../../src/engines/kernel/engine.js';
import { environment, type Environment } from '../../src/env/environment.js';
import { anonThpUnavailable, readThp, shmemThpUnavailable, THP_DIR } from '../../src/env/thp.js';
import { unmetRequirement } from '../../src/suite/requirements.js';
import { parseTrace } from '../../src/trace/parse.js';

const root = mkdtempSync(join(tmpdir(), 'cowlab-thp-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A directory laid out as /sys/kernel/mm/transparent_hugepage, with these files. */
function sysfs(name: string, files: Record<string, string>): string {
  const dir = mkdtempSync(join(root, `${name}-`));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

describe('readThp: what sysfs says', () => {
  it('reads the chosen mode of each knob, the huge zero page and the PMD size', () => {
    const dir = sysfs('madvise', {
      enabled: 'always [madvise] never\n',
      defrag: 'always defer defer+madvise [madvise] never\n',
      shmem_enabled: 'always within_size advise [never] deny force\n',
      use_zero_page: '1\n',
      hpage_pmd_size: '2097152\n',
    });
    expect(readThp(dir)).toEqual({ enabled: 'madvise', defrag: 'madvise', shmemEnabled: 'never', useZeroPage: true, hugePageSize: 2097152 });
  });

  it('gives null for every knob of a kernel without THP (no directory)', () => {
    expect(readThp(join(root, 'absent'))).toEqual({ enabled: null, defrag: null, shmemEnabled: null, useZeroPage: null, hugePageSize: null });
  });

  it('is what environment() records', () => {
    const t = readThp();
    const env = environment();
    expect(env.thp).toEqual({ enabled: t.enabled, defrag: t.defrag, useZeroPage: t.useZeroPage });
    expect(env.hugePageSize).toBe(t.hugePageSize);
    expect(THP_DIR).toBe('/sys/kernel/mm/transparent_hugepage');
  });
});

describe('whether memory can get huge pages', () => {
  it.each([
    { enabled: null, anon: 'absent' },
    { enabled: 'never', anon: 'never' },
    { enabled: 'madvise', anon: null },
    { enabled: 'always', anon: null },
  ])('private anonymous, enabled $enabled -> $anon', ({ enabled, anon }) => {
    expect(anonThpUnavailable({ enabled })).toBe(anon);
  });

  it.each([
    { shmemEnabled: null, shmem: 'absent' },
    { shmemEnabled: 'never', shmem: 'never' },
    { shmemEnabled: 'deny', shmem: 'deny' },
    { shmemEnabled: 'advise', shmem: null },
    { shmemEnabled: 'within_size', shmem: null },
    { shmemEnabled: 'always', shmem: null },
    { shmemEnabled: 'force', shmem: null },
  ])('shmem, shmem_enabled $shmemEnabled -> $shmem', ({ shmemEnabled, shmem }) => {
    expect(shmemThpUnavailable({ shmemEnabled })).toBe(shmem);
  });
});

describe('the suite words it as it always did', () => {
  const env = environment();
  const withThp = (enabled: string | null): Environment => ({ ...env, thp: { ...env.thp, enabled } });

  it.each([
    { enabled: null, reason: 'needs transparent huge pages: this kernel has none (no /sys/kernel/mm/transparent_hugepage)' },
    { enabled: 'never', reason: 'needs transparent huge pages: THP is disabled (transparent_hugepage/enabled is never)' },
    { enabled: 'madvise', reason: null },
    { enabled: 'always', reason: null },
  ])('enabled $enabled', ({ enabled, reason }) => {
    expect(unmetRequirement({ thp: true }, withThp(enabled), Number.MAX_SAFE_INTEGER)).toBe(reason);
  });
});

describe('the kernel engine says what the probe says of this host', () => {
  const engine = new KernelEngine();
  const trace = (region: Record<string, unknown>) => parseTrace({ name: 'thp', regions: [{ id: 'huge', pages: 512, ...region }], steps: [] });
  const thp = readThp();

  it('for a private anonymous THP region', () => {
    const missing = anonThpUnavailable(thp);
    const expected =
      missing === 'absent' ? "region 'huge' asks for THP, but this kernel has no transparent huge pages"
      : missing === 'never' ? "region 'huge' asks for THP, but transparent_hugepage/enabled is 'never' here"
      : null;
    expect(engine.supports(trace({ thp: true }))).toBe(expected);
  });

  it('for a region without THP: nothing about THP is asked', () => {
    expect(engine.supports(trace({}))).toBeNull();
  });
});
