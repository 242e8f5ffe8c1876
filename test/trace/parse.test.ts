/** parseTrace / loadTrace: defaults, selectors, and every rejection naming its step and field. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { CowlabError, isUsageError } from '../../src/errors.js';
import { loadTrace, parseTrace } from '../../src/trace/parse.js';
import { selectPages } from '../../src/trace/select.js';
import { sample } from '../../src/util/prng.js';

/** A small valid document; cases change one thing in it. */
function doc(over: Record<string, unknown> = {}) {
  return {
    name: 't',
    regions: [{ id: 'heap', pages: 1024 }],
    steps: [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'heap', pages: { start: 0, end: 512 } },
    ],
    ...over,
  };
}

function withSteps(...steps: unknown[]) {
  return doc({ steps });
}

function rejection(input: unknown): CowlabError {
  try {
    parseTrace(input);
  } catch (err) {
    expect(err).toBeInstanceOf(CowlabError);
    return err as CowlabError;
  }
  throw new Error('parseTrace accepted the trace');
}

const fork = (proc: string, child: string) => ({ op: 'fork', proc, child });
const write = (proc: string, pages: unknown = { start: 0, end: 8 }, region = 'heap') => ({ op: 'write', proc, region, pages });
const read = (proc: string, pages: unknown = { start: 0, end: 8 }, region = 'heap') => ({ op: 'read', proc, region, pages });

describe('defaults are applied', () => {
  it('fills region map/backing/thp/advice/populate and range strides', () => {
    const t = parseTrace(doc());
    expect(t.regions[0]).toEqual({ id: 'heap', pages: 1024, map: 'private', backing: 'anon', thp: false, advice: [], populate: 'write' });
    expect(t.steps[1]).toEqual({ op: 'write', proc: 'c1', region: 'heap', pages: { start: 0, end: 512, stride: 1 } });
  });

  it('keeps what the document says, and the description', () => {
    const region = { id: 'buf', pages: 64, map: 'shared', backing: 'memfd', thp: false, advice: ['dontfork'], populate: 'read' };
    const t = parseTrace({ name: 'x', description: 'd', regions: [region], steps: [] });
    expect(t.regions[0]).toEqual(region);
    expect(t.description).toBe('d');
  });

  it('returns a trace that parses to itself (engines may re-check it)', () => {
    const t = parseTrace(doc());
    expect(parseTrace(t)).toEqual(t);
  });
});

describe('selectors resolve to the same pages in every engine', () => {
  it.each([
    { sel: { start: 2, end: 9, stride: 3 }, pages: [2, 5, 8] },
    { sel: { start: 0, end: 4 }, pages: [0, 1, 2, 3] },
    { sel: { pages: [7, 3, 3, 1000] }, pages: [7, 3, 3, 1000] },
    { sel: { random: 5, seed: 7 }, pages: [...sample(1024, 5, 7)] },
  ])('$sel', ({ sel, pages }) => {
    const t = parseTrace(withSteps(write('p0', sel)));
    const step = t.steps[0]!;
    if (step.op !== 'write') throw new Error('not a write');
    expect([...selectPages(step.pages, 1024)]).toEqual(pages);
  });
});

describe('every rejection is ERR_TRACE_INVALID naming step and field', () => {
  const cases: { name: string; input: unknown; field: string; message: RegExp }[] = [
    { name: 'unknown op', input: withSteps({ op: 'wrte', proc: 'p0' }), field: 'steps[0].op', message: /unknown op 'wrte' \(ops: fork, write, read, exit, exec, mprotect, pageout\)/ },
    { name: 'missing op', input: withSteps({ proc: 'p0' }), field: 'steps[0].op', message: /is required/ },
    { name: 'a step that is not an object', input: withSteps(3), field: 'steps[0]', message: /must be an object/ },
    { name: 'a process that does not exist', input: withSteps(write('c9')), field: 'steps[0].proc', message: /no process 'c9' \(live processes: p0\)/ },
    { name: 'a process that already exited', input: withSteps(fork('p0', 'c1'), { op: 'exit', proc: 'c1' }, write('c1')), field: 'steps[2].proc', message: /process 'c1' already exited at steps\[1\]/ },
    { name: 'forking from an exited process', input: withSteps(fork('p0', 'c1'), { op: 'exit', proc: 'c1' }, fork('c1', 'c2')), field: 'steps[2].proc', message: /already exited at steps\[1\]/ },
    { name: "a write by an exec'd process", input: withSteps(fork('p0', 'c1'), { op: 'exec', proc: 'c1' }, write('c1')), field: 'steps[2].proc', message: /process 'c1' exec'd at steps\[1\] and maps no region/ },
    { name: "a read by an exec'd process", input: withSteps({ op: 'exec', proc: 'p0' }, read('p0')), field: 'steps[1].proc', message: /exec'd at steps\[0\]/ },
    { name: "an mprotect by an exec'd process", input: withSteps({ op: 'exec', proc: 'p0' }, { op: 'mprotect', proc: 'p0', region: 'heap', prot: 'r' }), field: 'steps[1].proc', message: /exec'd at steps\[0\]/ },
    { name: "a fork by an exec'd process", input: withSteps({ op: 'exec', proc: 'p0' }, fork('p0', 'c1'), write('c1')), field: 'steps[1].proc', message: /process 'p0' exec'd at steps\[0\] and runs another program: it cannot fork/ },
    { name: 'fork to a name already used', input: withSteps(fork('p0', 'c1'), { op: 'exit', proc: 'c1' }, fork('p0', 'c1')), field: 'steps[2].child', message: /process name 'c1' is already used \(forked at steps\[0\]\)/ },
    { name: 'fork into the root', input: withSteps(fork('p0', 'p0')), field: 'steps[0].child', message: /'p0' is the root process and cannot be forked into/ },
    { name: 'a process name that is not a name', input: withSteps(fork('p0', '1c')), field: 'steps[0].child', message: /must start with a letter/ },
    { name: 'an unknown region', input: withSteps(write('p0', { start: 0, end: 1 }, 'hep')), field: 'steps[0].region', message: /no region 'hep' \(regions: heap\)/ },
    { name: 'a duplicated region id', input: doc({ regions: [{ id: 'heap', pages: 8 }, { id: 'heap', pages: 8 }] }), field: 'regions[1].id', message: /region id 'heap' is already used by regions\[0\]/ },
    { name: 'a region the child did not inherit (dontfork)', input: doc({ regions: [{ id: 'heap', pages: 8, advice: ['dontfork'] }], steps: [fork('p0', 'c1'), read('c1', { start: 0, end: 1 })] }), field: 'steps[1].region', message: /does not map region 'heap' \(MADV_DONTFORK/ },
    { name: 'a range ending beyond the region', input: withSteps(write('p0', { start: 0, end: 2048 })), field: 'steps[0].pages.end', message: /2048 is beyond region 'heap' \(1024 pages\)/ },
    { name: 'a listed page beyond the region', input: withSteps(write('p0', { pages: [1, 1024] })), field: 'steps[0].pages.pages[1]', message: /page 1024 is beyond region 'heap' \(1024 pages\)/ },
    { name: 'more random pages than the region has', input: withSteps(read('p0', { random: 2000, seed: 1 })), field: 'steps[0].pages.random', message: /2000 is more than the 1024 pages of region 'heap'/ },
    { name: 'a negative page', input: withSteps(write('p0', { start: -1, end: 4 })), field: 'steps[0].pages.start', message: /must be a non-negative integer, got -1/ },
    { name: 'a negative listed page', input: withSteps(write('p0', { pages: [-3] })), field: 'steps[0].pages.pages[0]', message: /must be a non-negative integer, got -3/ },
    { name: 'a stride below 1', input: withSteps(write('p0', { start: 0, end: 4, stride: 0 })), field: 'steps[0].pages.stride', message: /must be a positive integer, got 0/ },
    { name: 'an empty range', input: withSteps(write('p0', { start: 10, end: 10 })), field: 'steps[0].pages', message: /empty range 10\.\.10/ },
    { name: 'an empty page list', input: withSteps(write('p0', { pages: [] })), field: 'steps[0].pages.pages', message: /must not be empty/ },
    { name: 'zero random pages', input: withSteps(read('p0', { random: 0, seed: 1 })), field: 'steps[0].pages.random', message: /must be a positive integer, got 0/ },
    { name: 'a random selector without seed', input: withSteps(read('p0', { random: 4 })), field: 'steps[0].pages.seed', message: /is required/ },
    { name: 'something that is no selector', input: withSteps(write('p0', { first: 3 })), field: 'steps[0].pages', message: /must be a page selector/ },
    { name: 'a prot other than r or rw', input: withSteps({ op: 'mprotect', proc: 'p0', region: 'heap', prot: 'x' }), field: 'steps[0].prot', message: /must be one of r, rw, got 'x'/ },
    { name: 'a write to a page made read-only', input: withSteps({ op: 'mprotect', proc: 'p0', region: 'heap', prot: 'r', pages: { start: 4, end: 8 } }, write('p0', { start: 0, end: 6 })), field: 'steps[1].pages', message: /page 4 of region 'heap' is read-only in process 'p0' \(mprotect r at steps\[0\]\); the write would SIGSEGV/ },
    { name: 'a write in a child that inherited a read-only page', input: withSteps({ op: 'mprotect', proc: 'p0', region: 'heap', prot: 'r' }, fork('p0', 'c1'), write('c1', { pages: [9] })), field: 'steps[2].pages', message: /page 9 .* read-only in process 'c1' \(mprotect r at steps\[0\]\)/ },
    { name: 'an unknown field in a step', input: withSteps({ ...fork('p0', 'c1'), bogus: 1 }), field: 'steps[0].bogus', message: /unknown field/ },
    { name: 'an unknown field in a region', input: doc({ regions: [{ id: 'heap', pages: 8, size: 3 }] }), field: 'regions[0].size', message: /unknown field/ },
    { name: 'a fractional page count', input: doc({ regions: [{ id: 'heap', pages: 1.5 }] }), field: 'regions[0].pages', message: /must be an integer, got 1.5/ },
    { name: 'no regions', input: doc({ regions: [] }), field: 'regions', message: /must not be empty/ },
    { name: 'no name', input: { regions: [{ id: 'a', pages: 1 }], steps: [] }, field: 'name', message: /is required/ },
    { name: 'a map kind that does not exist', input: doc({ regions: [{ id: 'heap', pages: 8, map: 'public' }] }), field: 'regions[0].map', message: /must be one of private, shared, got 'public'/ },
    { name: 'wipeonfork on shared memory', input: doc({ regions: [{ id: 'heap', pages: 8, map: 'shared', advice: ['wipeonfork'] }], steps: [] }), field: 'regions[0].advice', message: /wipeonfork applies to private anonymous regions only/ },
    { name: 'THP on a memfd', input: doc({ regions: [{ id: 'heap', pages: 512, backing: 'memfd', thp: true }], steps: [] }), field: 'regions[0].thp', message: /private anonymous regions only/ },
    { name: 'a region over 64 GiB (2^24 pages)', input: doc({ regions: [{ id: 'heap', pages: (1 << 24) + 1 }], steps: [] }), field: 'regions[0].pages', message: /must be at most 16777216, got 16777217/ },
    { name: 'a document that is not an object', input: 42, field: 'trace', message: /must be an object, got 42/ },
    { name: "p0 exiting when p0 is the Node process", input: { ...withSteps({ op: 'exit', proc: 'p0' }), p0: 'node' }, field: 'steps[0].proc', message: /p0 is the Node process itself \(trace p0: 'node'\): it cannot exit/ },
    { name: "p0 exec'ing when p0 is the Node process", input: { ...withSteps(fork('p0', 'c1'), { op: 'exec', proc: 'p0' }), p0: 'node' }, field: 'steps[1].proc', message: /it cannot exec/ },
    { name: 'a p0 that lives nowhere known', input: { ...withSteps(), p0: 'thread' }, field: 'p0', message: /must be one of process, node, got 'thread'/ },
    { name: 'a read by pread(2) (only writes have a via)', input: withSteps({ ...read('p0'), via: 'pread' }), field: 'steps[0].via', message: /unknown field/ },
    { name: 'a write via something else', input: withSteps({ ...write('p0'), via: 'dma' }), field: 'steps[0].via', message: /must be one of store, pread, got 'dma'/ },
    { name: 'a timing other than each', input: withSteps({ ...write('p0'), timing: 'sum' }), field: 'steps[0].timing', message: /must be each, got 'sum'/ },
    { name: 'a negative pace', input: withSteps({ ...write('p0'), paceNs: -1 }), field: 'steps[0].paceNs', message: /must be a non-negative integer, got -1/ },
    { name: 'a pace over a minute', input: withSteps({ ...read('p0'), paceNs: 60_000_000_001 }), field: 'steps[0].paceNs', message: /must be at most 60000000000/ },
    { name: 'a hold on a fork', input: withSteps({ ...fork('p0', 'c1'), afterMs: 5 }), field: 'steps[0].afterMs', message: /unknown field/ },
    { name: 'a hold over an hour', input: withSteps(fork('p0', 'c1'), { op: 'exit', proc: 'c1', afterMs: 3_600_001 }), field: 'steps[1].afterMs', message: /must be at most 3600000/ },
  ];

  it.each(cases)('$name -> $field', ({ input, field, message }) => {
    const err = rejection(input);
    expect(err.code).toBe('ERR_TRACE_INVALID');
    expect(isUsageError(err)).toBe(true);
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(err.message).toMatch(message);
    expect(err.message).not.toMatch(/Invalid input|expected .* received/); // never zod's raw words
  });

  it('counts the other problems zod found', () => {
    const err = rejection(doc({ regions: [{ id: 'heap', pages: -1, map: 'x' }] }));
    expect(err.message).toMatch(/^regions\[0\]\.pages: must be a positive integer, got -1 \(and 1 more problem\)$/);
  });
});

describe('what is allowed', () => {
  it.each([
    { name: "an exec'd process exits", steps: [fork('p0', 'c1'), { op: 'exec', proc: 'c1' }, { op: 'exit', proc: 'c1' }] },
    { name: 'a write after mprotect r then rw', steps: [{ op: 'mprotect', proc: 'p0', region: 'heap', prot: 'r' }, { op: 'mprotect', proc: 'p0', region: 'heap', prot: 'rw', pages: { start: 0, end: 8 } }, write('p0', { start: 0, end: 8 })] },
    { name: 'a read of a read-only page', steps: [{ op: 'mprotect', proc: 'p0', region: 'heap', prot: 'r' }, read('p0')] },
    { name: 'a parent that exits before its child', steps: [fork('p0', 'c1'), { op: 'exit', proc: 'p0' }, write('c1')] },
    { name: 'no steps', steps: [] },
  ])('$name', ({ steps }) => {
    expect(() => parseTrace(withSteps(...steps))).not.toThrow();
  });

  it('keeps what an access step asks of the engine, and p0 node, as written', () => {
    const t = parseTrace({
      ...withSteps(
        fork('p0', 'c1'),
        { ...write('c1'), via: 'pread', timing: 'each' },
        { ...write('p0'), paceNs: 1000 },
        { ...read('c1'), timing: 'each' },
        { op: 'exit', proc: 'c1', afterMs: 20 },
      ),
      p0: 'node',
    });
    expect(t.p0).toBe('node');
    expect(t.steps[1]).toMatchObject({ op: 'write', via: 'pread', timing: 'each' });
    expect(t.steps[2]).toMatchObject({ op: 'write', paceNs: 1000 });
    expect(t.steps[2]).not.toHaveProperty('timing');
    expect(t.steps[3]).toMatchObject({ op: 'read', timing: 'each' });
    expect(t.steps[4]).toEqual({ op: 'exit', proc: 'c1', afterMs: 20 });
  });

  it('leaves the defaults out: a store, back to back, no per-access times, p0 a process of its own', () => {
    const t = parseTrace(withSteps(fork('p0', 'c1'), { ...write('c1'), via: 'store', paceNs: 0 }, { op: 'exit', proc: 'c1', afterMs: 0 }));
    expect(t).not.toHaveProperty('p0');
    expect(Object.keys(t.steps[1]!).sort()).toEqual(['op', 'pages', 'proc', 'region']);
    expect(t.steps[2]).toEqual({ op: 'exit', proc: 'c1' });
  });

  it('a 64 GiB region, forked and written: the parser checks the trace, not the machine', () => {
    // 16,777,216 pages: more than this machine's memory, and still a valid trace (the
    // simulator predicts it; an engine that would allocate it refuses it, test/kernel-engine/limits).
    const all = { start: 0, end: 1 << 24 };
    const t = parseTrace(doc({
      regions: [{ id: 'heap', pages: 1 << 24, populate: 'none' }],
      steps: [write('p0', all), fork('p0', 'c1'), write('c1', all), { op: 'exit', proc: 'c1' }],
    }));
    expect(t.regions[0]!.pages).toBe(1 << 24);
    expect(t.steps).toHaveLength(4);
  });

  it('checks writes against mprotect per process, also in a region of 64 GiB', () => {
    const last = (1 << 24) - 1;
    const big = (steps: unknown[]) => doc({ regions: [{ id: 'heap', pages: 1 << 24, populate: 'none' }], steps });
    const ro = { op: 'mprotect', proc: 'p0', region: 'heap', prot: 'r', pages: { pages: [last] } };
    expect(() => parseTrace(big([ro, fork('p0', 'c1'), write('c1', { start: 0, end: last })]))).not.toThrow();
    expect(rejection(big([ro, fork('p0', 'c1'), write('c1', { start: 0, end: last + 1 })])).message).toMatch(
      new RegExp(`^steps\\[2\\]\\.pages: page ${last} of region 'heap' is read-only in process 'c1' \\(mprotect r at steps\\[0\\]\\)`),
    );
  });
});

describe('loadTrace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cowlab-trace-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file, or JSON text', () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify(doc()));
    expect(loadTrace(file).name).toBe('t');
    expect(loadTrace(JSON.stringify(doc())).steps).toHaveLength(2);
  });

  it('names the file in errors', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify(withSteps(write('nobody'))));
    expect(() => loadTrace(file)).toThrow(new RegExp(`^steps\\[0\\]\\.proc: no process 'nobody' .*\\(in ${file}\\)$`));
  });

  it('rejects text that is not JSON as ERR_TRACE_INVALID', () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{ "name": ');
    expect(() => loadTrace(file)).toThrow(expect.objectContaining({ code: 'ERR_TRACE_INVALID', field: 'trace' }));
  });

  it('reports a missing file as a bad option', () => {
    expect(() => loadTrace(join(dir, 'missing.json'))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/no such file/) }));
  });
});
