/**
 * The run summary fits the terminal: with a width known ($COLUMNS, or the TTY's) the figure
 * column wraps under itself; piped without one, each experiment stays one line (for grep). The
 * full text is in results.json either way.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-width-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The summary table: the lines before the first empty one. */
const summary = (stdout: string) => stdout.split('\n\n')[0]!.split('\n');

describe('cowlab run summary width', () => {
  it('wraps the figures to $COLUMNS, every word of each figure kept in order', () => {
    const out = join(dir, 'narrow');
    const r = runCli(['run', '--quick', 'fd-sharing', 'pins', '--out', out], { env: { ...process.env, COLUMNS: '80' } });
    expect(r.status, r.stderr).toBe(0);
    const lines = summary(r.stdout);
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(80);
    const doc = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { experiments: { verdict: { figure: string } }[] };
    const col = lines[0]!.indexOf('measured here');
    const shown = lines.slice(1).map((l) => l.slice(col)).join(' ').split(/\s+/).filter(Boolean);
    expect(shown).toEqual(doc.experiments.flatMap((e) => e.verdict.figure.split(/\s+/)));
  });

  it('keeps one line per experiment when piped without a width', () => {
    const env = { ...process.env };
    delete env.COLUMNS;
    const r = runCli(['run', '--quick', 'fd-sharing', 'pins', '--out', join(dir, 'piped')], { env });
    expect(r.status, r.stderr).toBe(0);
    expect(summary(r.stdout)).toHaveLength(3);
  });
});
