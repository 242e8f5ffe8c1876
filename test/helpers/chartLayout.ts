/**
 * Headless Chromium (Debian's /usr/bin/chromium through playwright-core; nothing is
 * downloaded) and what it sees of the report's charts: per `svg.chart`, its size, its marks,
 * every pair of text boxes that overlap, every text that leaves the chart, and every text
 * whose width in the chart font differs from the width the layout measured for it.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

type Page = import('playwright-core').Page;

/** Opens a page in a throwaway profile, runs `fn`, closes everything. */
export async function withPage<T>(fn: (page: Page) => Promise<T>): Promise<T> {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'cowlab-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    return await fn(await browser.newPage());
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

export interface ChartLayout {
  title: string;
  width: number;
  height: number;
  marks: number;
  visibleMarks: number;
  texts: number;
  /** Pairs of texts whose boxes overlap by more than OVERLAP_PX in both directions. */
  overlaps: [string, string][];
  /** Texts whose box reaches outside the chart. */
  outside: string[];
  /** Texts whose natural width in the page's font is off the measured one by > 3 %
   *  (only when the chart font is installed: otherwise null). */
  widthErrors: string[] | null;
}

/** Boxes touching by less than this (anti-aliasing, a shared edge) are not an overlap. */
export const OVERLAP_PX = 0.5;

/**
 * The layout of every chart on the page, measured by the browser (getBoundingClientRect of
 * each `<text>`, so rotated labels count with their rotated box).
 */
export async function chartLayouts(page: Page): Promise<ChartLayout[]> {
  // (tsconfig has no DOM lib: the elements are typed by what is used)
  type Box = { left: number; right: number; top: number; bottom: number; width: number; height: number };
  type El = {
    getBoundingClientRect(): Box;
    getBBox(): { width: number; height: number };
    getComputedTextLength(): number;
    getAttribute(n: string): string | null;
    removeAttribute(n: string): void;
    setAttribute(n: string, v: string): void;
    querySelectorAll(s: string): Iterable<El>;
    querySelector(s: string): El | null;
    textContent: string | null;
  };
  return page.$$eval(
    'svg.chart',
    (svgs, px) => {
      // Whether the chart font is installed: a missing one falls back to the generic family,
      // measuring as wide as that family alone (FontFaceSet.check says true for any system font).
      type Ctx = { font: string; measureText(s: string): { width: number } };
      const doc = (globalThis as unknown as { document: { createElement(t: 'canvas'): { getContext(k: '2d'): Ctx } } }).document;
      const ctx = doc.createElement('canvas').getContext('2d');
      const sameAs = (generic: string) => {
        ctx.font = `20px "Liberation Sans", ${generic}`;
        const w = ctx.measureText('The quick brown fox 0123456789').width;
        ctx.font = `20px ${generic}`;
        return w === ctx.measureText('The quick brown fox 0123456789').width;
      };
      const fontInstalled = !(sameAs('monospace') && sameAs('serif'));
      return (svgs as unknown as El[]).map((svg) => {
        const box = svg.getBoundingClientRect();
        const marks = [...svg.querySelectorAll('.mark')].map((m) => m.getBBox());
        const texts = [...svg.querySelectorAll('text')];
        const rects = texts.map((t) => ({ s: t.textContent ?? '', b: t.getBoundingClientRect() }));
        const overlaps: [string, string][] = [];
        for (let i = 0; i < rects.length; i++) {
          for (let j = i + 1; j < rects.length; j++) {
            const a = rects[i]!.b;
            const b = rects[j]!.b;
            const dx = Math.min(a.right, b.right) - Math.max(a.left, b.left);
            const dy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
            if (dx > px && dy > px) overlaps.push([rects[i]!.s, rects[j]!.s]);
          }
        }
        const outside = rects.filter(({ b }) => b.left < box.left - px || b.right > box.right + px || b.top < box.top - px || b.bottom > box.bottom + px).map((r) => r.s);
        let widthErrors: string[] | null = null;
        if (fontInstalled) {
          // The natural width (textLength removed) against the one the layout measured.
          widthErrors = [];
          for (const t of texts) {
            const want = Number(t.getAttribute('textLength'));
            t.removeAttribute('textLength');
            const got = t.getComputedTextLength();
            t.setAttribute('textLength', String(want));
            if (!(want > 0) || Math.abs(got - want) > Math.max(1, want * 0.03)) widthErrors.push(`${t.textContent}: ${got.toFixed(1)} px, measured ${want}`);
          }
        }
        return {
          title: svg.querySelector('title')?.textContent ?? '',
          width: box.width,
          height: box.height,
          marks: marks.length,
          visibleMarks: marks.filter((b) => b.width > 0 || b.height > 0).length,
          texts: texts.length,
          overlaps,
          outside,
          widthErrors,
        };
      });
    },
    OVERLAP_PX,
  );
}
