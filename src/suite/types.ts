/**
 * What an experiment is. One file per experiment in experiments/ exports one of these; the
 * runner (runner.ts) checks its requirements, gives it a context, keeps its raw measurements,
 * and asks it for a verdict and a presentation. See docs/experiments.md for how to write one.
 *
 *   run(ctx)      measures, returns raw measurements (plain JSON, checked against `raw`)
 *   verdict(raw)  pure: the claim confirmed / refuted / not measurable, the headline figure,
 *                 the reason, and the headline metrics with their bands (for `compare`)
 *   present(raw)  pure: tables and charts for the report
 *
 * verdict and present see only what run returned (or what a results file recorded), so they
 * can be tested on recorded inputs and re-run by `cowlab report` on another machine.
 */
import type { z } from 'zod';

import type { EngineName } from '../engines/types.js';
import type { Environment } from '../env/environment.js';
import type { ChartSpec } from '../report/chart.js';
import type { Band } from '../stats/summary.js';
import type { ToolName } from '../util/tools.js';

export const VERDICTS = ['confirmed', 'refuted', 'not-measurable'] as const;
export type VerdictKind = (typeof VERDICTS)[number];

/** A headline number with its min-max band over repeats (compare flags differences with it). */
export interface Metric {
  /** Stable key, the same on every host (compare matches on it). */
  key: string;
  label: string;
  /** Unit of the band's values: ns, bytes, percent, count, ratio, ns/GiB. */
  unit: string;
  value: Band;
  /** A time, or derived from times (ns and ns/GiB units always are): not comparable with a
   *  measurement on an emulated CPU (a TCG guest). */
  timed?: boolean;
  /** The smallest change of this figure the experiment's rule counts, in its unit (e.g. "less
   *  than 10 % of N" for a figure that should be near zero): compare calls medians closer than
   *  this no difference, whatever the test says. For figures whose noise is absolute, not
   *  relative: a drop of 5 MiB against 8 MiB is 0.6x, yet both are "almost none" of 256 MiB. */
  resolution?: number;
}

export interface Verdict {
  verdict: VerdictKind;
  /** The headline figure, one line, e.g. "warm p50 5.6 µs per page at 4,096 pages". */
  figure: string;
  /** Why this verdict: the rule applied and the numbers it saw. */
  reason: string;
  metrics: Metric[];
}

export interface TableSpec {
  title: string;
  head: string[];
  rows: string[][];
  note?: string;
}

export interface Presentation {
  charts: ChartSpec[];
  tables: TableSpec[];
}

/** What an experiment needs from the machine; unmet -> not measurable, with the reason. */
export interface Requirements {
  /** Needs pagemap PFNs and /proc/kpagecount, kpageflags (CAP_SYS_ADMIN). */
  root?: boolean;
  /** Needs transparent huge pages (not `never`). */
  thp?: boolean;
  /** The smallest memory worth measuring; less than this within half of MemAvailable ->
   *  not measurable. Larger sizes are clamped to what the machine holds, said in the notes. */
  minMemoryBytes?: number;
  /** Engines it runs on (sim, kernel, region); one that is not available -> not measurable. */
  engines?: EngineName[];
  /** Its verdict rests on measured time: not measurable on an emulated CPU (a TCG guest). */
  measuresTime?: boolean;
}

/** `run --thp`: the page size of an experiment's default case. never = 4 KiB pages
 *  (MADV_NOHUGEPAGE), always = THP (2 MiB aligned, MADV_HUGEPAGE). */
export const SUITE_THP = ['never', 'always'] as const;
export type SuiteThp = (typeof SUITE_THP)[number];

/** What a guest booted for this experiment (`--kernel`) must carry besides cowlab itself. */
export interface GuestNeeds {
  /** Kernel modules /init loads (with their dependencies), where the kernel has them as modules. */
  modules?: readonly string[];
  /** Host binaries copied into the guest with their shared libraries (they replace busybox's
   *  applets of the same name). */
  tools?: readonly ToolName[];
}

export interface RunContext {
  /** The short suite: fewer sweep points and repeats. */
  quick: boolean;
  /** The page size of the experiment's default case (`run --thp`). Only experiments whose
   *  headline case has no page size of its own take it (fork-write-latency's sweep); those
   *  that measure both, or whose claim is about one, ignore it. */
  thp: SuiteThp;
  /** Soft time budget of this experiment (ms); see overBudget(). */
  budgetMs: number;
  /** Aborted on Ctrl-C. Check it between measurements (throwIfAborted). */
  signal: AbortSignal;
  env: Environment;
  /** Bytes this experiment may hold (half of MemAvailable when it started). */
  memoryLimitBytes: number;
  progress(done: number, total: number, detail?: string): void;
  /** A line for the output and the report (clamping, skipped variants). */
  note(text: string): void;
  /** min(bytes, memoryLimitBytes), with a note naming `what` when it had to clamp. */
  clamp(bytes: number, what: string): number;
  /** True once the budget is spent: a sweep stops early (and notes where). */
  overBudget(): boolean;
  /** Keeps a partial result: on Ctrl-C the last checkpoint is what the results file records. */
  checkpoint(raw: unknown): void;
}

export interface Experiment<Raw = unknown> {
  /** The numbering (1-12); `cowlab run 4` selects by it. */
  number: number;
  /** Kebab-case name: `cowlab run fork-cost`. */
  name: string;
  title: string;
  /** The question from the literature as a falsifiable claim. */
  claim: string;
  /** The claim in a few words, for the summary table. */
  short: string;
  /** The verdict rule in words: what confirms the claim, what refutes it, and when it is
   *  not measurable. verdict() applies it; its `reason` gives only the figures it saw. */
  rule: string;
  /** What it measures and how (cowlab list). */
  measures: string;
  requirements: Requirements;
  /** What a guest must carry to run it (modules, tools); none by default. */
  guest?: GuestNeeds;
  /** Time budget: the default suite and --quick. */
  budgetMs: { full: number; quick: number };
  /** Schema of the raw measurements (results files are checked against it). */
  raw: z.ZodType<Raw>;
  run(ctx: RunContext): Promise<Raw>;
  verdict(raw: Raw): Verdict;
  present(raw: Raw): Presentation;
}

/** Identity helper that infers Raw from the schema (experiments are written with it). */
export function defineExperiment<Raw>(e: Experiment<Raw>): Experiment<Raw> {
  return e;
}

// Experiments are stored in one list whatever their Raw; the runner only passes each its own.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyExperiment = Experiment<any>;
