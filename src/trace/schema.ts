/**
 * The zod schema of a trace document (docs/trace.md), and the translation of zod's issues into
 * cowlab's one-line `field: message` form. Shapes only: what a process or region may do at a
 * given step is checked by parse.ts, which simulates the processes' lives.
 */
import type { z } from 'zod';

import { zod } from '../util/lazyZod.js';

import type { StepOp } from './types.js';

/** Process names and region ids: a letter, then letters, digits, '_' or '-'. */
export const NAME_RE = /^[a-z][a-z0-9_-]*$/i;
const NAME_MAX = 64;
/** 2^24 pages (64 GiB): far above any machine's budget, low enough for typed arrays. */
export const MAX_REGION_PAGES = 1 << 24;
export const OPS: readonly StepOp[] = ['fork', 'write', 'read', 'exit', 'exec', 'mprotect', 'pageout'];
/**
 * The most processes a trace may create, p0 included (every one it ever forks, live or not).
 * A trace rule, the same for every engine and machine: the kernel engine gives each process one
 * command channel in a fixed table (native/proctree.h), and a trace it can never run could never
 * be validated.
 */
export const MAX_TRACE_PROCESSES = 256;
/** Regions whose place is left to the kernel (placement 'kernel'): each multiplies the outcomes to predict. */
export const MAX_KERNEL_PLACED_REGIONS = 2;
/** The longest pause a paced access may take (60 s), and the longest hold before an exit (1 h). */
export const MAX_PACE_NS = 60_000_000_000;
export const MAX_HOLD_MS = 3_600_000;
/** The largest trace file (or JSON text) cowlab reads: 64 MiB. */
export const MAX_TRACE_FILE_BYTES = 64 * 1024 * 1024;

/** Every schema of the document, built on first use (importing cowlab builds none). */
function buildSchemas() {
  const z = zod();
  const name = (what: string) =>
    z
      .string()
      .max(NAME_MAX)
      .regex(NAME_RE, { error: `${what} must start with a letter and hold only letters, digits, '_' and '-'` });
  const page = z.int().min(0);
  const procName = name('a process name');
  const accessOptions = {
    timing: z.literal('each').optional(),
    paceNs: z.int().min(0).max(MAX_PACE_NS).optional(),
  };
  const regionRef = z.string().min(1);

  const region = z.strictObject({
    id: name('a region id'),
    pages: z.int().min(1).max(MAX_REGION_PAGES),
    map: z.enum(['private', 'shared']).default('private'),
    backing: z.enum(['anon', 'memfd']).default('anon'),
    thp: z.boolean().default(false),
    advice: z.array(z.enum(['dontfork', 'wipeonfork'])).default([]),
    populate: z.enum(['none', 'read', 'write']).default('write'),
    placement: z.enum(['aligned', 'kernel']).optional(),
  });

  return {
    /** The document; steps are checked one by one (`steps`), so each error names its step. */
    trace: z.strictObject({
      name: z.string().min(1).max(200),
      description: z.string().optional(),
      p0: z.enum(['process', 'node']).optional(),
      regions: z.array(region).min(1),
      steps: z.array(z.unknown()),
    }),
    range: z.strictObject({ start: page, end: page, stride: z.int().min(1).default(1) }),
    list: z.strictObject({ pages: z.array(page).min(1) }),
    random: z.strictObject({ random: z.int().min(1), seed: z.int().min(0).max(0xffff_ffff) }),
    steps: {
      fork: z.strictObject({ op: z.literal('fork'), proc: procName, child: procName }),
      write: z.strictObject({
        op: z.literal('write'),
        proc: procName,
        region: regionRef,
        pages: z.unknown(),
        via: z.enum(['store', 'pread']).optional(),
        ...accessOptions,
      }),
      read: z.strictObject({ op: z.literal('read'), proc: procName, region: regionRef, pages: z.unknown(), ...accessOptions }),
      exit: z.strictObject({ op: z.literal('exit'), proc: procName, afterMs: z.int().min(0).max(MAX_HOLD_MS).optional() }),
      exec: z.strictObject({ op: z.literal('exec'), proc: procName }),
      mprotect: z.strictObject({
        op: z.literal('mprotect'),
        proc: procName,
        region: regionRef,
        prot: z.enum(['r', 'rw']),
        pages: z.unknown().optional(),
      }),
      pageout: z.strictObject({ op: z.literal('pageout'), proc: procName, region: regionRef, pages: z.unknown().optional() }),
    } satisfies Record<StepOp, z.ZodType>,
  };
}

let built: ReturnType<typeof buildSchemas> | undefined;

/** The trace schemas (built once, on first use). */
export function traceSchemas(): ReturnType<typeof buildSchemas> {
  return (built ??= buildSchemas());
}

/** `['steps', 3, 'pages', 'end']` -> `steps[3].pages.end`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? 'trace' : out;
}

function shown(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

const TYPE_NAMES: Record<string, string> = {
  int: 'an integer', number: 'a number', string: 'a string', boolean: 'true or false', array: 'an array', object: 'an object',
};

/**
 * One zod issue as `field: message` (cowlab's words, never zod's raw output). `numbers` says
 * how to word bounds: every number of a trace is an integer; a cost model's are not.
 */
export function issueText(
  issue: z.core.$ZodIssue,
  prefix: readonly PropertyKey[] = [],
  numbers: 'int' | 'number' = 'int',
): { field: string; message: string } {
  const path = [...prefix, ...issue.path];
  const input = (issue as { input?: unknown }).input;
  const got = input === undefined ? '' : `, got ${shown(input)}`;
  switch (issue.code) {
    case 'invalid_type': {
      const field = formatPath(path);
      if (input === undefined) return { field, message: 'is required' };
      return { field, message: `must be ${TYPE_NAMES[issue.expected] ?? issue.expected}${got}` };
    }
    case 'invalid_value':
      return {
        field: formatPath(path),
        message: `must be ${issue.values.length === 1 ? String(issue.values[0]) : `one of ${issue.values.join(', ')}`}${got}`,
      };
    case 'unrecognized_keys':
      return { field: formatPath([...path, issue.keys[0]!]), message: 'unknown field' };
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'array') return { field: formatPath(path), message: `must not be empty` };
      if (issue.origin === 'string') return { field: formatPath(path), message: 'must not be empty' };
      const what = numbers === 'number' ? `at least ${min}` : min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `at least ${min}`;
      return { field: formatPath(path), message: `must be ${what}${got}` };
    }
    case 'too_big':
      return {
        field: formatPath(path),
        message: issue.origin === 'string' ? `must be at most ${issue.maximum} characters` : `must be at most ${issue.maximum}${got}`,
      };
    default:
      return { field: formatPath(path), message: issue.message };
  }
}
