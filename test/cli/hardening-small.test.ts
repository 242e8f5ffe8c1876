/**
 * The small ones of the hardening pass: bad input that used to pass silently, fail late, or
 * fail with an internal message now exits 2 naming the flag (or the API field), and a few
 * messages say what is true. Real CLI runs (the built dist/), real pagemaps, real processes.
 */
import { constants as bufferConstants } from 'node:buffer';
import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';

import { describe, expect, it } from 'vitest';
import { z } from 'zod';

import { CowRegion, resolveForkWriteOptions } from '../../src/internal.js';
import { checkDeadlineOutlastsChild } from '../../src/forkwrite/options.js';
import { CowlabError } from '../../src/errors.js';
import { environment } from '../../src/env/environment.js';
import { pageSize } from '../../src/memory/mapping.js';
import { runSuite } from '../../src/suite/runner.js';
import { defineExperiment } from '../../src/suite/types.js';
import { runCli, runCliAsNobody } from '../helpers/cli.js';

const PS = BigInt(pageSize());
const root = process.getuid?.() === 0;

/** A usage error as the CLI prints it: exit 2, one line naming `flag`, no stack, no stdout. */
function expectUsage(args: string[], flag: string, message: RegExp = /./): string {
  const r = runCli(args);
  expect(r.status, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const line = r.stderr.trim();
  expect(line.split('\n')).toHaveLength(1);
  expect(line.startsWith(`cowlab: ${flag}: `), line).toBe(true);
  expect(line).toMatch(message);
  return line;
}

/**
 * Where this process's pagemap stops answering: found here by reading it (the test's own
 * oracle, not cowlab's code). The first page number whose 8-byte entry reads nothing.
 */
function pagemapEnd(): bigint {
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    const b = Buffer.alloc(8);
    const ok = (page: bigint) => readSync(fd, b, 0, 8, page * 8n) === 8;
    let lo = 0n;
    let hi = (1n << 64n) / PS;
    while (hi - lo > 1n) {
      const mid = (lo + hi) / 2n;
      if (ok(mid)) lo = mid;
      else hi = mid;
    }
    return hi * PS;
  } finally {
    closeSync(fd);
  }
}

/** A kernel thread visible here (PF_KTHREAD in its stat flags), or null. */
function someKernelThread(): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const flags = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[6]);
      if ((flags & 0x0020_0000) !== 0) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

describe('pagemap: a range outside the user address space is bad input', () => {
  const pid = String(process.pid);
  const end = pagemapEnd();
  const hex = (a: bigint) => `0x${a.toString(16)}`;

  it.each([
    { what: 'the first address past the end', address: hex(end), pages: '10', flag: '--address' },
    { what: 'a kernel address', address: '0xfffffffffffff000', pages: '10', flag: '--address' },
    { what: 'an address wider than 64 bits', address: '0x10000000000000000', pages: '1', flag: '--address' },
    { what: 'pages running past the end', address: hex(end - PS), pages: '10', flag: '--pages' },
    ...(end === 0x7ffffffff000n
      ? [{ what: 'the issue’s address (x86-64, 4-level page tables)', address: '0x7ffffffff000', pages: '10', flag: '--address' }]
      : []),
  ])('$what ($address, $pages pages): exit 2 naming $flag and the limit', ({ address, pages, flag }) => {
    const line = expectUsage(['pagemap', '--pid', pid, '--address', address, '--pages', pages], flag);
    expect(line).toContain(hex(end));
    expect(line).not.toMatch(/readPagemap|got 0 of/);
  });

  it('reads the last page below the limit', () => {
    const r = runCli(['pagemap', '--pid', pid, '--address', hex(end - PS), '--pages', '1', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { entries: unknown[] }).entries).toHaveLength(1);
  });

  const kthread = someKernelThread();
  it.skipIf(kthread === null)('a kernel thread has no user address space: exit 2 naming --pid (skipped where no kernel thread is visible)', () => {
    expectUsage(['pagemap', '--pid', String(kthread), '--address', '0x1000'], '--pid', /is a kernel thread: it has no user address space/);
  });
});

describe('region-bench and fork-write: limits and combinations named by flag', () => {
  const regionMax = Math.min(Math.floor(bufferConstants.MAX_LENGTH / pageSize()), 0xffff_fffe);

  it('region-bench --pages beyond the region limit names --pages', () => {
    expectUsage(['region-bench', '--pages', String(regionMax + 1)], '--pages', new RegExp(`must be at most ${regionMax}`));
  });

  it('fork-write --count above the pages the pattern writes is refused, not cut silently', () => {
    expectUsage(['fork-write', '--count', '5', '--pages', '4'], '--count', /at most 4/);
    expectUsage(['fork-write', '--count', '3', '--pages', '8', '--pattern', 'stride:4'], '--count', /at most 2/);
  });

  it('fork-write --raw without --json is refused', () => {
    expectUsage(['fork-write', '--pages', '4', '--raw'], '--raw', /--json/);
  });

  it('fork-write --deadline-ms that the hold alone fills is refused before anything runs', () => {
    expectUsage(['fork-write', '--pages', '4', '--hold-ms', '3000', '--deadline-ms', '100'], '--deadline-ms', /--hold-ms \(3000\)/);
    expectUsage(['fork-write', '--pages', '4', '--hold-ms', '3000', '--deadline-ms', '3000'], '--deadline-ms');
  });

  it('fork-write with a deadline longer than the hold runs', () => {
    const r = runCli(['fork-write', '--pages', '4', '--hold-ms', '20', '--deadline-ms', '10000', '--repeats', '1', '--warmup', '0', '--json', '--raw']);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { runs: { child: { latencyNs: number[] } }[] }).runs[0]!.child.latencyNs).toHaveLength(4);
  });

  it('counts paced parent writes while the child lives into the deadline', () => {
    const base = { pages: 16, writer: 'parent' as const, parentPaceNs: 10_000_000 }; // 16 stores, 160 ms
    const check = (o: Parameters<typeof resolveForkWriteOptions>[0]) => checkDeadlineOutlastsChild(resolveForkWriteOptions(o));
    expect(() => check({ ...base, deadlineMs: 100 })).toThrow(/^deadlineMs: must be more than holdMs \(0\) plus the paced parent writes \(160 ms\)/);
    expect(() => check({ ...base, deadlineMs: 5000 })).not.toThrow();
    // After the child exited, the paced writes are outside the child's deadline.
    expect(() => check({ ...base, parentWhen: 'child-exited', deadlineMs: 100 })).not.toThrow();
  });
});

describe('CowRegion.create takes its options as typed', () => {
  it.each([
    { what: 'pages as a string', options: { pages: '4' }, field: 'pages', message: /must be a number, got the string '4'/ },
    { what: 'maxFrames as a string', options: { pages: 4, maxFrames: '64' }, field: 'maxFrames', message: /must be a number/ },
    { what: 'a misspelt key', options: { pages: 4, polcy: 'eager' }, field: 'polcy', message: /is not an option of CowRegion\.create/ },
    { what: 'no object', options: null, field: 'options', message: /must be an object/ },
  ])('$what: ERR_INVALID_OPTION naming $field', ({ options, field, message }) => {
    let err: unknown;
    try {
      CowRegion.create(options as never).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CowlabError);
    expect((err as CowlabError).code).toBe('ERR_INVALID_OPTION');
    expect((err as CowlabError).field).toBe(field);
    expect((err as CowlabError).message).toMatch(message);
  });

  it('still creates a region from well-typed options', () => {
    const region = CowRegion.create({ pages: 4, policy: 'eager', populate: 'write', maxFrames: 64, batchFrames: 8 });
    expect(region.pages).toBe(4);
    region.close();
  });
});

describe('env without root', () => {
  const damon = environment().noise.damon;
  it.skipIf(!root || damon.length === 0)(
    'does not say "DAMON not running" while a kdamond runs: it names the thread and says the details need root (needs root to see that one runs, and a running kdamond)',
    () => {
      const r = runCliAsNobody(['env']);
      expect(r.status, r.stderr).toBe(0);
      const line = r.stdout.split('\n').find((l) => l.startsWith('DAMON'))!;
      expect(line).not.toMatch(/not running/);
      expect(line).toMatch(/kdamond\.\d+ running .*needs root|unknown \(needs root\)/);
      const json = runCliAsNobody(['env', '--json']);
      const noise = (JSON.parse(json.stdout) as { noise: { damon: string[]; damonReason: string | null } }).noise;
      expect(noise.damonReason).toMatch(/needs root/);
      expect(noise.damon.length).toBeGreaterThan(0);
    },
  );

  it.skipIf(!root)('says "unknown (needs root)" where not even kernel threads are visible (a new pid namespace; needs root for unshare)', async () => {
    const { spawnSync } = await import('node:child_process');
    const { CLI } = await import('../helpers/cli.js');
    const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'env'], {
      encoding: 'utf8', timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^DAMON\s+unknown \(needs root\)$/m);
  });
});

describe('an interrupted experiment', () => {
  it('says "interrupted" once: the reason does not repeat the figure', async () => {
    const controller = new AbortController();
    const stops = defineExperiment({
      number: 99, name: 'stops', title: 't', claim: 'c', short: 's', rule: 'r', measures: 'm', requirements: {},
      budgetMs: { full: 1000, quick: 1000 }, raw: z.object({}),
      run: async (ctx) => {
        controller.abort();
        ctx.signal.throwIfAborted();
        return {};
      },
      verdict: () => ({ verdict: 'confirmed', figure: 'f', reason: 'r', metrics: [] }),
      present: () => ({ charts: [], tables: [] }),
    });
    const doc = await runSuite([stops], { signal: controller.signal });
    const v = doc.experiments[0]!.verdict;
    expect(doc.experiments[0]!.status).toBe('interrupted');
    const line = `${v.figure}: ${v.reason}`; // how `cowlab run` prints a verdict without a figure
    expect(line).toMatch(/^interrupted: .*Ctrl-C/);
    expect(line.match(/interrupted/g)).toHaveLength(1);
  });
});
