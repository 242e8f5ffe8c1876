/**
 * Plain-text tables: borderless, the header row first, every column padded to its widest cell
 * (in terminal columns) plus two spaces, each column aligned left or right. The same layout
 * cli-table3 drew with `padding-right: 2` and no borders, in time linear in the number of
 * cells (cli-table3's layout pass was quadratic in the rows: 8,000 rows took 15 s).
 */
import { displayWidth, escapeControls, wrapText } from './format.js';

export type Align = 'left' | 'right';

/** The space after every cell, the last one included. */
const GAP = 2;

/**
 * A borderless table: `head` as the first row (none when empty), then `rows`. Every cell is
 * shown with its control characters escaped (escapeControls), so a cell is always one line.
 * `align` per column; default: the first column left, the others right; a column without an
 * entry is left-aligned. A row shorter than the widest one is padded with empty cells.
 */
export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[], align?: readonly Align[]): string {
  const aligns = align ?? head.map((_, i) => (i === 0 ? 'left' : 'right'));
  const all = head.length > 0 ? [head, ...rows] : rows;
  const text = all.map((r) => r.map((c) => escapeControls(String(c))));
  const cellWidths = text.map((r) => r.map(displayWidth));
  const widths: number[] = [];
  for (const r of cellWidths) r.forEach((w, i) => (widths[i] = Math.max(widths[i] ?? 0, w)));
  if (widths.length === 0) return '';
  const spaces = ' '.repeat(Math.max(0, ...widths) + GAP);
  const lines = text.map((r, y) =>
    widths
      .map((width, x) => {
        const cell = r[x] ?? '';
        const pad = spaces.slice(0, width - (cellWidths[y]![x] ?? 0));
        return `${aligns[x] === 'right' ? pad + cell : cell + pad}${spaces.slice(0, GAP)}`;
      })
      .join(''),
  );
  return lines.join('\n');
}

/** A GitHub-flavoured markdown table (docs/kernels.md is checked against one). */
export function markdownTable(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map((c) => escapeControls(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

/**
 * `table()` whose wrapping columns (the last one by default) wrap so that every line fits
 * `maxWidth` terminal columns: a wrapped cell continues on the following lines, under itself,
 * the other cells empty there (the header wraps the same way). The room left by the other
 * columns is shared by the wrapping ones, the last getting what the others leave; each keeps
 * at least `minWidth` columns (a very narrow terminal still wraps the line).
 */
export function wrappedTable(
  head: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[],
  maxWidth: number,
  minWidth = 12,
  wrap: readonly number[] = [head.length - 1],
): string {
  const all = [head, ...rows].map((r) => r.map((c) => escapeControls(c)));
  const natural = head.map((_, i) => Math.max(...all.map((r) => displayWidth(r[i] ?? ''))));
  const fixed = natural.reduce((s, w, i) => s + (wrap.includes(i) ? 0 : w) + GAP, 0) + wrap.length * GAP;
  let room = Math.max(wrap.length * minWidth, maxWidth - fixed);
  const widths = new Map<number, number>();
  wrap.forEach((col, k) => {
    const share = k === wrap.length - 1 ? room : Math.min(natural[col]!, Math.max(minWidth, Math.floor(room * 0.4)));
    widths.set(col, Math.max(minWidth, share));
    room -= share;
  });
  const out: string[][] = [];
  for (const r of all) {
    const pieces = head.map((_, i) => (widths.has(i) ? wrapText(r[i] ?? '', widths.get(i)!) : [r[i] ?? '']));
    const height = Math.max(1, ...pieces.map((p) => p.length));
    for (let k = 0; k < height; k++) out.push(pieces.map((p) => p[k] ?? ''));
  }
  return table([], out, align);
}
