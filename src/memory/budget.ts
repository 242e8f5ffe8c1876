/** How much memory a measurement may ask for: checked before anything is allocated. */
import { CowlabError } from '../errors.js';
import { meminfo } from '../env/environment.js';
import { formatBytes } from '../util/units.js';

/**
 * The most one measurement may use: half of MemAvailable, read now. The other half is left to
 * the rest of the machine (and, for a check made on region sizes only, to the copies a fork
 * may make: see checkFitsHalfAvailable).
 */
export function memoryLimit(): { availableBytes: number; limitBytes: number } {
  const { availableBytes } = meminfo();
  return { availableBytes, limitBytes: availableBytes / 2 };
}

/** "more than half of MemAvailable (7.70 GiB of 15.4 GiB)" */
export function describeLimit(limit: { availableBytes: number; limitBytes: number } = memoryLimit()): string {
  return `more than half of MemAvailable (${formatBytes(limit.limitBytes)} of ${formatBytes(limit.availableBytes)})`;
}

/**
 * Throws ERR_TOO_LARGE when `bytes` exceed half of MemAvailable: after a fork every shared
 * page may be copied, so a region can cost twice its size.
 */
export function checkFitsHalfAvailable(field: string, bytes: number, what: string): void {
  const { availableBytes, limitBytes } = memoryLimit();
  if (bytes > limitBytes) {
    throw new CowlabError(
      'ERR_TOO_LARGE',
      `${field}: ${what} (${formatBytes(bytes)}) is more than half of MemAvailable (${formatBytes(availableBytes)}); ` +
        'after a fork every page may be copied, so the region can cost twice its size',
      { field },
    );
  }
}
