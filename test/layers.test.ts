/**
 * Layers point one way (DESIGN.md, Layers; issue 10): trace -> engine -> observations ->
 * validate/stats -> report, with the CLI on top. Read from the sources' own imports (type
 * imports too: a layer that names another's types depends on it), transitively, so a module
 * cannot reach an upper layer through a helper either.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

import ts from 'typescript';
import { describe, expect, it } from 'vitest';

import { packageRoot } from '../src/util/package.js';

const ROOT = packageRoot();

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** Module (path from the package root) -> the modules of this package it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'experiments'))]) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const local = info.importedFiles.map((f) => f.fileName).filter((name) => name.startsWith('.'));
    graph.set(relative(ROOT, file), local.map((name) => relative(ROOT, resolve(dirname(file), name.replace(/\.js$/, '.ts')))));
  }
  return graph;
}

const graph = importGraph();

/** Every module `from` reaches, each with the chain of imports that reaches it. */
function reachable(from: string): Map<string, string[]> {
  const chains = new Map<string, string[]>([[from, [from]]]);
  const queue = [from];
  while (queue.length > 0) {
    const m = queue.shift()!;
    for (const next of graph.get(m) ?? []) {
      if (chains.has(next)) continue;
      chains.set(next, [...chains.get(m)!, next]);
      queue.push(next);
    }
  }
  return chains;
}

/** The first chain from a module under `layer` to a module `forbidden` matches, or null. */
function firstViolation(layer: string, forbidden: RegExp): string | null {
  for (const m of graph.keys()) {
    if (!m.startsWith(layer)) continue;
    for (const [to, chain] of reachable(m)) if (forbidden.test(to)) return chain.join(' -> ');
  }
  return null;
}

describe('layers point one way', () => {
  it('the graph is read (a check over nothing would pass)', () => {
    expect(graph.get('src/engines/sim/peak.ts')).toContain('src/trace/parse.ts');
  });

  it('engines/ does not reach report/, validate/, suite/ or cli/', () => {
    expect(firstViolation('src/engines/', /^src\/(report|validate|suite|cli)\//)).toBeNull();
  });

  it('trace/ checks the trace, not the machine: it reaches no engine, memory budget, environment or report', () => {
    expect(firstViolation('src/trace/', /^src\/(engines|memory|env|report|validate|suite|cli)\//)).toBeNull();
  });

  it('cli/ takes the experiments through the suite entry point (src/suite/index.ts), never directly', () => {
    const direct = [...graph].filter(([m, deps]) => m.startsWith('src/cli/') && deps.some((d) => d.startsWith('experiments/')));
    expect(direct.map(([m]) => m)).toEqual([]);
  });

  it('experiments/ measure through the library: none imports the native loader (src/native.ts)', () => {
    const direct = [...graph].filter(([m, deps]) => m.startsWith('experiments/') && deps.includes('src/native.ts'));
    expect(graph.has('experiments/fork-cost.ts')).toBe(true);
    expect(direct.map(([m]) => m)).toEqual([]);
  });
});
