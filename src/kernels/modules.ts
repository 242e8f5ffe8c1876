/**
 * Kernel modules a guest needs (virtio_blk for its disks, and whatever an experiment asks
 * for), taken from the kernel's own package or build tree. A module's dependencies are read
 * from its ELF `.modinfo` section (`depends=a,b`), so no modules.dep (made by depmod at package
 * install) is needed; modules the kernel has built in (modules.builtin, or =y in .config) are
 * left out. Compressed modules (.ko.xz, .ko.gz, .ko.zst) are decompressed for busybox insmod.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { CowlabError } from '../errors.js';
import { requireTool } from '../util/tools.js';

/** Module names compare with '-' and '_' alike (as modprobe does). */
export function moduleKey(name: string): string {
  return name.replace(/-/g, '_');
}

function baseName(file: string): string | null {
  const m = /([^/]+)\.ko(\.xz|\.gz|\.zst)?$/.exec(file);
  return m ? moduleKey(m[1]!) : null;
}

/** Every .ko file under `dir`, by module name (the first one found wins). */
export function indexModules(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === '.git' || e.name === 'source' || e.name === 'build') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const name = baseName(e.name);
        if (name !== null && !out.has(name)) out.set(name, p);
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Names in modules.builtin (the kernel has them built in). */
export function builtinModules(modulesDir: string): Set<string> {
  const p = join(modulesDir, 'modules.builtin');
  if (!existsSync(p)) return new Set();
  return new Set(
    readFileSync(p, 'utf8')
      .split('\n')
      .map((l) => baseName(l.trim()))
      .filter((n): n is string => n !== null),
  );
}

/** The module file's ELF image, decompressed (xz and zstd by their tools, gzip by zlib). */
export function readModule(path: string): Buffer {
  if (path.endsWith('.gz')) {
    try {
      return gunzipSync(readFileSync(path));
    } catch (err) {
      throw new CowlabError('ERR_KERNEL_FETCH', `cannot decompress ${path}: ${(err as Error).message}`);
    }
  }
  if (!path.endsWith('.xz') && !path.endsWith('.zst')) return readFileSync(path);
  const tool = requireTool(path.endsWith('.xz') ? 'xz' : 'zstd', `decompressing kernel module ${path}`);
  const r = spawnSync(tool, ['-dc', path], { maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0 || !Buffer.isBuffer(r.stdout)) {
    throw new CowlabError('ERR_KERNEL_FETCH', `cannot decompress ${path}: ${String(r.stderr ?? r.error ?? '').trim()}`);
  }
  return r.stdout;
}

/** The strings of an ELF64 module's `.modinfo` section ("depends=virtio,virtio_ring", ...). */
export function modinfo(elf: Buffer): Map<string, string> {
  if (elf.length < 64 || elf.toString('latin1', 0, 4) !== '\x7fELF' || elf[4] !== 2) {
    throw new CowlabError('ERR_KERNEL_FETCH', 'not a 64-bit ELF kernel module');
  }
  try {
    return readModinfo(elf);
  } catch (err) {
    if (err instanceof CowlabError) throw err;
    throw new CowlabError('ERR_KERNEL_FETCH', `a damaged ELF kernel module (${(err as Error).message})`);
  }
}

function readModinfo(elf: Buffer): Map<string, string> {
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const section = (i: number) => {
    const h = shoff + i * shentsize;
    return { name: elf.readUInt32LE(h), offset: Number(elf.readBigUInt64LE(h + 0x18)), size: Number(elf.readBigUInt64LE(h + 0x20)) };
  };
  const names = section(shstrndx);
  const out = new Map<string, string>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameEnd = elf.indexOf(0, names.offset + s.name);
    if (elf.toString('latin1', names.offset + s.name, nameEnd) !== '.modinfo') continue;
    for (const entry of elf.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0 && !out.has(entry.slice(0, eq))) out.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }
  return out;
}

export interface ModuleFile {
  name: string;
  /** Where it came from, relative to the modules directory (for messages). */
  source: string;
  /** The decompressed ELF image, ready for insmod. */
  image: Buffer;
}

/**
 * `wanted` and everything they depend on, dependencies first (insmod order), leaving out what
 * the kernel has built in. ERR_KERNEL_FEATURE when a module is neither built in nor present.
 */
export function resolveModules(modulesDir: string | null, wanted: readonly string[], builtIn: (name: string) => boolean): ModuleFile[] {
  const index = modulesDir ? indexModules(modulesDir) : new Map<string, string>();
  const builtin = modulesDir ? builtinModules(modulesDir) : new Set<string>();
  const order: ModuleFile[] = [];
  const done = new Set<string>();
  const visit = (name: string, chain: string[]) => {
    const key = moduleKey(name);
    if (done.has(key) || builtin.has(key) || builtIn(key)) return;
    if (chain.includes(key)) return; // a cycle: modinfo never has one, but do not loop
    const path = index.get(key);
    if (path === undefined) {
      throw new CowlabError(
        'ERR_KERNEL_FEATURE',
        `the kernel has no module ${key}${chain.length ? ` (needed by ${chain[chain.length - 1]})` : ''} and does not build it in` +
          (modulesDir ? ` (looked in ${modulesDir})` : ' (no modules came with this kernel: give its .deb or build tree instead of the bare image)'),
      );
    }
    const image = readModule(path);
    for (const dep of (modinfo(image).get('depends') ?? '').split(',').filter(Boolean)) visit(dep, [...chain, key]);
    done.add(key);
    order.push({ name: key, source: relative(modulesDir!, path), image });
  };
  for (const w of wanted) visit(w, []);
  return order;
}
