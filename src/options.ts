/**
 * Checks for scalar options, shared by the API (field names like `pages`) and the CLI (flag
 * names like `--pages`). Each accepts a number or the exact decimal text of one, and throws
 * ERR_INVALID_OPTION naming the field and what was given.
 */
import { invalidOption } from './errors.js';

export interface IntRange {
  min?: number;
  max?: number;
}

function shown(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

/** An integer in [min, max]; strings must be plain decimal digits ("4096", not "4k" or "1e3"). */
export function integerOption(field: string, value: unknown, range: IntRange = {}): number {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range;
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^[+-]?\d+$/.test(value.trim())) n = Number(value.trim());
  else throw invalidOption(field, `must be an integer, got ${shown(value)}`);
  if (!Number.isSafeInteger(n)) throw invalidOption(field, `must be an integer, got ${shown(value)}`);
  if (n < min) {
    const what = min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `at least ${min}`;
    throw invalidOption(field, `must be ${what}, got ${shown(value)}`);
  }
  if (n > max) throw invalidOption(field, `must be at most ${max}, got ${shown(value)}`);
  return n;
}

/** One of a fixed set of words. */
export function choiceOption<T extends string>(field: string, value: unknown, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw invalidOption(field, `must be one of ${choices.join(', ')}, got ${shown(value)}`);
}
