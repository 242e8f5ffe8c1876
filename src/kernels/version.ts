/**
 * Kernel versions: "6.1.0-57-cloud-amd64" (a release string), "6.1.192" (an upstream version),
 * and the ordering of both. A Debian release string carries the ABI name (6.1.0-57), not the
 * stable version; the upstream version comes from `uname -v` ("Debian 6.1.192-3") or the
 * package version, and profiles are chosen by it when it is known.
 */

export interface KernelVersion {
  major: number;
  minor: number;
  patch: number;
}

/** The leading x.y[.z] of a release or version string; null when there is none. */
export function parseVersion(text: string): KernelVersion | null {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: m[3] === undefined ? 0 : Number(m[3]) };
}

/** <0, 0, >0 as a is older, the same, newer than b. */
export function compareVersions(a: KernelVersion, b: KernelVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export function formatVersion(v: KernelVersion, withPatch = true): string {
  return withPatch ? `${v.major}.${v.minor}.${v.patch}` : `${v.major}.${v.minor}`;
}

/**
 * The upstream version a kernel's build string names, when the distribution put it there:
 * Debian's `uname -v` is "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-...)". Null otherwise.
 */
export function upstreamFromBuild(build: string): KernelVersion | null {
  const m = /\bDebian (\d+\.\d+(?:\.\d+)?)/.exec(build);
  return m ? parseVersion(m[1]!) : null;
}

/**
 * The best version known for a kernel: the upstream version from its build string or package,
 * else the release string's own (exact for mainline and stable builds).
 */
export function kernelVersion(release: string, build = '', packageVersion: string | null = null): KernelVersion | null {
  return upstreamFromBuild(build) ?? (packageVersion ? parseVersion(packageVersion) : null) ?? parseVersion(release);
}

/**
 * dpkg's version order (deb-version(7)): epoch, then upstream and revision compared as runs of
 * non-digits (letters before non-letters, `~` before everything, even the end) and numbers.
 * Used to pick the newest kernel package of a series.
 */
export function compareDebianVersions(a: string, b: string): number {
  const split = (v: string) => {
    const colon = v.indexOf(':');
    const epoch = colon >= 0 ? Number(v.slice(0, colon)) : 0;
    const rest = colon >= 0 ? v.slice(colon + 1) : v;
    const dash = rest.lastIndexOf('-');
    return { epoch, upstream: dash >= 0 ? rest.slice(0, dash) : rest, revision: dash >= 0 ? rest.slice(dash + 1) : '' };
  };
  const va = split(a);
  const vb = split(b);
  return va.epoch - vb.epoch || comparePart(va.upstream, vb.upstream) || comparePart(va.revision, vb.revision);
}

function charOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function comparePart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // Non-digit runs, character by character.
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const ca = i < a.length && !/\d/.test(a[i]!) ? a[i] : undefined;
      const cb = j < b.length && !/\d/.test(b[j]!) ? b[j] : undefined;
      const d = charOrder(ca) - charOrder(cb);
      if (d !== 0) return d;
      if (ca !== undefined) i++;
      if (cb !== undefined) j++;
    }
    // Digit runs, as numbers.
    let na = '';
    let nb = '';
    while (i < a.length && /\d/.test(a[i]!)) na += a[i++];
    while (j < b.length && /\d/.test(b[j]!)) nb += b[j++];
    const d = Number(na || '0') - Number(nb || '0');
    if (d !== 0) return d;
  }
  return 0;
}
