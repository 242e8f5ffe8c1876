/**
 * Text in the charts, laid out from measured widths: each style's font size and weight, a
 * string's width from the chart font's advance widths (fontMetrics.ts, measured in Chromium),
 * wrapping to a width, and the `<text>` element, whose length is pinned to the measured one
 * (textLength) so that a viewer's substitute font cannot make it run into its neighbours.
 */
import { BOLD, CHART_FONT, REGULAR } from './fontMetrics.js';

export type TextStyle = 'title' | 'legend' | 'tick' | 'axis-label' | 'note';

interface StyleDef {
  size: number;
  bold: boolean;
  fill: string;
}

export const TEXT_STYLES: Readonly<Record<TextStyle, StyleDef>> = {
  title: { size: 13, bold: true, fill: '#222' },
  legend: { size: 11, bold: false, fill: '#333' },
  tick: { size: 11, bold: false, fill: '#333' },
  'axis-label': { size: 12, bold: false, fill: '#222' },
  note: { size: 10, bold: false, fill: '#555' },
};

/** Height of one line of a style: its size plus the leading the layout keeps between lines. */
export function lineHeight(style: TextStyle): number {
  return Math.ceil(TEXT_STYLES[style].size * 1.3);
}

// A character the font table lacks is taken as wide as 'M', the widest common letter: too
// wide leaves a gap, too narrow would let text collide.
const FALLBACK = REGULAR['M']!;

/** Width in px of `s` drawn in `style`, from the measured advance widths (kerning off). */
export function textWidth(s: string, style: TextStyle): number {
  const { size, bold } = TEXT_STYLES[style];
  const table = bold ? BOLD : REGULAR;
  let units = 0;
  for (const ch of s) units += table[ch] ?? FALLBACK;
  return (units * size) / 1000;
}

/** A word wider than `width` split into pieces that fit (a long identifier in a bar label). */
function splitWord(word: string, width: number, style: TextStyle): string[] {
  const out: string[] = [];
  let piece = '';
  for (const ch of word) {
    if (piece && textWidth(piece + ch, style) > width) {
      out.push(piece);
      piece = ch;
    } else {
      piece += ch;
    }
  }
  if (piece) out.push(piece);
  return out;
}

/** `text` broken at spaces into lines no wider than `width` px (measured, not guessed). */
export function wrapToWidth(text: string, width: number, style: TextStyle): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const pieces = textWidth(word, style) > width ? splitWord(word, width, style) : [word];
    for (const piece of pieces) {
      const joined = line ? `${line} ${piece}` : piece;
      if (line && textWidth(joined, style) > width) {
        out.push(line);
        line = piece;
      } else {
        line = joined;
      }
    }
  }
  if (line) out.push(line);
  return out;
}

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface TextOptions {
  anchor?: 'start' | 'middle' | 'end';
  /** SVG transform, e.g. a rotation for the y axis label. */
  transform?: string;
}

const r1 = (v: number) => Math.round(v * 10) / 10;

/** A `<text>` element; its length is the measured width, so the layout holds in any font. */
export function svgText(x: number, y: number, s: string, style: TextStyle, o: TextOptions = {}): string {
  const anchor = o.anchor && o.anchor !== 'start' ? ` text-anchor="${o.anchor}"` : '';
  const transform = o.transform ? ` transform="${o.transform}"` : '';
  const len = r1(textWidth(s, style));
  return `<text x="${r1(x)}" y="${r1(y)}" class="${style}"${anchor}${transform} textLength="${len}" lengthAdjust="spacingAndGlyphs">${escapeXml(s)}</text>`;
}

/** CSS for the text styles: the font the widths were measured in, then its metric twins. */
export function textCss(): string {
  const rules = (Object.entries(TEXT_STYLES) as [TextStyle, StyleDef][]).map(
    ([name, d]) => `svg.chart .${name} { font-size: ${d.size}px;${d.bold ? ' font-weight: 700;' : ''} fill: ${d.fill}; }`,
  );
  return [`svg.chart text { font-family: "${CHART_FONT}", Arimo, Arial, Helvetica, sans-serif; font-kerning: none; }`, ...rules].join('\n');
}
