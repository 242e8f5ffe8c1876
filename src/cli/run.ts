/**
 * How every command ends: 0 on success, 1 on a failed check or a runtime error, 2 on bad
 * input. Errors print as one line (`cowlab: <message>`); set COWLAB_DEBUG=1 for the stack.
 */
import { CowlabError, isUsageError } from '../errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Ctrl-C (SIGINT) or SIGTERM stopped the command: what a shell reports for SIGINT. */
export const EXIT_INTERRUPTED = 130;

export function reportError(err: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  const debug = process.env.COWLAB_DEBUG === '1';
  if (err instanceof CowlabError) {
    write(`cowlab: ${err.message}\n`);
    if (debug && err.stack) write(`${err.stack}\n`);
    if (err.code === 'ERR_INTERRUPTED') return EXIT_INTERRUPTED;
    return isUsageError(err) ? EXIT_USAGE : EXIT_FAILED;
  }
  const e = err as Error;
  write(`cowlab: unexpected error: ${e?.message ?? String(err)}\n`);
  write(debug && e?.stack ? `${e.stack}\n` : '(this is a cowlab bug; run with COWLAB_DEBUG=1 for the stack)\n');
  return EXIT_FAILED;
}

/** Wraps a command action: its resolved number (or 0) becomes the exit code. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<number | void> | number | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? EXIT_OK;
    } catch (err) {
      process.exitCode = reportError(err);
    }
  };
}
