/**
 * The kernel cache: $XDG_CACHE_HOME/cowlab/kernels/<id>/ (default ~/.cache/cowlab), one
 * directory per kernel, each with
 *
 *   vmlinuz         the image QEMU boots
 *   config          its .config, when one came with it
 *   modules/        its modules (lib/modules/<release> of the package, or the tree's .ko files)
 *   kernel.json     what it is: release, upstream version, where it came from, config facts
 *
 * A directory is complete once kernel.json exists: obtain.ts builds the others in a temporary
 * directory and renames it into place, so an interrupted fetch leaves no half kernel.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { processAlive } from '../util/process.js';
import { CONFIG_FACTS, unknownConfig, type KernelConfig } from './config.js';

export type KernelSource = 'debian' | 'deb' | 'image' | 'tree';

export interface CachedKernel {
  /** The cache directory's name: debian-6.1.192-3, image-<hash>, tree-<hash>, ... */
  id: string;
  /** The spec it was obtained by (the first time). */
  spec: string;
  source: KernelSource;
  /** What `uname -r` will say in the guest. */
  release: string;
  /** The build string (`uname -v`), when the image carries it. */
  build: string;
  /** Upstream x.y.z when known (Debian: the stable version, not the ABI name). */
  version: string | null;
  packageName: string | null;
  packageVersion: string | null;
  /** Where it was read from: a .deb, an image or a tree path; a package=version for debian. */
  origin: string;
  config: KernelConfig;
  fetchedAt: string;
  /** Absolute paths in the cache. */
  dir: string;
  image: string;
  modulesDir: string | null;
}

/** What kernel.json holds (paths are relative to the directory). */
type Manifest = Omit<CachedKernel, 'dir' | 'image' | 'modulesDir'> & { modules: boolean };

export function cacheRoot(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'cowlab');
}

export function kernelsDir(): string {
  return join(cacheRoot(), 'kernels');
}

const MANIFEST = 'kernel.json';

/** A cache directory name from free text: letters, digits and . + ~ _ - only. */
export function safeId(text: string): string {
  return text.replace(/[^A-Za-z0-9.+~_-]/g, '_');
}

function fromManifest(dir: string, m: Manifest): CachedKernel {
  const { modules, ...rest } = m;
  // Facts added after a kernel was cached read as unknown rather than failing.
  const values = { ...unknownConfig().values, ...(rest.config?.values ?? {}) };
  for (const k of Object.keys(values)) if (!(k in CONFIG_FACTS)) delete (values as Record<string, unknown>)[k];
  return {
    ...rest,
    config: { ...(rest.config ?? unknownConfig()), values },
    dir,
    image: join(dir, 'vmlinuz'),
    modulesDir: modules ? join(dir, 'modules') : null,
  };
}

/** The cached kernel `id`, or null when it is not (completely) cached. */
export function cachedKernel(id: string): CachedKernel | null {
  const dir = join(kernelsDir(), id);
  const p = join(dir, MANIFEST);
  if (!existsSync(p)) return null;
  try {
    return fromManifest(dir, JSON.parse(readFileSync(p, 'utf8')) as Manifest);
  } catch {
    return null;
  }
}

/** Every complete kernel in the cache, newest fetch first. */
export function listCachedKernels(): CachedKernel[] {
  const root = kernelsDir();
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => !d.startsWith('.'))
    .map((d) => cachedKernel(d))
    .filter((k): k is CachedKernel => k !== null)
    .sort((a, b) => b.fetchedAt.localeCompare(a.fetchedAt));
}

export function manifestOf(k: Omit<CachedKernel, 'dir' | 'image' | 'modulesDir'>, hasModules: boolean): string {
  const m: Manifest = { ...k, modules: hasModules };
  return `${JSON.stringify(m, null, 2)}\n`;
}

export const MANIFEST_FILE = MANIFEST;

/** A fresh temporary directory inside the cache (same file system, so it can be renamed). */
export function stagingDir(label: string): string {
  const root = kernelsDir();
  mkdirSync(root, { recursive: true });
  const dir = join(root, `.staging-${process.pid}-${safeId(label)}-${Date.now()}`);
  mkdirSync(dir);
  return dir;
}

/** Staging directories of processes that are gone (an interrupted fetch): removed. */
export function sweepStaging(): void {
  const root = kernelsDir();
  if (!existsSync(root)) return;
  for (const d of readdirSync(root)) {
    const m = /^\.staging-(\d+)-/.exec(d);
    if (!m) continue;
    if (!processAlive(Number(m[1]))) rmSync(join(root, d), { recursive: true, force: true });
  }
}

/** Bytes a cached kernel takes on disk (for `cowlab kernels`). */
export function kernelBytes(k: CachedKernel): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) n += statSync(p).size;
    }
  };
  walk(k.dir);
  return n;
}
