/** The built-in scenarios: all valid, small, described, and reachable by name or path. */
import { describe, expect, it } from 'vitest';

import { listScenarios, loadScenario, resolveTraceArg } from '../../src/trace/scenarios.js';

const REQUIRED = [
  'fork-child-writes-all',
  'fork-child-writes-half',
  'fork-child-writes-none',
  'fork-parent-writes-child-alive',
  'fork-parent-writes-after-exit',
  'fork-exec',
  'three-procs-quarter-each',
  'fork-chain',
  'zero-page-read-then-write',
  'shared-anon',
  'dontfork',
  'wipeonfork',
  'mprotect-ro-rw',
  'thp-fork-write',
  'memfd-private-write',
];

describe('built-in scenarios', () => {
  const all = listScenarios();

  it('cover every case the issue lists', () => {
    expect(all.map((s) => s.name)).toEqual(expect.arrayContaining(REQUIRED));
  });

  it.each(all.map((s) => ({ name: s.name })))('$name is a valid, small, described trace named after its file', ({ name }) => {
    const t = loadScenario(name);
    expect(t.name).toBe(name);
    expect(t.description?.length ?? 0).toBeGreaterThan(40);
    for (const r of t.regions) {
      expect(r.pages).toBeGreaterThanOrEqual(256);
      expect(r.pages).toBeLessThanOrEqual(2048);
      if (r.thp) expect(r.pages % 512).toBe(0);
    }
  });
});

describe('resolveTraceArg', () => {
  it('takes a scenario name or a trace file path', () => {
    expect(resolveTraceArg('fork-exec').name).toBe('fork-exec');
    const path = listScenarios().find((s) => s.name === 'dontfork')!.path;
    expect(resolveTraceArg(path).name).toBe('dontfork');
  });

  it('lists the scenarios when the argument is neither', () => {
    expect(() => resolveTraceArg('no-such-thing')).toThrow(
      expect.objectContaining({
        code: 'ERR_INVALID_OPTION',
        message: expect.stringMatching(/^trace: 'no-such-thing' is neither a trace file nor a scenario \(scenarios: .*fork-child-writes-all/),
      }),
    );
  });

  it('says a missing path is missing', () => {
    expect(() => resolveTraceArg('./nope/trace.json')).toThrow(/^trace: no file '\.\/nope\/trace\.json'/);
  });

  it('rejects an unknown scenario name in loadScenario', () => {
    expect(() => loadScenario('../etc/passwd')).toThrow(/^scenario: no scenario '\.\.\/etc\/passwd'/);
  });
});
