/** Output helpers shared by commands: JSON on stdout, tables via cli-table3. */
import Table from 'cli-table3';

export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v), 2)}\n`,
  );
}

/** A borderless table: headers in the first row, columns aligned. */
export function table(head: string[], rows: (string | number)[][], align?: ('left' | 'right')[]): string {
  const t = new Table({
    head,
    style: { head: [], border: [], compact: true, 'padding-left': 0, 'padding-right': 2 },
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '',
      'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '',
      right: '', 'right-mid': '', middle: '',
    },
    colAligns: align ?? head.map((_, i) => (i === 0 ? 'left' : 'right')),
  });
  for (const r of rows) t.push(r.map(String));
  return t.toString();
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}
