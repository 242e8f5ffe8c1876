/** CSV and markdown export primitives: quoting, escaping, numbers in full. */
import { describe, expect, it } from 'vitest';

import { markdownTable, toCsv } from '../../src/report/export.js';

describe('toCsv', () => {
  it('quotes a field with a comma, quote or line break (RFC 4180) and ends every row with CRLF', () => {
    expect(toCsv(['a', 'b'], [['x,y', 'say "hi"'], ['line\nbreak', 'plain']])).toBe('a,b\r\n"x,y","say ""hi"""\r\n"line\nbreak",plain\r\n');
  });

  it('writes numbers in full and leaves null, undefined and non-finite numbers empty', () => {
    expect(toCsv(['n'], [[65536], [4620.5], [0.1 + 0.2], [null], [undefined], [Number.NaN], [true]])).toBe('n\r\n65536\r\n4620.5\r\n0.30000000000000004\r\n\r\n\r\n\r\ntrue\r\n');
  });
});

describe('markdownTable', () => {
  it('escapes pipes, flattens line breaks, marks empty cells and right-aligns as asked', () => {
    expect(markdownTable(['k', 'v'], [['a|b', 'two\nlines'], ['', null]], ['left', 'right'])).toBe(
      '| k | v |\n| --- | ---: |\n| a\\|b | two lines |\n| - | - |',
    );
  });
});
