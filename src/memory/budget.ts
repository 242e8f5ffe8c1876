/** How much memory a measurement may ask for: checked before anything is allocated. */
import { CowlabError } from '../errors.js';
import { meminfo } from '../env/environment.js';
import { formatBytes } from '../report/format.js';

/**
 * Throws ERR_TOO_LARGE when `bytes` exceed half of MemAvailable: after a fork every shared
 * page may be copied, so a region can cost twice its size.
 */
export function checkFitsHalfAvailable(field: string, bytes: number, what: string): void {
  const { availableBytes } = meminfo();
  if (bytes > availableBytes / 2) {
    throw new CowlabError(
      'ERR_TOO_LARGE',
      `${field}: ${what} (${formatBytes(bytes)}) is more than half of MemAvailable (${formatBytes(availableBytes)}); ` +
        'after a fork every page may be copied, so the region can cost twice its size',
      { field },
    );
  }
}
