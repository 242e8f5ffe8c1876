/**
 * How a process that has not been reaped yet ended, from /proc/<pid>/stat: a zombie keeps its
 * pid, state 'Z' and its wait status (field 52, exit_code) until its parent reaps it.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

/** Field 52 of /proc/<pid>/stat; fields after the command name start at 3. */
const EXIT_CODE_FIELD = 52;

/** Null while `pid` runs; otherwise how it ended ("killed by signal 9 (SIGKILL)"). */
export function describeEnded(pid: number): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 'is gone (already reaped)';
  }
  // The command name may contain spaces and parentheses: the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  const state = fields[0];
  if (state !== 'Z' && state !== 'X') return null;
  const status = Number(fields[EXIT_CODE_FIELD - 3]);
  if (!Number.isInteger(status)) return 'exited';
  const signal = status & 0x7f;
  if (signal === 0) return `exited with status ${(status >> 8) & 0xff}`;
  const name = Object.entries(constants.signals).find(([, n]) => n === signal)?.[0];
  return `was killed by signal ${signal}${name === undefined ? '' : ` (${name})`}`;
}
