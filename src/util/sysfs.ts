/** Reading the small text files of /proc and /sys that describe the machine. */
import { readFileSync } from 'node:fs';

/** The file's text, trimmed; null when it cannot be read (absent: the kernel lacks the feature). */
export function readSmallFile(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The file's number; null when it cannot be read or holds no number. */
export function readNumberFile(path: string): number | null {
  const s = readSmallFile(path);
  return s === null || s === '' || !Number.isFinite(Number(s)) ? null : Number(s);
}
