/** Whether a process exists (signal 0 probes without sending anything). For sweeping the files
 *  of cowlab processes that were killed before they could clean up. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
