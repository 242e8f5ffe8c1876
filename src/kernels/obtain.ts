/**
 * Obtaining a kernel for a spec (spec.ts) into the cache (store.ts):
 *
 *   debian:<series|version|package>  apt-cache finds the package (newest of a series by dpkg's
 *                                    version order), apt-get download fetches it, dpkg-deb -x
 *                                    unpacks it
 *   <file>.deb                       dpkg-deb -x
 *   <bzImage>                        copied; config-<release> and /lib/modules/<release> beside
 *                                    it are taken when they exist
 *   <tree>                           arch/x86/boot/bzImage, .config, and every .ko in the tree
 *
 * A kernel already cached is not fetched again (a debian series is looked up each time, so a
 * newer package is noticed). `host` is not obtained: it is the kernel cowlab runs on.
 */
import { copyFileSync, createReadStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, relative } from 'node:path';

import { CowlabError } from '../errors.js';
import { lastLine, requireTool, runTool } from '../util/tools.js';
import { readConfigFile, unknownConfig, type KernelConfig } from './config.js';
import { bzImageVersion, treeImage, type KernelSpec } from './spec.js';
import { cachedKernel, MANIFEST_FILE, manifestOf, safeId, stagingDir, sweepStaging, type CachedKernel, type KernelSource } from './store.js';
import { compareDebianVersions, kernelVersion, formatVersion } from './version.js';
import { indexModules } from './modules.js';

/** The flavour of Debian kernel package a guest boots: small, virtio drivers as modules. */
export const DEBIAN_FLAVOUR = 'cloud-amd64';

export interface DebianPackage {
  name: string;
  version: string;
}

export type Say = (line: string) => void;

function fetchError(what: string, why: string): CowlabError {
  return new CowlabError('ERR_KERNEL_FETCH', `${what}: ${why}`);
}

function specError(spec: KernelSpec, why: string): CowlabError {
  return new CowlabError('ERR_KERNEL_SPEC', `--kernel ${spec.text}: ${why}`, { field: '--kernel' });
}

// --- Debian packages -----------------------------------------------------------------

/** Package/Version pairs of `apt-cache show` output. */
export function parseAptShow(text: string): DebianPackage[] {
  const out: DebianPackage[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const name = /^Package: (.+)$/m.exec(block)?.[1]?.trim();
    const version = /^Version: (.+)$/m.exec(block)?.[1]?.trim();
    if (name && version) out.push({ name, version });
  }
  return out;
}

/** linux-image-<x.y>...-cloud-amd64 package names (no -dbg, -unsigned, or metapackages). */
export function debianKernelPackages(names: readonly string[], series: string | null): string[] {
  const s = series === null ? '\\d+\\.\\d+' : series.replace('.', '\\.');
  // linux-image-6.1.0-57-cloud-amd64, linux-image-6.12.117+deb12-cloud-amd64, and the form
  // without an ABI suffix that Debian has also used, linux-image-6.11.10-cloud-amd64.
  const re = new RegExp(`^linux-image-${s}\\.\\d+(?:[-+][a-z0-9.+~-]*)?-${DEBIAN_FLAVOUR}$`);
  return names.filter((n) => re.test(n));
}

function aptCache(args: string[]): string {
  const tool = requireTool('apt-cache', 'a debian: kernel spec');
  const r = runTool(tool, args);
  if (r.status !== 0 && r.status !== 100) throw fetchError(`apt-cache ${args[0]}`, lastLine(r));
  return r.stdout;
}

/** Every package version the apt lists offer for `names`. */
function aptVersions(names: string[], allVersions: boolean): DebianPackage[] {
  if (names.length === 0) return [];
  return parseAptShow(aptCache(['show', ...(allVersions ? [] : ['--no-all-versions']), ...names]));
}

const NO_LISTS_HINT = 'the apt package lists have none (run `apt-get update` first, as root)';

/** The Debian package a debian: spec names, from the local apt lists. */
export function resolveDebianPackage(spec: Extract<KernelSpec, { kind: 'debian' }>): DebianPackage {
  if (spec.pkg !== null) {
    const found = aptVersions([spec.pkg], false);
    if (found.length === 0) throw specError(spec, `no package ${spec.pkg}: ${NO_LISTS_HINT}, or the name is wrong`);
    return found[0]!;
  }
  const search = aptCache(['search', '--names-only', `^linux-image-.*-${DEBIAN_FLAVOUR}$`]);
  const all = search.split('\n').map((l) => l.split(' - ')[0]!.trim()).filter(Boolean);
  if (spec.series !== null) {
    const names = debianKernelPackages(all, spec.series);
    if (names.length === 0) {
      throw specError(spec, `no linux-image-${spec.series}.*-${DEBIAN_FLAVOUR} package: ${NO_LISTS_HINT}, or Debian has no ${spec.series} kernel for this release`);
    }
    const versions = aptVersions(names, false);
    return versions.sort((a, b) => compareDebianVersions(b.version, a.version))[0]!;
  }
  const versions = aptVersions(debianKernelPackages(all, null), true);
  const match = versions.find((p) => p.version === spec.version);
  if (!match) {
    const near = [...new Set(versions.map((p) => p.version))].sort((a, b) => compareDebianVersions(b, a)).slice(0, 6);
    throw specError(spec, `no ${DEBIAN_FLAVOUR} kernel package has version ${spec.version}${near.length ? ` (have: ${near.join(', ')})` : `: ${NO_LISTS_HINT}`}`);
  }
  return match;
}

/** The cache id of a Debian package version. */
export function debianId(version: string): string {
  return safeId(`debian-${version}`);
}

function aptDownload(pkg: DebianPackage, into: string, say: Say): string {
  const tool = requireTool('apt-get', 'downloading a Debian kernel package');
  say(`apt-get download ${pkg.name}=${pkg.version}`);
  const r = runTool(tool, ['download', `${pkg.name}=${pkg.version}`], { cwd: into, timeoutMs: 600_000 });
  const deb = readdirSync(into).find((f) => f.endsWith('.deb'));
  if (r.status !== 0 || deb === undefined) throw fetchError(`apt-get download ${pkg.name}=${pkg.version}`, lastLine(r));
  return join(into, deb);
}

function debControl(deb: string): DebianPackage & { arch: string } {
  const tool = requireTool('dpkg-deb', 'unpacking a kernel package');
  const r = runTool(tool, ['-f', deb, 'Package', 'Version', 'Architecture']);
  if (r.status !== 0) throw fetchError(`dpkg-deb -f ${deb}`, lastLine(r));
  const field = (k: string) => new RegExp(`^${k}: (.+)$`, 'm').exec(r.stdout)?.[1]?.trim() ?? '';
  return { name: field('Package'), version: field('Version'), arch: field('Architecture') };
}

interface Unpacked {
  release: string;
  build: string;
  config: KernelConfig;
  hasModules: boolean;
}

/** dpkg-deb -x, then vmlinuz, config and modules/ moved to the top of `stage`. */
function unpackDeb(deb: string, stage: string, what: string): Unpacked {
  const tool = requireTool('dpkg-deb', 'unpacking a kernel package');
  const tree = join(stage, 'unpacked');
  const r = runTool(tool, ['-x', deb, tree], { timeoutMs: 600_000 });
  if (r.status !== 0) throw fetchError(`dpkg-deb -x ${deb}`, lastLine(r));
  const boot = join(tree, 'boot');
  const image = existsSync(boot) ? readdirSync(boot).find((f) => /^vmlinu[xz]-/.test(f)) : undefined;
  if (image === undefined) throw new CowlabError('ERR_KERNEL_SPEC', `${what}: the package has no boot/vmlinuz-*: not a kernel image package`, { field: '--kernel' });
  const release = image.replace(/^vmlinu[xz]-/, '');
  renameSync(join(boot, image), join(stage, 'vmlinuz'));
  const config = join(boot, `config-${release}`);
  if (existsSync(config)) renameSync(config, join(stage, 'config'));
  const modules = [join(tree, 'lib', 'modules', release), join(tree, 'usr', 'lib', 'modules', release)].find((p) => existsSync(p));
  if (modules) renameSync(modules, join(stage, 'modules'));
  rmSync(tree, { recursive: true, force: true });
  return { release, build: bzImageVersion(join(stage, 'vmlinuz'))?.build ?? '', config: readConfigFile(join(stage, 'config')), hasModules: modules !== undefined };
}

// --- images and trees ----------------------------------------------------------------

async function fileHash(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex').slice(0, 12);
}

function imageVersion(spec: KernelSpec, path: string): { release: string; build: string } {
  const v = bzImageVersion(path);
  if (v === null) throw specError(spec, `${path} has no kernel version in its boot header (not an x86 bzImage?)`);
  return v;
}

/** Copies every .ko under `tree` into `dest`, keeping relative paths. */
function copyTreeModules(tree: string, dest: string): number {
  let n = 0;
  for (const path of indexModules(tree).values()) {
    const to = join(dest, relative(tree, path));
    mkdirSync(dirname(to), { recursive: true });
    copyFileSync(path, to);
    n++;
  }
  return n;
}

// --- the cache entry -----------------------------------------------------------------

interface Entry {
  id: string;
  source: KernelSource;
  origin: string;
  packageName: string | null;
  packageVersion: string | null;
  /** Fills the staging directory; returns what it found. */
  fill(stage: string): Unpacked;
}

function commit(spec: KernelSpec, e: Entry, say: Say): CachedKernel {
  sweepStaging();
  const stage = stagingDir(e.id);
  try {
    const u = e.fill(stage);
    const version = kernelVersion(u.release, u.build, e.packageVersion);
    writeFileSync(
      join(stage, MANIFEST_FILE),
      manifestOf(
        {
          id: e.id,
          spec: spec.text,
          source: e.source,
          release: u.release,
          build: u.build,
          version: version ? formatVersion(version) : null,
          packageName: e.packageName,
          packageVersion: e.packageVersion,
          origin: e.origin,
          config: u.config,
          fetchedAt: new Date().toISOString(),
        },
        u.hasModules,
      ),
    );
    const final = join(dirname(stage), e.id);
    rmSync(final, { recursive: true, force: true });
    renameSync(stage, final);
    say(`cached ${e.id} (${u.release}) in ${final}`);
    return cachedKernel(e.id)!;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function debEntry(spec: KernelSpec, deb: string, ctl: DebianPackage, source: KernelSource, origin: string, say: Say): Entry {
  return {
    id: source === 'debian' ? debianId(ctl.version) : safeId(`deb-${ctl.name}-${ctl.version}`),
    source,
    origin,
    packageName: ctl.name,
    packageVersion: ctl.version,
    fill: (stage) => {
      say(`unpacking ${basename(deb)}`);
      return unpackDeb(deb, stage, `--kernel ${spec.text}`);
    },
  };
}

/**
 * The cached kernel for `spec`, obtaining it first when it is not cached. `refresh` obtains it
 * again even then (`cowlab kernels fetch --refresh`).
 */
export async function obtainKernel(spec: Exclude<KernelSpec, { kind: 'host' }>, opts: { say?: Say; refresh?: boolean } = {}): Promise<CachedKernel> {
  const say = opts.say ?? (() => {});
  const reuse = (id: string) => (opts.refresh ? null : cachedKernel(id));
  switch (spec.kind) {
    case 'debian': {
      const pkg = resolveDebianPackage(spec);
      const id = debianId(pkg.version);
      const have = reuse(id);
      if (have) return have;
      say(`fetching ${spec.text}: ${pkg.name} ${pkg.version}`);
      sweepStaging();
      const dl = stagingDir(`${id}-download`);
      try {
        const deb = aptDownload(pkg, dl, say);
        return commit(spec, debEntry(spec, deb, pkg, 'debian', `${pkg.name}=${pkg.version}`, say), say);
      } finally {
        rmSync(dl, { recursive: true, force: true });
      }
    }
    case 'deb': {
      const ctl = debControl(spec.path);
      if (!ctl.name.startsWith('linux-image-')) throw specError(spec, `${spec.path} is the package ${ctl.name}, not a linux-image-* kernel package`);
      if (ctl.arch !== 'amd64') throw specError(spec, `${spec.path} is for ${ctl.arch}; guests boot amd64 kernels`);
      const e = debEntry(spec, spec.path, ctl, 'deb', spec.path, say);
      return reuse(e.id) ?? commit(spec, e, say);
    }
    case 'image': {
      const v = imageVersion(spec, spec.path);
      const id = `image-${await fileHash(spec.path)}`;
      const have = reuse(id);
      if (have) return have;
      const beside = dirname(spec.path);
      return commit(spec, {
        id, source: 'image', origin: spec.path, packageName: null, packageVersion: null,
        fill: (stage) => {
          copyFileSync(spec.path, join(stage, 'vmlinuz'));
          const config = [join(beside, `config-${v.release}`), join(beside, '.config')].find((p) => existsSync(p));
          if (config) copyFileSync(config, join(stage, 'config'));
          const modules = [join(beside, '..', 'lib', 'modules', v.release), `/lib/modules/${v.release}`].find((p) => existsSync(p));
          let hasModules = false;
          if (modules) {
            say(`copying the modules of ${v.release} from ${modules}`);
            hasModules = copyTreeModules(modules, join(stage, 'modules')) > 0;
            for (const f of ['modules.builtin', 'modules.order']) if (existsSync(join(modules, f))) copyFileSync(join(modules, f), join(stage, 'modules', f));
          }
          return { ...v, config: config ? readConfigFile(join(stage, 'config')) : unknownConfig(), hasModules };
        },
      }, say);
    }
    case 'tree': {
      const image = treeImage(spec.path);
      const v = imageVersion(spec, image);
      const id = `tree-${await fileHash(image)}`;
      const have = reuse(id);
      if (have) return have;
      return commit(spec, {
        id, source: 'tree', origin: spec.path, packageName: null, packageVersion: null,
        fill: (stage) => {
          copyFileSync(image, join(stage, 'vmlinuz'));
          const config = join(spec.path, '.config');
          if (existsSync(config)) copyFileSync(config, join(stage, 'config'));
          say(`copying the modules built in ${spec.path}`);
          const hasModules = copyTreeModules(spec.path, join(stage, 'modules')) > 0;
          const builtin = join(spec.path, 'modules.builtin');
          if (hasModules && existsSync(builtin)) copyFileSync(builtin, join(stage, 'modules', 'modules.builtin'));
          return { ...v, config: readConfigFile(join(stage, 'config')), hasModules };
        },
      }, say);
    }
  }
}

/**
 * For `cowlab kernels`: every kernel series the apt lists offer (6.1, 6.12, ...), each with its
 * newest package; a series that cannot be resolved says why.
 */
export function availableDebianKernels(): { spec: string; pkg: DebianPackage | null; why: string | null }[] {
  let names: string[];
  try {
    names = debianKernelPackages(aptCache(['search', '--names-only', `^linux-image-.*-${DEBIAN_FLAVOUR}$`]).split('\n').map((l) => l.split(' - ')[0]!.trim()), null);
  } catch (err) {
    return [{ spec: 'debian:*', pkg: null, why: (err as Error).message }];
  }
  const series = [...new Set(names.map((n) => /^linux-image-(\d+\.\d+)\./.exec(n)?.[1]).filter((x): x is string => x !== undefined))];
  series.sort((a, b) => compareDebianVersions(a, b));
  return series.map((s) => {
    const spec = { kind: 'debian' as const, text: `debian:${s}`, series: s, version: null, pkg: null };
    try {
      return { spec: spec.text, pkg: resolveDebianPackage(spec), why: null };
    } catch (err) {
      return { spec: spec.text, pkg: null, why: (err as Error).message.replace(/^--kernel [^:]+: /, '') };
    }
  });
}
