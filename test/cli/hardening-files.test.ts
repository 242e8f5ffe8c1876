/**
 * Output paths and results files as a hostile user gives them (issue 11, rows 1, 2, 6, 7, 10
 * and COWLAB_COST_MODEL): every bad path or file exits 2 naming the field and the reason,
 * before anything is measured, in bounded time and memory, and leaves nothing behind (no
 * directory made, no temporary file, nothing written into /proc, /sys or /dev).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CowlabError } from '../../src/errors.js';
import { readBoundedText, writeFileAtomic } from '../../src/util/files.js';
import { CLI, runCli, runCliAsNobody, type CliResult } from '../helpers/cli.js';

const asRoot = process.getuid?.() === 0;

let dir: string;
let good: string; // a results.json written by `cowlab run 5 --quick`
let goodText: string;

/** The environment of every command: no cost model from the user's config, none named. */
function env(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config') };
  delete e.COWLAB_COST_MODEL;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  return e;
}

/** A hang shows as a killed process (status null), not as a stuck test. */
const cli = (args: string[], extra: Record<string, string | undefined> = {}): CliResult => runCli(args, { env: env(extra), timeout: 30_000 });

/** The CLI with `file` on a real pipe as stdin, as `cat file | cowlab ...` gives it (spawn's own stdin is a socket). */
function cliPiped(file: string, args: string[]): CliResult {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('sh', ['-c', `cat '${file}' | ${quoted}`], { encoding: 'utf8', env: env(), timeout: 30_000 });
  return { status: r.status, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Exit 2, one line naming the field, no "cowlab bug", nothing measured. */
function expectUsage(r: CliResult, message: RegExp): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.status, r.stdout + r.stderr).toBe(2);
  expect(r.stderr.trimEnd()).toMatch(message);
  expect(r.stderr).not.toMatch(/unexpected error|cowlab bug/);
  expect(r.stderr).not.toMatch(/measuring|cowlab run: \d/); // calibrate and run print these once they measure
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
}

/** Every entry under `d`, relative; symbolic links are listed, not followed (one leads into /proc). */
function listing(d: string, prefix = ''): string[] {
  return readdirSync(d, { withFileTypes: true })
    .flatMap((e) => [`${prefix}${e.name}`, ...(e.isDirectory() ? listing(join(d, e.name), `${prefix}${e.name}/`) : [])])
    .sort();
}

const tmpFiles = (d: string) => readdirSync(d).filter((f) => f.endsWith('.tmp'));

beforeAll(() => {
  dir = mkdtempSync(join(os.tmpdir(), 'cowlab-hardening-'));
  chmodSync(dir, 0o755); // the unprivileged cases read the results file through it
  const out = join(dir, 'good');
  const r = cli(['run', '5', '--quick', '--out', out]);
  expect(r.status, r.stdout + r.stderr).toBe(0);
  good = join(out, 'results.json');
  goodText = readFileSync(good, 'utf8');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('run --out', () => {
  it('creates the --out directory itself and leaves exactly results.json and report.html in it', () => {
    expect(readdirSync(join(dir, 'good')).sort()).toEqual(['report.html', 'results.json']);
  });

  it.each([
    { what: 'a directory in /proc (a recursive mkdir there loops forever)', out: () => '/proc/x', message: /^cowlab: --out: \/proc\/x: it is in \/proc: cowlab writes no files into \/proc, \/sys or \/dev$/ },
    { what: 'a directory in /sys', out: () => '/sys/kernel/cowlab-x', message: /--out: \/sys\/kernel\/cowlab-x: it is in \/sys/ },
    { what: 'a directory in /dev', out: () => '/dev/cowlab-x', message: /--out: \/dev\/cowlab-x: it is in \/dev/ },
    { what: 'a symbolic link into /proc', out: () => join(dir, 'to-proc', 'x'), message: /--out: .*to-proc\/x: .*to-proc leads into \/proc/ },
    { what: 'a missing parent (only DIR itself is created)', out: () => join(dir, 'missing', 'deeper'), message: /--out: .*missing\/deeper: its parent .*missing does not exist \(cowlab creates only deeper itself, not its parents\)/ },
    { what: 'an existing file', out: () => join(dir, 'a-file'), message: /--out: .*a-file is not a directory \(it is a file\)/ },
    { what: 'a parent that is a file', out: () => join(dir, 'a-file', 'x'), message: /--out: .*a-file\/x: .*a-file is not a directory/ },
    { what: 'a results.json that is a directory', out: () => join(dir, 'holds-dir'), message: /--out: .*holds-dir\/results\.json is a directory/ },
  ])('exits 2 before running anything for $what', ({ out, message }) => {
    writeFileSync(join(dir, 'a-file'), 'x');
    if (!existsSync(join(dir, 'to-proc'))) symlinkSync('/proc/self', join(dir, 'to-proc'));
    mkdirSync(join(dir, 'holds-dir', 'results.json'), { recursive: true });
    const before = listing(dir);
    const r = cli(['run', '5', '--quick', '--out', out()]);
    expectUsage(r, message);
    expect(listing(dir)).toEqual(before);
    expect(existsSync('/proc/x')).toBe(false);
  });

  it.skipIf(!asRoot)('exits 2 for a directory the user cannot write (as nobody; needs root to switch user)', () => {
    const ro = join(dir, 'root-owned');
    mkdirSync(ro, { recursive: true, mode: 0o755 });
    const r = runCliAsNobody(['run', '5', '--quick', '--out', join(ro, 'out')], { env: env(), timeout: 30_000 });
    expectUsage(r, /--out: .*root-owned\/out: .*root-owned is not writable/);
    expect(readdirSync(ro)).toEqual([]);
  });

  it('exits 2 for a COWLAB_COST_MODEL that names no file, before running anything', () => {
    const out = join(dir, 'never');
    const r = cli(['run', '5', '--quick', '--out', out], { COWLAB_COST_MODEL: '/nonexistent' });
    expectUsage(r, /^cowlab: COWLAB_COST_MODEL: cannot read '\/nonexistent': no such file/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('calibrate --out', () => {
  it.each([
    { what: 'a file in /proc', out: () => '/proc/x/cm.json', message: /^cowlab: --out: \/proc\/x\/cm\.json: it is in \/proc/ },
    { what: 'an existing directory (it wrote a temporary file beside it, /tmp.PID.tmp in /)', out: () => join(dir, 'a-dir'), message: /--out: .*a-dir is a directory; give a file name \(e\.g\. .*a-dir\/cost-model\.json\)/ },
    { what: 'a missing directory (it created it silently)', out: () => join(dir, 'nonexistent', 'dir', 'x.json'), message: /--out: .*nonexistent\/dir\/x\.json: directory .*nonexistent\/dir does not exist/ },
    { what: 'a parent that is a file', out: () => join(dir, 'a-file', 'cm.json'), message: /--out: .*a-file\/cm\.json: .*a-file is not a directory/ },
    { what: 'a device', out: () => '/dev/null', message: /--out: \/dev\/null: it is in \/dev/ },
  ])('exits 2 before measuring for $what, leaving nothing behind', ({ out, message }) => {
    writeFileSync(join(dir, 'a-file'), 'x');
    mkdirSync(join(dir, 'a-dir'), { recursive: true });
    const before = listing(dir);
    const r = cli(['calibrate', '--pages', '16', '--repeats', '1', '--warmup', '0', '--out', out()]);
    expectUsage(r, message);
    expect(listing(dir)).toEqual(before);
    expect(tmpFiles(dirname(dir))).toEqual([]);
  });

  it.each([
    { what: 'COWLAB_COST_MODEL in a missing directory', extra: () => ({ COWLAB_COST_MODEL: join(dir, 'nope', 'cm.json') }), message: /^cowlab: COWLAB_COST_MODEL: .*nope\/cm\.json: directory .*nope does not exist/ },
    { what: 'XDG_CONFIG_HOME in /proc (the default location)', extra: () => ({ XDG_CONFIG_HOME: '/proc/x' }), message: /^cowlab: XDG_CONFIG_HOME: \/proc\/x\/cowlab\/cost-model\.json: it is in \/proc/ },
  ])('exits 2 before measuring for $what', ({ extra, message }) => {
    const before = listing(dir);
    expectUsage(cli(['calibrate', '--pages', '16', '--repeats', '1', '--warmup', '0'], extra()), message);
    expect(listing(dir)).toEqual(before);
  });

  it.skipIf(!asRoot)('exits 2 for a directory the user cannot write (EACCES was exit 1; as nobody, needs root to switch user)', () => {
    const ro = join(dir, 'root-owned-cal');
    mkdirSync(ro, { recursive: true, mode: 0o755 });
    const r = runCliAsNobody(['calibrate', '--pages', '16', '--repeats', '1', '--warmup', '0', '--out', join(ro, 'cm.json')], { env: env(), timeout: 30_000 });
    expectUsage(r, /--out: .*root-owned-cal\/cm\.json: .*root-owned-cal is not writable/);
    expect(readdirSync(ro)).toEqual([]);
  });

  it('writes the model where COWLAB_COST_MODEL says (a file not there yet), with no temporary file left', () => {
    const cal = join(dir, 'cal');
    mkdirSync(cal);
    const r = cli(['calibrate', '--pages', '16', '--repeats', '1', '--warmup', '0'], { COWLAB_COST_MODEL: join(cal, 'cm.json') });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(readdirSync(cal)).toEqual(['cm.json']);
    expect(JSON.parse(readFileSync(join(cal, 'cm.json'), 'utf8'))).toMatchObject({ version: 1 });
  });

  it('creates only its own default location, $XDG_CONFIG_HOME/cowlab, when nothing names a path', () => {
    const xdg = join(dir, 'xdg');
    const r = cli(['calibrate', '--pages', '16', '--repeats', '1', '--warmup', '0'], { XDG_CONFIG_HOME: xdg });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(listing(xdg)).toEqual(['cowlab', 'cowlab/cost-model.json']);
  });
});

describe('COWLAB_COST_MODEL naming a missing file', () => {
  it('is the same error as --cost-model with a missing file, naming the variable', () => {
    const viaFlag = cli(['simulate', 'fork-exec', '--cost-model', '/nonexistent']);
    expectUsage(viaFlag, /^cowlab: --cost-model: cannot read '\/nonexistent': no such file/);
    const viaEnv = cli(['simulate', 'fork-exec'], { COWLAB_COST_MODEL: '/nonexistent' });
    expectUsage(viaEnv, /^cowlab: COWLAB_COST_MODEL: cannot read '\/nonexistent': no such file/);
    expect(viaEnv.stderr.replace('COWLAB_COST_MODEL', '--cost-model')).toBe(viaFlag.stderr);
  });

  it('refuses a cost model that is a device (/dev/zero never ends) from the flag and from the variable', () => {
    expectUsage(cli(['simulate', 'fork-exec', '--cost-model', '/dev/zero']), /^cowlab: --cost-model: cannot read '\/dev\/zero': not a regular file$/);
    expectUsage(cli(['simulate', 'fork-exec'], { COWLAB_COST_MODEL: '/dev/zero' }), /^cowlab: COWLAB_COST_MODEL: cannot read '\/dev\/zero': not a regular file$/);
  });
});

describe('report --out', () => {
  it.each([
    { what: 'an existing directory', args: () => [good, '--out', join(dir, 'a-dir')], message: /^cowlab: --out: .*a-dir is a directory; give a file name \(e\.g\. .*a-dir\/report\.html\)$/ },
    { what: 'a path under a file (/etc/passwd/r.html)', args: () => [good, '--out', '/etc/passwd/r.html'], message: /^cowlab: --out: \/etc\/passwd\/r\.html: \/etc\/passwd is not a directory$/ },
    { what: 'a file in /proc', args: () => [good, '--out', '/proc/self/r.html'], message: /^cowlab: --out: \/proc\/self\/r\.html: it is in \/proc/ },
    { what: 'a missing directory', args: () => [good, '--out', join(dir, 'missing', 'r.html')], message: /--out: .*missing\/r\.html: directory .*missing does not exist/ },
    { what: 'the results file itself', args: () => [good, '--out', good], message: /--out: .*results\.json is the results file itself/ },
  ])('exits 2 for $what, writing nothing', ({ args, message }) => {
    mkdirSync(join(dir, 'a-dir'), { recursive: true });
    const before = listing(dir);
    expectUsage(cli(['report', ...args()]), message);
    expect(listing(dir)).toEqual(before);
    expect(readFileSync(good, 'utf8')).toBe(goodText);
  });

  it('never writes report.html into /dev: the default beside /dev/stdin is refused and --out is asked for', () => {
    const r = cliPiped(good, ['report', '/dev/stdin']);
    expectUsage(r, /^cowlab: --out: \/dev\/report\.html: it is in \/dev: .* \(the default, report\.html beside \/dev\/stdin; give --out\)$/);
    expect(existsSync('/dev/report.html')).toBe(false);
  });

  it('reads results from a pipe (/dev/stdin) and writes --out, with no temporary file left', () => {
    const out = join(dir, 'piped');
    mkdirSync(out);
    const r = cliPiped(good, ['report', '/dev/stdin', '--out', join(out, 'r.html')]);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(out)).toEqual(['r.html']);
    expect(readFileSync(join(out, 'r.html'), 'utf8')).toBe(readFileSync(join(dir, 'good', 'report.html'), 'utf8'));
  });

  it('removes its temporary file when the write itself fails (a file size limit: EFBIG, exit 1)', () => {
    const out = join(dir, 'limited');
    mkdirSync(out);
    // SIGXFSZ ignored, so write(2) fails with EFBIG instead of killing the process; ulimit -f is per process.
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 8; exec "${process.execPath}" "${CLI}" report "${good}" --out "${join(out, 'r.html')}"`], { encoding: 'utf8', env: env(), timeout: 30_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^cowlab: --out: cannot write .*limited\/r\.html: EFBIG/);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('validate --report', () => {
  it.each([
    { what: 'a file in /proc (its directory exists)', report: () => '/proc/self/r.html', message: /^cowlab: --report: \/proc\/self\/r\.html: it is in \/proc/ },
    { what: 'an existing directory', report: () => join(dir, 'a-dir'), message: /^cowlab: --report: .*a-dir is a directory; give a file name/ },
    { what: 'a missing directory', report: () => join(dir, 'missing', 'r.html'), message: /^cowlab: --report: .*missing\/r\.html: directory .*missing does not exist$/ },
  ])('exits 2 before running anything for $what', ({ report, message }) => {
    mkdirSync(join(dir, 'a-dir'), { recursive: true });
    const before = listing(dir);
    expectUsage(cli(['validate', 'fork-exec', '--report', report()]), message);
    expect(listing(dir)).toEqual(before);
  });
});

describe('results files are read with a size cap', () => {
  it.each([
    { what: 'report /dev/zero', args: () => ['report', '/dev/zero'], message: /^cowlab: \/dev\/zero: cannot read: it is a character device, not a file$/ },
    { what: 'compare good.json /dev/zero', args: () => ['compare', good, '/dev/zero'], message: /^cowlab: \/dev\/zero: cannot read: it is a character device, not a file$/ },
    { what: 'a results file over 256 MiB (sparse)', args: () => ['report', join(dir, 'huge.json')], message: /huge\.json: is 257 MiB, more than the 256 MiB limit$/ },
    // A directory is a run's --out: its results.json (here a directory too) is what is read.
    { what: 'a directory', args: () => ['compare', dir, good], message: /cowlab-hardening-\w+\/.*results\.json: cannot read: EISDIR/ },
  ])('exits 2 at once for $what', ({ args, message }) => {
    writeFileSync(join(dir, 'huge.json'), '');
    truncateSync(join(dir, 'huge.json'), 257 * 1024 * 1024);
    const before = listing(dir);
    expectUsage(cli(args()), message);
    expect(listing(dir)).toEqual(before);
  });

  it('stops reading a pipe at the cap (readBoundedText, as trace files use it)', async () => {
    const fifo = join(dir, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const writer = spawn('sh', ['-c', `head -c 1000000 /dev/zero > "${fifo}"`], { stdio: 'ignore' });
    const exited = new Promise((resolve) => writer.on('exit', resolve));
    let err: unknown;
    try {
      readBoundedText(fifo, 64 * 1024, 'trace');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CowlabError);
    expect((err as CowlabError).code).toBe('ERR_INVALID_OPTION');
    expect((err as CowlabError).field).toBe('trace');
    expect((err as Error).message).toBe(`trace: ${fifo}: more than the 64 KiB limit (read from a pipe)`);
    await exited; // the writer gets EPIPE once the reader is gone
    rmSync(fifo);
  });

  it('reads a file whole up to the cap, and a /proc file that says its size is 0', () => {
    const f = join(dir, 'small.txt');
    writeFileSync(f, 'x'.repeat(5000));
    expect(readBoundedText(f, 5000, 'trace')).toHaveLength(5000);
    expect(() => readBoundedText(f, 4999, 'trace')).toThrow(`trace: ${f}: is 5000 bytes, more than the 4999 bytes limit`);
    expect(readBoundedText('/proc/self/status', 1 << 20, 'status')).toMatch(/^Name:/);
  });

  it('writeFileAtomic leaves no temporary file when the target cannot be replaced', () => {
    const d = join(dir, 'atomic');
    mkdirSync(join(d, 'target'), { recursive: true });
    expect(() => writeFileAtomic(join(d, 'target'), 'x', '--out')).toThrow(/--out: .*target is a directory/);
    expect(readdirSync(d)).toEqual(['target']);
  });
});

describe('results files with accepted garbage (row 10)', () => {
  type Doc = { version: unknown; durationMs: number; experiments: { number: number; name: string; raw: unknown; durationMs: number }[] };
  const edit = (change: (d: Doc) => void): string => {
    const d = JSON.parse(goodText) as Doc;
    change(d);
    const p = join(dir, `edited-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(p, JSON.stringify(d));
    return p;
  };

  it.each([
    { what: 'an unknown experiment', change: (d: Doc) => { d.experiments[0]!.name = 'no-such-experiment'; }, message: /: experiments\[0\]\.name: unknown experiment 'no-such-experiment': this cowlab knows fork-write-latency, .*model-validation/ },
    { what: 'experiment number 99', change: (d: Doc) => { d.experiments[0]!.number = 99; }, message: /: experiments\[0\]\.number: zero-page is experiment 5, the file says 99$/ },
    { what: 'raw: null on a completed experiment', change: (d: Doc) => { d.experiments[0]!.raw = null; }, message: /: experiments\[0\]\.raw: a completed experiment records its raw measurements, got null$/ },
    { what: 'the experiment list repeated 50 times', change: (d: Doc) => { d.experiments = Array.from({ length: 50 }, () => d.experiments[0]!); }, message: /: experiments\[1\]\.name: 'zero-page' is listed twice \(also experiments\[0\]\)$/ },
    { what: 'a negative durationMs', change: (d: Doc) => { d.durationMs = -5; }, message: /: durationMs: Too small: expected number to be >=0$/ },
    { what: "a negative experiment's durationMs", change: (d: Doc) => { d.experiments[0]!.durationMs = -1; }, message: /: experiments\[0\]\.durationMs: Too small/ },
    { what: 'version "1" (a string)', change: (d: Doc) => { d.version = '1'; }, message: /: version: this cowlab reads results version 1, the file has the string "1" \(a version is a number\)$/ },
  ])('exits 2 for $what, naming the field (report and compare)', ({ change, message }) => {
    const file = edit(change);
    expectUsage(cli(['report', file, '--out', join(dir, 'never.html')]), message);
    expectUsage(cli(['compare', good, file]), message);
    expect(existsSync(join(dir, 'never.html'))).toBe(false);
  });
});
