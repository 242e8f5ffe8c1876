/** Output helpers shared by commands: JSON and lines on stdout. Tables: src/report/table.ts. */
export { table } from '../report/table.js';

export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)}\n`,
  );
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}
