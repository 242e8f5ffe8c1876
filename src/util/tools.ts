/**
 * System tools cowlab runs (QEMU, apt-get, dpkg-deb, ...), found on PATH, and running them.
 * A missing tool is the user's to install: the error names the Debian package that provides it,
 * so `apt-get install <package>` is one copy-paste away (exit 2, ERR_TOOL_MISSING).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

import { CowlabError } from '../errors.js';

/** Each tool cowlab may run, with the Debian package that provides it. */
export const TOOL_PACKAGES = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  busybox: 'busybox-static',
  setpriv: 'util-linux',
  ldd: 'libc-bin',
  xz: 'xz-utils',
  zstd: 'zstd',
  // The storage experiments' scratch file systems (src/storage/).
  losetup: 'mount',
  mount: 'mount',
  umount: 'mount',
  'mkfs.btrfs': 'btrfs-progs',
  btrfs: 'btrfs-progs',
  'mkfs.xfs': 'xfsprogs',
  dmsetup: 'dmsetup',
  sync: 'coreutils',
  fsfreeze: 'util-linux',
  'redis-server': 'redis-server',
} as const;

export type ToolName = keyof typeof TOOL_PACKAGES;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The tool's path on PATH (or on `searchPath`, a PATH-like list), or null. */
export function findTool(name: ToolName, searchPath?: string): string | null {
  for (const dir of (searchPath ?? process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    if (executable(p)) return p;
  }
  return null;
}

/** The tool's path; ERR_TOOL_MISSING naming its package when it is not installed. */
export function requireTool(name: ToolName, why: string): string {
  const path = findTool(name);
  if (path !== null) return path;
  throw new CowlabError(
    'ERR_TOOL_MISSING',
    `${name} is not installed; ${why} needs it: install it with \`apt-get install ${TOOL_PACKAGES[name]}\``,
    { field: name },
  );
}

export interface ToolResult {
  stdout: string;
  stderr: string;
  status: number;
}

/**
 * Runs a tool to completion and returns its output (never throws for a non-zero status: the
 * caller knows what a failure of this tool means). `timeoutMs` kills a tool that hangs.
 */
export function runTool(path: string, args: readonly string[], opts: { cwd?: string; timeoutMs?: number; maxBytes?: number } = {}): ToolResult {
  const r = spawnSync(path, args, {
    cwd: opts.cwd,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 300_000,
    maxBuffer: opts.maxBytes ?? 64 * 1024 * 1024,
    env: { ...process.env, LC_ALL: 'C' },
  });
  if (r.error) {
    return { stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${(r.error as Error).message}`, status: -1 };
  }
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

/** The last non-empty line of a tool's stderr (or stdout), for one-line error messages. */
export function lastLine(r: ToolResult): string {
  const lines = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? `exit status ${r.status}`;
}
