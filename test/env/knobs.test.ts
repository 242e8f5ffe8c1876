/**
 * Global knobs change only inside a guest cowlab booted (src/env/knobs.ts): on this host a knob
 * is read, never written, and what needs another value is not measurable, saying so. The guest
 * side is pinned by test/guest/runner.test.ts (overcommit's strict case measured in a guest).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { environment } from '../../src/env/environment.js';
import { knobName, readKnob, withKnob } from '../../src/env/knobs.js';

const OVERCOMMIT = '/proc/sys/vm/overcommit_memory';
const host = environment().guest === null;

describe.runIf(host)('on a host (not a guest cowlab booted)', () => {
  it('refuses to change a knob, names it with both values and the way to run in a guest, and leaves it as it was', async () => {
    const before = readFileSync(OVERCOMMIT, 'utf8').trim();
    const other = before === '2' ? '1' : '2';
    let ran = false;
    await expect(withKnob(environment(), OVERCOMMIT, other, async () => (ran = true))).rejects.toMatchObject({
      code: 'ERR_NOT_MEASURABLE',
      message: `needs vm.overcommit_memory = ${other} (here ${before}), a global setting cowlab changes only inside a guest it booted: run it with --kernel (e.g. --kernel debian:6.12)`,
    });
    expect(ran).toBe(false);
    expect(readFileSync(OVERCOMMIT, 'utf8').trim()).toBe(before);
  });

  it('runs what needs the value the knob already has, without writing it', async () => {
    const before = readKnob(OVERCOMMIT)!;
    await expect(withKnob(environment(), OVERCOMMIT, before, async () => 'ran')).resolves.toBe('ran');
  });
});

describe('knob names and reads', () => {
  it('names a sysctl by its dotted name and reads it trimmed; a knob this kernel lacks reads null', () => {
    expect(knobName(OVERCOMMIT)).toBe('vm.overcommit_memory');
    expect(knobName('/sys/kernel/mm/ksm/run')).toBe('/sys/kernel/mm/ksm/run');
    expect(readKnob(OVERCOMMIT)).toMatch(/^[012]$/);
    expect(readKnob('/proc/sys/vm/no_such_knob')).toBeNull();
  });
});

describe('readKnob of a choice knob', () => {
  it.each([
    ['always inherit madvise [never]\n', 'never'],
    ['[always] madvise never\n', 'always'],
    ['100\n', '100'],
  ])('reads %j as %j (the selected word is what a write takes)', (text, want) => {
    const dir = mkdtempSync(join(tmpdir(), 'cowlab-knob-'));
    try {
      writeFileSync(join(dir, 'knob'), text);
      expect(readKnob(join(dir, 'knob'))).toBe(want);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the THP mode this kernel shows selected', () => {
    const path = '/sys/kernel/mm/transparent_hugepage/enabled';
    const raw = readKnobRaw(path);
    if (raw === null) expect(readKnob(path)).toBeNull();
    else expect(readKnob(path)).toBe(/\[(\w+)\]/.exec(raw)![1]);
  });
});

function readKnobRaw(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}
