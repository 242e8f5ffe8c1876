/**
 * Two results documents side by side (two hosts, two kernels, before and after a change):
 * per experiment the verdicts, the headline figures, and every headline metric with the
 * ratio of medians, judged over its raw samples with a seeded bootstrap interval (COMPARE_RULE).
 */
import { bootstrapMedianRatio, BOOTSTRAP_DEFAULTS } from '../stats/bootstrap.js';
import type { Band } from '../stats/summary.js';
import { matrixFromResults } from '../report/kernels.js';
import type { Disagreement } from '../validate/disagreements.js';
import type { ResultsDocument } from './schema.js';
import { formatMetricValue } from './present.js';
import type { Metric } from './types.js';

/** The test `compare` applies to each metric (COMPARE_RULE says it in words). */
export const COMPARE_TEST = {
  /** Confidence level of the bootstrap interval. */
  level: 0.95,
  /** The smallest change of a count or a size called a difference: the whole interval beyond
   *  +10 % (or -9.1 %, 1/1.1). */
  minEffect: 0.1,
  /** The smallest change of a time: beyond 2x, the measuring rules' noise band. The bootstrap
   *  sees only the spread within each run, and on a shared VM a time's median moves more than
   *  that between runs: two quick runs a few minutes apart on the quiet development VM gave a
   *  Btrfs snapshot 11.7 against 6.64 ms (interval 0.49x-0.84x) and posix_spawn 274 against
   *  203 µs (0.47x-0.78x), each wholly beyond 10 %. */
  timeMinEffect: 1,
  /** Samples each host needs before a test is made. */
  minSamples: 3,
  resamples: BOOTSTRAP_DEFAULTS.resamples,
  seed: BOOTSTRAP_DEFAULTS.seed,
  /** Without enough samples, medians this far apart with bands that do not overlap still differ. */
  apartFactor: 2,
} as const;

const pct = (f: number) => `${Math.round(f * 100)} %`;

export const COMPARE_RULE =
  `a metric differs when, over its raw samples (at least ${COMPARE_TEST.minSamples} per host), the ${pct(COMPARE_TEST.level)} bootstrap confidence interval ` +
  `of the ratio of medians b / a (${COMPARE_TEST.resamples} resamples, seeded: the same files give the same answer) lies wholly beyond a ${pct(COMPARE_TEST.minEffect)} change ` +
  `(above ${(1 + COMPARE_TEST.minEffect).toFixed(2)}x or below ${(1 / (1 + COMPARE_TEST.minEffect)).toFixed(2)}x) for a count or a size, beyond ${1 + COMPARE_TEST.timeMinEffect}x for a time ` +
  '(the noise band of the measuring rules: between runs a time moves more than within one). ' +
  "Medians closer than a metric's stated resolution (the smallest change its experiment's rule counts, for figures near zero) are no difference. " +
  `With fewer samples (or none recorded, in older results files) it is "not enough samples"; for a count or a size (not a time) it is different when the two min-max bands do not overlap and the medians are more than ` +
  `${COMPARE_TEST.apartFactor}x apart (wider than the measuring rules' noise band); the same figure on both hosts is no difference. ` +
  'Times measured on an emulated CPU (a TCG guest) are never compared: they are not comparable';

/**
 * What `compare` concluded about one metric:
 *   different           the test (or, with few samples of a count or size, bands more than 2x apart) says so
 *   no-difference       the interval is not wholly beyond the minimum effect, or the figures are equal
 *   not-enough-samples  fewer than COMPARE_TEST.minSamples on a host, and the bands are not clearly apart
 *   not-comparable      a time measured on an emulated CPU
 *   one-side            measured on one host only
 */
export const METRIC_OUTCOMES = ['different', 'no-difference', 'not-enough-samples', 'not-comparable', 'one-side'] as const;
export type MetricOutcome = (typeof METRIC_OUTCOMES)[number];

export interface MetricComparison {
  key: string;
  label: string;
  unit: string;
  a: Band | null;
  b: Band | null;
  /** median(b) / median(a); null when either is missing or a is 0. */
  ratio: number | null;
  /** The bootstrap interval of the ratio (null: no test was made). */
  interval: { low: number; high: number; level: number } | null;
  /** Samples behind each side (null: missing, or not recorded in that file). */
  samples: { a: number | null; b: number | null };
  outcome: MetricOutcome;
  /** outcome === 'different'. */
  different: boolean;
  /** Why this outcome, with the figures the rule saw. */
  why: string;
}

export interface ExperimentComparison {
  number: number;
  name: string;
  title: string;
  a: { status: string; verdict: string; figure: string } | null;
  b: { status: string; verdict: string; figure: string } | null;
  verdictChanged: boolean;
  metrics: MetricComparison[];
}

export interface EnvironmentDifference {
  field: string;
  a: string;
  b: string;
}

export interface Comparison {
  rule: string;
  test: typeof COMPARE_TEST;
  a: { kernel: string; startedAt: string; quick: boolean };
  b: { kernel: string; startedAt: string; quick: boolean };
  environment: EnvironmentDifference[];
  experiments: ExperimentComparison[];
  /** Metrics judged different, over all experiments. */
  flagged: number;
  /** Metrics measured on both hosts but with too few samples to judge. */
  notEnoughSamples: number;
  /** Experiments whose verdict changed. */
  verdictsChanged: number;
  /**
   * What the two kernels showed differently in the built-in scenarios (model-validation's
   * observations, page by page), each with the profile switch that explains it. Empty when
   * either file predates recorded observations, or the kernels agree.
   */
  kernelDifferences: Disagreement[];
}

/** The coarser of the two sides' stated resolutions (a figure's, from its experiment's rule). */
function resolutionOf(a: Metric, b: Metric): { value: number; unit: string } | undefined {
  const r = Math.max(a.resolution ?? 0, b.resolution ?? 0);
  return r > 0 ? { value: r, unit: a.unit } : undefined;
}

/** A time, or a figure derived from times. */
export function isTimed(m: Metric): boolean {
  return m.timed === true || m.unit === 'ns' || m.unit === 'ns/GiB';
}

export interface Judgement {
  outcome: Exclude<MetricOutcome, 'not-comparable' | 'one-side'>;
  interval: MetricComparison['interval'];
  why: string;
}

const x = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}x` : 'unbounded');

/** The fallback without enough samples: bands that do not overlap, medians more than apartFactor apart. */
function clearlyApart(a: Band, b: Band): { apart: boolean; ratio: number } {
  const overlap = !(a.max < b.min || b.max < a.min);
  const lo = Math.min(a.median, b.median);
  const hi = Math.max(a.median, b.median);
  const ratio = lo > 0 ? hi / lo : hi > 0 && lo === 0 ? Infinity : 1;
  return { apart: !overlap && !a.noisy && !b.noisy && ratio > COMPARE_TEST.apartFactor, ratio };
}

/** The same band from the same values (a run compared with itself, an exact count unchanged). */
function sameFigures(a: Band, b: Band): boolean {
  if (a.median !== b.median || a.min !== b.min || a.max !== b.max) return false;
  if (a.min === a.max) return true;
  if (!a.samples || !b.samples || a.samples.length !== b.samples.length) return false;
  const sa = [...a.samples].sort((p, q) => p - q);
  const sb = [...b.samples].sort((p, q) => p - q);
  return sa.every((v, i) => v === sb[i]);
}

/**
 * Whether two bands differ, by COMPARE_RULE, and why. `timed`: a time (isTimed), which with
 * fewer than minSamples is never called different: one or two runs of a time on a busy host
 * land more than 2x apart from load alone (measured: 13 such metrics between two quick runs a
 * minute apart while other work ran), while a count or a size does not move that way.
 */
export function judgeDifference(a: Band, b: Band, timed = false, resolution?: { value: number; unit: string }): Judgement {
  if (sameFigures(a, b)) return { outcome: 'no-difference', interval: null, why: a.min === a.max ? 'the same figure on both hosts' : 'the same figures on both hosts' };
  if (resolution && Math.abs(b.median - a.median) < resolution.value) {
    const fmt = formatMetricValue(resolution.unit);
    return { outcome: 'no-difference', interval: null, why: `the medians are ${fmt(Math.abs(b.median - a.median))} apart, less than the ${fmt(resolution.value)} its experiment's rule resolves` };
  }
  const na = a.samples?.length ?? null;
  const nb = b.samples?.length ?? null;
  const { minSamples, level } = COMPARE_TEST;
  const minEffect = timed ? COMPARE_TEST.timeMinEffect : COMPARE_TEST.minEffect;
  const above = 1 + minEffect;
  const below = 1 / above;
  if (na !== null && nb !== null && na >= minSamples && nb >= minSamples) {
    const iv = bootstrapMedianRatio(a.samples!, b.samples!, { level, resamples: COMPARE_TEST.resamples, seed: COMPARE_TEST.seed });
    if (iv) {
      const interval = { low: iv.low, high: iv.high, level };
      const ci = `${pct(level)} CI of b/a ${x(iv.low)}-${x(iv.high)} (${na} and ${nb} samples)`;
      if (iv.low > above) return { outcome: 'different', interval, why: `b is above a: ${ci} lies above ${x(above)}` };
      if (iv.high < below) return { outcome: 'different', interval, why: `b is below a: ${ci} lies below ${x(below)}` };
      return { outcome: 'no-difference', interval, why: `${ci} is not wholly beyond a ${pct(minEffect)} change` };
    }
    // a's median is 0: no ratio to test; the bands decide, as with few samples.
  }
  const { apart, ratio } = clearlyApart(a, b);
  const counted = na === null || nb === null ? 'samples not recorded (an older results file)' : `only ${na} and ${nb} samples (a test needs ${minSamples} per host)`;
  if (timed) return { outcome: 'not-enough-samples', interval: null, why: `${counted}: a time needs the test (its single runs move more than ${COMPARE_TEST.apartFactor}x with the load)` };
  if (apart) return { outcome: 'different', interval: null, why: `${counted}, but the bands do not overlap and the medians are ${x(ratio)} apart (more than ${COMPARE_TEST.apartFactor}x)` };
  return { outcome: 'not-enough-samples', interval: null, why: `${counted}, and the bands are not clearly apart (overlapping, noisy, or within ${COMPARE_TEST.apartFactor}x)` };
}

function environmentFields(d: ResultsDocument): Record<string, string> {
  const e = d.environment;
  return {
    kernel: e.kernel,
    arch: e.arch,
    cpu: `${e.cpu.model} x${e.cpu.count}`,
    hypervisor: e.hypervisor.present ? (e.hypervisor.vendor ?? 'yes') : 'none',
    'memory total': String(e.memory.totalBytes),
    'page size': String(e.pageSize),
    THP: `${e.thp.enabled ?? 'n/a'} (defrag ${e.thp.defrag ?? 'n/a'})`,
    KSM: String(e.ksmRun),
    overcommit: String(e.overcommitMemory),
    max_map_count: String(e.maxMapCount),
    clocksource: String(e.clocksource),
    DAMON: e.noise.damon.join('; ') || 'none',
    'free page reporting': String(e.noise.freePageReporting),
    root: String(e.privileges.root),
    'PFNs visible': String(e.privileges.pfnVisible),
    node: e.node,
    cowlab: e.cowlab,
    suite: d.options.quick ? 'quick' : 'full',
  };
}

export function compareResults(a: ResultsDocument, b: ResultsDocument): Comparison {
  const ea = environmentFields(a);
  const eb = environmentFields(b);
  const environment = Object.keys(ea)
    .filter((k) => ea[k] !== eb[k])
    .map((k) => ({ field: k, a: ea[k]!, b: eb[k]! }));
  const names = [...new Set([...a.experiments.map((e) => e.name), ...b.experiments.map((e) => e.name)])];
  const experiments = names.map((name): ExperimentComparison => {
    const ra = a.experiments.find((e) => e.name === name) ?? null;
    const rb = b.experiments.find((e) => e.name === name) ?? null;
    const any = (ra ?? rb)!;
    const keys = [...new Set([...(ra?.verdict.metrics ?? []), ...(rb?.verdict.metrics ?? [])].map((m) => m.key))];
    const metrics = keys.map((key): MetricComparison => {
      const ma = ra?.verdict.metrics.find((m) => m.key === key) ?? null;
      const mb = rb?.verdict.metrics.find((m) => m.key === key) ?? null;
      const m = (ma ?? mb)!;
      const ratio = ma && mb && ma.value.median !== 0 ? mb.value.median / ma.value.median : null;
      const emulated = [a, b].filter((d) => d.environment.guest?.accel === 'tcg').length;
      const j: Pick<MetricComparison, 'outcome' | 'interval' | 'why'> =
        ma && mb
          ? emulated > 0 && isTimed(m)
            ? { outcome: 'not-comparable', interval: null, why: `a time measured on an emulated CPU (a TCG guest) on ${emulated === 2 ? 'both sides' : a.environment.guest?.accel === 'tcg' ? 'host a' : 'host b'}: not comparable` }
            : judgeDifference(ma.value, mb.value, isTimed(m), resolutionOf(ma, mb))
          : { outcome: 'one-side', interval: null, why: `measured on host ${ma ? 'a' : 'b'} only` };
      return {
        key,
        label: m.label,
        unit: m.unit,
        a: ma?.value ?? null,
        b: mb?.value ?? null,
        ratio,
        interval: j.interval,
        samples: { a: ma?.value.samples?.length ?? null, b: mb?.value.samples?.length ?? null },
        outcome: j.outcome,
        different: j.outcome === 'different',
        why: j.why,
      };
    });
    const side = (r: typeof ra) => (r ? { status: r.status, verdict: r.verdict.verdict, figure: r.verdict.figure } : null);
    return {
      number: any.number,
      name,
      title: any.title,
      a: side(ra),
      b: side(rb),
      verdictChanged: ra !== null && rb !== null && ra.verdict.verdict !== rb.verdict.verdict,
      metrics,
    };
  });
  const head = (d: ResultsDocument) => ({ kernel: d.environment.kernel, startedAt: d.startedAt, quick: d.options.quick });
  const kernelDifferences = matrixFromResults([{ label: 'a', doc: a }, { label: 'b', doc: b }]).disagreements;
  const all = experiments.flatMap((e) => e.metrics);
  return {
    rule: COMPARE_RULE,
    test: COMPARE_TEST,
    a: head(a),
    b: head(b),
    environment,
    experiments,
    flagged: all.filter((m) => m.different).length,
    notEnoughSamples: all.filter((m) => m.outcome === 'not-enough-samples').length,
    verdictsChanged: experiments.filter((e) => e.verdictChanged).length,
    kernelDifferences,
  };
}

/**
 * An observation that differs only by where the kernel placed a region the trace left to it (its
 * offset from a 2 MiB boundary): that differs between any two runs, of one kernel too, and says
 * nothing about the kernel.
 */
export function placementOnly(d: Disagreement): boolean {
  return d.explainedBy.length > 0 && d.explainedBy.every((x) => x.option === 'placement');
}

/** Anything that differs between the two runs: a metric, a verdict, or a kernel observation
 *  that placement alone does not explain. */
export function anyDifference(c: Comparison): boolean {
  return c.flagged > 0 || c.verdictsChanged > 0 || c.kernelDifferences.some((d) => !placementOnly(d));
}
