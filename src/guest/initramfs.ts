/**
 * The guest's initramfs: everything a guest needs to run one cowlab command, built once per
 * cowlab build and kernel and kept in $XDG_CACHE_HOME/cowlab/initramfs/.
 *
 *   /init                          busybox sh: mounts, loads modules, runs the agent, powers off
 *   /bin/busybox + applet links    the shell and tools of /init (busybox-static)
 *   /usr/bin/node + its libraries  the Node running this cowlab, and what ldd says it loads
 *   /bin/<tool> + its libraries    host tools a command asked for (dmsetup, losetup, mkfs.*)
 *   /cowlab/                       package.json, bin/, dist/ (JavaScript only), the built-in
 *                                  scenarios, the production dependencies, the addon in use
 *   /cowlab-guest/modules/         the kernel modules the guest needs, dependencies first
 *
 * The cache key is a digest of all of it (file contents, the module images, /init itself), so a
 * rebuilt addon, a changed dist/ or another kernel gets a new initramfs and nothing stale boots.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

import { CowlabError } from '../errors.js';
import type { CachedKernel } from '../kernels/store.js';
import { cacheRoot, safeId } from '../kernels/store.js';
import { indexModules, resolveModules, type ModuleFile } from '../kernels/modules.js';
import { nativePath } from '../native.js';
import { packageRoot } from '../util/package.js';
import { processAlive } from '../util/process.js';
import { requireTool, runTool, type ToolName } from '../util/tools.js';
import { CpioWriter } from './cpio.js';
import { MARK } from './disk.js';

/** Bumped when the layout or /init changes in a way the digest would not see. */
const FORMAT = 2;

/** Modules every guest loads: its two disks. */
export const BASE_MODULES = ['virtio_pci', 'virtio_blk'];

/**
 * The guest's swap: zram, and the compressors it may use where they are modules (6.1's zram
 * asks the crypto API for lzo-rle; 6.12's has its own backends). Loaded when the kernel has
 * them; a guest without zram simply has no swap, and experiments that need one say so.
 */
export const SWAP_MODULES = ['zram', 'lzo_rle', 'lzo'];

/** The zram swap /init sets up: room for what any experiment pages out, used only as it fills. */
export const GUEST_SWAP_BYTES = 512 * 1024 * 1024;

/**
 * Dependencies that only build the addon (package.json lists them so `npm install` of the
 * package can compile it); the guest runs the addon already built, so they stay out.
 */
const BUILD_ONLY_DEPENDENCIES = new Set(['node-gyp', 'node-addon-api']);

/** Config options that build a module in (then there is no module to load). */
const BUILTIN_BY_CONFIG: Record<string, 'CONFIG_VIRTIO_BLK' | 'CONFIG_VIRTIO_PCI'> = {
  virtio_blk: 'CONFIG_VIRTIO_BLK',
  virtio_pci: 'CONFIG_VIRTIO_PCI',
};

const INIT = `#!/bin/sh
# cowlab guest init: the kernel runs this as pid 1. It must never exit (that panics the guest).
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# /tmp holds the storage experiments' sparse scratch images too (src/storage/scratch.ts wants
# twice an image's size free): three quarters of the guest's RAM, used only as it fills.
mount -t tmpfs -o size=75% tmpfs /tmp
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
# cgroup v2 with the memory controller for the children of the root cgroup: experiments make
# memory cgroups of their own (src/memory/cgroup.ts). The guest is the run's own machine.
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null && echo +memory > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
while read -r m; do
  [ -n "$m" ] && { insmod "/cowlab-guest/modules/$m" 2>/dev/null || echo "${MARK} warning insmod $m failed"; }
done < /cowlab-guest/modules.list
# A swap of its own, on zram (compressed in guest RAM): what reclaim experiments page out to
# (src/env/swap.ts). The guest is the run's machine, so its swap is too; the host's is never
# touched. The first compressor the kernel accepts.
if [ -e /sys/block/zram0/disksize ]; then
  for a in lzo-rle lzo lz4 zstd; do
    echo $a > /sys/block/zram0/comp_algorithm 2>/dev/null && echo ${GUEST_SWAP_BYTES} > /sys/block/zram0/disksize 2>/dev/null && break
  done
  { mkswap /dev/zram0 >/dev/null 2>&1 && swapon /dev/zram0 2>/dev/null; } || echo "${MARK} warning no zram swap"
fi
# Boot messages (loglevel 6) show where a boot that hangs got to; from here on only warnings
# and worse reach the console, which then carries the command's progress.
echo 4 > /proc/sys/kernel/printk
echo "${MARK} booted $(cut -d' ' -f1 /proc/uptime)"
# The agent's stderr reaches the console through a pipe, not as the tty itself: cowlab then
# prints progress as plain lines, which the host shows as they come.
mkfifo /tmp/cowlab-stderr
cat /tmp/cowlab-stderr &
/usr/bin/node /cowlab/dist/src/guest/agent.js >/tmp/cowlab-stdout 2>/tmp/cowlab-stderr
wait
sync
poweroff -f
echo o > /proc/sysrq-trigger
sleep 3600
`;

interface FileEntry {
  /** Path in the guest. */
  path: string;
  from: string;
  size: number;
  mode: number;
}

/** The shared libraries `ldd` says a binary loads (with the dynamic loader); [] when static. */
export function sharedLibraries(binary: string): string[] {
  const r = runTool(requireTool('ldd', 'building a guest initramfs'), [binary]);
  if (r.status !== 0) return [];
  const out: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

function walkFiles(dir: string, keep: (rel: string) => boolean, base = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walkFiles(p, keep, base));
    else if (e.isFile() && keep(relative(base, p))) out.push(p);
  }
  return out;
}

/**
 * The package directories the production dependencies need, found as Node resolves them
 * (node_modules of the requiring package, then of each directory above it).
 */
export function productionPackages(root: string): string[] {
  const found = new Set<string>();
  const resolveFrom = (from: string, name: string): string | null => {
    for (let dir = from; ; dir = dirname(dir)) {
      const p = join(dir, 'node_modules', name);
      if (existsSync(join(p, 'package.json'))) return p;
      if (dir === root || dirname(dir) === dir) return null;
    }
  };
  const visit = (pkgDir: string, top: boolean) => {
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})];
    for (const name of names) {
      if (top && BUILD_ONLY_DEPENDENCIES.has(name)) continue;
      const dir = resolveFrom(pkgDir, name);
      if (dir === null) {
        if (pkg.optionalDependencies?.[name] !== undefined) continue;
        throw new CowlabError('ERR_GUEST_FAILED', `the guest needs the dependency ${name} (of ${relative(root, pkgDir) || 'cowlab'}), which is not installed: run \`npm install\``);
      }
      if (found.has(dir)) continue;
      found.add(dir);
      visit(dir, false);
    }
  };
  visit(root, true);
  return [...found].sort();
}

/** Every host file the initramfs holds, by guest path (modules and /init come separately);
 *  `tools`: host binaries an experiment runs in the guest, put in /bin (before busybox's
 *  applet of the same name), each with its shared libraries, as node is. */
function hostFiles(tools: readonly ToolName[] = []): FileEntry[] {
  const root = packageRoot();
  const entries: FileEntry[] = [];
  const add = (path: string, from: string, mode = 0o644) => entries.push({ path, from, size: statSync(from).size, mode });
  const node = process.execPath;
  add('/usr/bin/node', node, 0o755);
  const busybox = requireTool('busybox', 'building a guest initramfs');
  add('/bin/busybox', busybox, 0o755);
  const binaries = tools.map((t) => requireTool(t, 'a guest that runs the storage experiments'));
  binaries.forEach((b, i) => add(`/bin/${tools[i]}`, b, 0o755));
  for (const lib of new Set([node, busybox, ...binaries].flatMap(sharedLibraries))) add(lib, lib, 0o755);
  add('/cowlab/addon/cowlab.node', nativePath(), 0o755);
  add('/cowlab/package.json', join(root, 'package.json'));
  add('/cowlab/bin/cowlab.js', join(root, 'bin', 'cowlab.js'), 0o755);
  const dist = join(root, 'dist');
  if (!existsSync(join(dist, 'src', 'guest', 'agent.js'))) {
    throw new CowlabError('ERR_GUEST_FAILED', `${dist} has no compiled guest agent: run \`npm run build:ts\``);
  }
  for (const f of walkFiles(dist, (rel) => rel.endsWith('.js'))) add(join('/cowlab/dist', relative(dist, f)), f);
  const scenarios = join(root, 'experiments', 'scenarios');
  for (const f of walkFiles(scenarios, (rel) => rel.endsWith('.json'))) add(join('/cowlab/experiments/scenarios', relative(scenarios, f)), f);
  for (const pkg of productionPackages(root)) {
    for (const f of walkFiles(pkg, (rel) => !rel.startsWith('node_modules/'))) add(join('/cowlab', relative(root, f)), f);
  }
  return entries;
}

function busyboxApplets(busybox: string): string[] {
  const r = runTool(busybox, ['--list']);
  return r.status === 0 ? r.stdout.split('\n').map((s) => s.trim()).filter((s) => /^[a-z0-9_.[-]+$/.test(s) && s !== 'busybox') : ['sh'];
}

function moduleList(mods: ModuleFile[]): { name: string; file: string }[] {
  return mods.map((m, i) => ({ name: m.name, file: `${String(i).padStart(2, '0')}-${m.name}.ko` }));
}

export interface Initramfs {
  path: string;
  /** Modules /init loads, in order. */
  modules: string[];
  bytes: number;
  /** True when it was built now (false: reused from the cache). */
  built: boolean;
}

const BIG_FILE = 8 * 1024 * 1024;
/** An initramfs of another build unused this long is removed when a new one is built. */
const STALE_MS = 24 * 3600 * 1000;

function digestOf(files: FileEntry[], mods: ModuleFile[], kernel: CachedKernel): string {
  const h = createHash('sha256');
  h.update(`format ${FORMAT}\n${INIT}\nkernel ${kernel.id}\n`);
  for (const f of files) {
    h.update(`${f.path}\0${f.mode}\0${f.size}\0`);
    // Large binaries (node, libc) by size and mtime: reading 100 MB per command costs more
    // than it buys; everything cowlab itself ships is hashed by content.
    if (f.size > BIG_FILE) h.update(String(statSync(f.from).mtimeMs));
    else h.update(readFileSync(f.from));
  }
  for (const m of mods) h.update(`module ${m.name}\0`).update(m.image);
  return h.digest('hex').slice(0, 16);
}

export function initramfsDir(): string {
  return join(cacheRoot(), 'initramfs');
}

/**
 * The initramfs for `kernel` with `extraModules` (and the base ones): from the cache when this
 * exact content was built before, else built now (a few seconds: gzip -1 of about 150 MB).
 */
export async function guestInitramfs(kernel: CachedKernel, extraModules: readonly string[] = [], say: (s: string) => void = () => {}, tools: readonly ToolName[] = []): Promise<Initramfs> {
  const builtIn = (name: string) => {
    const opt = BUILTIN_BY_CONFIG[name];
    return opt !== undefined && kernel.config.values[opt] === 'y';
  };
  // Without modules and without a config there is nothing to load and no way to know: the
  // guest itself says so if its kernel lacks the drivers (agent: no virtio block devices).
  // The swap modules where the kernel has them as modules (a kernel without zram has no swap).
  const available = kernel.modulesDir === null ? new Map<string, string>() : indexModules(kernel.modulesDir);
  const wanted = [...BASE_MODULES, ...SWAP_MODULES.filter((m) => available.has(m)), ...extraModules];
  const mods = kernel.modulesDir === null ? [] : resolveModules(kernel.modulesDir, wanted, builtIn);
  if (kernel.modulesDir === null && extraModules.length > 0) {
    throw new CowlabError('ERR_KERNEL_FEATURE', `kernel ${kernel.release} came without modules, and this command needs ${extraModules.join(', ')}: give its .deb or build tree`);
  }
  const files = hostFiles([...new Set(tools)].sort());
  const key = digestOf(files, mods, kernel);
  const dir = initramfsDir();
  const path = join(dir, `${safeId(kernel.id)}-${key}.cpio.gz`);
  const list = moduleList(mods);
  if (existsSync(path)) {
    const now = new Date();
    utimesSync(path, now, now); // in use: not swept (below) by another build's run
    return { path, modules: list.map((m) => m.name), bytes: statSync(path).size, built: false };
  }

  mkdirSync(dir, { recursive: true });
  // Initramfs of other builds of this kernel not used for a day are stale: the cache stays
  // small, and one that another checkout (say, CI's clone) is using now is left alone.
  for (const f of readdirSync(dir)) {
    const building = /\.(\d+)\.tmp$/.exec(f);
    if (building && !processAlive(Number(building[1]))) rmSync(join(dir, f), { force: true }); // a killed build
    if (!f.startsWith(`${safeId(kernel.id)}-`) || !f.endsWith('.cpio.gz')) continue;
    if (Date.now() - statSync(join(dir, f)).mtimeMs > STALE_MS) rmSync(join(dir, f), { force: true });
  }
  say(`building the guest initramfs for ${kernel.release} (${files.length} files, ${mods.length} modules)`);
  const tmp = `${path}.${process.pid}.tmp`;
  const cpio = new CpioWriter(tmp);
  try {
    const dirs = new Set<string>(['/bin', '/dev', '/proc', '/sys', '/tmp', '/root', '/etc', '/usr', '/usr/bin', '/cowlab-guest', '/cowlab-guest/modules']);
    for (const f of files) for (let d = dirname(f.path); d !== '/'; d = dirname(d)) dirs.add(d);
    for (const d of [...dirs].sort()) await cpio.dir(d, d === '/tmp' ? 0o1777 : 0o755);
    await cpio.charDevice('/dev/console', 5, 1);
    await cpio.charDevice('/dev/null', 1, 3, 0o666);
    for (const f of files) await cpio.copy(f.path, f.from, f.size, f.mode);
    for (const applet of busyboxApplets(requireTool('busybox', 'building a guest initramfs'))) {
      if (!cpio.has(`/bin/${applet}`)) await cpio.symlink(`/bin/${applet}`, 'busybox');
    }
    for (const [i, m] of list.entries()) await cpio.file(`/cowlab-guest/modules/${m.file}`, mods[i]!.image);
    await cpio.file('/cowlab-guest/modules.list', Buffer.from(list.map((m) => `${m.file}\n`).join('')));
    await cpio.file('/init', Buffer.from(INIT), 0o755);
    await cpio.finish();
    renameSync(tmp, path);
  } catch (err) {
    cpio.abort();
    rmSync(tmp, { force: true });
    throw err;
  }
  return { path, modules: list.map((m) => m.name), bytes: statSync(path).size, built: true };
}
