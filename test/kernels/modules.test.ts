/**
 * Kernel modules for a guest: .modinfo read from an ELF64 file built here byte by byte (and
 * checked with the real readelf), and dependency resolution over a directory of such modules,
 * plain and compressed with zlib gzip and the real xz and zstd tools.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { CowlabError } from '../../src/errors.js';
import { builtinModules, indexModules, modinfo, moduleKey, readModule, resolveModules } from '../../src/kernels/modules.js';
import { findTool } from '../../src/util/tools.js';

const root = mkdtempSync(join(tmpdir(), 'cowlab-modules-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * A relocatable ELF64 little-endian x86-64 object with sections [null, .text, .modinfo,
 * .shstrtab] (the string table last, so e_shstrndx is not 1), as a .ko file is laid out.
 */
function elfModule(modinfoText: string, opts: { modinfoName?: string } = {}): Buffer {
  const shstrtab = Buffer.from(`\0.text\0${opts.modinfoName ?? '.modinfo'}\0.shstrtab\0`, 'latin1');
  const nameOf = (n: string) => shstrtab.indexOf(Buffer.from(`${n}\0`, 'latin1'));
  const text = Buffer.from([0xc3, 0x90, 0x90, 0x90]); // ret; nop...
  const info = Buffer.from(modinfoText, 'latin1');
  const align8 = (n: number) => Math.ceil(n / 8) * 8;
  const textOff = 64;
  const infoOff = align8(textOff + text.length);
  const strOff = align8(infoOff + info.length);
  const shoff = align8(strOff + shstrtab.length);
  const shnum = 4;
  const elf = Buffer.alloc(shoff + shnum * 64);
  elf.write('\x7fELF', 0, 'latin1');
  elf[4] = 2; // ELFCLASS64
  elf[5] = 1; // little-endian
  elf[6] = 1; // EV_CURRENT
  elf.writeUInt16LE(1, 0x10); // ET_REL
  elf.writeUInt16LE(62, 0x12); // EM_X86_64
  elf.writeUInt32LE(1, 0x14);
  elf.writeBigUInt64LE(BigInt(shoff), 0x28);
  elf.writeUInt16LE(64, 0x34); // e_ehsize
  elf.writeUInt16LE(64, 0x3a); // e_shentsize
  elf.writeUInt16LE(shnum, 0x3c);
  elf.writeUInt16LE(3, 0x3e); // e_shstrndx
  text.copy(elf, textOff);
  info.copy(elf, infoOff);
  shstrtab.copy(elf, strOff);
  const section = (i: number, name: number, type: number, flags: number, offset: number, size: number, align: number) => {
    const h = shoff + i * 64;
    elf.writeUInt32LE(name, h);
    elf.writeUInt32LE(type, h + 4);
    elf.writeBigUInt64LE(BigInt(flags), h + 8);
    elf.writeBigUInt64LE(BigInt(offset), h + 0x18);
    elf.writeBigUInt64LE(BigInt(size), h + 0x20);
    elf.writeBigUInt64LE(BigInt(align), h + 0x30);
  };
  section(1, nameOf('.text'), 1 /* PROGBITS */, 6 /* AX */, textOff, text.length, 16);
  section(2, nameOf(opts.modinfoName ?? '.modinfo'), 1, 2 /* A */, infoOff, info.length, 8);
  section(3, nameOf('.shstrtab'), 3 /* STRTAB */, 0, strOff, shstrtab.length, 1);
  return elf;
}

const VIRTIO_BLK = 'license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0';

function tool(name: 'xz' | 'zstd'): string {
  const p = findTool(name);
  if (p === null) throw new Error(`${name} is not on PATH`);
  return p;
}

/** Compresses with the real tool, as Debian ships modules (.ko.xz) or newer kernels (.ko.zst). */
function compress(name: 'xz' | 'zstd', data: Buffer): Buffer {
  const r = spawnSync(tool(name), name === 'xz' ? ['-c', '--check=crc32'] : ['-c', '-q'], { input: data, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${name} -c failed: ${r.stderr}`);
  return r.stdout;
}

function put(dir: string, rel: string, data: Buffer | string): string {
  const p = join(dir, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, data);
  return p;
}

let n = 0;
function freshDir(): string {
  const d = join(root, `m${n++}`);
  mkdirSync(d);
  return d;
}

describe('modinfo', () => {
  it('reads the .modinfo strings of an ELF64 module', () => {
    expect(Object.fromEntries(modinfo(elfModule(VIRTIO_BLK)))).toEqual({ license: 'GPL', depends: 'virtio,virtio_ring', name: 'virtio_blk' });
  });

  it('builds a module that readelf itself reads the same way', () => {
    const readelf = spawnSync('readelf', ['--version']);
    if (readelf.error) throw new Error('readelf is not on PATH (apt-get install binutils): it checks the synthetic module');
    const p = put(root, 'check/virtio_blk.ko', elfModule(VIRTIO_BLK));
    const r = spawnSync('readelf', ['-W', '-p', '.modinfo', p], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const strings = r.stdout.split('\n').map((l) => /^\s*\[\s*[0-9a-f]+\]\s+(.*)$/.exec(l)?.[1]).filter(Boolean);
    expect(strings).toEqual(['license=GPL', 'depends=virtio,virtio_ring', 'name=virtio_blk']);
  });

  it('keeps the first of repeated keys, and skips padding and entries without =', () => {
    const m = modinfo(elfModule('alias=virtio:d00000002v*\0\0\0\0alias=other\0vermagic=6.1.0 SMP mod_unload\0junk\0=x\0depends=\0'));
    expect(Object.fromEntries(m)).toEqual({ alias: 'virtio:d00000002v*', vermagic: '6.1.0 SMP mod_unload', depends: '' });
  });

  it('is empty for a module without a .modinfo section', () => {
    expect(modinfo(elfModule('depends=virtio\0', { modinfoName: '.rodata' })).size).toBe(0);
  });

  it.each([
    { name: 'text', data: Buffer.from('not an elf file at all, but long enough to have a header of sixty-four bytes') },
    { name: 'a short file', data: Buffer.from('\x7fELF\x02\x01\x01', 'latin1') },
    { name: 'an ELF32 object', data: (() => { const b = elfModule(VIRTIO_BLK); b[4] = 1; return b; })() },
  ])('rejects $name as ERR_KERNEL_FETCH', ({ data }) => {
    expect(() => modinfo(data)).toThrow(expect.objectContaining({ code: 'ERR_KERNEL_FETCH', message: 'not a 64-bit ELF kernel module' }));
  });
});

describe('moduleKey', () => {
  it.each([
    ['virtio_blk', 'virtio_blk'],
    ['virtio-blk', 'virtio_blk'],
    ['crc32c-intel', 'crc32c_intel'],
    ['a-b_c-d', 'a_b_c_d'],
  ])('%s -> %s', (name, key) => {
    expect(moduleKey(name)).toBe(key);
  });
});

describe('indexModules and builtinModules', () => {
  const dir = freshDir();
  const blk = put(dir, 'kernel/drivers/block/virtio_blk.ko', elfModule(VIRTIO_BLK));
  const ring = put(dir, 'kernel/drivers/virtio/virtio_ring.ko.gz', gzipSync(elfModule('depends=virtio\0')));
  const crc = put(dir, 'kernel/arch/x86/crypto/crc32c-intel.ko.xz', Buffer.from('xz'));
  const zst = put(dir, 'kernel/fs/zonefs/zonefs.ko.zst', Buffer.from('zst'));
  put(dir, 'modules.dep', 'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko.gz\n');
  put(dir, 'kernel/drivers/block/virtio_blk.ko.bak', 'old');
  put(dir, 'kernel/drivers/block/loop.o', 'object');
  put(dir, 'kernel/drivers/block/koala', 'not a module');
  put(dir, 'build/drivers/net/virtio_net.ko', elfModule(''));
  put(dir, 'source/drivers/net/tun.ko', elfModule(''));
  put(dir, '.git/objects/x.ko', elfModule(''));
  put(dir, 'modules.builtin', 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/char/hw_random/virtio-rng.ko\n\nkernel/fs/ext4/ext4.ko\n');

  it('finds every .ko, .ko.gz, .ko.xz and .ko.zst by module name, and nothing else', () => {
    expect(Object.fromEntries(indexModules(dir))).toEqual({ virtio_blk: blk, virtio_ring: ring, crc32c_intel: crc, zonefs: zst });
  });

  it('is empty for a directory that does not exist', () => {
    expect(indexModules(join(dir, 'none')).size).toBe(0);
  });

  it('reads modules.builtin as module keys', () => {
    expect([...builtinModules(dir)].sort()).toEqual(['ext4', 'virtio', 'virtio_rng']);
    expect(builtinModules(join(dir, 'kernel')).size).toBe(0);
  });
});

describe('resolveModules', () => {
  /** virtio_blk -> virtio, virtio_ring; virtio_ring -> virtio (a diamond); virtio_net -> a missing module. */
  function tree(compression: 'none' | 'gz' | 'xz' | 'zstd' = 'none') {
    const dir = freshDir();
    const ext = { none: '.ko', gz: '.ko.gz', xz: '.ko.xz', zstd: '.ko.zst' }[compression];
    const pack = (b: Buffer) => (compression === 'gz' ? gzipSync(b) : compression === 'xz' ? compress('xz', b) : compression === 'zstd' ? compress('zstd', b) : b);
    const images: Record<string, Buffer> = {
      virtio: elfModule('license=GPL\0depends=\0name=virtio\0'),
      virtio_ring: elfModule('license=GPL\0depends=virtio\0name=virtio_ring\0'),
      virtio_blk: elfModule(VIRTIO_BLK),
      virtio_net: elfModule('depends=net_failover,virtio_ring\0name=virtio_net\0'),
      'nf-nat': elfModule('depends=\0name=nf_nat\0'),
      uses_nf_nat: elfModule('depends=nf-nat\0'),
    };
    const rel: Record<string, string> = {
      virtio: `kernel/drivers/virtio/virtio${ext}`,
      virtio_ring: `kernel/drivers/virtio/virtio_ring${ext}`,
      virtio_blk: `kernel/drivers/block/virtio_blk${ext}`,
      virtio_net: `kernel/drivers/net/virtio_net${ext}`,
      'nf-nat': `kernel/net/netfilter/nf-nat${ext}`,
      uses_nf_nat: `kernel/net/uses_nf_nat${ext}`,
    };
    for (const [name, image] of Object.entries(images)) put(dir, rel[name]!, pack(image));
    return { dir, images, rel };
  }

  const never = () => false;

  it('puts dependencies first, each once, with decompressed images and relative sources', () => {
    const t = tree();
    const order = resolveModules(t.dir, ['virtio_blk'], never);
    expect(order.map((m) => m.name)).toEqual(['virtio', 'virtio_ring', 'virtio_blk']);
    expect(order.map((m) => m.source)).toEqual([t.rel.virtio, t.rel.virtio_ring, t.rel.virtio_blk]);
    for (const m of order) expect(m.image.equals(t.images[m.name]!)).toBe(true);
  });

  it('resolves each module once across several wanted names and repeats', () => {
    const t = tree();
    expect(resolveModules(t.dir, ['virtio_ring', 'virtio-blk', 'virtio_blk', 'virtio'], never).map((m) => m.name)).toEqual(['virtio', 'virtio_ring', 'virtio_blk']);
  });

  it("compares names with '-' and '_' alike, in wanted names and in depends=", () => {
    const t = tree();
    expect(resolveModules(t.dir, ['uses-nf-nat'], never).map((m) => m.name)).toEqual(['nf_nat', 'uses_nf_nat']);
  });

  it('leaves out what modules.builtin lists', () => {
    const t = tree();
    put(t.dir, 'modules.builtin', 'kernel/drivers/virtio/virtio.ko\n');
    expect(resolveModules(t.dir, ['virtio_blk'], never).map((m) => m.name)).toEqual(['virtio_ring', 'virtio_blk']);
  });

  it('leaves out what the builtIn callback says is built in (=y), asking by module key', () => {
    const t = tree();
    const asked: string[] = [];
    const builtIn = (k: string) => {
      asked.push(k);
      return k === 'virtio_ring';
    };
    expect(resolveModules(t.dir, ['virtio-blk'], builtIn).map((m) => m.name)).toEqual(['virtio', 'virtio_blk']);
    expect(asked).toContain('virtio_blk');
    expect(asked).not.toContain('virtio-blk');
  });

  it('needs no module files when everything is built in, even without a modules directory', () => {
    expect(resolveModules(null, ['virtio_blk', 'virtio_pci'], () => true)).toEqual([]);
  });

  it('stops at a dependency cycle', () => {
    const dir = freshDir();
    put(dir, 'a.ko', elfModule('depends=b\0'));
    put(dir, 'b.ko', elfModule('depends=a\0'));
    expect(resolveModules(dir, ['a'], never).map((m) => m.name)).toEqual(['b', 'a']);
  });

  it.each([
    { name: 'a dependency that is missing', wanted: ['virtio_net'], message: /^the kernel has no module net_failover \(needed by virtio_net\) and does not build it in \(looked in .*\)$/ },
    { name: 'a wanted module that is missing', wanted: ['zram'], message: /^the kernel has no module zram and does not build it in \(looked in / },
  ])('rejects $name with ERR_KERNEL_FEATURE naming it and who needed it', ({ wanted, message }) => {
    const t = tree();
    let err: unknown;
    try {
      resolveModules(t.dir, wanted, never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CowlabError);
    expect(err).toMatchObject({ code: 'ERR_KERNEL_FEATURE', message: expect.stringMatching(message) });
    expect((err as Error).message).toContain(t.dir);
  });

  it('says that a bare image brought no modules', () => {
    expect(() => resolveModules(null, ['virtio_blk'], never)).toThrow(
      expect.objectContaining({ code: 'ERR_KERNEL_FEATURE', message: expect.stringMatching(/no module virtio_blk .*no modules came with this kernel: give its \.deb or build tree/) }),
    );
  });

  it.each([
    { compression: 'gz' as const, needs: null },
    { compression: 'xz' as const, needs: 'xz' as const },
    { compression: 'zstd' as const, needs: 'zstd' as const },
  ])('reads .ko.$compression modules to the same images', ({ compression, needs }) => {
    if (needs !== null) tool(needs); // fails with "<tool> is not on PATH" rather than skipping
    const t = tree(compression);
    const order = resolveModules(t.dir, ['virtio_blk'], never);
    expect(order.map((m) => m.name)).toEqual(['virtio', 'virtio_ring', 'virtio_blk']);
    expect(order.map((m) => m.source)).toEqual([t.rel.virtio, t.rel.virtio_ring, t.rel.virtio_blk]);
    for (const m of order) expect(m.image.equals(t.images[m.name]!)).toBe(true);
  });
});

describe('readModule', () => {
  const savedPath = process.env.PATH;
  afterEach(() => {
    process.env.PATH = savedPath;
  });

  it('is ERR_KERNEL_FETCH for a damaged .ko.xz', () => {
    tool('xz');
    const p = put(freshDir(), 'bad.ko.xz', Buffer.concat([compress('xz', elfModule(VIRTIO_BLK)).subarray(0, 20), Buffer.from('garbage')]));
    expect(() => readModule(p)).toThrow(expect.objectContaining({ code: 'ERR_KERNEL_FETCH', message: expect.stringMatching(/^cannot decompress .*bad\.ko\.xz: /) }));
  });

  it('is ERR_TOOL_MISSING naming the package when xz is not on PATH', () => {
    const p = put(freshDir(), 'virtio_blk.ko.xz', compress('xz', elfModule(VIRTIO_BLK)));
    process.env.PATH = freshDir();
    expect(() => readModule(p)).toThrow(
      expect.objectContaining({ code: 'ERR_TOOL_MISSING', message: expect.stringMatching(/^xz is not installed; decompressing kernel module .* needs it: install it with `apt-get install xz-utils`$/) }),
    );
  });

  it('is a zlib error for a damaged .ko.gz', () => {
    const p = put(freshDir(), 'bad.ko.gz', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
    expect(() => readModule(p)).toThrow();
  });
});
