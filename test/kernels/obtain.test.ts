/**
 * The pure parts of obtaining a Debian kernel: apt-cache show output, which package names are
 * bootable cloud kernels of a series, and the cache id of a package version. Nothing here asks
 * apt: the text is what `apt-cache show` prints on Debian 12.
 */
import { describe, expect, it } from 'vitest';

import { DEBIAN_FLAVOUR, debianId, debianKernelPackages, parseAptShow } from '../../src/kernels/obtain.js';

/** `apt-cache show linux-image-6.12.117+deb12-cloud-amd64 linux-image-6.1.0-57-cloud-amd64 linux-image-cloud-amd64`, two versions of one. */
const APT_SHOW = `Package: linux-image-6.12.117+deb12-cloud-amd64
Source: linux-signed-6.12-amd64 (6.12.117+1~deb12u1)
Version: 6.12.117-1~deb12u1
Installed-Size: 34558
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Replaces: linux-image-6.12.117+deb12-cloud-amd64-unsigned
Depends: kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Suggests: firmware-linux-free, linux-doc-6.12, debian-kernel-handbook, grub-pc | grub-efi-amd64 | extlinux
Conflicts: linux-image-6.12.117+deb12-cloud-amd64-unsigned
Description: Linux 6.12 for x86-64 cloud (signed)
Description-md5: ff364982b40ab71bfeff1949c4cf6595
Homepage: https://www.kernel.org/
Built-Using: linux-6.12 (= 6.12.117-1~deb12u1)
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux-signed-6.12-amd64/linux-image-6.12.117+deb12-cloud-amd64_6.12.117-1~deb12u1_amd64.deb
Size: 34307256
SHA256: 5195b288dec79e2981d6b84457f38b7ce7310a2d702930ec7d07209c7f78ce37

Package: linux-image-6.1.0-57-cloud-amd64
Source: linux-signed-amd64 (6.1.192+3)
Version: 6.1.192-3
Installed-Size: 105548
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Description-en: Linux 6.1 for x86-64 cloud (signed)
 The Linux kernel 6.1 and modules for use on x86-64 cloud platforms.
 .
 Version: 9.9.9 in a description line is not a field
Description-md5: e242fc20b020c823e8161e99ef4b93ef
Section: kernel
Priority: optional
Filename: pool/updates/main/l/linux-signed-amd64/linux-image-6.1.0-57-cloud-amd64_6.1.192-3_amd64.deb
Size: 26705532

Package: linux-image-6.1.0-57-cloud-amd64
Source: linux-signed-amd64 (6.1.192+2)
Version: 6.1.192-2
Architecture: amd64
Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-57-cloud-amd64_6.1.192-2_amd64.deb

Package: linux-image-cloud-amd64
Source: linux-signed-amd64 (6.1.192+3)
Version: 6.1.192-3
Installed-Size: 13
Architecture: amd64
Provides: linux-latest-modules-6.1.0-57-cloud-amd64, virtualbox-guest-modules, wireguard-modules (= 1.0.0)
Depends: linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)
Description: Linux for x86-64 cloud (meta-package)

`;

describe('parseAptShow', () => {
  it('returns Package and Version of every stanza, in order, repeats included', () => {
    expect(parseAptShow(APT_SHOW)).toEqual([
      { name: 'linux-image-6.12.117+deb12-cloud-amd64', version: '6.12.117-1~deb12u1' },
      { name: 'linux-image-6.1.0-57-cloud-amd64', version: '6.1.192-3' },
      { name: 'linux-image-6.1.0-57-cloud-amd64', version: '6.1.192-2' },
      { name: 'linux-image-cloud-amd64', version: '6.1.192-3' },
    ]);
  });

  it('skips a stanza without a Version, and blank lines with spaces between stanzas', () => {
    const text = 'Package: a\nVersion: 1.0\n \nPackage: b\nSection: kernel\n\n\n\nPackage: c\nVersion: 2:3.4-5\n';
    expect(parseAptShow(text)).toEqual([
      { name: 'a', version: '1.0' },
      { name: 'c', version: '2:3.4-5' },
    ]);
  });

  it('is empty for no output (apt-cache show of a name apt does not know)', () => {
    expect(parseAptShow('')).toEqual([]);
    expect(parseAptShow('N: Unable to locate package linux-image-9.9\n')).toEqual([]);
  });
});

describe('debianKernelPackages', () => {
  /** What `apt-cache search --names-only '^linux-image-.*-cloud-amd64'` lists on Debian 12, and more. */
  const names = [
    'linux-image-6.1.0-56-cloud-amd64',
    'linux-image-6.1.0-57-cloud-amd64',
    'linux-image-6.1.0-57-cloud-amd64-dbg',
    'linux-image-6.1.0-57-cloud-amd64-unsigned',
    'linux-image-6.12.115+deb12-cloud-amd64',
    'linux-image-6.12.117+deb12-cloud-amd64',
    'linux-image-6.12.117+deb12-cloud-amd64-dbg',
    'linux-image-6.12.117+deb12-cloud-amd64-unsigned',
    'linux-image-6.12.12+bpo-cloud-amd64',
    'linux-image-6.12-cloud-amd64',
    'linux-image-6.12-cloud-amd64-dbg',
    'linux-image-cloud-amd64',
    'linux-image-cloud-amd64-dbg',
    'linux-image-6.1.0-57-amd64',
    'linux-image-6.1.0-57-rt-amd64',
    'linux-image-6.1.0-57-cloud-arm64',
    'linux-headers-6.1.0-57-cloud-amd64',
    'linux-image-6.1.0-57-cloud-amd64 ',
  ];

  it.each([
    {
      series: '6.1',
      keep: ['linux-image-6.1.0-56-cloud-amd64', 'linux-image-6.1.0-57-cloud-amd64'],
    },
    {
      series: '6.12',
      keep: ['linux-image-6.12.115+deb12-cloud-amd64', 'linux-image-6.12.117+deb12-cloud-amd64', 'linux-image-6.12.12+bpo-cloud-amd64'],
    },
    { series: '5.10', keep: [] },
    {
      series: null,
      keep: [
        'linux-image-6.1.0-56-cloud-amd64',
        'linux-image-6.1.0-57-cloud-amd64',
        'linux-image-6.12.115+deb12-cloud-amd64',
        'linux-image-6.12.117+deb12-cloud-amd64',
        'linux-image-6.12.12+bpo-cloud-amd64',
          ],
    },
  ])('series $series keeps only its versioned cloud-amd64 images', ({ series, keep }) => {
    expect(debianKernelPackages(names, series)).toEqual(keep);
  });

  it('keeps a name without an ABI suffix (linux-image-6.11.10-cloud-amd64, a form Debian has used)', () => {
    expect(debianKernelPackages(['linux-image-6.11.10-cloud-amd64', 'linux-image-6.11.10-cloud-amd64-dbg', 'linux-image-6.11-cloud-amd64'], '6.11')).toEqual([
      'linux-image-6.11.10-cloud-amd64',
    ]);
  });

  it("does not confuse 6.1 with 6.12 or 6.10 (the dot is not a wildcard)", () => {
    expect(debianKernelPackages(['linux-image-6x1.0-57-cloud-amd64', 'linux-image-6.12.117+deb12-cloud-amd64', 'linux-image-6.10.3+deb13-cloud-amd64'], '6.1')).toEqual([]);
    expect(debianKernelPackages(['linux-image-6.1.0-57-cloud-amd64', 'linux-image-6.10.3+deb13-cloud-amd64'], '6.10')).toEqual(['linux-image-6.10.3+deb13-cloud-amd64']);
  });

  it(`every name it keeps ends in -${DEBIAN_FLAVOUR}`, () => {
    expect(debianKernelPackages(names, null).every((n) => n.endsWith(`-${DEBIAN_FLAVOUR}`))).toBe(true);
  });
});

describe('debianId', () => {
  it.each([
    ['6.1.192-3', 'debian-6.1.192-3'],
    ['6.12.117-1~deb12u1', 'debian-6.12.117-1~deb12u1'],
    ['6.12.12-1+bpo1', 'debian-6.12.12-1+bpo1'],
    ['1:6.1.192-3', 'debian-1_6.1.192-3'],
    ['../../etc', 'debian-.._.._etc'],
  ])('%s -> %s', (version, id) => {
    expect(debianId(version)).toBe(id);
  });

  it('never contains a path separator', () => {
    expect(debianId('a/b\\c d')).not.toMatch(/[/\\ ]/);
  });
});
