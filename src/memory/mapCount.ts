/** How many mappings this process has, against vm.max_map_count. */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

const CHUNK = 65_536;
const NEWLINE = 0x0a;

/**
 * The lines of /proc/self/maps (one per mapping) and vm.max_map_count, or null when either
 * cannot be read. It is asked right after an mmap failed with ENOMEM, when the process may
 * have no mapping to spare, so it reads through one small buffer: reading the whole file
 * (megabytes at the limit) would need memory that malloc and V8 can only get with mmap.
 */
export function mapCount(): { count: number; max: number } | null {
  let fd: number | undefined;
  try {
    const max = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8'));
    if (!(max > 0)) return null;
    const buf = Buffer.allocUnsafeSlow(CHUNK);
    fd = openSync('/proc/self/maps', 'r');
    let count = 0;
    for (let n = readSync(fd, buf, 0, CHUNK, null); n > 0; n = readSync(fd, buf, 0, CHUNK, null)) {
      for (let i = buf.indexOf(NEWLINE); i !== -1 && i < n; i = buf.indexOf(NEWLINE, i + 1)) count++;
    }
    return { count, max };
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
