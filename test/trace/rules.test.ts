/**
 * One rule for every command (issue 11, rows 2 and 8): what a trace may do is decided by the
 * parser, so simulate, run-trace, validate and observe give the same answer, with the file
 * named; trace files are read with a size cap and only from regular files.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { CowlabError, isUsageError } from '../../src/errors.js';
import { loadTrace, parseTrace } from '../../src/trace/parse.js';
import * as schema from '../../src/trace/schema.js';
import { DIST_INDEX, runCli, runNode } from '../helpers/cli.js';
import { thrownCowlabError } from '../helpers/errors.js';

/** The limits as docs/trace.md states them (schema.ts holds them; the last test checks it does). */
const MAX_TRACE_PROCESSES = 256;
const MAX_TRACE_FILE_BYTES = 64 * 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), 'cowlab-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fork = (proc: string, child: string) => ({ op: 'fork', proc, child });
const exec = (proc: string) => ({ op: 'exec', proc });
const exit = (proc: string) => ({ op: 'exit', proc });

function doc(steps: unknown[], regions: unknown[] = [{ id: 'heap', pages: 16 }]) {
  return { name: 'rules', regions, steps };
}


/** p0 forks c1..c{n-1}: a trace of n processes. */
function crowd(n: number): unknown[] {
  return Array.from({ length: n - 1 }, (_, i) => fork('p0', `c${i + 1}`));
}

const kernelPlaced = (id: string) => ({ id, pages: 16, placement: 'kernel' });

interface Rule {
  name: string;
  doc: ReturnType<typeof doc>;
  field: string;
  message: RegExp;
}

const RULES: Rule[] = [
  {
    name: "an exec'd process forks",
    doc: doc([fork('p0', 'c1'), exec('c1'), fork('c1', 'c2')]),
    field: 'steps[2].proc',
    message: /^steps\[2\]\.proc: process 'c1' exec'd at steps\[1\] and runs another program: it cannot fork \(after exec a process can only exit\)/,
  },
  {
    name: "an exec'd process execs again",
    doc: doc([fork('p0', 'c1'), exec('c1'), exec('c1')]),
    field: 'steps[2].proc',
    message: /^steps\[2\]\.proc: process 'c1' exec'd at steps\[1\] and runs another program: it cannot exec again \(after exec a process can only exit\)/,
  },
  {
    name: `more than ${MAX_TRACE_PROCESSES} processes`,
    doc: doc(crowd(MAX_TRACE_PROCESSES + 1)),
    field: `steps[${MAX_TRACE_PROCESSES - 1}].child`,
    message: new RegExp(`^steps\\[${MAX_TRACE_PROCESSES - 1}\\]\\.child: a trace has at most ${MAX_TRACE_PROCESSES} processes \\(p0 and ${MAX_TRACE_PROCESSES - 1} forks\\); this fork would make the ${MAX_TRACE_PROCESSES + 1}th`),
  },
  {
    name: "three regions placed by the kernel",
    doc: doc([], [kernelPlaced('a'), kernelPlaced('b'), kernelPlaced('c')]),
    field: 'regions[2].placement',
    message: /^regions\[2\]\.placement: at most 2 regions of a trace may have placement 'kernel'/,
  },
];

describe('the parser decides', () => {
  it.each(RULES)('$name: ERR_TRACE_INVALID naming the step and field', (r) => {
    const err = thrownCowlabError(() => parseTrace(r.doc));
    expect(err.code).toBe('ERR_TRACE_INVALID');
    expect(isUsageError(err)).toBe(true);
    expect(err.field).toBe(r.field);
    expect(err.message).toMatch(r.message);
  });

  it(`accepts exactly ${MAX_TRACE_PROCESSES} processes, an exec'd process that exits, and two regions placed by the kernel`, () => {
    expect(() => parseTrace(doc(crowd(MAX_TRACE_PROCESSES)))).not.toThrow();
    expect(() => parseTrace(doc([fork('p0', 'c1'), exec('c1'), exit('c1'), exec('p0'), exit('p0')]))).not.toThrow();
    expect(() => parseTrace(doc([], [kernelPlaced('a'), kernelPlaced('b')]))).not.toThrow();
  });

  it('counts every process ever created, not only the live ones', () => {
    const steps = Array.from({ length: MAX_TRACE_PROCESSES }, (_, i) => [fork('p0', `c${i + 1}`), exit(`c${i + 1}`)]).flat();
    const err = thrownCowlabError(() => parseTrace(doc(steps)));
    expect(err.field).toBe(`steps[${2 * (MAX_TRACE_PROCESSES - 1)}].child`);
  });
});

describe('every command gives the same answer, with the file named', () => {
  const COMMANDS: string[][] = [['simulate'], ['run-trace'], ['validate'], ['observe'], ['validate', '--engines', 'sim,region']];

  it.each(RULES)('$name', (r) => {
    const file = join(dir, `${r.name.replace(/[^a-z0-9]+/gi, '-')}.json`);
    writeFileSync(file, JSON.stringify(r.doc));
    const answers = COMMANDS.map((cmd) => {
      const res = runCli([cmd[0]!, file, ...cmd.slice(1)]);
      return { cmd: cmd.join(' '), status: res.status, stderr: res.stderr, stdout: res.stdout };
    });
    for (const a of answers) {
      expect(a.status, `${a.cmd}: ${a.stderr}`).toBe(2);
      expect(a.stdout, a.cmd).toBe('');
      const lines = a.stderr.trimEnd().split('\n');
      expect(lines, a.cmd).toHaveLength(1);
      expect(lines[0], a.cmd).toMatch(/^cowlab: /);
      expect(lines[0]!.slice('cowlab: '.length), a.cmd).toMatch(r.message);
      expect(lines[0], a.cmd).toMatch(new RegExp(`\\(in ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)$`));
    }
    expect(new Set(answers.map((a) => a.stderr)).size).toBe(1);
  });
});

describe('trace files', () => {
  it(`refuses a file over ${MAX_TRACE_FILE_BYTES / 2 ** 20} MiB without reading it, saying the cap`, () => {
    const file = join(dir, 'huge.json');
    const fd = openSync(file, 'w');
    ftruncateSync(fd, MAX_TRACE_FILE_BYTES + 1); // sparse: no disk, and nothing is read
    closeSync(fd);
    const err = thrownCowlabError(() => loadTrace(file));
    expect(err.code).toBe('ERR_INVALID_OPTION');
    expect(isUsageError(err)).toBe(true);
    expect(err.field).toBe('trace');
    expect(err.message).toBe(`trace: ${file}: is 64.0 MiB, more than the 64 MiB limit`);
  });

  it('reads a file of exactly the cap (its content decides)', () => {
    const file = join(dir, 'cap.json');
    const text = JSON.stringify(doc([]));
    writeFileSync(file, text + ' '.repeat(MAX_TRACE_FILE_BYTES - text.length));
    expect(loadTrace(file).name).toBe('rules');
  });

  /**
   * Loads `path` in a separate node process, killed after 2 s: without the check, a read of
   * /dev/zero grows without end and a FIFO blocks forever, and neither can be interrupted in here.
   */
  function loadElsewhere(path: string): { ms: number; status: number | null; out: { code?: string; message?: string } } {
    const script = `import { loadTrace } from ${JSON.stringify(DIST_INDEX)};
      try { loadTrace(${JSON.stringify(path)}); console.log('{}'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    const t0 = Date.now();
    const r = runNode([], script, { timeout: 2_000, killSignal: 'SIGKILL' });
    return { ms: Date.now() - t0, status: r.status, out: r.status === 0 ? (JSON.parse(r.stdout) as { code?: string; message?: string }) : {} };
  }

  it('refuses character devices and FIFOs at once, without reading or waiting', () => {
    const zero = loadElsewhere('/dev/zero');
    expect(zero.status, 'killed: it read /dev/zero').toBe(0);
    expect(zero.out.code).toBe('ERR_INVALID_OPTION');
    expect(zero.out.message).toBe("trace: '/dev/zero' is not a regular file (a character device); a trace is read from a file");
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const f = loadElsewhere(fifo);
    expect(f.status, 'killed: it waited on the FIFO').toBe(0);
    expect(f.out.message).toBe(`trace: '${fifo}' is not a regular file (a FIFO); a trace is read from a file`);
    // And in this process too, now that it is known to return.
    expect(thrownCowlabError(() => loadTrace('/dev/zero')).field).toBe('trace');
    expect(thrownCowlabError(() => loadTrace(fifo)).code).toBe('ERR_INVALID_OPTION');
  });

  it('still says what is wrong with a directory or a missing file', () => {
    expect(thrownCowlabError(() => loadTrace(dir)).message).toMatch(/: it is a directory$/);
    expect(thrownCowlabError(() => loadTrace(join(dir, 'none.json'))).message).toMatch(/: no such file$/);
  });

  it('caps JSON text given directly as well', () => {
    const text = JSON.stringify(doc([])) + ' '.repeat(MAX_TRACE_FILE_BYTES);
    const err = thrownCowlabError(() => loadTrace(text));
    expect(err.message).toBe('trace: the trace text is more than the 64 MiB limit');
  });
});

it('schema.ts holds the limits docs/trace.md states', () => {
  expect(schema.MAX_TRACE_PROCESSES).toBe(MAX_TRACE_PROCESSES);
  expect(schema.MAX_TRACE_FILE_BYTES).toBe(MAX_TRACE_FILE_BYTES);
  expect(schema.MAX_KERNEL_PLACED_REGIONS).toBe(2);
});

describe('pageout is modelled for private anonymous memory of 4 KiB pages', () => {
  const pageout = { op: 'pageout', proc: 'p0', region: 'heap' };
  it.each([
    ['a shared region', { id: 'heap', pages: 16, map: 'shared' }, /pageout is modelled for private anonymous regions only; region 'heap' is shared anon/],
    ['a memfd region', { id: 'heap', pages: 16, backing: 'memfd' }, /pageout is modelled for private anonymous regions only; region 'heap' is private memfd/],
    ['a THP region', { id: 'heap', pages: 512, thp: true }, /pageout is modelled for regions of 4 KiB pages only; region 'heap' has thp/],
  ])('refuses %s, naming the step', (_what, region, message) => {
    const err = thrownCowlabError(() => parseTrace(doc([pageout], [region])));
    expect(err.code).toBe('ERR_TRACE_INVALID');
    expect(err.message).toMatch(/^steps\[0\]\.region: /);
    expect(err.message).toMatch(message);
  });

  it('takes the whole region or a selector of its pages, and checks the selector', () => {
    expect(parseTrace(doc([pageout])).steps[0]).toEqual(pageout);
    expect(parseTrace(doc([{ ...pageout, pages: { pages: [3] } }])).steps[0]).toEqual({ ...pageout, pages: { pages: [3] } });
    expect(() => parseTrace(doc([{ ...pageout, pages: { start: 0, end: 17 } }]))).toThrow(/steps\[0\]\.pages\.end: 17 is beyond region 'heap'/);
    expect(() => parseTrace(doc([{ ...pageout, prot: 'r' }]))).toThrow(/steps\[0\]\.prot: unknown field/);
  });

  it("refuses a process that exec'd (it maps no region)", () => {
    expect(() => parseTrace(doc([fork('p0', 'c1'), exec('c1'), { ...pageout, proc: 'c1' }]))).toThrow(/steps\[2\]\.proc: process 'c1' exec'd at steps\[1\]/);
  });
});
