/**
 * The package's entry points as a user reaches them, by name through package.json "exports"
 * (a package may require and import itself): 'cowlab' (the public API), 'cowlab/suite' and
 * 'cowlab/internal' (the building blocks, no stability promise), from ES modules and from
 * CommonJS (Node >= 20.19 loads the ES module with require()).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { packageRoot } from '../../src/util/package.js';

function exportedNames(how: 'import' | 'require', entry: string): string[] {
  const script = how === 'import'
    ? `const m = await import(${JSON.stringify(entry)}); console.log(JSON.stringify(Object.keys(m)));`
    : `const m = require(${JSON.stringify(entry)}); console.log(JSON.stringify(Object.keys(m)));`;
  const args = how === 'import' ? ['--input-type=module', '-e', script] : ['--input-type=commonjs', '-e', script];
  const r = spawnSync(process.execPath, args, { cwd: packageRoot(), encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr, `${how} ${entry}`).toBe('');
  expect(r.status).toBe(0);
  return (JSON.parse(r.stdout) as string[]).filter((k) => k !== 'default' && k !== '__esModule').sort();
}

describe('package entry points', () => {
  it.each(['cowlab', 'cowlab/suite', 'cowlab/internal'])('%s gives the same exports to require() as to import', (entry) => {
    const imported = exportedNames('import', entry);
    expect(imported.length).toBeGreaterThan(10);
    expect(exportedNames('require', entry)).toEqual(imported);
  });

  it('keeps decoders, table helpers and option resolvers out of the public API and in cowlab/internal', () => {
    const pub = new Set(exportedNames('import', 'cowlab'));
    const internal = new Set(exportedNames('import', 'cowlab/internal'));
    for (const name of ['compactPages', 'kernelWriteValue', 'checkInvariants', 'parseVmstat', 'loadNative', 'resolveForkWriteOptions', 'PAGE_STATE']) {
      expect(pub.has(name), `${name} in cowlab`).toBe(false);
      expect(internal.has(name), `${name} in cowlab/internal`).toBe(true);
    }
    for (const name of pub) expect(internal.has(name), `${name}: cowlab/internal re-exports the public API`).toBe(true);
    for (const name of ['forkWrite', 'readPagemap', 'KernelEngine', 'SimEngine', 'validateTrace', 'CowRegion', 'compareTracking', 'watchFork', 'CowlabError']) {
      expect(pub.has(name), `${name} in cowlab`).toBe(true);
    }
  });

  it('runs the public API from CommonJS: a real fork-write through require("cowlab")', () => {
    const script = `const { forkWrite } = require('cowlab');
      forkWrite({ pages: 64, pattern: 'rand', repeats: 1, warmup: 0 }).then((r) => console.log(JSON.stringify(r.runs.map((x) => x.child.faults))));`;
    const r = spawnSync(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: packageRoot(), encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([64]);
  });
});
