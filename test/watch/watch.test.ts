/**
 * watch, record and predict on real processes: a small C program that maps pages, forks a child
 * that holds the snapshot, and writes a known set of pages meanwhile (test/watch/snapshot.c).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CowlabError } from '../../src/errors.js';
import { selectPages } from '../../src/trace/select.js';
import { formatBytes } from '../../src/util/units.js';
import { loadTrace } from '../../src/trace/parse.js';
import { predictSnapshot } from '../../src/watch/predict.js';
import { recordMeta, recordWrites, softDirtyAvailable } from '../../src/watch/record.js';
import { watchFork } from '../../src/watch/watch.js';
import { CLI, runCli } from '../helpers/cli.js';

const PAGES = 2048;
const CHILD_MS = 1500;
/** The pages the parent writes while its child holds the snapshot. */
const WRITTEN = [0, 3, 10, 11, 12, 100, 511, 512, 1000, 1024, 1500, 2047];

let dir: string;
let program: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cowlab-watch-test-'));
  program = join(dir, 'snapshot');
  const cc = spawnSync('cc', ['-O1', '-o', program, join(import.meta.dirname, 'snapshot.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr}`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function readlinkSafe(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

interface Snapshotter {
  proc: ChildProcessWithoutNullStreams;
  address: bigint;
  fork(): void;
  done: Promise<void>;
  end(): void;
}

/** Starts the program; resolves once it printed its buffer's address (it forks on fork()). */
async function startSnapshotter(): Promise<Snapshotter> {
  const proc = spawn(program, [String(PAGES), String(CHILD_MS), ...WRITTEN.map(String)]);
  let out = '';
  let sawDone: () => void = () => {};
  const done = new Promise<void>((r) => (sawDone = r));
  const address = await new Promise<bigint>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^(0x[0-9a-f]+)\n/.exec(out);
      if (m) resolve(BigInt(m[1]!));
      if (out.includes('done\n')) sawDone();
    });
    proc.once('exit', () => reject(new Error(`snapshot program exited early: ${out}`)));
  });
  return { proc, address, fork: () => proc.stdin.write('go\n'), done, end: () => proc.stdin.end() };
}

describe('watch follows a fork snapshot from outside', () => {
  it('sees the fork, the child\'s COW memory growing to the pages written, and the child exiting', async () => {
    const s = await startSnapshotter();
    try {
      const watching = watchFork({ pid: s.proc.pid!, intervalMs: 20, timeoutS: 20 });
      setTimeout(() => s.fork(), 200);
      const r = await watching;
      await s.done;
      expect(r.comm).toBe('snapshot');
      expect(r.childExited).toBe(true);
      expect(r.fork.ms).toBeGreaterThan(0);
      expect(r.fork.upperBoundMs).toBeGreaterThanOrEqual(r.fork.blockedMs ?? 0);
      expect(r.durationMs).toBeGreaterThan(CHILD_MS / 2);
      expect(r.samples.length).toBeGreaterThan(10);
      // Every page the parent wrote is a copy: the child's original is private to it now. The
      // rest of the child's Private_Dirty is the two processes' own stack and libc writes.
      const written = WRITTEN.length * 4096;
      expect(r.finalCowBytes).toBeGreaterThanOrEqual(written);
      expect(r.finalCowBytes).toBeLessThan(written + 512 * 1024);
      // Before the parent's writes (300 ms after the fork) the snapshot cost less.
      expect(r.samples[0]!.cowBytes).toBeLessThan(written);
      // Both map the 8 MiB buffer: the child's Rss holds it, shared.
      expect(r.samples[0]!.child.rss).toBeGreaterThan(PAGES * 4096);
    } finally {
      s.end();
    }
  });
});

describe('watch --html', () => {
  it('writes the snapshot as a page: the COW-over-time chart, and a table of every sample the JSON has', async () => {
    const s = await startSnapshotter();
    const page = join(dir, 'watch.html');
    try {
      const cli = spawn(process.execPath, [CLI, 'watch', '--pid', String(s.proc.pid), '--interval-ms', '20', '--timeout-s', '30', '--json', '--html', page]);
      let stdout = '';
      let stderr = '';
      cli.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((r) => cli.on('exit', (c) => r(c)));
      // watch takes the children it ignores when it starts: fork once it waits, which it does
      // with the process's pagemap open (its fork probe).
      const waiting = () => {
        try {
          return readdirSync(`/proc/${cli.pid}/fd`).some((fd) => readlinkSafe(`/proc/${cli.pid}/fd/${fd}`) === `/proc/${s.proc.pid}/pagemap`);
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 1500 && !waiting(); i++) await new Promise((r) => setTimeout(r, 20));
      setTimeout(() => s.fork(), 300);
      expect(await exited, stderr).toBe(0);
      await s.done;
      const r = JSON.parse(stdout) as { child: number; samples: { cowBytes: number; parent: { sharedDirty: number } }[]; peak: { cowBytes: number } };
      const html = readFileSync(page, 'utf8');
      expect(html).toContain(`the fork snapshot of pid ${s.proc.pid} (snapshot)`);
      expect(html).toContain(`COW memory over time: pid ${s.proc.pid} (snapshot) and its snapshot child ${r.child}`);
      expect(html).toMatch(/<svg[^>]*>/);
      expect(html).toContain("COW: the child&#39;s Private_Dirty");
      // The samples table: one row per sample, the COW column as in the JSON.
      const table = html.slice(html.indexOf('<h3>Samples'));
      const rows = [...table.slice(0, table.indexOf('</table>')).matchAll(/<tr><td class="num">([\d.]+)<\/td><td class="num">([^<]+)<\/td><td class="num">[^<]+<\/td><td class="num">([^<]+)<\/td>/g)];
      expect(rows.length).toBe(r.samples.length);
      expect(rows.map((m) => m[2])).toEqual(r.samples.map((x) => formatBytes(x.cowBytes)));
      expect(rows.map((m) => m[3])).toEqual(r.samples.map((x) => formatBytes(x.parent.sharedDirty)));
      // The parent's pages written after the fork are in the last sample's COW.
      expect(r.samples.at(-1)!.cowBytes).toBeGreaterThanOrEqual(WRITTEN.length * 4096);
      expect(Math.max(...r.samples.map((x) => x.cowBytes))).toBe(r.peak.cowBytes);
    } finally {
      s.end();
    }
  });

  it('refuses a directory as --html before waiting for a fork (exit 2)', () => {
    const sleeper = spawn('sleep', ['30']);
    try {
      const r = runCli(['watch', '--pid', String(sleeper.pid), '--timeout-s', '20', '--html', dir]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`--html: ${dir} is a directory; give a file name (e.g. ${join(dir, 'watch.html')})`);
    } finally {
      sleeper.kill();
    }
  });
});

describe('record turns the snapshot\'s writes into a trace', () => {
  it('records exactly the pages the program wrote in its buffer, and the trace simulates to one copy per page', async () => {
    const s = await startSnapshotter();
    try {
      const recording = recordWrites({ pid: s.proc.pid!, seconds: 5, intervalMs: 100, method: softDirtyAvailable() ? 'fork' : 'auto', waitForkS: 20 });
      setTimeout(() => s.fork(), 300);
      const r = await recording;
      await s.done;
      expect(r.method).toBe('fork');
      expect(r.stoppedBy).toBe('child-exited');
      const meta = recordMeta(r.trace)!;
      expect(meta.pid).toBe(s.proc.pid);
      // The buffer's region (it may have merged with a neighbouring anonymous VMA).
      const region = r.trace.regions.find((g) => {
        const start = BigInt(meta.regionStart[g.id]!);
        return start <= s.address && s.address < start + BigInt(g.pages) * 4096n;
      })!;
      expect(region).toBeDefined();
      const offset = Number((s.address - BigInt(meta.regionStart[region.id]!)) / 4096n);
      const forkAt = r.trace.steps.findIndex((st) => st.op === 'fork');
      const pages = new Set<number>();
      for (const st of r.trace.steps.slice(forkAt + 1)) {
        if (st.op !== 'write' || st.region !== region.id) continue;
        for (const p of selectPages(st.pages, region.pages)) if (p >= offset && p < offset + PAGES) pages.add(p - offset);
      }
      expect([...pages].sort((a, b) => a - b)).toEqual(WRITTEN);
      // The two halves were written 300 ms apart: in different intervals.
      const steps = r.trace.steps.slice(forkAt + 1).filter((st) => st.op === 'write' && st.region === region.id);
      expect(steps.length).toBeGreaterThanOrEqual(2);
      // Resident at the fork: the whole buffer.
      const before = r.trace.steps.slice(0, forkAt).filter((st) => st.op === 'write' && st.region === region.id);
      const resident = new Set<number>();
      for (const st of before) if (st.op === 'write') for (const p of selectPages(st.pages, region.pages)) resident.add(p);
      if (region.populate !== 'write') for (let p = offset; p < offset + PAGES; p++) expect(resident.has(p)).toBe(true);

      // predict: every recorded page that was resident at the fork is one copy.
      const p = predictSnapshot({ trace: r.trace });
      expect(p.cowBytes + p.newBytes).toBe(r.distinctPages * 4096);
      expect(p.cowBytes).toBeGreaterThanOrEqual(WRITTEN.length * 4096);
      expect(p.residentBytes).toBe(r.residentPages * 4096);

      // The trace is a trace like any other: simulate takes it from a file.
      const file = join(dir, 'recorded.json');
      writeFileSync(file, JSON.stringify(r.trace));
      expect(loadTrace(file).steps.length).toBe(r.trace.steps.length);
      const sim = runCli(['simulate', file, '--json']);
      expect(sim.status, sim.stderr).toBe(0);
      const pr = runCli(['predict', '--trace', file, '--json']);
      expect(pr.status, pr.stderr).toBe(0);
      expect(JSON.parse(pr.stdout).cowBytes).toBe(p.cowBytes);
    } finally {
      s.end();
    }
  });

  it('validates a recorded trace: the simulator and real processes replaying it agree, one copy per page the program wrote in its buffer', async () => {
    const s = await startSnapshotter();
    let file: string;
    try {
      const recording = recordWrites({ pid: s.proc.pid!, seconds: 5, intervalMs: 100, method: 'fork', waitForkS: 20 });
      setTimeout(() => s.fork(), 300);
      const r = await recording;
      await s.done;
      file = join(dir, 'recorded-validate.json');
      writeFileSync(file, JSON.stringify(r.trace));
    } finally {
      s.end();
    }
    const v = runCli(['validate', file, '--json']);
    expect(v.status, v.stderr).toBe(0);
    const doc = JSON.parse(v.stdout) as {
      kernels: { traces: { status: string; observations: Record<'sim' | 'kernel', { steps: { op: string; events: Record<string, { copies: number; zeroFills: number }> }[] }> }[] }[];
    };
    const t = doc.kernels[0]!.traces[0]!;
    expect(t.status).toBe('matched');
    // The region holding the buffer: the one whose pages p0 populates (2048 zero fills before the fork).
    const trace = loadTrace(file);
    const forkAt = trace.steps.findIndex((st) => st.op === 'fork');
    for (const engine of ['sim', 'kernel'] as const) {
      const steps = t.observations[engine].steps;
      const buffer = Object.keys(steps[0]!.events).find((id) => steps.slice(0, forkAt + 1).reduce((n, st) => n + (st.events[id]?.zeroFills ?? 0), 0) >= PAGES)!;
      expect(buffer, engine).toBeDefined();
      const copies = steps.slice(forkAt + 1).reduce((n, st) => n + (st.events[buffer]?.copies ?? 0), 0);
      expect(copies, `${engine}: copies of the buffer after the fork`).toBe(WRITTEN.length);
    }
  });

  it.skipIf(softDirtyAvailable())('refuses method soft-dirty on a kernel without soft-dirty bits, naming the kernel option (this kernel has none)', async () => {
    const sleeper = spawn('sleep', ['30']);
    try {
      await expect(recordWrites({ pid: sleeper.pid!, seconds: 1, method: 'soft-dirty' })).rejects.toThrow(/CONFIG_MEM_SOFT_DIRTY.*--method fork/);
    } finally {
      sleeper.kill();
    }
  });
});

describe('predict at production sizes', () => {
  it('predicts a 64 GiB process (a 2^24-page region), and at 3x the memory of a 32 GiB one splits it into regions of at most 2^24 pages', () => {
    const trace = loadTrace(JSON.stringify({
      name: 'big',
      regions: [{ id: 'heap', pages: 2 ** 24 }],
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'write', proc: 'p0', region: 'heap', pages: { random: 2000, seed: 1 } },
        { op: 'write', proc: 'p0', region: 'heap', pages: { random: 2000, seed: 2 } },
        { op: 'exit', proc: 'c1' },
      ],
    }));
    const distinct = new Set([...selectPages({ random: 2000, seed: 1 }, 2 ** 24), ...selectPages({ random: 2000, seed: 2 }, 2 ** 24)]).size;
    const p = predictSnapshot({ trace, intervalMs: 100 });
    expect(p.residentBytes).toBe(2 ** 36);
    expect(p.cowBytes).toBe(distinct * 4096);
    expect(p.points.map((q) => q.tS)).toEqual([0, 0.1, 0.2]);
    const half = loadTrace(JSON.stringify({ ...trace, regions: [{ id: 'heap', pages: 2 ** 23 }] }));
    const big = predictSnapshot({ trace: half, intervalMs: 100, scaleMemory: 3, scaleRate: 2, snapshotSeconds: 0.2 });
    expect(big.residentBytes).toBe(3 * 2 ** 35);
    expect(big.regionBytes).toBe(3 * 2 ** 35);
    // Rate 2 over 0.2 s takes both intervals twice: the second pass writes other pages of the 4.
    expect(big.cowBytes).toBeGreaterThan(p.cowBytes);
    expect(big.cowBytes).toBeLessThanOrEqual(2 * 4000 * 4096);
  }, 120_000);
});

describe('errors', () => {
  it('watch and record refuse a pid with no process (exit 2, ERR_NO_SUCH_PROCESS), and a malformed pid', async () => {
    const gone = spawnSync('true');
    const pid = gone.pid!;
    await expect(watchFork({ pid, timeoutS: 1 })).rejects.toMatchObject({ code: 'ERR_NO_SUCH_PROCESS' });
    const w = runCli(['watch', '--pid', String(pid), '--timeout-s', '1']);
    expect(w.status).toBe(2);
    expect(w.stderr).toContain(`cowlab: --pid: no process with pid ${pid}`);
    const r = runCli(['record', '--pid', 'abc', '--seconds', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--pid: must be a process id (a positive integer), got 'abc'");
    const p = runCli(['predict']);
    expect(p.status).toBe(2);
    expect(p.stderr).toContain('give exactly one of --pid');
  });

  it('watch gives up on a process that does not fork (ERR_NO_FORK, exit 1) and one that exits (ERR_PROCESS_EXITED)', async () => {
    const sleeper = spawn('sleep', ['30']);
    try {
      const err = await watchFork({ pid: sleeper.pid!, timeoutS: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CowlabError);
      expect((err as CowlabError).code).toBe('ERR_NO_FORK');
      const cli = runCli(['watch', '--pid', String(sleeper.pid), '--timeout-s', '1']);
      expect(cli.status).toBe(1);
      expect(cli.stderr).toMatch(/did not fork within 1 s/);
      const short = spawn('sleep', ['0.3']);
      short.on('exit', () => {}); // reaped by Node: the pid disappears
      await expect(watchFork({ pid: short.pid!, timeoutS: 10 })).rejects.toMatchObject({ code: 'ERR_PROCESS_EXITED' });
    } finally {
      sleeper.kill();
    }
  });
});
