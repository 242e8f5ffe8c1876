/**
 * The write-tracking mechanisms cowlab measures side by side, and whether this kernel offers
 * each (detected by trying, never assumed from the version). A mechanism that is missing says
 * why, in words a user can act on; on other kernels use `--kernel` (a QEMU guest).
 */
import { native } from '../native.js';

export const MECHANISMS = [
  'kernel-cow',
  'sigsegv-mprotect',
  'sigsegv-remap',
  'region',
  'uffd-wp-sync',
  'uffd-wp-async',
  'soft-dirty',
] as const;
export type Mechanism = (typeof MECHANISMS)[number];

export interface MechanismInfo {
  label: string;
  /** What one first store to a tracked page costs, in words. */
  path: string;
  /** The mechanism keeps the old bytes of each written page (a snapshot), checked by content. */
  copies: boolean;
  /** Each first store makes a round trip to user code (a signal handler or a handler thread). */
  userRoundTrip: boolean;
}

export const MECHANISM_INFO: Readonly<Record<Mechanism, MechanismInfo>> = {
  'kernel-cow': {
    label: 'kernel COW after fork',
    path: 'fork(); the child stores; the kernel copies the page in its write fault',
    copies: true,
    userRoundTrip: false,
  },
  'sigsegv-mprotect': {
    label: 'SIGSEGV + mprotect',
    path: 'read-only pages; the handler mprotects the faulting page writable (no copy)',
    copies: false,
    userRoundTrip: true,
  },
  'sigsegv-remap': {
    label: 'SIGSEGV + copy + mmap (bare C)',
    path: "the region's mechanism without the region: copy into a memfd frame, mmap(MAP_FIXED) it over the page",
    copies: true,
    userRoundTrip: true,
  },
  region: {
    label: "cowlab's region (CowRegion)",
    path: "view.fork(); the region's SIGSEGV handler copies the page into a pooled frame and maps it",
    copies: true,
    userRoundTrip: true,
  },
  'uffd-wp-sync': {
    label: 'userfaultfd-wp, handler thread',
    path: 'the store blocks; a handler thread copies the page out and un-protects it (UFFDIO_WRITEPROTECT)',
    copies: true,
    userRoundTrip: true,
  },
  'uffd-wp-async': {
    label: 'userfaultfd-wp async + PAGEMAP_SCAN',
    path: 'UFFD_FEATURE_WP_ASYNC: the kernel drops the uffd-wp bit itself; PAGEMAP_SCAN finds PAGE_IS_WRITTEN',
    copies: false,
    userRoundTrip: false,
  },
  'soft-dirty': {
    label: 'soft-dirty (clear_refs 4, pagemap bit 55)',
    path: 'clear_refs write-protects the whole process; the kernel sets bit 55 in the write fault',
    copies: false,
    userRoundTrip: false,
  },
};

export type Availability = { available: true } | { available: false; reason: string };

const UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1;
const UFFD_FEATURE_WP_ASYNC = 2 ** 15;
const SOFT_DIRTY_BIT = 1n << 55n;
const PRESENT_BIT = 1n << 63n;

/** Why userfaultfd(2) or UFFDIO_API failed, in words (errno names from native/track_uffd.cc). */
export function describeUffdFailure(openErrno: string, apiErrno: string): string {
  if (openErrno === 'ENOSYS') return 'userfaultfd(2) is not in this kernel (CONFIG_USERFAULTFD off): ENOSYS';
  if (openErrno === 'EPERM') {
    return 'userfaultfd(2) refused with EPERM: unprivileged userfaultfd is off (vm.unprivileged_userfaultfd = 0) and this process lacks CAP_SYS_PTRACE; run as root, or in a guest (--kernel) where the knob may be changed';
  }
  if (openErrno !== '') return `userfaultfd(2) failed: ${openErrno}`;
  return `the UFFDIO_API handshake failed: ${apiErrno}`;
}

/**
 * Decides availability from the raw probes: userfaultfd's errnos and feature bits, and the
 * pagemap entries of a page written after clear_refs 4. Pure: tested on recorded inputs.
 */
export function decideAvailability(
  m: Mechanism,
  probes: {
    uffd?: { openErrno: string; apiErrno: string; features: number };
    softDirty?: { clearErrno: string; pagemapErrno: string; cleared: bigint; rewritten: bigint };
  },
): Availability {
  if (m === 'uffd-wp-sync' || m === 'uffd-wp-async') {
    const u = probes.uffd!;
    if (u.openErrno !== '' || u.apiErrno !== '') return { available: false, reason: describeUffdFailure(u.openErrno, u.apiErrno) };
    const has = (bit: number) => Math.floor(u.features / bit) % 2 === 1;
    if (!has(UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
      return { available: false, reason: 'userfaultfd has no write-protect mode here (UFFD_FEATURE_PAGEFAULT_FLAG_WP, Linux 5.7, anonymous memory)' };
    }
    if (m === 'uffd-wp-async' && !has(UFFD_FEATURE_WP_ASYNC)) {
      return { available: false, reason: 'userfaultfd lacks UFFD_FEATURE_WP_ASYNC (Linux 6.7, with PAGEMAP_SCAN)' };
    }
    return { available: true };
  }
  if (m === 'soft-dirty') {
    const s = probes.softDirty!;
    if (s.clearErrno !== '') return { available: false, reason: `writing 4 to /proc/self/clear_refs failed: ${s.clearErrno}` };
    if (s.pagemapErrno !== '') return { available: false, reason: `/proc/self/pagemap cannot be read: ${s.pagemapErrno}` };
    if ((s.rewritten & PRESENT_BIT) === 0n) return { available: false, reason: 'the probe page was not present after a store (pagemap says nothing)' };
    if ((s.rewritten & SOFT_DIRTY_BIT) === 0n) {
      return {
        available: false,
        reason: 'a page written after clear_refs 4 does not have pagemap bit 55 set: this kernel is built without CONFIG_MEM_SOFT_DIRTY',
      };
    }
    if ((s.cleared & SOFT_DIRTY_BIT) !== 0n) {
      return { available: false, reason: 'clear_refs 4 did not clear pagemap bit 55 of a written page: soft-dirty tracking does not work here' };
    }
    return { available: true };
  }
  return { available: true };
}

const cache = new Map<Mechanism, Availability>();

/** Whether this kernel offers `m`, probed once per process (userfaultfd opened and closed;
 *  clear_refs 4 written to this process, which only clears its own soft-dirty bits). */
export function mechanismAvailability(m: Mechanism): Availability {
  let a = cache.get(m);
  if (a === undefined) {
    const n = native();
    a =
      m === 'uffd-wp-sync' || m === 'uffd-wp-async'
        ? decideAvailability(m, { uffd: n.uffdProbe() })
        : m === 'soft-dirty'
          ? decideAvailability(m, { softDirty: n.softDirtyProbe() })
          : { available: true };
    cache.set(m, a);
  }
  return a;
}
