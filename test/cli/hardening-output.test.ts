/**
 * Text output as a hostile trace makes it (issue 11, rows 3 and 11): a long trace prints in
 * time linear in its steps, and a trace name, description or file name holding escape codes
 * and newlines cannot drive the terminal or print a line of its own (a fake "19 matched"):
 * every control character is shown escaped, in tables, trace headers and error messages.
 * JSON output keeps the text as it is (JSON.stringify escapes it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import type { TraceObservationsJson } from '../../src/engines/observations.js';
import { CowlabError } from '../../src/errors.js';
import { reportError } from '../../src/cli/run.js';
import { displayWidth } from '../../src/report/format.js';
import { runCli, type CliResult } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-output-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function traceFile(name: string, doc: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

/** Any control character but the line breaks between lines: ESC, CR, BEL, C1 (CSI), DEL. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;
/** What an injected line would look like: a summary line of validate. */
const FAKE = /^\d+ matched/;

const EVIL_NAME = 'evil\x1b[2K\r19 matched, 0 mismatched, 0 not measurable here\nfake';
const EVIL_DESCRIPTION = 'one\n19 matched\x1b]0;owned\x07 \x9b2J \x7f\r\n';
const evilTrace = {
  name: EVIL_NAME,
  description: EVIL_DESCRIPTION,
  regions: [{ id: 'heap', pages: 4 }],
  steps: [
    { op: 'fork', proc: 'p0', child: 'c1' },
    { op: 'write', proc: 'c1', region: 'heap', pages: { start: 0, end: 2 } },
  ],
};

/** The name as text output shows it. */
const SHOWN_NAME = 'evil\\x1b[2K\\r19 matched, 0 mismatched, 0 not measurable here\\nfake';

function expectEscaped(text: string): void {
  expect(text).not.toMatch(RAW_CONTROL);
  expect(text.split('\n').filter((l) => FAKE.test(l))).toEqual([]);
}

/** Exit 2 and one line on stderr, with no raw control character in it. */
function expectOneEscapedLine(r: CliResult): string {
  expect(r.status).toBe(2);
  expect(r.stderr).not.toMatch(RAW_CONTROL);
  const lines = r.stderr.split('\n');
  expect(lines).toHaveLength(2);
  expect(lines[1]).toBe('');
  return lines[0]!;
}

describe('text output of a trace with escape codes and newlines in its name and description', () => {
  const file = traceFile('evil.json', evilTrace);

  it('simulate shows them escaped, on the lines where they belong', () => {
    const r = runCli(['simulate', file]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expectEscaped(r.stdout);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`simulate: ${SHOWN_NAME}`);
    expect(lines[1]).toBe('  one 19 matched\\x1b]0;owned\\x07 \\x9b2J \\x7f');
    expect(lines[2]).toMatch(/^model: /);
  });

  it('run-trace shows them escaped', () => {
    const r = runCli(['run-trace', file]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expectEscaped(r.stdout);
    expect(r.stdout.split('\n')[0]).toBe(`run-trace: ${SHOWN_NAME}`);
  });

  it('validate shows them escaped in its table: the only summary line is its own', () => {
    const r = runCli(['validate', file]);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const lines = r.stdout.split('\n');
    expect(lines.filter((l) => FAKE.test(l))).toEqual(['1 matched, 0 mismatched, 0 not measurable here']);
    expect(lines.some((l) => l.startsWith(`${SHOWN_NAME}  matched`))).toBe(true);
  });

  it('simulate --json keeps the name and description as they are', () => {
    const r = runCli(['simulate', file, '--json']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as TraceObservationsJson;
    expect(doc.trace.name).toBe(EVIL_NAME);
    expect(doc.trace.description).toBe(EVIL_DESCRIPTION);
  });
});

describe('error messages that quote user input', () => {
  it('a trace file name with escape codes and a newline is shown escaped, on one line', () => {
    const r = runCli(['simulate', join(dir, 'missing\n19 matched\x1b[31m.json')]);
    const line = expectOneEscapedLine(r);
    expect(line).toContain(`${dir}/missing\\n19 matched\\x1b[31m.json`);
  });

  it('a step naming a region with escape codes and a newline is shown escaped, on one line', () => {
    const file = traceFile('bad-region.json', {
      name: 'bad-region',
      regions: [{ id: 'heap', pages: 4 }],
      steps: [{ op: 'write', proc: 'p0', region: 'x\x1b[2K\r\n19 matched', pages: { start: 0, end: 1 } }],
    });
    const line = expectOneEscapedLine(runCli(['simulate', file]));
    expect(line).toMatch(/^cowlab: steps\[0\]\.region: no region 'x\\x1b\[2K\\r\\n19 matched'/);
  });

  it('reportError escapes the message of a CowlabError and of an unexpected error', () => {
    const out: string[] = [];
    expect(reportError(new CowlabError('ERR_TRACE_INVALID', "name: 'a\x1b[31m\nb'"), (s) => out.push(s))).toBe(2);
    reportError(new Error('boom\r\x9b'), (s) => out.push(s));
    expect(out[0]).toBe("cowlab: name: 'a\\x1b[31m\\nb'\n");
    expect(out[1]).toBe('cowlab: unexpected error: boom\\r\\x9b\n');
  });
});

describe('long traces print in time linear in their steps', () => {
  // 8,000 steps took 16 s of table layout (quadratic in the rows); 50,000 would take many
  // minutes, and the CLI would be killed at the timeout below (status null).
  it('simulate prints every step of a 50,000-step trace, every table line laid out', () => {
    const n = 50_000;
    const steps: unknown[] = [{ op: 'fork', proc: 'p0', child: 'c1' }];
    for (let i = 1; i < n; i++) steps.push({ op: 'write', proc: i % 2 ? 'c1' : 'p0', region: 'heap', pages: { start: i % 1024, end: (i % 1024) + 1 } });
    const file = traceFile('long.json', { name: 'long', regions: [{ id: 'heap', pages: 1024 }], steps });
    const r = runCli(['simulate', file], { timeout: 60_000, maxBuffer: 64 << 20 });
    expect(r.signal).toBe(null);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    const head = lines.findIndex((l) => /^ step {2}op /.test(l));
    const rows = lines.slice(head, head + 2 + n); // the header, setup, then one row per step
    expect(rows[1]).toMatch(/^setup {2}setup /);
    expect(rows[2]).toMatch(/^ {4}0 {2}fork -> c1 /);
    expect(rows[n + 1]).toMatch(/^49999 {2}write 847\.\.848 +c1 +heap /);
    expect(lines[head + 2 + n]).toBe('');
    expect(new Set(rows.map(displayWidth)).size).toBe(1);
  }, 90_000);
});
