/**
 * Export formats for other tools: CSV (RFC 4180: comma-separated, CRLF line ends, a field
 * quoted when it holds a comma, quote or line break) and GitHub-flavoured markdown tables.
 * Numbers are written in full (JavaScript's shortest exact form): an export is data, not a
 * summary, so 65536 stays 65536 and 4620.5 stays 4620.5.
 */

export type Cell = string | number | boolean | null | undefined;

function csvField(v: Cell): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A CSV document: the header row, then one row per record. */
export function toCsv(head: readonly string[], rows: readonly (readonly Cell[])[]): string {
  return [head, ...rows].map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** A markdown table cell: pipes escaped, line breaks as spaces, never empty. */
function mdCell(v: Cell): string {
  if (v === null || v === undefined || v === '') return '-';
  const s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '-') : String(v);
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n|\r/g, ' ');
}

export type MdAlign = 'left' | 'right';

/** A markdown table (GitHub-flavoured), columns aligned as asked (left by default). */
export function markdownTable(head: readonly string[], rows: readonly (readonly Cell[])[], align: readonly MdAlign[] = []): string {
  const line = (cells: readonly Cell[]) => `| ${cells.map(mdCell).join(' | ')} |`;
  const rule = `| ${head.map((_, i) => (align[i] === 'right' ? '---:' : '---')).join(' | ')} |`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

/** Text for a markdown paragraph: line breaks kept as spaces, markdown's own characters as they are. */
export function markdownText(s: string): string {
  return s.replace(/\r?\n|\r/g, ' ');
}
