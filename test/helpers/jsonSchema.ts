/**
 * A small JSON Schema (draft 2020-12) validator for the tests: the keywords `cowlab schema`
 * emits (type, properties, required, additionalProperties, propertyNames, items, enum, const,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, anyOf, oneOf, allOf, if/then/else,
 * $ref into #/$defs). An unknown keyword is an error, so a schema this cannot check fails the
 * test instead of passing unchecked. Returns the problems found, each with its JSON path.
 */
type Schema = Record<string, unknown> | boolean;

const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', 'default', 'examples', '$defs', '$comment', 'format']);
const KNOWN = new Set([
  ...ANNOTATIONS, 'type', 'properties', 'required', 'additionalProperties', 'propertyNames', 'items', 'enum', 'const',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'anyOf', 'oneOf', 'allOf', 'if', 'then', 'else', '$ref',
]);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function hasType(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
}

const equal = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function validateJsonSchema(root: Schema, value: unknown): string[] {
  const errors: string[] = [];
  const resolveRef = (ref: string): Schema => {
    const m = /^#\/\$defs\/(.+)$/.exec(ref);
    const defs = (root as Record<string, unknown>).$defs as Record<string, Schema> | undefined;
    const target = m ? defs?.[m[1]!] : undefined;
    if (target === undefined) throw new Error(`unresolvable $ref ${ref}`);
    return target;
  };
  const check = (s: Schema, v: unknown, path: string, out: string[]): void => {
    if (s === true) return;
    if (s === false) {
      out.push(`${path}: not allowed`);
      return;
    }
    for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`${path}: keyword ${k} is not supported by this validator`);
    if (typeof s.$ref === 'string') check(resolveRef(s.$ref), v, path, out);
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
      if (!types.some((t) => hasType(v, t))) {
        out.push(`${path}: expected ${types.join(' or ')}, got ${typeOf(v)}`);
        return;
      }
    }
    if (s.const !== undefined && !equal(s.const, v)) out.push(`${path}: expected ${JSON.stringify(s.const)}`);
    if (Array.isArray(s.enum) && !s.enum.some((e) => equal(e, v))) out.push(`${path}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
    if (typeof v === 'number') {
      if (typeof s.minimum === 'number' && v < s.minimum) out.push(`${path}: ${v} < minimum ${s.minimum}`);
      if (typeof s.maximum === 'number' && v > s.maximum) out.push(`${path}: ${v} > maximum ${s.maximum}`);
      if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) out.push(`${path}: ${v} <= exclusiveMinimum ${s.exclusiveMinimum}`);
      if (typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) out.push(`${path}: ${v} >= exclusiveMaximum ${s.exclusiveMaximum}`);
    }
    if (typeOf(v) === 'object') {
      const o = v as Record<string, unknown>;
      const props = (s.properties ?? {}) as Record<string, Schema>;
      for (const r of (s.required ?? []) as string[]) if (!(r in o)) out.push(`${path}: missing required ${r}`);
      for (const [k, val] of Object.entries(o)) {
        if (k in props) check(props[k]!, val, `${path}.${k}`, out);
        else if (s.additionalProperties !== undefined) check(s.additionalProperties as Schema, val, `${path}.${k}`, out);
        if (s.propertyNames !== undefined) check(s.propertyNames as Schema, k, `${path}[key ${k}]`, out);
      }
    }
    if (Array.isArray(v) && s.items !== undefined) v.forEach((x, i) => check(s.items as Schema, x, `${path}[${i}]`, out));
    const passes = (sub: Schema) => {
      const o: string[] = [];
      check(sub, v, path, o);
      return o.length === 0;
    };
    if (Array.isArray(s.allOf)) for (const sub of s.allOf as Schema[]) check(sub, v, path, out);
    if (Array.isArray(s.anyOf) && !(s.anyOf as Schema[]).some(passes)) out.push(`${path}: matches none of anyOf`);
    if (Array.isArray(s.oneOf) && (s.oneOf as Schema[]).filter(passes).length !== 1) out.push(`${path}: does not match exactly one of oneOf`);
    if (s.if !== undefined) {
      if (passes(s.if as Schema)) {
        if (s.then !== undefined) check(s.then as Schema, v, path, out);
      } else if (s.else !== undefined) check(s.else as Schema, v, path, out);
    }
  };
  check(root, value, '$', errors);
  return errors;
}
