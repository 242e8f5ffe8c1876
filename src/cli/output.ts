/** Output helpers shared by commands: JSON and lines on stdout. Tables: src/report/table.ts. */
import { escapeControlsKeepingLines } from '../report/format.js';

export { table, wrappedTable } from '../report/table.js';

export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)}\n`,
  );
}

/**
 * Prints text (one line, or several joined by '\n') and a newline. Every other control
 * character is shown escaped (`\x1b`, `\r`): text output never moves the cursor or colours the
 * terminal, whatever a trace or file name holds. A value quoted into a line must be escaped
 * where it is quoted (escapeControls), or its own newline would start a line of its own.
 */
export function print(line = ''): void {
  process.stdout.write(`${escapeControlsKeepingLines(line)}\n`);
}
