/**
 * What this process may see of physical memory. Since Linux 4.2 pagemap PFNs read as zero
 * without CAP_SYS_ADMIN, while the present and exclusive bits stay correct: that is the
 * unprivileged signal. /proc/kpagecount and /proc/kpageflags are root-only.
 */
import { openSync, closeSync, readFileSync } from 'node:fs';

import { native } from '../native.js';
import { PagemapEntries, readKpageCounts } from './pagemap.js';

export interface PfnAccess {
  /** Pagemap PFNs are real (not zeroed). */
  pfnVisible: boolean;
  /** Why they are hidden; null when visible. */
  pfnReason: string | null;
  kpagecount: boolean;
  kpagecountReason: string | null;
  kpageflags: boolean;
  kpageflagsReason: string | null;
  /** The effective capability set holds CAP_SYS_ADMIN. */
  capSysAdmin: boolean;
}

const CAP_SYS_ADMIN = 21n;

function hasCapSysAdmin(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n;
}

function openable(path: string): string | null {
  try {
    closeSync(openSync(path, 'r'));
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return `${path} cannot be opened (${e.code ?? e.message}); it is readable only with CAP_SYS_ADMIN (root)`;
  }
}

let cached: PfnAccess | undefined;

/** Probes once (one touched page, its pagemap entry, the kpage files) and caches the answer. */
export function pfnAccess(): PfnAccess {
  if (cached) return cached;
  const cap = hasCapSysAdmin();
  // A native probe: unmapping a JS Mapping would detach an ArrayBuffer, which slows every
  // typed-array access of the process afterwards (see native/pagemap.cc).
  const pfn = new PagemapEntries(native().probeOwnPfn()).pfn[0]!;
  const pfnVisible = pfn !== 0;
  const pfnReason = pfnVisible
    ? null
    : cap
      ? 'pagemap PFNs read as zero although CAP_SYS_ADMIN is held (a kernel or LSM restriction)'
      : 'pagemap PFNs read as zero: the process lacks CAP_SYS_ADMIN (Linux >= 4.2 hides them from unprivileged readers; run as root to see them)';
  let kpagecountReason = openable('/proc/kpagecount');
  if (kpagecountReason === null && pfnVisible) {
    try {
      readKpageCounts(new Float64Array([pfn]));
    } catch (err) {
      kpagecountReason = `/proc/kpagecount cannot be read: ${(err as Error).message}`;
    }
  }
  const kpageflagsReason = openable('/proc/kpageflags');
  cached = {
    pfnVisible,
    pfnReason,
    kpagecount: kpagecountReason === null,
    kpagecountReason,
    kpageflags: kpageflagsReason === null,
    kpageflagsReason,
    capSysAdmin: cap,
  };
  return cached;
}
