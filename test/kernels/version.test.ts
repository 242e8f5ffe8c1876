/**
 * Kernel version strings and their order, and dpkg's version order (deb-version(7)), which picks
 * the newest package of a series. Every Debian pair is also checked against the real
 * `dpkg --compare-versions`.
 */
import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { compareDebianVersions, compareVersions, formatVersion, kernelVersion, parseVersion, upstreamFromBuild, type KernelVersion } from '../../src/kernels/version.js';

const v = (major: number, minor: number, patch = 0): KernelVersion => ({ major, minor, patch });

describe('parseVersion', () => {
  it.each([
    { text: '6.1.0-57-cloud-amd64', want: v(6, 1, 0) },
    { text: '6.12.117+deb12-cloud-amd64', want: v(6, 12, 117) },
    { text: '6.18.2', want: v(6, 18, 2) },
    { text: '6.12', want: v(6, 12, 0) },
    { text: 'v6.9.1', want: v(6, 9, 1) },
    { text: '  6.1.192-3 ', want: v(6, 1, 192) },
    { text: '6.19.0-rc3', want: v(6, 19, 0) },
    { text: '10.0.1', want: v(10, 0, 1) },
    { text: '6', want: null },
    { text: 'linux-6.1', want: null },
    { text: 'Debian 6.1.192', want: null },
    { text: '', want: null },
  ])('$text', ({ text, want }) => {
    expect(parseVersion(text)).toEqual(want);
  });
});

describe('compareVersions', () => {
  it.each([
    { a: v(6, 1, 192), b: v(6, 12, 0), sign: -1 },
    { a: v(6, 10), b: v(6, 9, 300), sign: 1 },
    { a: v(6, 1, 10), b: v(6, 1, 9), sign: 1 },
    { a: v(5, 19, 17), b: v(6, 0, 0), sign: -1 },
    { a: v(6, 12, 117), b: v(6, 12, 117), sign: 0 },
  ])('$a.major.$a.minor.$a.patch vs $b.major.$b.minor.$b.patch', ({ a, b, sign }) => {
    expect(Math.sign(compareVersions(a, b))).toBe(sign);
    expect(Math.sign(compareVersions(b, a))).toBe(sign === 0 ? 0 : -sign);
  });

  it('orders a list numerically, not as text', () => {
    const list = ['6.12.1', '6.1.192', '6.9.0', '6.18.2', '6.1.9', '6.1.10'].map((s) => parseVersion(s)!);
    expect(list.sort(compareVersions).map((x) => formatVersion(x))).toEqual(['6.1.9', '6.1.10', '6.1.192', '6.9.0', '6.12.1', '6.18.2']);
  });

  it('formatVersion with and without the patch level', () => {
    expect(formatVersion(v(6, 12, 117))).toBe('6.12.117');
    expect(formatVersion(v(6, 12, 117), false)).toBe('6.12');
  });
});

describe('kernelVersion: the upstream version wins over the ABI name', () => {
  const release = '6.1.0-57-cloud-amd64';
  const build = '#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)';

  it('upstreamFromBuild reads "Debian x.y.z" from uname -v', () => {
    expect(upstreamFromBuild(build)).toEqual(v(6, 1, 192));
    expect(upstreamFromBuild('#1 SMP PREEMPT_DYNAMIC Debian 6.12.117-1~deb12u1 (2026-11-01)')).toEqual(v(6, 12, 117));
    expect(upstreamFromBuild('#1 SMP PREEMPT_DYNAMIC Thu Jan  1 00:00:00 UTC 2026')).toBeNull();
    expect(upstreamFromBuild('')).toBeNull();
  });

  it.each([
    { name: 'the build string wins over the release', release, build, pkg: null, want: v(6, 1, 192) },
    { name: 'the build string wins over the package version', release, build, pkg: '6.1.176-1', want: v(6, 1, 192) },
    { name: 'the package version when the build names none', release, build: '#1 SMP', pkg: '6.1.176-1', want: v(6, 1, 176) },
    { name: 'the release when nothing else is known (mainline)', release: '6.18.2', build: '#3 SMP PREEMPT', pkg: null, want: v(6, 18, 2) },
    { name: 'the release of a Debian ABI name (only 6.1.0)', release, build: '', pkg: null, want: v(6, 1, 0) },
    { name: 'null when nothing parses', release: 'custom', build: '#1', pkg: 'none', want: null },
  ])('$name', ({ release, build, pkg, want }) => {
    expect(kernelVersion(release, build, pkg)).toEqual(want);
  });

  it('defaults to the release alone', () => {
    expect(kernelVersion('6.12.117+deb12-cloud-amd64')).toEqual(v(6, 12, 117));
  });
});

/** [a, b, sign of a compared with b], as deb-version(7) orders them. */
const DEBIAN_PAIRS: [string, string, -1 | 0 | 1][] = [
  ['1.0', '1.0', 0],
  // epochs
  ['1:1.0', '2.0', 1],
  ['0:1.0', '1.0', 0],
  ['1:0.1', '1:0.2', -1],
  ['2:0.1', '1:9.9', 1],
  // tildes sort before everything, even the end
  ['1.0~rc1', '1.0', -1],
  ['1.0~rc1', '1.0~rc2', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0~', '1.0', -1],
  ['1.0-1~bpo1', '1.0-1', -1],
  ['6.12.117-1~deb12u1', '6.12.117-1', -1],
  ['6.12.117-1~deb12u1', '6.12.115-1~deb12u1', 1],
  ['6.12.117-1~deb12u1', '6.12.116-1', 1],
  // numbers compare as numbers
  ['6.1.192-3', '6.1.176-1', 1],
  ['6.1.10-1', '6.1.9-1', 1],
  ['6.1.192-3', '6.1.192-10', -1],
  ['2.30-1', '2.3-1', 1],
  ['1.001', '1.1', 0],
  ['1.0', '1.00', 0],
  ['6.1', '6.12', -1],
  // letters sort before non-letters, and after the end
  ['1.0a', '1.0+', -1],
  ['1.0a', '1.0.', -1],
  ['1.0a', '1.0', 1],
  ['1.0+', '1.0', 1],
  ['1.0.1', '1.0a', 1],
  ['1.0A', '1.0a', -1],
  ['6.12.117+deb12', '6.12.117', 1],
  // revisions: absent equals 0, the last hyphen splits
  ['1.0-1', '1.0', 1],
  ['1.0-0', '1.0', 0],
  ['1.2-3-4', '1.2-3', 1],
  ['1.2-3-4', '1.2-3-5', -1],
];

describe('compareDebianVersions', () => {
  it.each(DEBIAN_PAIRS)('%s vs %s is %i', (a, b, sign) => {
    expect(Math.sign(compareDebianVersions(a, b))).toBe(sign);
    expect(Math.sign(compareDebianVersions(b, a))).toBe(sign === 0 ? 0 : -sign);
  });

  it('picks the newest package version of a series', () => {
    const versions = ['6.1.9-1', '6.1.192-3', '6.1.10-1', '6.1.176-1', '6.1.192-3~bpo1'];
    expect([...versions].sort((a, b) => compareDebianVersions(b, a))).toEqual(['6.1.192-3', '6.1.192-3~bpo1', '6.1.176-1', '6.1.10-1', '6.1.9-1']);
  });

  it('agrees with dpkg --compare-versions on every pair', () => {
    if (spawnSync('dpkg', ['--version']).error) {
      throw new Error('dpkg is not on PATH: this test checks compareDebianVersions against `dpkg --compare-versions`; install dpkg (apt-get install dpkg)');
    }
    const holds = (a: string, op: 'lt' | 'eq', b: string) => {
      const r = spawnSync('dpkg', ['--compare-versions', a, op, b], { encoding: 'utf8' });
      if (r.status !== 0 && r.status !== 1) throw new Error(`dpkg --compare-versions ${a} ${op} ${b}: ${r.stderr || r.error}`);
      return r.status === 0;
    };
    const dpkgSign = (a: string, b: string) => (holds(a, 'lt', b) ? -1 : holds(a, 'eq', b) ? 0 : 1);
    const disagreements = DEBIAN_PAIRS.flatMap(([a, b, sign]) => {
      const want = dpkgSign(a, b);
      const got = Math.sign(compareDebianVersions(a, b));
      const rows = [];
      if (got !== want) rows.push(`${a} vs ${b}: cowlab ${got}, dpkg ${want}`);
      if (sign !== want) rows.push(`${a} vs ${b}: the table says ${sign}, dpkg ${want}`);
      return rows;
    });
    expect(disagreements).toEqual([]);
  });
});
