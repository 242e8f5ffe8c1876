/**
 * --kernel specs: every form parseKernelSpec accepts, every rejection (ERR_KERNEL_SPEC naming
 * the spec), lists, and the version string in a bzImage's setup header. Files are real files in
 * a temp directory: a fake bzImage with a real boot header, a fake and a real .deb.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { CowlabError, isUsageError } from '../../src/errors.js';
import { bzImageVersion, isBzImage, isDebPackage, parseKernelList, parseKernelSpec, treeImage } from '../../src/kernels/spec.js';
import { findTool } from '../../src/util/tools.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-spec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VERSION_STRING = '6.9.0-test (me@host) #1 SMP PREEMPT_DYNAMIC Debian 6.9.1-1 (2026-01-01)';

/**
 * An x86 boot image as far as the setup header goes (Documentation/arch/x86/boot.rst): "HdrS" at
 * 0x202, the protocol version at 0x206, and kernel_version at 0x20E, a pointer to a NUL-ended
 * string 0x200 bytes before where it lies in the file.
 */
function fakeBzImage(version: string | null, opts: { ptr?: number; size?: number } = {}): Buffer {
  const img = Buffer.alloc(opts.size ?? 0x4000, 0);
  img.writeUInt16LE(0xaa55, 0x1fe); // boot_flag
  img.write('HdrS', 0x202, 'latin1');
  img.writeUInt16LE(0x020f, 0x206); // boot protocol 2.15
  const ptr = opts.ptr ?? 0x3c0;
  img.writeUInt16LE(ptr, 0x20e);
  if (version !== null) img.write(`${version}\0`, ptr + 0x200, 'latin1');
  return img;
}

/** The start of an ar archive whose first member is debian-binary, as dpkg-deb writes it. */
function fakeDeb(): Buffer {
  const member = (name: string, body: string) => {
    const h = `${name.padEnd(16)}${'0'.padEnd(12)}${'0'.padEnd(6)}${'0'.padEnd(6)}${'100644'.padEnd(8)}${String(body.length).padEnd(10)}\`\n`;
    return h + body + (body.length % 2 ? '\n' : '');
  };
  return Buffer.from(`!<arch>\n${member('debian-binary', '2.0\n')}${member('control.tar.xz', 'not really')}`, 'latin1');
}

function file(name: string, data: Buffer | string): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

const image = file('bzImage', fakeBzImage(VERSION_STRING));
const deb = file('linux-image-6.9.0-test_6.9.1-1_amd64.deb', fakeDeb());
const notKernel = file('random.bin', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)));
const tiny = file('tiny', 'hello\n');
const empty = file('empty', '');
/** An ar archive (a static library), not a Debian package. */
const staticLib = file('libx.a', Buffer.from('!<arch>\nx.o/            0           0     0     644     4         `\nabcd', 'latin1'));

const tree = join(dir, 'linux');
mkdirSync(join(tree, 'arch', 'x86', 'boot'), { recursive: true });
writeFileSync(treeImage(tree), fakeBzImage(VERSION_STRING));
const notTree = join(dir, 'not-a-tree');
mkdirSync(join(notTree, 'arch', 'x86'), { recursive: true });

function rejection(text: string): CowlabError {
  try {
    parseKernelSpec(text);
  } catch (err) {
    expect(err).toBeInstanceOf(CowlabError);
    return err as CowlabError;
  }
  throw new Error(`parseKernelSpec accepted ${JSON.stringify(text)}`);
}

describe('parseKernelSpec accepts', () => {
  it.each([
    { text: 'host', spec: { kind: 'host', text: 'host' } },
    { text: '  host\t', spec: { kind: 'host', text: 'host' } },
    { text: 'debian:6.1', spec: { kind: 'debian', text: 'debian:6.1', series: '6.1', version: null, pkg: null } },
    { text: 'debian:6.12', spec: { kind: 'debian', text: 'debian:6.12', series: '6.12', version: null, pkg: null } },
    { text: 'debian:6.1.192-3', spec: { kind: 'debian', text: 'debian:6.1.192-3', series: null, version: '6.1.192-3', pkg: null } },
    {
      text: 'debian:6.12.117-1~deb12u1',
      spec: { kind: 'debian', text: 'debian:6.12.117-1~deb12u1', series: null, version: '6.12.117-1~deb12u1', pkg: null },
    },
    {
      text: 'debian:linux-image-6.1.0-57-cloud-amd64',
      spec: { kind: 'debian', text: 'debian:linux-image-6.1.0-57-cloud-amd64', series: null, version: null, pkg: 'linux-image-6.1.0-57-cloud-amd64' },
    },
    {
      text: 'debian:linux-image-6.12.117+deb12-cloud-amd64',
      spec: { kind: 'debian', text: 'debian:linux-image-6.12.117+deb12-cloud-amd64', series: null, version: null, pkg: 'linux-image-6.12.117+deb12-cloud-amd64' },
    },
  ])('$text', ({ text, spec }) => {
    expect(parseKernelSpec(text)).toEqual(spec);
  });

  it('a debian: spec sets exactly one of series, version, pkg', () => {
    for (const text of ['debian:6.1', 'debian:6.1.192-3', 'debian:linux-image-6.1.0-57-cloud-amd64']) {
      const s = parseKernelSpec(text);
      if (s.kind !== 'debian') throw new Error(`${text} is not a debian spec`);
      expect([s.series, s.version, s.pkg].filter((x) => x !== null)).toHaveLength(1);
    }
  });

  it('a build tree with arch/x86/boot/bzImage, by absolute and by relative path', () => {
    expect(parseKernelSpec(tree)).toEqual({ kind: 'tree', text: tree, path: tree });
    const rel = relative(process.cwd(), tree);
    expect(parseKernelSpec(rel)).toEqual({ kind: 'tree', text: rel, path: tree });
  });

  it('a file that starts like a Debian package (ar archive, debian-binary first)', () => {
    expect(parseKernelSpec(deb)).toEqual({ kind: 'deb', text: deb, path: deb });
  });

  it('a file with an x86 boot header (HdrS at 0x202)', () => {
    expect(parseKernelSpec(image)).toEqual({ kind: 'image', text: image, path: image });
  });

  it('a .deb that dpkg-deb itself built', () => {
    const dpkgDeb = findTool('dpkg-deb');
    if (dpkgDeb === null) throw new Error('dpkg-deb is not on PATH: install dpkg to check a real package');
    const root = join(dir, 'pkgroot');
    mkdirSync(join(root, 'DEBIAN'), { recursive: true });
    mkdirSync(join(root, 'boot'), { recursive: true });
    writeFileSync(join(root, 'boot', 'vmlinuz-6.9.0-test'), fakeBzImage(VERSION_STRING));
    writeFileSync(
      join(root, 'DEBIAN', 'control'),
      'Package: linux-image-6.9.0-test\nVersion: 6.9.1-1\nArchitecture: amd64\nMaintainer: cowlab tests <tests@example.org>\nDescription: a test kernel package\n',
    );
    const out = join(dir, 'real.deb');
    const r = spawnSync(dpkgDeb, ['--root-owner-group', '-Zgzip', '--build', root, out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(parseKernelSpec(out)).toEqual({ kind: 'deb', text: out, path: out });
  });
});

describe('parseKernelSpec rejects with ERR_KERNEL_SPEC naming the spec', () => {
  const cases: { name: string; text: string; message: RegExp }[] = [
    { name: 'an empty spec', text: '', message: /empty; give host, debian:6\.1/ },
    { name: 'a blank spec', text: '   ', message: /empty; give host/ },
    { name: 'debian: with nothing after it', text: 'debian:', message: /'' is not a Debian kernel series \(6\.1, 6\.12\), package version \(6\.1\.192-3\) or package name/ },
    { name: 'a major version alone', text: 'debian:6', message: /'6' is not a Debian kernel series/ },
    { name: 'a word', text: 'debian:bookworm', message: /'bookworm' is not a Debian kernel series/ },
    { name: 'a version with a letter patch', text: 'debian:6.1.x', message: /'6\.1\.x' is not a Debian kernel series/ },
    { name: 'an epoch', text: 'debian:1:6.1.192-3', message: /'1:6\.1\.192-3' is not/ },
    { name: 'a bare package prefix', text: 'debian:linux-image-', message: /'linux-image-' is not/ },
    { name: 'an upper-case package name', text: 'debian:Linux-Image-6.1', message: /'Linux-Image-6\.1' is not/ },
    { name: 'a package name with a space', text: 'debian:linux-image-6.1 x', message: /'linux-image-6\.1 x' is not/ },
    { name: 'an unknown word', text: 'mainline', message: /unknown kernel 'mainline'; give host, debian:6\.1/ },
    { name: 'a capitalised host', text: 'Host', message: /unknown kernel 'Host'/ },
    { name: 'a series without debian:', text: '6.12', message: /unknown kernel '6\.12'/ },
    { name: 'a missing path', text: join(dir, 'missing', 'bzImage'), message: /no such file or directory: .*missing\/bzImage$/ },
    { name: 'a missing .deb in the current directory', text: 'linux-image-none.deb', message: /no such file or directory: .*\/linux-image-none\.deb$/ },
    { name: 'a directory without arch/x86/boot/bzImage', text: notTree, message: /is a directory but not a built kernel tree: no arch\/x86\/boot\/bzImage \(run `make bzImage modules` there\)/ },
    { name: 'a random file', text: notKernel, message: /random\.bin is not a kernel: neither a Debian package nor an x86 bzImage \(no HdrS boot header\)/ },
    { name: 'a file shorter than a boot header', text: tiny, message: /tiny is not a kernel/ },
    { name: 'an empty file', text: empty, message: /empty is not a kernel/ },
    { name: 'an ar archive that is no Debian package', text: staticLib, message: /libx\.a is not a kernel/ },
  ];

  it.each(cases)('$name', ({ text, message }) => {
    const err = rejection(text);
    expect(err.code).toBe('ERR_KERNEL_SPEC');
    expect(err.field).toBe('--kernel');
    expect(isUsageError(err)).toBe(true);
    expect(err.message.startsWith(`--kernel ${text.trim() === '' ? text : text.trim()}: `)).toBe(true);
    expect(err.message).toMatch(message);
  });
});

describe('parseKernelList', () => {
  it('takes comma lists and repeats, in order, skipping empty items', () => {
    const specs = parseKernelList(['host,debian:6.1', ' debian:6.12 ', '', `,${image},`]);
    expect(specs.map((s) => s.text)).toEqual(['host', 'debian:6.1', 'debian:6.12', image]);
    expect(specs.map((s) => s.kind)).toEqual(['host', 'debian', 'debian', 'image']);
  });

  it('is empty for no values', () => {
    expect(parseKernelList([])).toEqual([]);
    expect(parseKernelList([' , '])).toEqual([]);
  });

  it.each([
    { name: 'in one value', values: ['host,host'], spec: 'host' },
    { name: 'across repeats', values: ['debian:6.1', 'host', 'debian:6.1'], spec: 'debian:6.1' },
    { name: 'with spaces around one of them', values: ['debian:6.12, debian:6.12'], spec: 'debian:6.12' },
  ])('rejects a spec named twice $name', ({ values, spec }) => {
    expect(() => parseKernelList(values)).toThrow(
      expect.objectContaining({ code: 'ERR_KERNEL_SPEC', message: `--kernel ${spec}: named twice` }),
    );
  });

  it('rejects a list with one bad item, naming that item', () => {
    expect(() => parseKernelList(['host,debian:7'])).toThrow(expect.objectContaining({ code: 'ERR_KERNEL_SPEC', message: expect.stringMatching(/^--kernel debian:7: /) }));
  });
});

describe('the boot header', () => {
  it('isBzImage and isDebPackage tell the two kinds of file apart', () => {
    expect(isBzImage(fakeBzImage(VERSION_STRING))).toBe(true);
    expect(isDebPackage(fakeBzImage(VERSION_STRING))).toBe(false);
    expect(isDebPackage(fakeDeb())).toBe(true);
    expect(isBzImage(fakeDeb())).toBe(false);
    expect(isBzImage(fakeBzImage(VERSION_STRING).subarray(0, 0x205))).toBe(false);
  });

  it('bzImageVersion returns the release (first word) and the build (from #)', () => {
    expect(bzImageVersion(image)).toEqual({ release: '6.9.0-test', build: '#1 SMP PREEMPT_DYNAMIC Debian 6.9.1-1 (2026-01-01)' });
  });

  it('reads a Debian-style string with the compile host in parentheses', () => {
    const p = file('vmlinuz-debian', fakeBzImage('6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)', { ptr: 0x1000 }));
    expect(bzImageVersion(p)).toEqual({ release: '6.1.0-57-cloud-amd64', build: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)' });
  });

  it('has an empty build when the string has no #', () => {
    expect(bzImageVersion(file('nohash', fakeBzImage('6.9.0-plain (me@host)')))).toEqual({ release: '6.9.0-plain', build: '' });
  });

  it.each([
    { name: 'a file that is not a bzImage', path: () => notKernel },
    { name: 'a kernel_version pointer of 0', path: () => file('ptr0', fakeBzImage(null, { ptr: 0 })) },
    { name: 'a pointer past the end of the file', path: () => file('ptrpast', fakeBzImage(null, { ptr: 0x3f00, size: 0x1000 })) },
    { name: 'an empty version string', path: () => file('emptyver', fakeBzImage('')) },
  ])('is null for $name', ({ path }) => {
    expect(bzImageVersion(path())).toBeNull();
  });
});
