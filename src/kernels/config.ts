/**
 * A kernel's build configuration (.config, /boot/config-<release>, /proc/config.gz): the few
 * options cowlab depends on, either to boot the kernel in a guest or because the simulator's
 * model or a command depends on them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** 'y' built in, 'm' a module, null not set (or unknown: see KernelConfig.known). */
export type ConfigValue = 'y' | 'm' | null;

/** The options recorded with every kernel, and why each matters. */
export const CONFIG_FACTS = {
  CONFIG_PROC_PAGE_MONITOR: '/proc/<pid>/pagemap, kpagecount, kpageflags: every observation',
  CONFIG_TRANSPARENT_HUGEPAGE: 'huge pages (the THP scenarios)',
  CONFIG_MEMFD_CREATE: 'memfd regions',
  CONFIG_PAGE_MAPCOUNT: "per-page mapcounts: pagemap's exclusive bit for pages of large folios",
  CONFIG_NO_PAGE_MAPCOUNT: "no per-page mapcounts: pagemap's exclusive bit is judged per folio",
  CONFIG_MM_ID: 'large-folio owner tracking (folio_maybe_mapped_shared)',
  CONFIG_MEM_SOFT_DIRTY: 'soft-dirty bits (pagemap bit 55)',
  CONFIG_USERFAULTFD: 'userfaultfd',
  CONFIG_KSM: 'KSM',
  CONFIG_BLK_DEV_INITRD: 'booting from an initramfs (the guest)',
  CONFIG_RD_GZIP: 'a gzip initramfs (the guest)',
  CONFIG_DEVTMPFS: '/dev in the guest',
  CONFIG_SERIAL_8250_CONSOLE: "the guest's console on ttyS0",
  CONFIG_VIRTIO_PCI: "the guest's request and result disks",
  CONFIG_VIRTIO_BLK: "the guest's request and result disks",
  CONFIG_ZRAM: 'zram swap in a guest',
} as const;

export type ConfigFact = keyof typeof CONFIG_FACTS;

export interface KernelConfig {
  /** False when no configuration was found (a bare bzImage): every value is then null. */
  known: boolean;
  /** Where it was read from. */
  source: string | null;
  values: Record<ConfigFact, ConfigValue>;
}

/** Parses .config text: `CONFIG_X=y`, `CONFIG_X=m`, `# CONFIG_X is not set`. */
export function parseConfig(text: string, source: string | null): KernelConfig {
  const all = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) all.set(m[1]!, m[2]!);
  }
  const values = {} as Record<ConfigFact, ConfigValue>;
  for (const k of Object.keys(CONFIG_FACTS) as ConfigFact[]) {
    const v = all.get(k);
    values[k] = v === 'y' || v === 'm' ? v : null;
  }
  return { known: true, source, values };
}

export function unknownConfig(): KernelConfig {
  const values = {} as Record<ConfigFact, ConfigValue>;
  for (const k of Object.keys(CONFIG_FACTS) as ConfigFact[]) values[k] = null;
  return { known: false, source: null, values };
}

/** Reads a .config file (plain or gzip, like /proc/config.gz); unknownConfig() when absent. */
export function readConfigFile(path: string): KernelConfig {
  if (!existsSync(path)) return unknownConfig();
  try {
    let data = readFileSync(path);
    if (data[0] === 0x1f && data[1] === 0x8b) data = gunzipSync(data);
    return parseConfig(data.toString('utf8'), path);
  } catch {
    return unknownConfig();
  }
}

/** The running kernel's configuration: /proc/config.gz, else /boot/config-<release>. */
export function runningKernelConfig(release: string): KernelConfig {
  const proc = readConfigFile('/proc/config.gz');
  return proc.known ? proc : readConfigFile(`/boot/config-${release}`);
}

/** "y", "m", "not set" or "unknown", for tables. */
export function describeValue(c: KernelConfig, k: ConfigFact): string {
  if (!c.known) return 'unknown';
  return c.values[k] ?? 'not set';
}
