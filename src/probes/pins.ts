/**
 * Pins and COW: does a page pinned read-only by vmsplice(2) ever show a write the other process
 * made after the pin? The vmsplice cases of the kernel's own tools/testing/selftests/mm/cow.c,
 * the class of bug behind CVE-2020-29374 (a child read its parent's later writes through a
 * pipe). native/pins.cc maps the memory, forks Node once and reads the pipe back; this checks
 * the bytes. Every byte of the page starts as 1 and the other process writes 0xff over it after
 * the pin: a pin that is reliable reads only 1s.
 *
 *   const r = await vmsplicePin({ case: 'in-child', backing: 'thp' });
 *   r.leaked; // bytes of the other process's write seen through the pin (0: no leak)
 */
import { CowlabError } from '../errors.js';
import { native, wordNativeError } from '../native.js';
import { choiceOption, integerOption } from '../options.js';
import { PagemapEntries } from '../pagemap/pagemap.js';
import { describeWaitStatus } from '../util/procStat.js';

/**
 *   in-child     fork; the child pins the shared page and unmaps it; the parent writes; the
 *                child reads the pipe (cow.c test_vmsplice_in_child: no leak parent -> child)
 *   before-fork  the parent pins, forks; the child writes; the parent unmaps and reads
 *                (test_vmsplice_before_fork: no leak child -> parent)
 *   after-fork   the same with the pin taken after the fork (test_vmsplice_after_fork)
 */
export const PIN_CASES = ['in-child', 'before-fork', 'after-fork'] as const;
export type PinCase = (typeof PIN_CASES)[number];
/**
 * A 4 KiB page; a PMD-mapped THP; a THP mapped by PTEs (one subpage mprotected away and back);
 * and the control, a MAP_SHARED page, where the other process's write is meant to show through
 * the pin (a probe that could not see a leak would fail there).
 */
export const PIN_BACKINGS = ['base', 'thp', 'thp-pte', 'shared'] as const;
export type PinBacking = (typeof PIN_BACKINGS)[number];

export interface PinResult {
  case: PinCase;
  backing: PinBacking;
  /** Bytes of the region (4 KiB, or the huge page). */
  size: number;
  /** Bytes vmsplice transferred and the pipe read back (a pipe holds 64 KiB by default). */
  transferred: number;
  /** Of them, bytes that hold the other process's write (0xff) instead of the pinned 1. */
  leaked: number;
  /** Bytes that are neither (a broken probe, not a leak). */
  garbled: number;
  /** For a THP backing: whether the kernel gave one (the last subpage was present after the
   *  first byte was touched). Always true for the 4 KiB backings. */
  hugePage: boolean;
  childPid: number;
}


/** Runs one case on one backing. Rejects with ERR_CHILD_FAILED (the child died, or did not
 *  answer within the deadline and was killed) or ERR_SYSCALL naming the step; the child is
 *  reaped on every path. */
export async function vmsplicePin(o: { case: PinCase; backing: PinBacking; deadlineMs?: number }): Promise<PinResult> {
  const which = choiceOption('case', o.case, PIN_CASES);
  const backing = choiceOption('backing', o.backing, PIN_BACKINGS);
  const deadlineMs = integerOption('deadlineMs', o.deadlineMs ?? 10_000, { min: 1, max: 3_600_000 });
  let r: Awaited<ReturnType<ReturnType<typeof native>['pinProbe']>>;
  try {
    r = await native().pinProbe({ case: PIN_CASES.indexOf(which) as 0 | 1 | 2, backing: PIN_BACKINGS.indexOf(backing) as 0 | 1 | 2 | 3, deadlineMs });
  } catch (err) {
    throw wordNativeError(err, (f, message) => {
      if (f.cause === 'died') return `the pin probe's child (pid ${f.childPid}) ${describeWaitStatus(Number(f.waitStatus))}`;
      if (f.cause === 'killed') return `the pin probe's child (pid ${f.childPid}) was killed: no answer within ${deadlineMs} ms${f.waiting ? ` (${f.waiting})` : ''}`;
      return `the pin probe failed at ${String(f.step)}: ${message}`;
    });
  }
  const bytes = new Uint8Array(r.bytes);
  if (bytes.length === 0) throw new CowlabError('ERR_SYSCALL', 'vmsplice transferred no bytes');
  let leaked = 0;
  let garbled = 0;
  for (const b of bytes) {
    if (b === 0xff) leaked++;
    else if (b !== 1) garbled++;
  }
  return {
    case: which,
    backing,
    size: r.size,
    transferred: bytes.length,
    leaked,
    garbled,
    hugePage: !backing.startsWith('thp') || new PagemapEntries(BigUint64Array.of(r.lastPageEntry).buffer).present[0] === 1,
    childPid: r.childPid,
  };
}
