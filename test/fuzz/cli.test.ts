/**
 * Fuzz: command lines. Every command and flag comes from the CLI itself (commander's own
 * tables), with values from pools of good, bad and hostile ones. The contract for each run:
 * exit 0, 1 or 2 (never a crash or a signal), no stack trace and no "cowlab bug", done within
 * the time limit, and nothing left behind (no process, no guest, no temporary directory).
 *
 * Kept bounded on purpose: no value boots a guest (no real kernel spec), and `run` and
 * `calibrate` always get an experiment list or a flag that keeps them short.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Command, Option } from 'commander';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { buildProgram } from '../../src/cli/main.js';
import { CLI } from '../helpers/cli.js';
import { readProcStat } from '../../src/util/procStat.js';
import { processesWhoseCommand } from '../helpers/processes.js';
import { budget, Tally, timeoutOf } from './budget.js';

const tally = new Tally('cli');
const dir = mkdtempSync(join(tmpdir(), 'cowlab-fuzz-cli-'));
afterAll(() => {
  tally.write();
  rmSync(dir, { recursive: true, force: true });
});

const traceFile = join(dir, 'trace.json');
writeFileSync(traceFile, JSON.stringify({ name: 'fuzz', regions: [{ id: 'm', pages: 8 }], steps: [{ op: 'fork', proc: 'p0', child: 'c1' }, { op: 'write', proc: 'c1', region: 'm', pages: { start: 0, end: 8 } }] }));
const brokenFile = join(dir, 'broken.json');
writeFileSync(brokenFile, '{"name": "x", "regions": [');
const hostileFile = join(dir, 'hostile.json');
writeFileSync(hostileFile, JSON.stringify({ name: 'x\u001b[2J\n19 matched', description: '\u0007\r', regions: [{ id: 'm', pages: 4 }], steps: [] }));

/** Values any flag may get; some valid for some flags, most not. */
const VALUES = [
  '', '0', '1', '2', '16', '-1', '4096', '99999999999', '1e3', '0x10', 'abc', 'on', 'off', 'never', 'always', 'per-page', 'seq', 'rand', 'stride:4',
  'lazy', 'eager', 'faultAround:4', 'host', 'debian:six', 'kvm', 'tcg', '/proc/x', '/proc/self/status', '/dev/zero', '/dev/null', '/nonexistent/x',
  dir, traceFile, brokenFile, hostileFile, 'fork-exec', 'shared-anon', '\u001b[31mred\u001b[0m', 'a,b,c', 'sim,kernel', 'sim,bogus', '6.1', '5.4',
];
/** Values for flags whose large settings would make a run long (so: small or bad ones). */
const SMALL: Record<string, string[]> = {
  '--pages': ['1', '16', '64', '0', '-1', 'x', '99999999999'],
  '--hold-ms': ['0', '10', '-5', 'x'],
  '--deadline-ms': ['1', '100', '0', 'x'],
  '--repeats': ['0', '1', '2', '-1', 'x'],
  '--warmup': ['0', '1', '-1', 'x'],
  '--count': ['0', '1', '5', 'x'],
  '--kernel': ['host', 'debian:six', '/nonexistent/bzImage', '/dev/null', dir, 'linux-9.9', 'host,host'],
  '--guest-memory': ['256', '0', 'x', '500000'],
  '--seconds': ['1', '0', 'x'],
};
const POSITIONAL = ['fork-exec', 'shared-anon', 'thp-fork-write', 'no-such-scenario', traceFile, brokenFile, hostileFile, '/dev/zero', '/proc/self/status', '/nonexistent.json', '5', 'zero-page', '99', '--'];

interface Target {
  path: string[];
  options: Option[];
  takesArgs: boolean;
}

function targets(cmd: Command, path: string[] = []): Target[] {
  return cmd.commands.flatMap((c) => {
    const p = [...path, c.name()];
    const sub = targets(c, p);
    const self: Target = { path: p, options: c.options as Option[], takesArgs: c.registeredArguments.length > 0 };
    return c.commands.length ? [self, ...sub] : [self];
  });
}

const ALL = targets(buildProgram());

const argv: fc.Arbitrary<string[]> = fc
  .tuple(fc.constantFrom(...ALL), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 5 }), fc.array(fc.nat(), { maxLength: 3 }), fc.boolean())
  .map(([t, flags, positional, json]) => {
    const out = [...t.path];
    for (const p of positional) if (t.takesArgs || p % 7 === 0) out.push(POSITIONAL[p % POSITIONAL.length]!);
    for (const [f, v] of flags) {
      const o = t.options[f % Math.max(t.options.length, 1)];
      if (!o?.long) continue;
      out.push(o.long);
      if (o.required || o.optional) out.push((SMALL[o.long] ?? VALUES)[v % (SMALL[o.long] ?? VALUES).length]!);
    }
    if (json && t.options.some((o) => o.long === '--json')) out.push('--json');
    // Keep the long-running commands short: run only --quick with one small experiment list,
    // calibrate with a page count it refuses.
    if (t.path[0] === 'run') out.push('--quick', 'zero-page', '--out', join(dir, 'run'));
    if (t.path[0] === 'calibrate') out.push('--pages', '3');
    return out;
  });

/**
 * Processes of the CLI still there once it exited: a killed child takes a moment to die (its
 * SIGKILL lands when it next runs), so only what is still there after 2 s is left behind.
 */
function survivors(): string[] {
  const end = Date.now() + 2_000;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const left = processesWhoseCommand((cmd) => cmd.includes(CLI));
    if (left.length === 0) return [];
    if (Date.now() > end) return left.map((pid) => { const s = readProcStat(pid); return `${pid} ${s?.state ?? 'gone'} ppid ${s?.ppid ?? '?'}`; });
    Atomics.wait(nap, 0, 0, 20);
  }
}

/**
 * cowlab's temporary entries in the temp dir that process `pid` made (the pid is in their
 * names). Another run's entries (a test or a guest booting beside the fuzzer, or one killed
 * and waiting for the next run's sweep) are not a leftover of the command just tried.
 */
function leftoversOf(pid: number | undefined): string[] {
  return readdirSync(tmpdir()).filter((d) => {
    const owner = /^cowlab-guest-(\d+)-/.exec(d) ?? /^cowlab-.*\.(\d+)(?:\.[a-z0-9]+)?\.tmp$/.exec(d);
    return owner !== null && Number(owner[1]) === pid;
  });
}

describe('fuzz: command lines', () => {
  it(
    'every command line exits 0, 1 or 2, without a stack trace, in time, leaving nothing behind',
    () => {
      fc.assert(
        fc.property(argv, (args) => {
          const r = spawnSync(process.execPath, ['--max-old-space-size=1024', CLI, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024, cwd: dir });
          const what = `cowlab ${args.map((a) => JSON.stringify(a)).join(' ')}`;
          expect(r.error, `${what}: did not finish in 60 s`).toBeUndefined();
          expect(r.signal, `${what}: killed by ${r.signal}\n${r.stderr}`).toBeNull();
          expect([0, 1, 2], `${what}: exit ${r.status}\n${r.stderr}`).toContain(r.status);
          expect(r.stderr, what).not.toMatch(/cowlab bug|unexpected error|\n\s+at .*\(.*:\d+:\d+\)/);
          expect(r.stderr, `${what}: a raw control character reached the terminal`).not.toMatch(/\u001b\[2J/);
          expect(survivors(), `${what}: a process of it is still there`).toEqual([]);
          expect(leftoversOf(r.pid), what).toEqual([]);
          // Nothing is ever written into /dev: the device nodes the fuzzer names are still devices.
          for (const dev of ['/dev/null', '/dev/zero']) expect(statSync(dev).isCharacterDevice(), `${what}: ${dev} was replaced`).toBe(true);
          tally.add(`${args[0]} exit ${r.status}`);
        }),
        budget('cli', 30),
      );
    },
    timeoutOf('cli', 240_000),
  );
});
