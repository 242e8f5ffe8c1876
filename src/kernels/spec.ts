/**
 * `--kernel <spec>`: which kernel a command runs on.
 *
 *   host                       the running kernel (no guest)
 *   debian:6.1, debian:6.12    the newest Debian linux-image-<series>.*-cloud-amd64 package
 *   debian:6.1.192-3           that exact package version (or debian:linux-image-<name>)
 *   ./linux-image-....deb      a kernel package file
 *   ./bzImage, /boot/vmlinuz-X a kernel image
 *   ~/src/linux                a kernel build tree (arch/x86/boot/bzImage, its .config and modules)
 *
 * Parsing looks only at the text and the file system; obtaining the kernel is obtain.ts.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { CowlabError } from '../errors.js';

export type KernelSpec =
  | { kind: 'host'; text: string }
  /** Exactly one of series, version, pkg is set. */
  | { kind: 'debian'; text: string; series: string | null; version: string | null; pkg: string | null }
  | { kind: 'deb'; text: string; path: string }
  | { kind: 'image'; text: string; path: string }
  | { kind: 'tree'; text: string; path: string };

export const SPEC_HELP =
  "host, debian:6.1, debian:6.12, debian:<package version>, a .deb, a bzImage/vmlinuz or a kernel build tree";

function specError(text: string, why: string): CowlabError {
  return new CowlabError('ERR_KERNEL_SPEC', `--kernel ${text}: ${why}`, { field: '--kernel' });
}

function readHead(path: string, bytes: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** An x86 boot image: the setup header's "HdrS" magic at 0x202 (Documentation/arch/x86/boot.rst). */
export function isBzImage(head: Buffer): boolean {
  return head.length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS';
}

/** A Debian package is an ar archive whose first member is debian-binary. */
export function isDebPackage(head: Buffer): boolean {
  return head.toString('latin1', 0, 8) === '!<arch>\n' && head.toString('latin1', 8, 21) === 'debian-binary';
}

/** The image a build tree boots. */
export function treeImage(tree: string): string {
  return join(tree, 'arch', 'x86', 'boot', 'bzImage');
}

export function parseKernelSpec(raw: string): KernelSpec {
  const text = raw.trim();
  if (text === '') throw specError(raw, `empty; give ${SPEC_HELP}`);
  if (text === 'host') return { kind: 'host', text };
  if (text.startsWith('debian:')) {
    const what = text.slice('debian:'.length);
    if (/^\d+\.\d+$/.test(what)) return { kind: 'debian', text, series: what, version: null, pkg: null };
    if (/^linux-image-[a-z0-9.+~-]+$/.test(what)) return { kind: 'debian', text, series: null, version: null, pkg: what };
    if (/^\d+\.\d+\.\d+[a-z0-9.+~-]*$/.test(what)) return { kind: 'debian', text, series: null, version: what, pkg: null };
    throw specError(text, `'${what}' is not a Debian kernel series (6.1, 6.12), package version (6.1.192-3) or package name (linux-image-...)`);
  }
  const path = resolve(text);
  if (!existsSync(path)) {
    const looksLikePath = text.includes('/') || text.endsWith('.deb');
    throw specError(text, looksLikePath ? `no such file or directory: ${path}` : `unknown kernel '${text}'; give ${SPEC_HELP}`);
  }
  if (statSync(path).isDirectory()) {
    if (!existsSync(treeImage(path))) {
      throw specError(text, `${path} is a directory but not a built kernel tree: no arch/x86/boot/bzImage (run \`make bzImage modules\` there)`);
    }
    return { kind: 'tree', text, path };
  }
  const head = readHead(path, 0x400);
  if (isDebPackage(head)) return { kind: 'deb', text, path };
  if (isBzImage(head)) return { kind: 'image', text, path };
  throw specError(text, `${path} is not a kernel: neither a Debian package nor an x86 bzImage (no HdrS boot header)`);
}

/** Repeatable and comma-separated `--kernel` values, in order, without repeats. */
export function parseKernelList(values: readonly string[]): KernelSpec[] {
  const out: KernelSpec[] = [];
  for (const v of values.flatMap((x) => x.split(','))) {
    if (v.trim() === '') continue;
    const spec = parseKernelSpec(v);
    if (out.some((s) => s.text === spec.text)) throw specError(spec.text, 'named twice');
    out.push(spec);
  }
  return out;
}

/**
 * The version string in a bzImage's setup header (kernel_version, boot protocol 2.00+):
 * "6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (...)".
 * Returns its first word (the release, as `uname -r` will say) and the rest (as `uname -v`).
 */
export function bzImageVersion(path: string): { release: string; build: string } | null {
  const head = readHead(path, 0x10000);
  if (!isBzImage(head)) return null;
  const ptr = head.readUInt16LE(0x20e);
  const at = ptr + 0x200;
  if (ptr === 0 || at >= head.length) return null;
  const end = head.indexOf(0, at);
  const s = head.toString('latin1', at, end < 0 ? head.length : end);
  const release = s.split(' ')[0] ?? '';
  if (release === '') return null;
  const hash = s.indexOf('#');
  return { release, build: hash >= 0 ? s.slice(hash) : '' };
}
