/**
 * Runs experiments one after another and collects the results document. An experiment whose
 * requirements are not met is not measurable (with the reason) and the rest still run; one
 * that throws is recorded as failed; Ctrl-C (the signal) stops the current one, keeps its
 * last checkpoint, and skips the rest.
 */
import { CowlabError, invalidOption } from '../errors.js';
import { environment, meminfo } from '../env/environment.js';
import { runningKernelFacts } from '../kernels/facts.js';
import { formatBytes } from '../report/format.js';
import { unmetRequirement } from './requirements.js';
import { RESULTS_VERSION, type ExperimentResult, type ExperimentStatus, type ResultsDocument } from './schema.js';
import type { AnyExperiment, RunContext, SuiteThp, Verdict } from './types.js';

export interface SuiteProgress {
  /** Index of the experiment in the selection, and how many there are. */
  index: number;
  count: number;
  name: string;
  /** The experiment's own progress (steps done / total), when it reported one. */
  done: number;
  total: number;
  detail: string;
}

export interface SuiteOptions {
  /** Names or numbers of experiments; default: all, in order. */
  names?: readonly string[];
  quick?: boolean;
  /** The page size of the experiments' default case (RunContext.thp). Default never. */
  thp?: SuiteThp;
  signal?: AbortSignal;
  onProgress?: (p: SuiteProgress) => void;
  /** Called when an experiment is done (any status). */
  onResult?: (r: ExperimentResult) => void;
}

/** The experiments `names` select (by name or number), in suite order; ERR_INVALID_OPTION for
 *  an unknown one. */
export function selectExperiments(all: readonly AnyExperiment[], names: readonly string[] = []): AnyExperiment[] {
  if (names.length === 0) return [...all];
  const picked = new Set<AnyExperiment>();
  for (const n of names) {
    const e = all.find((x) => x.name === n || String(x.number) === n);
    if (!e) throw invalidOption('names', `unknown experiment '${n}'; have: ${all.map((x) => x.name).join(', ')}`);
    picked.add(e);
  }
  return all.filter((e) => picked.has(e));
}

function notMeasurable(reason: string, figure = 'not measured'): Verdict {
  return { verdict: 'not-measurable', figure, reason, metrics: [] };
}

function aborted(signal: AbortSignal, err: unknown): boolean {
  return signal.aborted || (err instanceof CowlabError && err.code === 'ERR_INTERRUPTED');
}

async function runOne(
  e: AnyExperiment,
  { quick, thp }: { quick: boolean; thp: SuiteThp },
  signal: AbortSignal,
  progress: (done: number, total: number, detail: string) => void,
): Promise<ExperimentResult> {
  const env = environment();
  const budgetMs = quick ? e.budgetMs.quick : e.budgetMs.full;
  const memoryLimitBytes = Math.floor(meminfo().availableBytes / 2);
  const notes: string[] = [];
  const base = {
    number: e.number, name: e.name, title: e.title, claim: e.claim, short: e.short, rule: e.rule, notes, budgetMs,
  };
  const t0 = performance.now();
  const done = (status: ExperimentStatus, verdict: Verdict, raw: unknown, error: ExperimentResult['error'] = null): ExperimentResult => ({
    ...base, status, verdict, raw, error, durationMs: Math.round(performance.now() - t0),
  });

  if (signal.aborted) return done('skipped', notMeasurable('the run was interrupted before this experiment'), null);
  const unmet = unmetRequirement(e.requirements, env, memoryLimitBytes);
  if (unmet !== null) return done('not-measurable', notMeasurable(unmet), null);

  let checkpoint: unknown = null;
  const ctx: RunContext = {
    quick,
    thp,
    budgetMs,
    signal,
    env,
    memoryLimitBytes,
    progress: (d, t, detail = '') => progress(d, t, detail),
    note: (text) => {
      notes.push(text);
    },
    clamp: (bytes, what) => {
      if (bytes <= memoryLimitBytes) return bytes;
      notes.push(`${what}: clamped from ${formatBytes(bytes)} to ${formatBytes(memoryLimitBytes)} (half of MemAvailable)`);
      return memoryLimitBytes;
    },
    overBudget: () => performance.now() - t0 > budgetMs,
    checkpoint: (raw) => {
      checkpoint = raw;
    },
  };
  try {
    const raw = await e.run(ctx);
    const checked = e.raw.safeParse(raw);
    if (!checked.success) {
      throw new CowlabError('ERR_VERIFY', `${e.name}: its raw measurements do not match its schema: ${checked.error.issues[0]?.message ?? ''}`);
    }
    return done('completed', e.verdict(checked.data), checked.data);
  } catch (err) {
    const code = err instanceof CowlabError ? err.code : 'ERR_UNEXPECTED';
    const message = (err as Error)?.message ?? String(err);
    if (err instanceof CowlabError && err.code === 'ERR_NOT_MEASURABLE') {
      return done('not-measurable', notMeasurable(message), checkpoint);
    }
    if (aborted(signal, err)) {
      // Printed after the figure ("interrupted: ..."): the reason does not say it again.
      return done('interrupted', notMeasurable('stopped (Ctrl-C) before it finished', 'interrupted'), checkpoint, { code, message });
    }
    // The figure says it failed; the reason is the error itself ("failed: <message>" in tables).
    return done('failed', notMeasurable(message, 'failed'), checkpoint, { code, message });
  }
}

/**
 * Runs the selected experiments (all by default) and returns the results document. Never
 * throws for an experiment's failure; throws only for a bad selection.
 */
export async function runSuite(all: readonly AnyExperiment[], options: SuiteOptions = {}): Promise<ResultsDocument> {
  const selected = selectExperiments(all, options.names);
  const quick = options.quick ?? false;
  const thp = options.thp ?? 'never';
  const signal = options.signal ?? new AbortController().signal;
  const env = environment();
  const startedAt = new Date();
  const t0 = performance.now();
  const experiments: ExperimentResult[] = [];
  for (const [index, e] of selected.entries()) {
    const report = (done: number, total: number, detail: string) =>
      options.onProgress?.({ index, count: selected.length, name: e.name, done, total, detail });
    report(0, 1, '');
    const r = await runOne(e, { quick, thp }, signal, report);
    experiments.push(r);
    options.onResult?.(r);
  }
  return {
    version: RESULTS_VERSION,
    tool: 'cowlab',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durationMs: Math.round(performance.now() - t0),
    // thp only when forced: a default run's options read as before.
    options: { names: [...(options.names ?? [])], quick, ...(thp === 'never' ? {} : { thp }) },
    interrupted: signal.aborted,
    environment: env,
    kernel: runningKernelFacts(env),
    experiments,
  };
}
