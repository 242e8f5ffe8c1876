/**
 * Byte amounts in words, for messages below the report layer: the engines' and the memory
 * budget's refusals say how much a trace needs ("it needs about 56.0 GiB"), and the data flows
 * one way (DESIGN.md, Layers), so they cannot ask report/ for it. report/format.ts re-exports
 * this, so every table and every message writes sizes the same way.
 */

/** 1536 -> "1.50 KiB", 1e12 -> "931.3 GiB": binary units, two decimals below 10, one above. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
