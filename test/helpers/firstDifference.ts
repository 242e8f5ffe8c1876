/**
 * Where `a` and `b` first differ (a path like `processes.c1.heap.present[12]`), or null. Typed
 * arrays compare by type and bytes, numbers with Object.is (a time off by one bit differs), and
 * objects by their keys in order (observations are printed in that order).
 */
export function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return `${path}: ${String(a)} vs ${String(b)}`;
    const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    if (x.equals(y)) return null;
    const n = a as unknown as ArrayLike<number>;
    const m = b as unknown as ArrayLike<number>;
    for (let i = 0; i < Math.max(n.length, m.length); i++) if (n[i] !== m[i]) return `${path}[${i}]: ${n[i]} vs ${m[i]}`;
    return `${path}: lengths ${n.length} vs ${m.length}`;
  }
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) {
    return Object.is(a, b) ? null : `${path}: ${String(a)} vs ${String(b)}`;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.join() !== kb.join()) return `${path}: keys ${ka.join()} vs ${kb.join()}`;
  for (const k of ka) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    if (d !== null) return d;
  }
  return null;
}
