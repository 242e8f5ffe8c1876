/**
 * The one error class of cowlab. Native code receives this class once (see native.ts), so
 * errors from C++ arrive as CowlabError too. `code` is stable: match on it, not on messages.
 */

/** Codes a user can cause with bad input; the CLI exits 2 for these. */
export const USAGE_ERROR_CODES = [
  'ERR_INVALID_OPTION', // an option or argument is malformed or out of range
  'ERR_TOO_LARGE', // the request does not fit the machine (memory, map count)
  'ERR_UNSUPPORTED_PLATFORM', // not Linux
  'ERR_TRACE_INVALID', // a trace document is malformed or impossible (message names step and field)
  'ERR_KERNEL_SPEC', // a --kernel spec names no kernel cowlab can obtain (unknown, missing file, not a kernel)
  'ERR_KERNEL_FEATURE', // the kernel lacks a feature the command needs (pagemap, THP, virtio-blk, initramfs)
  'ERR_TOOL_MISSING', // a system tool the command needs is not installed (the message names its package)
  'ERR_NO_SUCH_PROCESS', // --pid names no live process (none, or a zombie)
] as const;

/** Codes for failures while running; the CLI exits 1 for these. */
export const RUNTIME_ERROR_CODES = [
  'ERR_ADDON_LOAD', // the native addon could not be loaded
  'ERR_SYSCALL', // a system call failed; see `errno` and `syscall`
  'ERR_CHILD_FAILED', // a forked child died or reported a failure
  'ERR_CHILD_DEADLINE', // a forked child did not finish in time and was killed
  'ERR_SHORT_READ', // a /proc file returned fewer entries than asked
  'ERR_INVALID_ARGUMENT', // the native layer was called wrongly (a cowlab bug)
  'ERR_BUSY', // the object is in use by a running measurement
  'ERR_RELEASED', // the object was released and cannot be used
  'ERR_VERIFY', // a measurement's self-check failed (content or counts)
  'ERR_NOT_MEASURABLE', // the machine cannot provide what was asked (e.g. PFNs without root)
  'ERR_INTERRUPTED', // the run was interrupted (Ctrl-C: killAllChildren)
  'ERR_COW_EFAULT', // a syscall wrote into a copy-on-write page of a cowlab region (call prepareWrite first)
  'ERR_GUEST_BOOT', // a QEMU guest did not boot: it panicked, exited or passed its boot deadline
  'ERR_GUEST_DEADLINE', // the command inside a QEMU guest passed its deadline (QEMU was killed)
  'ERR_GUEST_FAILED', // a QEMU guest ended without a complete result (panic, crash, a damaged result)
  'ERR_KERNEL_FETCH', // obtaining a kernel failed (apt-get download, dpkg-deb), not because of the spec
  'ERR_PROCESS_EXITED', // a watched or recorded process exited before the command was done
  'ERR_NO_FORK', // a watched process did not fork within the time given (--timeout-s)
] as const;

export type CowlabErrorCode =
  | (typeof USAGE_ERROR_CODES)[number]
  | (typeof RUNTIME_ERROR_CODES)[number];

export interface CowlabErrorDetails {
  /** errno name for a failed syscall, e.g. "ENOMEM". */
  errno?: string;
  errnoNumber?: number;
  syscall?: string;
  /** Where in the input the problem is, e.g. "--pages" or "steps[3].pages". */
  field?: string;
  cause?: unknown;
}

export class CowlabError extends Error {
  readonly code: CowlabErrorCode;
  readonly errno?: string;
  readonly errnoNumber?: number;
  readonly syscall?: string;
  readonly field?: string;

  constructor(code: CowlabErrorCode, message: string, details: CowlabErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'CowlabError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.errnoNumber !== undefined) this.errnoNumber = details.errnoNumber;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.field !== undefined) this.field = details.field;
  }
}

const usageCodes: ReadonlySet<string> = new Set(USAGE_ERROR_CODES);
const allCodes: ReadonlySet<string> = new Set([...USAGE_ERROR_CODES, ...RUNTIME_ERROR_CODES]);

/** True for one of cowlab's codes (an error reported from a guest is checked against them). */
export function isErrorCode(code: string): code is CowlabErrorCode {
  return allCodes.has(code);
}

/** True for errors caused by the caller's input (CLI exit code 2). */
export function isUsageError(err: unknown): err is CowlabError {
  return err instanceof CowlabError && usageCodes.has(err.code);
}

/** Shorthand for the most common error: an option that is wrong. */
export function invalidOption(field: string, message: string): CowlabError {
  return new CowlabError('ERR_INVALID_OPTION', `${field}: ${message}`, { field });
}
