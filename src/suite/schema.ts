/**
 * The results document (`results.json`) and its schema. `cowlab run` writes it; `report` and
 * `compare` read it back and check it here first, so a bad file fails with the field named.
 * Each experiment's `raw` is checked against that experiment's own schema (its `raw` field).
 */
import { z } from 'zod';

import { CowlabError } from '../errors.js';
import type { Environment } from '../env/environment.js';
import type { Band } from '../stats/summary.js';
import { SUITE_THP, VERDICTS, type AnyExperiment, type Metric, type Verdict } from './types.js';

/** Bumped when the document's shape changes incompatibly. */
export const RESULTS_VERSION = 1;

export const BandSchema = z.object({
  median: z.number(),
  min: z.number(),
  max: z.number(),
  noisy: z.boolean(),
  /** The values behind the band (absent in results files written before they were kept). */
  samples: z.array(z.number()).optional(),
});

export const MetricSchema = z.object({
  key: z.string(),
  label: z.string(),
  unit: z.string(),
  value: BandSchema,
  timed: z.boolean().optional(),
  /** The smallest change its experiment's rule counts, in its unit (see Metric). */
  resolution: z.number().nonnegative().optional(),
});

export const VerdictSchema = z.object({
  verdict: z.enum(VERDICTS),
  figure: z.string(),
  reason: z.string(),
  metrics: z.array(MetricSchema),
});

const nullableString = z.string().nullable();

export const EnvironmentSchema = z.object({
  kernel: z.string(),
  kernelBuild: z.string(),
  arch: z.string(),
  pageSize: z.number().int().positive(),
  hugePageSize: z.number().nullable(),
  thp: z.object({ enabled: nullableString, defrag: nullableString, useZeroPage: z.boolean().nullable() }),
  swap: z
    .object({
      kind: z.enum(['none', 'sync-io', 'block']),
      areas: z.array(z.object({ name: z.string(), sizeBytes: z.number(), usedBytes: z.number() })),
    })
    .optional(),
  ksmRun: z.number().nullable(),
  cpu: z.object({ model: z.string(), count: z.number().int() }),
  hypervisor: z.object({ present: z.boolean(), vendor: nullableString }),
  memory: z.object({ totalBytes: z.number(), availableBytes: z.number() }),
  overcommitMemory: z.number().nullable(),
  maxMapCount: z.number().nullable(),
  clocksource: nullableString,
  noise: z.object({ damon: z.array(z.string()), damonReason: z.string().nullable().optional(), freePageReporting: z.boolean().nullable() }),
  privileges: z.object({
    uid: z.number(),
    root: z.boolean(),
    pfnVisible: z.boolean(),
    pfnReason: nullableString,
    kpagecount: z.boolean(),
    kpagecountReason: nullableString,
    kpageflags: z.boolean(),
    kpageflagsReason: nullableString,
    capSysAdmin: z.boolean(),
  }),
  guest: z.object({ accel: z.enum(['kvm', 'tcg']), kernel: z.string() }).nullable().optional(),
  node: z.string(),
  cowlab: z.string(),
  addon: z.string(),
});

export const EXPERIMENT_STATUSES = ['completed', 'not-measurable', 'failed', 'interrupted', 'skipped'] as const;

export const ExperimentResultSchema = z.object({
  number: z.number().int().positive(),
  name: z.string(),
  title: z.string(),
  claim: z.string(),
  short: z.string(),
  rule: z.string(),
  /** completed: ran to the end (its verdict may still be not-measurable, e.g. noise);
   *  not-measurable: a requirement is not met here; failed: it threw; interrupted: Ctrl-C
   *  during it (raw: the last checkpoint); skipped: Ctrl-C before it. */
  status: z.enum(EXPERIMENT_STATUSES),
  verdict: VerdictSchema,
  notes: z.array(z.string()),
  durationMs: z.number().nonnegative(),
  budgetMs: z.number().nonnegative(),
  raw: z.unknown(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});

/** An ISO 8601 date and time, as `cowlab run` writes them (the report prints them). */
const dateTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), { message: 'expected a date and time (ISO 8601, e.g. 2026-12-01T20:00:00.000Z)' });

/** What the simulator's profile was chosen from (src/kernels/facts.ts). */
export const KernelFactsSchema = z.object({
  release: z.string(),
  build: z.string(),
  version: z.string().nullable(),
  config: z.object({ known: z.boolean(), source: z.string().nullable(), values: z.record(z.string(), z.enum(['y', 'm']).nullable()) }),
  knobs: z.object({
    thpEnabled: z.string().nullable(),
    useZeroPage: z.boolean().nullable(),
    swap: z.enum(['none', 'sync-io', 'block']).nullable().optional(),
  }),
});

export const ResultsSchema = z.object({
  version: z.literal(RESULTS_VERSION),
  tool: z.literal('cowlab'),
  startedAt: dateTime,
  finishedAt: dateTime,
  durationMs: z.number().nonnegative(),
  /** thp: `run --thp always` (absent: the default, 4 KiB pages). */
  options: z.object({ names: z.array(z.string()), quick: z.boolean(), thp: z.enum(SUITE_THP).optional() }),
  interrupted: z.boolean(),
  environment: EnvironmentSchema,
  /** The kernel's version, the config facts the model depends on, and its knobs (absent in
   *  results written before kernel profiles). */
  kernel: KernelFactsSchema.optional(),
  experiments: z.array(ExperimentResultSchema),
});

export type ExperimentResult = z.infer<typeof ExperimentResultSchema>;
export type ResultsDocument = z.infer<typeof ResultsSchema>;
export type ExperimentStatus = (typeof EXPERIMENT_STATUSES)[number];

// The schemas and the TypeScript interfaces must describe the same data.
const _env: z.ZodType<Environment> = EnvironmentSchema;
const _band: z.ZodType<Band> = BandSchema;
const _metric: z.ZodType<Metric> = MetricSchema;
const _verdict: z.ZodType<Verdict> = VerdictSchema;
void [_env, _band, _metric, _verdict];

/** "experiments[2].raw.sweep[0].pages" */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(document)';
}

function firstIssue(source: string, prefix: string, error: z.ZodError): CowlabError {
  const issue = error.issues[0]!;
  const path = issuePath(issue.path);
  const field = prefix ? (path === '(document)' ? prefix : `${prefix}.${path}`.replace('.[', '[')) : path;
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : '';
  return new CowlabError('ERR_INVALID_OPTION', `${source}: ${field}: ${issue.message}${more}`, { field });
}

function fieldError(source: string, field: string, message: string): CowlabError {
  return new CowlabError('ERR_INVALID_OPTION', `${source}: ${field}: ${message}`, { field });
}

/** "version 2", "the string \"1\"", "null" */
function describeVersion(v: unknown): string {
  if (typeof v === 'number') return `version ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v)} (a version is a number)`;
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
}

/**
 * What the schema alone cannot say, per experiment: it is one this cowlab knows (a file from
 * another cowlab version with other experiments is refused, not half-read), under its own
 * number, at most once; a completed one carries its raw measurements, and every raw that is
 * there matches that experiment's schema (a failed or interrupted one keeps its last
 * checkpoint, which may be null).
 */
function checkExperiments(doc: ResultsDocument, source: string, experiments: readonly AnyExperiment[]): void {
  const seen = new Map<string, number>();
  doc.experiments.forEach((e, i) => {
    const at = `experiments[${i}]`;
    const exp = experiments.find((x) => x.name === e.name);
    if (!exp) {
      throw fieldError(source, `${at}.name`, `unknown experiment '${e.name}': this cowlab knows ${experiments.map((x) => x.name).join(', ')} (a results file of another cowlab version?)`);
    }
    const first = seen.get(e.name);
    if (first !== undefined) throw fieldError(source, `${at}.name`, `'${e.name}' is listed twice (also experiments[${first}])`);
    seen.set(e.name, i);
    if (e.number !== exp.number) throw fieldError(source, `${at}.number`, `${e.name} is experiment ${exp.number}, the file says ${e.number}`);
    if (e.raw === null || e.raw === undefined) {
      if (e.status === 'completed') throw fieldError(source, `${at}.raw`, `a completed experiment records its raw measurements, got ${e.raw === null ? 'null' : 'nothing'}`);
      return;
    }
    const r = exp.raw.safeParse(e.raw);
    if (!r.success) throw firstIssue(source, `${at}.raw`, r.error);
    e.raw = r.data;
  });
}

/**
 * Parses and checks a results document: the top level against ResultsSchema, then each
 * experiment against `experiments` (checkExperiments: known, under its number, once, raw
 * measurements against its own schema). Throws ERR_INVALID_OPTION naming the first bad field.
 */
export function parseResults(text: string, source: string, experiments: readonly AnyExperiment[]): ResultsDocument {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CowlabError('ERR_INVALID_OPTION', `${source}: not JSON: ${(err as Error).message}`, { field: source });
  }
  const version = (json as { version?: unknown } | null)?.version;
  if (json !== null && typeof json === 'object' && !Array.isArray(json) && version !== undefined && version !== RESULTS_VERSION) {
    throw new CowlabError(
      'ERR_INVALID_OPTION',
      `${source}: version: this cowlab reads results version ${RESULTS_VERSION}, the file ${typeof version === 'number' ? 'is' : 'has'} ${describeVersion(version)}`,
      { field: 'version' },
    );
  }
  const top = ResultsSchema.safeParse(json);
  if (!top.success) throw firstIssue(source, '', top.error);
  const doc = top.data;
  checkExperiments(doc, source, experiments);
  return doc;
}
