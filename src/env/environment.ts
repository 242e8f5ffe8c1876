/**
 * The machine a result was measured on. Every result cowlab prints or writes carries this,
 * because COW costs depend on all of it (DESIGN.md, measuring rules).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

import { native, nativePath } from '../native.js';
import { packageVersion } from '../util/package.js';
import { pfnAccess, type PfnAccess } from '../pagemap/access.js';
import { readProcStat } from '../util/procStat.js';
import { readNumberFile, readSmallFile } from '../util/sysfs.js';
import { readSwap, type SwapInfo } from './swap.js';
import { readThp } from './thp.js';

export interface Environment {
  /** Kernel release (uname -r) and build string (uname -v). */
  kernel: string;
  kernelBuild: string;
  arch: string;
  pageSize: number;
  /** PMD huge page size (transparent_hugepage/hpage_pmd_size), null without THP. */
  hugePageSize: number | null;
  thp: {
    /** transparent_hugepage/enabled: always | madvise | never; null without THP. */
    enabled: string | null;
    defrag: string | null;
    /** Whether reads of untouched THP-able memory map the huge zero page. */
    useZeroPage: boolean | null;
  };
  /** Swap areas (/proc/swaps) and their kind (env/swap.ts). Absent in results written before. */
  swap?: SwapInfo;
  /** KSM (/sys/kernel/mm/ksm/run): 0 stopped, 1 running, 2 unmerging; null if absent. */
  ksmRun: number | null;
  cpu: { model: string; count: number };
  hypervisor: { present: boolean; vendor: string | null };
  memory: { totalBytes: number; availableBytes: number };
  /** vm.overcommit_memory: 0 heuristic, 1 always, 2 never. */
  overcommitMemory: number | null;
  maxMapCount: number | null;
  clocksource: string | null;
  /** Things on this host that change fault costs behind cowlab's back. */
  noise: {
    /**
     * Running DAMON kdamonds and their scheme actions (e.g. "paddr: pageout"); [] if none.
     * Without root DAMON's sysfs files cannot be read: then one entry per running kdamond
     * thread ("kdamond.0 running (...unknown: needs root)"), or, where kernel threads are not
     * visible either, the one entry "unknown (needs root)". `damonReason` says which.
     */
    damon: string[];
    /** Null when `damon` is complete; else why it is not (its files are root-only). Absent
     *  in results written before it existed. */
    damonReason?: string | null;
    /** virtio-balloon free page reporting: freed guest memory is returned to the host, so
     *  newly allocated frames can be cold (slow first touch). Null without a balloon. */
    freePageReporting: boolean | null;
  };
  privileges: { uid: number; root: boolean } & PfnAccess;
  /**
   * Set when cowlab runs inside a QEMU guest it booted itself (src/guest/): the accelerator
   * (tcg: an emulated CPU, whose times are not meaningful) and the kernel spec the host named.
   * Absent in results files written before kernels could be named.
   */
  guest?: { accel: 'kvm' | 'tcg'; kernel: string } | null;
  node: string;
  cowlab: string;
  addon: string;
}

/** One /proc/meminfo field in bytes (MemAvailable, Committed_AS, ...); NaN when absent. */
export function meminfoField(key: string): number {
  const text = readSmallFile('/proc/meminfo') ?? '';
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
}

export function meminfo(): { totalBytes: number; availableBytes: number } {
  return { totalBytes: meminfoField('MemTotal'), availableBytes: meminfoField('MemAvailable') };
}

function hypervisor(): { present: boolean; vendor: string | null } {
  const flags = /^flags\s*:(.*)$/m.exec(readSmallFile('/proc/cpuinfo') ?? '')?.[1] ?? '';
  const present = /\bhypervisor\b/.test(flags) || existsSync('/sys/hypervisor/type');
  const vendor =
    readSmallFile('/sys/hypervisor/type') ?? readSmallFile('/sys/class/dmi/id/sys_vendor') ?? readSmallFile('/sys/class/dmi/id/product_name');
  return { present, vendor: present ? vendor : null };
}

function cpuModel(): string {
  const info = readSmallFile('/proc/cpuinfo') ?? '';
  return (/^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? os.cpus()[0]?.model ?? 'unknown').trim();
}

const DAMON_ADMIN = '/sys/kernel/mm/damon/admin/kdamonds';

/** Kernel threads of this pid namespace whose name passes `test` (null: none are visible). */
function kernelThreads(test: (comm: string) => boolean): string[] | null {
  let sawKthread = false;
  const names: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const stat = readProcStat(Number(d));
    if (stat === null || !stat.kernelThread) continue;
    sawKthread = true;
    if (test(stat.comm)) names.push(stat.comm);
  }
  return sawKthread ? names.sort() : null;
}

/** DAMON's admin files are root-only (mode 0600/0400): without root, what can still be seen. */
function damonWithoutAccess(): Pick<Environment['noise'], 'damon' | 'damonReason'> {
  const why = `needs root: ${DAMON_ADMIN} is readable by root only`;
  // Every kdamond is a kernel thread named kdamond.<n> while it runs; kernel threads are
  // visible to anyone in the initial pid namespace (not inside a container's).
  const threads = kernelThreads((comm) => /^kdamond\.\d+$/.test(comm));
  if (threads === null) return { damon: ['unknown (needs root)'], damonReason: `${why}, and no kernel thread is visible here` };
  return { damon: threads.map((t) => `${t} running (operations and schemes unknown: needs root)`), damonReason: threads.length ? why : null };
}

function damonKdamonds(): Pick<Environment['noise'], 'damon' | 'damonReason'> {
  const base = DAMON_ADMIN;
  let nr: string;
  try {
    nr = readFileSync(`${base}/nr_kdamonds`, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return damonWithoutAccess();
    return { damon: [], damonReason: null }; // no DAMON sysfs interface: none can run through it
  }
  const n = Number.isFinite(Number(nr)) ? Number(nr) : 0;
  const out: string[] = [];
  for (let k = 0; k < n; k++) {
    if (readSmallFile(`${base}/${k}/state`) !== 'on') continue;
    const ctxs = readNumberFile(`${base}/${k}/contexts/nr_contexts`) ?? 0;
    for (let c = 0; c < ctxs; c++) {
      const ctx = `${base}/${k}/contexts/${c}`;
      const schemes = readNumberFile(`${ctx}/schemes/nr_schemes`) ?? 0;
      const actions = Array.from({ length: schemes }, (_, i) => readSmallFile(`${ctx}/schemes/${i}/action`) ?? '?');
      out.push(`${readSmallFile(`${ctx}/operations`) ?? '?'}: ${actions.join(', ') || 'monitoring only'}`);
    }
  }
  return { damon: out, damonReason: null };
}

/** VIRTIO_BALLOON_F_REPORTING is feature bit 5 (the features file is a bit string). */
function freePageReporting(): boolean | null {
  const dir = '/sys/bus/virtio/drivers/virtio_balloon';
  let devices: string[];
  try {
    devices = readdirSync(dir).filter((d) => d.startsWith('virtio'));
  } catch {
    return null;
  }
  if (devices.length === 0) return null;
  return devices.some((d) => readSmallFile(`${dir}/${d}/features`)?.[5] === '1');
}

/** What the guest agent (src/guest/agent.ts) tells the command it runs. */
function guestOf(env: NodeJS.ProcessEnv): Environment['guest'] {
  const accel = env.COWLAB_GUEST_ACCEL;
  if (accel !== 'kvm' && accel !== 'tcg') return null;
  return { accel, kernel: env.COWLAB_KERNEL_SPEC ?? 'unknown' };
}

/** True when times measured here are not meaningful: the CPU is emulated (a TCG guest). */
export function emulatedCpu(env: Environment): boolean {
  return env.guest?.accel === 'tcg';
}

let cached: Environment | undefined;

/** Reads the environment once per process (it does not change under a running measurement). */
export function environment(): Environment {
  if (cached) return cached;
  const uid = process.getuid?.() ?? -1;
  const thp = readThp();
  cached = {
    kernel: os.release(),
    kernelBuild: os.version(),
    arch: os.arch(),
    pageSize: native().constants.PAGE_SIZE,
    hugePageSize: thp.hugePageSize,
    thp: { enabled: thp.enabled, defrag: thp.defrag, useZeroPage: thp.useZeroPage },
    swap: readSwap(),
    ksmRun: readNumberFile('/sys/kernel/mm/ksm/run'),
    cpu: { model: cpuModel(), count: os.cpus().length },
    hypervisor: hypervisor(),
    memory: meminfo(),
    overcommitMemory: readNumberFile('/proc/sys/vm/overcommit_memory'),
    maxMapCount: readNumberFile('/proc/sys/vm/max_map_count'),
    clocksource: readSmallFile('/sys/devices/system/clocksource/clocksource0/current_clocksource'),
    noise: { ...damonKdamonds(), freePageReporting: freePageReporting() },
    privileges: { uid, root: uid === 0, ...pfnAccess() },
    guest: guestOf(process.env),
    node: process.version,
    cowlab: packageVersion(),
    addon: nativePath(),
  };
  return cached;
}
