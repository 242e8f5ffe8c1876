/** Kernel .config files: the values cowlab records, read from plain and gzip files. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { afterAll, describe, expect, it } from 'vitest';

import { CONFIG_FACTS, describeValue, parseConfig, readConfigFile, unknownConfig, type ConfigFact } from '../../src/kernels/config.js';

const dir = mkdtempSync(join(tmpdir(), 'cowlab-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The shape of a real .config: a header, sections, =y, =m, "is not set", strings and numbers. */
const CONFIG = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.192 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"
CONFIG_LOCALVERSION=""
CONFIG_NR_CPUS=64

#
# Memory Management options
#
CONFIG_TRANSPARENT_HUGEPAGE=y
CONFIG_PROC_PAGE_MONITOR=y
CONFIG_MEMFD_CREATE=y
CONFIG_KSM=y
# CONFIG_USERFAULTFD is not set
CONFIG_MEM_SOFT_DIRTY=n
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=m
CONFIG_ZRAM=m
CONFIG_BLK_DEV_INITRD=y
CONFIG_RD_GZIP=y
# CONFIG_DEVTMPFS is not set
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_PAGE_MAPCOUNT_EXTRA=y
`;

const facts = Object.keys(CONFIG_FACTS) as ConfigFact[];

describe('parseConfig', () => {
  const c = parseConfig(CONFIG, '/boot/config-6.1.0-57-cloud-amd64');

  it('is known and remembers its source', () => {
    expect(c.known).toBe(true);
    expect(c.source).toBe('/boot/config-6.1.0-57-cloud-amd64');
  });

  it('has a value for every fact and nothing else', () => {
    expect(Object.keys(c.values).sort()).toEqual([...facts].sort());
  });

  it.each([
    { option: 'CONFIG_PROC_PAGE_MONITOR', value: 'y', why: '=y is built in' },
    { option: 'CONFIG_VIRTIO_BLK', value: 'm', why: '=m is a module' },
    { option: 'CONFIG_ZRAM', value: 'm', why: '=m is a module' },
    { option: 'CONFIG_USERFAULTFD', value: null, why: '"is not set"' },
    { option: 'CONFIG_DEVTMPFS', value: null, why: '"is not set"' },
    { option: 'CONFIG_MEM_SOFT_DIRTY', value: null, why: '=n' },
    { option: 'CONFIG_PAGE_MAPCOUNT', value: null, why: 'absent (a longer name that starts the same does not count)' },
    { option: 'CONFIG_NO_PAGE_MAPCOUNT', value: null, why: 'absent' },
    { option: 'CONFIG_MM_ID', value: null, why: 'absent' },
  ] as const)('$option is $value: $why', ({ option, value }) => {
    expect(c.values[option]).toBe(value);
  });

  it('reads CRLF lines and indented lines', () => {
    const crlf = parseConfig('CONFIG_KSM=y\r\n  CONFIG_ZRAM=m  \r\n# CONFIG_USERFAULTFD is not set\r\n', null);
    expect(crlf.values.CONFIG_KSM).toBe('y');
    expect(crlf.values.CONFIG_ZRAM).toBe('m');
    expect(crlf.values.CONFIG_USERFAULTFD).toBeNull();
    expect(crlf.source).toBeNull();
  });

  it('ignores a commented-out assignment', () => {
    expect(parseConfig('# CONFIG_KSM=y\n', null).values.CONFIG_KSM).toBeNull();
  });

  it('of empty text is known, with nothing set', () => {
    const e = parseConfig('', 'x');
    expect(e.known).toBe(true);
    expect(facts.every((k) => e.values[k] === null)).toBe(true);
  });
});

describe('readConfigFile', () => {
  const plain = join(dir, 'config-6.1.0-57-cloud-amd64');
  writeFileSync(plain, CONFIG);
  const gz = join(dir, 'config.gz');
  writeFileSync(gz, gzipSync(CONFIG));

  it('reads a plain file', () => {
    expect(readConfigFile(plain)).toEqual(parseConfig(CONFIG, plain));
  });

  it('reads a gzip file (like /proc/config.gz) to the same values', () => {
    const c = readConfigFile(gz);
    expect(c.source).toBe(gz);
    expect(c.values).toEqual(parseConfig(CONFIG, null).values);
  });

  it.each([
    { name: 'a missing file', path: () => join(dir, 'none') },
    { name: 'a damaged gzip file', path: () => { const p = join(dir, 'bad.gz'); writeFileSync(p, Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.from('not deflate data')])); return p; } },
    { name: 'a directory', path: () => { const p = join(dir, 'adir'); mkdirSync(p, { recursive: true }); return p; } },
  ])('is unknown for $name', ({ path }) => {
    expect(readConfigFile(path())).toEqual(unknownConfig());
  });
});

describe('describeValue', () => {
  const c = parseConfig(CONFIG, null);

  it.each([
    { option: 'CONFIG_KSM', text: 'y' },
    { option: 'CONFIG_VIRTIO_BLK', text: 'm' },
    { option: 'CONFIG_USERFAULTFD', text: 'not set' },
    { option: 'CONFIG_MM_ID', text: 'not set' },
  ] as const)('$option reads "$text"', ({ option, text }) => {
    expect(describeValue(c, option)).toBe(text);
  });

  it('says unknown for every fact when no configuration was found', () => {
    const u = unknownConfig();
    expect(u).toMatchObject({ known: false, source: null });
    expect(facts.map((k) => describeValue(u, k))).toEqual(facts.map(() => 'unknown'));
  });
});
