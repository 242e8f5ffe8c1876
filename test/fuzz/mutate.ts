/**
 * Mutations of JSON documents for the fuzzers: each picks a place in the document (by an index
 * into its list of paths) and deletes it, replaces it with another JSON value, repeats an
 * array's element, or stretches a number or string to an extreme.
 */
import fc from 'fast-check';

export type Mutation =
  | { kind: 'delete'; at: number }
  | { kind: 'replace'; at: number; value: unknown }
  | { kind: 'repeat'; at: number; times: number }
  | { kind: 'extreme'; at: number; pick: number };

const EXTREMES: unknown[] = [-1, 0, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, 0.5, '', 'x'.repeat(10_000), '\u001b[2J\nmatched', null, [], {}, true];

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), times: fc.integer({ min: 2, max: 60 }) }),
  fc.record({ kind: fc.constant('extreme' as const), at: fc.nat(), pick: fc.nat({ max: EXTREMES.length - 1 }) }),
);

type Path = (string | number)[];

function paths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  if (at.length > 0) out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

/** Applies `m` to (a copy of) `doc`. */
export function mutate(doc: unknown, m: Mutation): unknown {
  const copy = structuredClone(doc);
  const all = paths(copy);
  if (all.length === 0) return m.kind === 'replace' ? m.value : copy;
  const path = all[m.at % all.length]!;
  let parent = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const key = path[path.length - 1]!;
  switch (m.kind) {
    case 'delete':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      break;
    case 'replace':
      parent[key] = m.value;
      break;
    case 'repeat':
      if (Array.isArray(parent)) parent.splice(key as number, 0, ...Array.from({ length: m.times - 1 }, () => structuredClone(parent[key as number])));
      else parent[key] = Array.from({ length: m.times }, () => structuredClone(parent[key]));
      break;
    case 'extreme':
      parent[key] = structuredClone(EXTREMES[m.pick]);
      break;
  }
  return copy;
}
