/**
 * Transparent huge pages on the running kernel: the one reader of
 * /sys/kernel/mm/transparent_hugepage. environment() records what it reads, the kernel engine
 * asks it whether a THP region can run here, the suite whether an experiment's THP requirement
 * is met; each words the answer for its own reader, from the same decision.
 *
 * Read afresh on every call (environment() keeps its own copy): the files are a few bytes, and
 * inside a guest an experiment may change the knobs between runs.
 */
import { readNumberFile, readSmallFile } from '../util/sysfs.js';

export const THP_DIR = '/sys/kernel/mm/transparent_hugepage';

export interface ThpSettings {
  /** enabled: always | madvise | never; null without THP (no such file). */
  enabled: string | null;
  /** defrag: always | defer | defer+madvise | madvise | never; null without THP. */
  defrag: string | null;
  /** shmem_enabled: always | within_size | advise | never | deny | force; null when absent. */
  shmemEnabled: string | null;
  /** use_zero_page: whether reads of untouched THP-able memory map the huge zero page. */
  useZeroPage: boolean | null;
  /** hpage_pmd_size: bytes of a PMD huge page; null without THP. */
  hugePageSize: number | null;
}

/** "always [madvise] never" -> "madvise" (the mode sysfs marks as chosen). */
function bracketed(s: string | null): string | null {
  const m = s === null ? null : /\[([^\]]+)\]/.exec(s);
  return m ? m[1]! : null;
}

/** The THP settings as sysfs shows them now; `dir` is the directory to read (tests give another). */
export function readThp(dir: string = THP_DIR): ThpSettings {
  const useZero = readSmallFile(`${dir}/use_zero_page`);
  return {
    enabled: bracketed(readSmallFile(`${dir}/enabled`)),
    defrag: bracketed(readSmallFile(`${dir}/defrag`)),
    shmemEnabled: bracketed(readSmallFile(`${dir}/shmem_enabled`)),
    useZeroPage: useZero === null ? null : useZero === '1',
    hugePageSize: readNumberFile(`${dir}/hpage_pmd_size`),
  };
}

/**
 * Why private anonymous memory cannot get huge pages here: 'absent' (the kernel has no THP),
 * 'never' (THP is disabled), or null (it can: always, or madvise, which cowlab's regions ask for).
 */
export function anonThpUnavailable(thp: Pick<ThpSettings, 'enabled'>): 'absent' | 'never' | null {
  if (thp.enabled === null) return 'absent';
  return thp.enabled === 'never' ? 'never' : null;
}

/**
 * Why shmem (shared anonymous or memfd memory) cannot get huge pages here: its shmem_enabled
 * mode when that is never or deny, 'absent' without the file; null when it can.
 */
export function shmemThpUnavailable(thp: Pick<ThpSettings, 'shmemEnabled'>): string | null {
  const mode = thp.shmemEnabled;
  if (mode === null) return 'absent';
  return mode === 'never' || mode === 'deny' ? mode : null;
}
