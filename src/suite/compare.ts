/**
 * Two results documents side by side (two hosts, two kernels, before and after a change):
 * per experiment the verdicts, the headline figures, and every headline metric with the
 * ratio of medians, flagged when the difference is beyond the noise band (COMPARE_RULE).
 */
import type { Band } from '../stats/summary.js';
import { matrixFromResults } from '../report/kernels.js';
import type { Disagreement } from '../validate/disagreements.js';
import type { ResultsDocument } from './schema.js';
import type { Metric } from './types.js';

export const COMPARE_RULE =
  'a metric differs beyond noise when neither host\'s min-max band over repeats is wider than 2x ' +
  '(wider is noise by the measuring rules) and the two bands do not overlap; the ratio of medians (b / a) is shown either way. ' +
  'Times measured on an emulated CPU (a TCG guest) are never flagged: they are not comparable';

export interface MetricComparison {
  key: string;
  label: string;
  unit: string;
  a: Band | null;
  b: Band | null;
  /** median(b) / median(a); null when either is missing or a is 0. */
  ratio: number | null;
  beyondNoise: boolean;
  /** Why it is or is not flagged. */
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
  a: { kernel: string; startedAt: string; quick: boolean };
  b: { kernel: string; startedAt: string; quick: boolean };
  environment: EnvironmentDifference[];
  experiments: ExperimentComparison[];
  /** Metrics flagged beyond noise, over all experiments. */
  flagged: number;
  /**
   * What the two kernels showed differently in the built-in scenarios (model-validation's
   * observations, page by page), each with the profile switch that explains it. Empty when
   * either file predates recorded observations, or the kernels agree.
   */
  kernelDifferences: Disagreement[];
}

/** A time, or a figure derived from times. */
export function isTimed(m: Metric): boolean {
  return m.timed === true || m.unit === 'ns' || m.unit === 'ns/GiB';
}

/** Whether two bands differ beyond noise (COMPARE_RULE), and why. */
export function beyondNoise(a: Band, b: Band): { beyond: boolean; why: string } {
  if (a.noisy || b.noisy) return { beyond: false, why: `band wider than 2x on ${a.noisy && b.noisy ? 'both hosts' : a.noisy ? 'host a' : 'host b'} (noise)` };
  if (a.max < b.min) return { beyond: true, why: 'b is above a: the bands do not overlap' };
  if (b.max < a.min) return { beyond: true, why: 'b is below a: the bands do not overlap' };
  return { beyond: false, why: 'the bands overlap' };
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
  let flagged = 0;
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
      const verdict =
        ma && mb
          ? emulated > 0 && isTimed(m)
            ? { beyond: false, why: `a time measured on an emulated CPU (a TCG guest) on ${emulated === 2 ? 'both sides' : a.environment.guest?.accel === 'tcg' ? 'host a' : 'host b'}: not comparable` }
            : beyondNoise(ma.value, mb.value)
          : { beyond: false, why: `measured on host ${ma ? 'a' : 'b'} only` };
      if (verdict.beyond) flagged++;
      return { key, label: m.label, unit: m.unit, a: ma?.value ?? null, b: mb?.value ?? null, ratio, beyondNoise: verdict.beyond, why: verdict.why };
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
  return { rule: COMPARE_RULE, a: head(a), b: head(b), environment, experiments, flagged, kernelDifferences };
}
