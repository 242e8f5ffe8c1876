/**
 * Global knobs (sysctls, /sys/kernel/mm settings) are changed only inside a guest cowlab booted
 * itself (src/guest/): there the whole machine is the run's. On any other machine a knob is read,
 * never written, and an experiment that needs another value is not measurable there, saying
 * which knob, its value, and how to run it in a guest.
 */
import { readFileSync, writeFileSync } from 'node:fs';

import { CowlabError } from '../errors.js';
import type { Environment } from './environment.js';

/**
 * The knob's value as the kernel prints it (trimmed), or null when it does not exist here. A
 * choice knob (THP's `always inherit madvise [never]`) reads as its selected word (`never`),
 * which is also what writing it takes.
 */
export function readKnob(path: string): string | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
  return /\[([^\]]+)\]/.exec(text)?.[1] ?? text;
}

/** "vm.overcommit_memory" for /proc/sys/vm/overcommit_memory, else the path. */
export function knobName(path: string): string {
  return path.startsWith('/proc/sys/') ? path.slice('/proc/sys/'.length).replaceAll('/', '.') : path;
}

/**
 * Runs `fn` with `path` set to `value`, and sets it back to what it was afterwards, whatever
 * `fn` does. Only in a guest: elsewhere it throws ERR_NOT_MEASURABLE without touching anything
 * (unless the knob already has the value: then `fn` just runs).
 */
export async function withKnob<T>(env: Environment, path: string, value: string, fn: () => Promise<T>): Promise<T> {
  const before = readKnob(path);
  if (before === null) throw new CowlabError('ERR_NOT_MEASURABLE', `${knobName(path)} does not exist on this kernel`);
  if (before === value) return fn();
  if (!env.guest) {
    throw new CowlabError(
      'ERR_NOT_MEASURABLE',
      `needs ${knobName(path)} = ${value} (here ${before}), a global setting cowlab changes only inside a guest it booted: run it with --kernel (e.g. --kernel debian:6.12)`,
    );
  }
  writeFileSync(path, value);
  try {
    return await fn();
  } finally {
    writeFileSync(path, before);
  }
}
