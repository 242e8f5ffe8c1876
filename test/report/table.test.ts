/**
 * Text tables (src/report/table.ts) and the text helpers behind them (src/report/format.ts):
 * the borderless layout cli-table3 drew (header first, columns padded to the widest cell in
 * terminal columns plus two spaces, left or right aligned), kept exactly, in time linear in
 * the rows (issue 11, row 3); and control characters escaped wherever text is shown (row 11).
 */
import { describe, expect, it } from 'vitest';

import type { TraceObservations } from '../../src/engines/types.js';
import { simulateTrace } from '../../src/engines/sim/engine.js';
import { displayWidth, escapeControls, escapeControlsKeepingLines, wrapText } from '../../src/report/format.js';
import { observationsTable, traceHeader } from '../../src/report/observationsTable.js';
import { markdownTable, table, wrappedTable } from '../../src/report/table.js';
import { parseTrace } from '../../src/trace/parse.js';

/** Every line of `text` and its width in terminal columns. */
const widths = (text: string) => text.split('\n').map(displayWidth);

describe('table: layout', () => {
  it('puts the header first and pads every column to its widest cell plus two spaces', () => {
    expect(table(['name', 'n'], [['a', 1], ['bbbbbb', 22]])).toBe(
      [
        'name     n  ',
        'a        1  ',
        'bbbbbb  22  ',
      ].join('\n'),
    );
  });

  it('aligns the first column left and the others right by default', () => {
    expect(table(['k', 'v', 'w'], [['x', '1', '1'], ['yy', '333', '22']])).toBe(
      [
        'k     v   w  ',
        'x     1   1  ',
        'yy  333  22  ',
      ].join('\n'),
    );
  });

  it('follows the alignment given per column; a column without one is left-aligned', () => {
    expect(table(['a', 'b', 'c'], [['1', '1', '1'], ['222', '222', '222']], ['right', 'left'])).toBe(
      [
        '  a  b    c    ',
        '  1  1    1    ',
        '222  222  222  ',
      ].join('\n'),
    );
  });

  it('shows numbers as their String()', () => {
    expect(table(['x'], [[0], [-1.5], [1e21]])).toBe(['x      ', '0      ', '-1.5   ', '1e+21  '].join('\n'));
  });

  it('an empty table is the header line; no header and no rows is the empty string', () => {
    expect(table(['page', 'pfn'], [])).toBe('page  pfn  ');
    expect(table([], [])).toBe('');
    expect(table([], [[], []])).toBe('');
  });

  it('without a header the rows stand alone', () => {
    expect(table([], [['a', 'b'], ['cc', 'd']], ['left', 'right'])).toBe(['a   b  ', 'cc  d  '].join('\n'));
  });

  it('empty cells take the column width', () => {
    expect(table(['a', 'b'], [['', ''], ['x', 'yyy']])).toBe(['a    b  ', ' '.repeat(8), 'x  yyy  '].join('\n'));
  });

  it('a ragged row is padded with empty cells, and a row longer than the header gets its columns', () => {
    const t = table(['h1', 'h2', 'h3'], [['a'], ['b', 'c', 'd', 'eeee'], []], ['left', 'left', 'left', 'right']);
    expect(t).toBe(
      [
        'h1  h2  h3        ',
        'a                 ',
        'b   c   d   eeee  ',
        '                  ',
      ].join('\n'),
    );
    expect(new Set(widths(t))).toEqual(new Set([18]));
  });
});

describe('table: widths in terminal columns', () => {
  it.each([
    ['✗', 1], ['µs', 2], ['–', 1], ['é', 1], ['Ω', 1], ['→', 1], ['≈', 1], ['×', 1],
    ['e\u0301', 1], // e + combining acute
    ['漢字', 4], ['ｱ', 1], ['한', 2], ['Ａ', 2], // fullwidth A
    ['😀', 2], ['🚀x', 3], ['👍🏽', 2], ['🇩🇪', 2], ['1️⃣', 2], ['☝️', 2],
    ['', 0], ['plain ascii', 11],
  ])('%s is %i columns', (text, n) => {
    expect(displayWidth(text)).toBe(n);
  });

  it('pads single-width non-ASCII characters like ASCII ones', () => {
    const t = table(['metric', 'value', 'ok'], [['write', '12.5 µs', '✗'], ['fork – child', '3 ms', '-']]);
    expect(t).toBe(
      [
        'metric          value  ok  ',
        'write         12.5 µs   ✗  ',
        'fork – child     3 ms   -  ',
      ].join('\n'),
    );
  });

  it('pads wide characters by their two columns', () => {
    const t = table(['k', 'v'], [['漢字', '😀'], ['abcde', 'x']], ['left', 'left']);
    expect(t).toBe(['k      v   ', '漢字   😀  ', 'abcde  x   '].join('\n'));
    expect(new Set(widths(t))).toEqual(new Set([11]));
  });
});

describe('table: control characters', () => {
  it('escapes them in every cell and in the header, so a row stays one line', () => {
    const t = table(['name\n', 'n'], [['evil\x1b[2K\r19 matched\nfake', 1], ['tab\there', 2]]);
    expect(t.split('\n')).toHaveLength(3);
    expect(t).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(t).toContain('evil\\x1b[2K\\r19 matched\\nfake');
    expect(t).toContain('tab\\there');
    expect(t.split('\n')[0]).toMatch(/^name\\n +n {2}$/);
    expect(new Set(widths(t)).size).toBe(1);
  });

  it('a markdown table escapes them too', () => {
    expect(markdownTable(['a'], [['x\ny|z']])).toBe('| a |\n|---|\n| x\\ny\\|z |');
  });
});

describe('table: size', () => {
  // 65,536 rows took cli-table3 minutes (its layout was quadratic in the rows); the timing
  // comparison is bench/table-speed. Here: every row of a pagemap-sized table is right.
  it('renders a 65,536-row table with every line laid out', () => {
    const n = 65_536;
    const rows = Array.from({ length: n }, (_, i) => [i, `0x${(0x7f0000000000 + i * 4096).toString(16)}`, i % 3 ? 'yes' : '.', i % 5 ? '✗' : '-', `${i % 1000}.5 µs`]);
    const t = table(['page', 'address', 'present', 'x', 'time'], rows);
    const lines = t.split('\n');
    expect(lines).toHaveLength(n + 1);
    expect(lines[0]).toBe('page          address  present  x      time  ');
    expect(lines[1]).toBe('0      0x7f0000000000        .  -    0.5 µs  ');
    expect(lines[n]).toBe('65535  0x7f000ffff000        .  -  535.5 µs  ');
    expect(lines[2]).toBe('1      0x7f0000001000      yes  ✗    1.5 µs  ');
    expect(new Set(widths(t))).toEqual(new Set([45]));
  });
});

describe('escapeControls', () => {
  it.each([
    ['\n', '\\n'], ['\r', '\\r'], ['\t', '\\t'], ['\x1b[31m', '\\x1b[31m'], ['\x00', '\\x00'], ['\x07', '\\x07'],
    ['\x7f', '\\x7f'], ['\x9b', '\\x9b'], ['\x85', '\\x85'], ['\u2028', '\\u2028'], ['\u202e', '\\u202e'], ['\u2066', '\\u2066'],
  ])('shows %j as %s', (raw, shown) => {
    expect(escapeControls(`a${raw}b`)).toBe(`a${shown}b`);
  });

  it('keeps ordinary text, non-ASCII letters and symbols included, unchanged', () => {
    for (const s of ['fork-child-writes-all', 'Größe naïve 漢字 Ωµ✗–→ 😀 e\u0301', 'back\\slash', '\u00a0nbsp']) expect(escapeControls(s)).toBe(s);
  });

  it('is idempotent', () => {
    const once = escapeControls('x\x1b\n\u202e\\y');
    expect(escapeControls(once)).toBe(once);
  });

  it('escapeControlsKeepingLines keeps the line breaks of text of several lines', () => {
    expect(escapeControlsKeepingLines('a\x1b[2K\rb\nc\td')).toBe('a\\x1b[2K\\rb\nc\\td');
  });
});

describe('wrapText', () => {
  it('reflows the text at whitespace, its newlines included, and escapes other controls', () => {
    expect(wrapText('one two\nthree \x1b[31mred\r\n19 matched', 14)).toEqual(['one two three', '\\x1b[31mred 19', 'matched']);
  });
});

describe('traceHeader and observationsTable', () => {
  const trace = parseTrace({
    name: 'evil\x1b[2K\r19 matched, 0 mismatched\nfake',
    description: 'line one\nline two \x1b]0;title\x07 \x9b31m',
    regions: [{ id: 'heap', pages: 4 }],
    steps: [{ op: 'fork', proc: 'p0', child: 'c1' }, { op: 'write', proc: 'c1', region: 'heap', pages: { start: 0, end: 2 } }],
  });

  it('shows a trace name and description with their control characters escaped', () => {
    const lines = traceHeader(trace, 'simulate');
    expect(lines).toEqual([
      'simulate: evil\\x1b[2K\\r19 matched, 0 mismatched\\nfake',
      '  line one line two \\x1b]0;title\\x07 \\x9b31m',
      'region heap: 4 pages, private anon, populate write',
    ]);
  });

  it('prints one table row per step and region (the layout of simulate and run-trace)', () => {
    const obs: TraceObservations = simulateTrace(trace);
    const [t] = observationsTable(obs, 'predicted');
    const lines = t!.split('\n');
    expect(lines).toHaveLength(1 + obs.steps.length);
    expect(lines[0]).toMatch(/^ step {2}op {10}proc {2}region {2}copies {2}reuses {2}zeroFills {2}faults {2}frames {2}\s+time {2}\s+p0 {2}\s+c1 {2}$/);
    expect(lines[3]).toMatch(/^ {4}1 {2}write 0\.\.2 {2}c1 {4}heap {9}2 {7}0 {10}0 {7}2 {7}6 +\S+ µs {2}4\/2\/2\/0 {2}4\/2\/2\/0 {2}$/);
    expect(new Set(widths(t!)).size).toBe(1);
  });
});

describe('wrappedTable', () => {
  const head = ['#', 'name', 'what'];
  const rows = [['1', 'alpha', 'one two three four five six seven eight nine ten'], ['2', 'b', 'short']];

  it('wraps the last column under itself so every line fits the width, keeping every word in order', () => {
    const text = wrappedTable(head, rows, ['right', 'left', 'left'], 24, 5);
    const lines = text.split('\n').map((l) => l.trimEnd());
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(24);
    const col = lines[0]!.indexOf('what');
    expect(lines[0]).toMatch(/^#\s+name\s+what$/);
    expect(lines.slice(1).map((l) => l.slice(col)).join(' ').split(/\s+/).filter(Boolean)).toEqual([...rows[0]![2]!.split(' '), 'short']);
    // Continuation lines leave the other cells empty.
    expect(lines[2]!.slice(0, col).trim()).toBe('');
    expect(lines.filter((l) => /^\s*2\s+b\s+short$/.test(l))).toHaveLength(1);
  });

  it('keeps a word longer than the room whole, and gives the last column at least its minimum', () => {
    expect(wrapText('a verylongwordindeed b', 6)).toEqual(['a', 'verylongwordindeed', 'b']);
    const lines = wrappedTable(head, rows, ['right', 'left', 'left'], 5, 10).split('\n');
    expect(lines[1]!.trimEnd()).toMatch(/one two$/);
  });
});
