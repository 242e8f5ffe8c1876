/** Human formatting of the units cowlab reports. */

export function formatNs(ns: number | null | undefined): string {
  if (ns === null || ns === undefined || !Number.isFinite(ns)) return '-';
  if (ns < 1_000) return `${Math.round(ns)} ns`;
  if (ns < 1_000_000) return `${(ns / 1_000).toFixed(ns < 10_000 ? 2 : 1)} µs`;
  if (ns < 1_000_000_000) return `${(ns / 1_000_000).toFixed(ns < 10_000_000 ? 2 : 1)} ms`;
  return `${(ns / 1_000_000_000).toFixed(2)} s`;
}

/** Sizes are written below the report layer too (engine refusals): one definition, in util/. */
export { formatBytes } from '../util/units.js';

export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? 'n/a' : n.toLocaleString('en-US');
}

export function formatRatio(r: number | null | undefined): string {
  return r === null || r === undefined || !Number.isFinite(r) ? '-' : `${r.toFixed(2)}x`;
}

/**
 * Splits `text` into lines of at most `width` characters, at whitespace (a longer word keeps
 * its own line). The text reflows: its own newlines and tabs are word breaks like spaces;
 * any other control character is escaped (escapeControls), so no line can inject another.
 */
export function wrapText(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean).map(escapeControls)) {
    if (line && displayWidth(line) + 1 + displayWidth(word) > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * Control characters a terminal would act on: C0 (tab, newline, ESC, ...), DEL, C1 (CSI
 * U+009B, NEL U+0085, ...), and the Unicode line/paragraph separators and bidi embedding,
 * override and isolate controls, which reorder or break the text around them.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const CONTROLS = new RegExp(CONTROL.source, 'g');
const CONTROLS_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeOne(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
}

/**
 * `text` safe to print on a terminal: every control character shown as an escape (`\n`,
 * `\r`, `\t`, `\x1b`, `\x9b`, `\u202e`), everything else (non-ASCII letters, '✗', 'µ')
 * unchanged. Apply it wherever user-supplied text (trace names, descriptions, file paths)
 * reaches text output; JSON output needs none (JSON.stringify escapes). Idempotent.
 */
export function escapeControls(text: string): string {
  return CONTROL.test(text) ? text.replace(CONTROLS, escapeOne) : text;
}

/** escapeControls for text of several lines: its '\n's stay line breaks. */
export function escapeControlsKeepingLines(text: string): string {
  return CONTROL.test(text) ? text.replace(CONTROLS_BUT_NEWLINE, escapeOne) : text;
}

/** East Asian Wide and Fullwidth ranges (the ones string-width 4 and cli-table3 count as 2 columns). */
function isWide(c: number): boolean {
  return (
    c >= 0x1100 &&
    (c <= 0x115f || // Hangul Jamo
      c === 0x2329 ||
      c === 0x232a ||
      (c >= 0x2e80 && c <= 0x3247 && c !== 0x303f) || // CJK Radicals .. Enclosed CJK Letters
      (c >= 0x3250 && c <= 0x4dbf) || // .. CJK Unified Ideographs Extension A
      (c >= 0x4e00 && c <= 0xa4c6) || // CJK Unified Ideographs .. Yi Radicals
      (c >= 0xa960 && c <= 0xa97c) || // Hangul Jamo Extended-A
      (c >= 0xac00 && c <= 0xd7a3) || // Hangul Syllables
      (c >= 0xf900 && c <= 0xfaff) || // CJK Compatibility Ideographs
      (c >= 0xfe10 && c <= 0xfe19) || // Vertical Forms
      (c >= 0xfe30 && c <= 0xfe6b) || // CJK Compatibility Forms .. Small Form Variants
      (c >= 0xff01 && c <= 0xff60) || // Fullwidth Forms
      (c >= 0xffe0 && c <= 0xffe6) ||
      (c >= 0x1b000 && c <= 0x1b001) || // Kana Supplement
      (c >= 0x1f200 && c <= 0x1f251) || // Enclosed Ideographic Supplement
      (c >= 0x20000 && c <= 0x3fffd)) // CJK Extension B .. Tertiary Ideographic Plane
  );
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
/** An emoji a terminal draws two columns wide: a flag, a keycap, or an emoji with its modifiers and ZWJ joins. */
const WIDE_EMOJI =
  /\p{Regional_Indicator}{2}|[#*0-9]\uFE0F?\u20E3|(?:\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F)\p{Emoji_Modifier}?(?:\u200D(?:\p{Emoji_Presentation}|\p{Extended_Pictographic}\uFE0F?)\p{Emoji_Modifier}?)*/gu;

/**
 * How many terminal columns `text` takes, as string-width (what cli-table3 measured with)
 * counts them: one per character, two for East Asian wide characters and emoji, none for
 * control characters and combining diacritical marks (U+0300..U+036F). 'µ', '✗', '–', 'é'
 * are one column each.
 */
export function displayWidth(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length;
  let width = 0;
  for (const ch of text.replace(WIDE_EMOJI, '  ')) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) continue;
    if (c >= 0x300 && c <= 0x36f) continue;
    width += isWide(c) ? 2 : 1;
  }
  return width;
}
