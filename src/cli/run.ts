/**
 * How every command ends: 0 on success, 1 on a failed check or a runtime error, 2 on bad
 * input. Errors print as one line (`cowlab: <message>`); set COWLAB_DEBUG=1 for the stack.
 */
import { CowlabError, isUsageError } from '../errors.js';
import { escapeControls } from '../report/format.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Ctrl-C (SIGINT) or SIGTERM stopped the command: what a shell reports for SIGINT. */
export const EXIT_INTERRUPTED = 130;

/**
 * A message as one terminal line per line of cowlab's own: its continuation lines start with
 * two spaces ("last console lines:\n  ..."), every other control character (a newline or an
 * escape code in a user's name or path) is shown escaped, so input cannot fake output lines.
 */
export function escapeMessage(message: string): string {
  return message.split(/\n(?=  )/).map(escapeControls).join('\n');
}

export function reportError(err: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  const debug = process.env.COWLAB_DEBUG === '1';
  if (err instanceof CowlabError) {
    write(`cowlab: ${escapeMessage(err.message)}\n`);
    if (debug && err.stack) write(`${err.stack}\n`);
    if (err.code === 'ERR_INTERRUPTED') return EXIT_INTERRUPTED;
    return isUsageError(err) ? EXIT_USAGE : EXIT_FAILED;
  }
  const e = err as Error;
  write(`cowlab: unexpected error: ${escapeMessage(e?.message ?? String(err))}\n`);
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
