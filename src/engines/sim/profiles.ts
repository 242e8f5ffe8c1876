/**
 * Kernel profiles: which COW behaviour holds on which kernel. One table (BEHAVIOURS): per model
 * switch of SimOptions, the values it has taken in Linux's history, each with the release and
 * the commit that introduced it, and, where the build configuration decides, the option.
 *
 * profileFor(facts) reads the table for the kernel that actually ran (its upstream version,
 * its .config, its run-time knobs) and gives the simulator options that model it, each with its
 * reason. Releases are mainline's; a stable or distribution kernel that backported a change
 * would need its own row (none of the Debian kernels cowlab boots did, for these rows).
 *
 * Sources: torvalds/linux mm/memory.c (do_wp_page, wp_can_reuse_anon_folio), mm/huge_memory.c
 * (do_huge_pmd_wp_page), mm/mprotect.c (can_change_pte_writable), fs/proc/task_mmu.c
 * (pagemap_pmd_range), read at the releases named; docs/kernels.md has the table in words.
 */
import type { ConfigFact } from '../../kernels/config.js';
import type { KernelFacts } from '../../kernels/facts.js';
import { compareVersions, formatVersion, parseVersion, type KernelVersion } from '../../kernels/version.js';
import { DEFAULT_SIM_OPTIONS, type ResolvedSimOptions } from './options.js';

/** The model switches a profile sets (the cost model and debug checks are not kernel behaviour). */
export type ProfileSwitch = Exclude<keyof ResolvedSimOptions, 'costModel' | 'checkInvariants'>;

export interface Change<V> {
  value: V;
  /** First mainline release with this behaviour (x.y); null: the oldest behaviour modelled. */
  since: string | null;
  /** The commit that introduced it: subject and short id (null where no commit is named). */
  subject: string | null;
  commit: string | null;
  /** Holds only when this config option is set (true) or not set (false). */
  config?: { option: ConfigFact; set: boolean };
}

export interface Behaviour<K extends ProfileSwitch = ProfileSwitch> {
  option: K;
  /** The CLI flag that sets it (simFlags.ts). */
  flag: string;
  /** What it decides, in a few words. */
  what: string;
  /** Where the kernel decides it. */
  where: string;
  /** Oldest first; the last one that applies to a kernel holds. */
  changes: Change<ResolvedSimOptions[K]>[];
}

/** A switch set by a run-time knob of the kernel under test rather than by its version. */
export interface Knob<K extends ProfileSwitch = ProfileSwitch> {
  option: K;
  flag: string;
  what: string;
  /** The knob, and how its value maps to the switch. */
  knob: string;
  read(facts: KernelFacts): ResolvedSimOptions[K] | null;
}

function behaviour<K extends ProfileSwitch>(b: Behaviour<K>): Behaviour<K> {
  return b;
}

/** The table. Each change's `subject`/`commit` is the kernel change that made the behaviour. */
export const BEHAVIOURS: readonly Behaviour[] = [
  behaviour({
    option: 'reuse',
    flag: '--reuse',
    what: 'a write fault on an anonymous page nobody else references reuses it in place',
    where: 'mm/memory.c do_wp_page',
    changes: [
      { value: true, since: '5.9', subject: 'mm: do_wp_page() simplification', commit: '09854ba94c6a' },
    ],
  }),
  behaviour({
    option: 'thpPteReuse',
    flag: '--thp-pte-reuse',
    what: 'a write fault on a page of a PTE-mapped THP (split by an earlier COW) after the sharer left',
    where: 'mm/memory.c wp_can_reuse_anon_folio',
    changes: [
      { value: 'sole-reference', since: null, subject: null, commit: null },
      { value: 'never', since: '6.9', subject: 'mm: prohibit the last subpage from reusing the entire large folio', commit: 'cd197c3a2040' },
      { value: 'per-page', since: '6.15', subject: 'mm: Copy-on-Write (COW) reuse support for PTE-mapped THP', commit: '1da190f4d0a6' },
    ],
  }),
  behaviour({
    option: 'hugeZeroWrite',
    flag: '--huge-zero-write',
    what: 'a write fault on the huge zero page',
    where: 'mm/huge_memory.c do_huge_pmd_wp_page',
    changes: [
      { value: 'split', since: null, subject: null, commit: null },
      { value: 'huge-page', since: '6.13', subject: 'mm: allocate THP on hugezeropage wp-fault', commit: '1ced09e0331f' },
    ],
  }),
  behaviour({
    option: 'pmdExclusive',
    flag: '--pmd-exclusive',
    what: "pagemap's exclusive bit for the 512 entries of a PMD-mapped THP",
    where: 'fs/proc/task_mmu.c pagemap_pmd_range',
    changes: [
      { value: 'head-page', since: null, subject: null, commit: null },
      { value: 'per-page', since: '6.11', subject: 'fs/proc/task_mmu: properly detect PM_MMAP_EXCLUSIVE per page of PMD-mapped THPs', commit: '2c1f057e5be6' },
      {
        value: 'head-page',
        since: '6.15',
        subject: 'fs/proc/task_mmu: remove per-page mapcount dependency for PM_MMAP_EXCLUSIVE (CONFIG_NO_PAGE_MAPCOUNT)',
        commit: 'eb16876971ea',
      },
    ],
  }),
  behaviour({
    option: 'pagemapExclusive',
    flag: '--pagemap-exclusive',
    what: "pagemap's exclusive bit for pages of large folios: the page's own mapcount, or the folio's",
    where: 'fs/proc/task_mmu.c __folio_page_mapped_exclusively',
    changes: [
      { value: 'precise', since: null, subject: null, commit: null },
      {
        value: 'folio',
        since: '6.15',
        subject: 'fs/proc/task_mmu: remove per-page mapcount dependency for PM_MMAP_EXCLUSIVE (CONFIG_NO_PAGE_MAPCOUNT)',
        commit: 'eb16876971ea',
        config: { option: 'CONFIG_NO_PAGE_MAPCOUNT', set: true },
      },
    ],
  }),
  behaviour({
    option: 'mprotectUpgrade',
    flag: '--mprotect-upgrade',
    what: 'mprotect(PROT_READ|PROT_WRITE) makes exclusive anonymous pages writable without a fault',
    where: 'mm/mprotect.c can_change_pte_writable, mm/huge_memory.c can_change_pmd_writable',
    changes: [
      { value: 'none', since: null, subject: null, commit: null },
      {
        value: 'dirty-pte',
        since: '6.0',
        subject: 'mm/mprotect: try avoiding write faults for exclusive anonymous pages when changing protection',
        commit: '64fe24a3e05e',
      },
      {
        value: 'pte-and-pmd',
        since: '6.2',
        subject: 'mm/mprotect: allow clean exclusive anon pages to be writable; mm/huge_memory: try avoiding write faults when changing PMD protection',
        commit: 'd84887739d5c, c27f479ef542',
      },
    ],
  }),
  behaviour({
    option: 'swapinWritable',
    flag: '--swapin-writable',
    what: 'a swap-in of a page exclusive to the faulting process maps it writable, on a read fault too',
    where: 'mm/memory.c do_swap_page',
    changes: [
      { value: 'write-fault', since: null, subject: null, commit: null },
      { value: 'exclusive', since: '6.11', subject: 'mm: swap: reuse exclusive folio directly instead of wp page faults', commit: 'c18160dba5ff' },
    ],
  }),
];

/** Switches that follow a knob of the kernel under test, read where it ran. */
export const KNOBS: readonly Knob[] = [
  {
    option: 'hugeZeroPage',
    flag: '--huge-zero-page',
    what: 'a read of untouched huge-page-able memory maps the huge zero page',
    knob: '/sys/kernel/mm/transparent_hugepage/use_zero_page (1: on)',
    read: (f) => f.knobs.useZeroPage,
  } satisfies Knob<'hugeZeroPage'>,
  {
    option: 'swap',
    flag: '--swap',
    what: 'where reclaim (MADV_PAGEOUT) puts anonymous pages',
    knob: '/proc/swaps (none: no swap; a zram, brd or pmem device: sync-io; any other: block)',
    read: (f) => f.knobs.swap ?? null,
  } satisfies Knob<'swap'>,
  {
    option: 'faultAroundPages',
    flag: '--fault-around',
    what: 'pages a shmem/memfd read fault maps around it',
    knob: 'fault_around_bytes / 4096 (debugfs; 64 KiB unless changed, which cowlab never does)',
    read: () => null,
  } satisfies Knob<'faultAroundPages'>,
] as Knob[];

/** Oldest release cowlab has profiles for: older kernels lack behaviours the model assumes. */
export const OLDEST_MODELLED = '5.9';

export interface ProfileEntry {
  option: ProfileSwitch;
  flag: string;
  value: string;
  /** Why: "since 6.15: mm: Copy-on-Write ... (1da190f4d0a6)", or the knob's value. */
  because: string;
}

export interface KernelProfile {
  /** "6.12" (the x.y it was chosen for), or the release when the version is unknown. */
  name: string;
  /** The version it was chosen by, x.y.z. */
  version: string;
  options: Pick<ResolvedSimOptions, ProfileSwitch>;
  entries: ProfileEntry[];
  /** What the choice had to assume (no config known, a kernel older than the table). */
  caveats: string[];
}

function atLeast(v: KernelVersion, since: string | null): boolean {
  return since === null || compareVersions(v, parseVersion(since)!) >= 0;
}

/** A switch's value as its CLI flag spells it (booleans are on/off). */
export function valueText(v: unknown): string {
  return typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
}

function describeChange(c: Change<unknown>): string {
  if (c.since === null) return 'before any change listed';
  const what = c.subject ? `: ${c.subject}${c.commit ? ` (${c.commit})` : ''}` : '';
  const cfg = c.config ? ` with ${c.config.option}${c.config.set ? '=y' : ' not set'}` : '';
  return `since ${c.since}${cfg}${what}`;
}

/** The profile of a kernel: its facts, or just a version ("6.1", "6.12.117") for --profile. */
export function profileFor(kernel: KernelFacts | string): KernelProfile {
  const facts = typeof kernel === 'string' ? null : kernel;
  const text = typeof kernel === 'string' ? kernel : (kernel.version ?? kernel.release);
  const v = parseVersion(text);
  if (v === null) throw new Error(`profileFor: '${text}' is not a kernel version`);
  const caveats: string[] = [];
  if (compareVersions(v, parseVersion(OLDEST_MODELLED)!) < 0) {
    caveats.push(`Linux ${formatVersion(v, false)} is older than ${OLDEST_MODELLED}, the oldest kernel the model follows: predictions may be wrong`);
  }
  const configKnown = facts?.config.known ?? false;
  const options = {} as Record<ProfileSwitch, unknown>;
  const entries: ProfileEntry[] = [];
  for (const b of BEHAVIOURS) {
    let chosen: Change<unknown> | null = null;
    for (const c of b.changes as Change<unknown>[]) {
      if (!atLeast(v, c.since)) continue;
      if (c.config) {
        const value = facts?.config.values[c.config.option] ?? null;
        if (!configKnown) {
          caveats.push(`the kernel's configuration is not known: ${c.config.option} is assumed ${c.config.set ? 'not set' : 'set'}`);
          continue;
        }
        if ((value !== null) !== c.config.set) continue;
      }
      chosen = c;
    }
    chosen ??= (b.changes as Change<unknown>[])[0]!;
    options[b.option] = chosen.value;
    entries.push({ option: b.option, flag: b.flag, value: valueText(chosen.value), because: describeChange(chosen) });
  }
  for (const k of KNOBS) {
    const read = facts ? k.read(facts) : null;
    const value = read ?? DEFAULT_SIM_OPTIONS[k.option];
    options[k.option] = value;
    entries.push({ option: k.option, flag: k.flag, value: valueText(value), because: read === null ? `${k.knob}: the default` : `${k.knob}: read ${valueText(read)} on the kernel that ran` });
  }
  return {
    name: formatVersion(v, false),
    version: formatVersion(v),
    options: options as KernelProfile['options'],
    entries,
    caveats: [...new Set(caveats)],
  };
}

/** The table in words, one row per value of each switch (`cowlab kernels profiles`, docs/kernels.md). */
export function profileTable(): string[][] {
  const rows: string[][] = [];
  for (const b of BEHAVIOURS) {
    b.changes.forEach((c, i) => {
      // A change that needs a config option does not end the one before it (it only holds with
      // that option), so the range ends at the next change that applies to every config.
      const next = b.changes.slice(i + 1).find((x) => !x.config && x.since !== null);
      const unless = b.changes.slice(i + 1).find((x) => x.config && !c.config);
      const range =
        ([c.since ? `>= ${c.since}` : '', next && !c.config ? `< ${next.since}` : ''].filter(Boolean).join(', ') || 'all') +
        (unless ? ` (not with ${unless.config!.option}=${unless.config!.set ? 'y' : 'n'} from ${unless.since})` : '');
      const cfg = c.config ? `, ${c.config.option}=${c.config.set ? 'y' : 'n'}` : '';
      const source = c.subject ? `${c.subject}${c.commit ? ` (${c.commit})` : ''}` : '(the behaviour before)';
      rows.push([b.option, b.flag, valueText(c.value), `${range}${cfg}`, source, b.where]);
    });
  }
  return rows;
}
