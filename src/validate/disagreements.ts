/**
 * What real kernels disagree on: the same trace's kernel observations on several kernels, side
 * by side, step by step, keeping only what differs. That is the part of COW that changed
 * between the releases. Each difference is explained, where one can be, by the profile switch
 * whose change reproduces it: the simulator with the first kernel's profile and only that
 * switch set as on the other kernel must predict what the other kernel showed, on every kernel
 * that differs.
 */
import { countRegion, compactPages, sharedPages } from '../engines/observations.js';
import { simulateTrace } from '../engines/sim/engine.js';
import type { ResolvedSimOptions } from '../engines/sim/options.js';
import { BEHAVIOURS, KNOBS, valueText, type ProfileSwitch } from '../engines/sim/profiles.js';
import type { StepObservation, TraceObservations } from '../engines/types.js';
import type { Trace } from '../trace/types.js';

export interface KernelRun {
  label: string;
  /** The simulator options of this kernel's profile. */
  sim: ResolvedSimOptions;
  /** The kernel engine's observations, by trace name (traces it could not run are absent). */
  observations: Map<string, TraceObservations>;
}

export interface Explanation {
  /** A profile switch, or 'placement' (where the kernel put a region the trace left to it). */
  option: ProfileSwitch | 'placement';
  flag: string;
  /** The switch's value on each kernel (in the order of the runs). */
  values: string[];
}

export interface Disagreement {
  trace: string;
  step: number;
  op: string;
  proc: string;
  /** "copies" | "frames" | "exclusive" ... */
  field: string;
  /** Region (events, frames) or process/region (page states). */
  where: string;
  /** Per kernel: the value ("512"; "512 (pages 0-511)" when only the pages differ), or null. */
  values: (string | null)[];
  /** The switches that reproduce the difference, one at a time; [] when none does. */
  explainedBy: Explanation[];
  /** Whether the kernels' own profiles predict each kernel's value. */
  profilesPredict: boolean;
}

const SWITCHES: { option: ProfileSwitch; flag: string }[] = [...BEHAVIOURS, ...KNOBS].map((b) => ({ option: b.option, flag: b.flag }));

/** One step's observations as key -> value text, for comparing kernels. Faults are left out:
 *  they carry the measuring loop's own incidental faults (validate allows for them). */
export function stepValues(s: StepObservation): Map<string, string> {
  const out = new Map<string, string>();
  for (const [region, e] of Object.entries(s.events)) {
    for (const f of ['copies', 'reuses', 'zeroFills', 'swapIns'] as const) if (e[f] != null) out.set(`${f}\t${region}`, String(e[f]));
  }
  for (const [region, n] of Object.entries(s.frames)) if (n !== null) out.set(`frames\t${region}`, String(n));
  for (const [proc, regions] of Object.entries(s.processes)) {
    for (const [region, r] of Object.entries(regions)) {
      const c = countRegion(r);
      const lists: Record<string, Uint8Array | null> = {
        present: r.present, shared: sharedPages(r), exclusive: r.exclusive, zeroPage: r.zeroPage, swapped: r.swapped ?? null,
      };
      for (const f of ['present', 'shared', 'exclusive', 'zeroPage', 'swapped'] as const) {
        const pages = lists[f];
        if (c[f] == null || !pages) continue;
        out.set(`${f}\t${proc}/${region}`, `${c[f]}\t${compactPages(pages)}`);
      }
    }
  }
  out.set(`processes\t-`, Object.keys(s.processes).sort().join(','));
  return out;
}

/** The value text for tables: the count, with the pages when counts alone look the same. */
function shown(values: (string | undefined)[]): (string | null)[] {
  const counts = values.map((v) => v?.split('\t')[0] ?? null);
  const sameCounts = new Set(counts.filter((c) => c !== null)).size <= 1;
  return values.map((v) => {
    if (v === undefined) return null;
    const [count, pages] = v.split('\t');
    if (!sameCounts || pages === undefined) return count!;
    return `${count} (pages ${pages.length > 40 ? `${pages.slice(0, 40)}...` : pages || 'none'})`;
  });
}

class Predictions {
  private readonly cache = new Map<string, TraceObservations>();

  at(trace: Trace, options: ResolvedSimOptions, offsets: readonly number[], step: number): Map<string, string> {
    const key = `${trace.name}\0${JSON.stringify({ ...options, costModel: null })}\0${offsets.join(',')}`;
    let obs = this.cache.get(key);
    if (!obs) {
      obs = simulateTrace(trace, options, undefined, undefined, offsets);
      this.cache.set(key, obs);
    }
    return stepValues(obs.steps[step + 1]!);
  }
}

/** Per region, where the kernel put it in this run (0 for a region on a 2 MiB boundary). */
function offsetsOf(o: TraceObservations): number[] {
  return o.trace.regions.map((r) => o.placement?.[r.id] ?? 0);
}

/**
 * Every observation that differs between the kernels, per trace and step (setup is step -1),
 * in trace order. Traces some kernel did not run (not measurable there) are left out. A
 * difference is explained by a profile switch when the first kernel's profile with only that
 * switch changed predicts every kernel's value; for a region the trace leaves to the kernel
 * (placement 'kernel'), by where each kernel put it.
 */
export function kernelDisagreements(runs: readonly KernelRun[]): Disagreement[] {
  if (runs.length < 2) return [];
  const predictions = new Predictions();
  const out: Disagreement[] = [];
  const base = runs[0]!;
  for (const [name, first] of base.observations) {
    const all = runs.map((r) => r.observations.get(name));
    if (all.some((o) => o === undefined || o.steps.length !== first.steps.length)) continue;
    const trace = first.trace;
    const offsets = all.map((o) => offsetsOf(o!));
    const placed = trace.regions.filter((r) => r.placement === 'kernel');
    first.steps.forEach((s0, i) => {
      const values = all.map((o) => stepValues(o!.steps[i]!));
      const keys = [...new Set(values.flatMap((v) => [...v.keys()]))];
      for (const key of keys) {
        const texts = values.map((v) => v.get(key));
        if (new Set(texts).size <= 1) continue;
        const [field, where] = key.split('\t') as [string, string];
        const predictedBy = (k: number, options: ResolvedSimOptions, at: readonly number[]) => predictions.at(trace, options, at, s0.step).get(key) === texts[k];
        const profilesPredict = runs.every((r, k) => predictedBy(k, r.sim, offsets[k]!));
        const explainedBy: Explanation[] = [];
        const baseHolds = predictedBy(0, base.sim, offsets[0]!);
        for (const sw of SWITCHES) {
          const vals = runs.map((r) => r.sim[sw.option]);
          if (new Set(vals.map(String)).size <= 1) continue;
          const reproduces = runs.every((r, k) => texts[k] === texts[0] || predictedBy(k, { ...base.sim, [sw.option]: r.sim[sw.option] }, offsets[0]!));
          if (reproduces && baseHolds) explainedBy.push({ option: sw.option, flag: sw.flag, values: vals.map(valueText) });
        }
        if (placed.length > 0 && new Set(offsets.map(String)).size > 1) {
          const reproduces = runs.every((_, k) => texts[k] === texts[0] || predictedBy(k, base.sim, offsets[k]!));
          if (reproduces && baseHolds) {
            explainedBy.push({
              option: 'placement',
              flag: `where the kernel put ${placed.map((r) => r.id).join(', ')}`,
              values: offsets.map((o) => placed.map((r) => `page ${o[trace.regions.indexOf(r)]}`).join(', ')),
            });
          }
        }
        out.push({ trace: name, step: s0.step, op: s0.op, proc: s0.proc, field, where, values: shown(texts), explainedBy, profilesPredict });
      }
    });
  }
  return out;
}

/** "--thp-pte-reuse (per-page / never)", or why nothing single explains it. */
export function describeExplanation(d: Disagreement): string {
  if (d.explainedBy.length) return d.explainedBy.map((e) => `${e.flag} (${e.values.join(' / ')})`).join('; ');
  return d.profilesPredict ? 'the profiles together (no single switch)' : 'no profile switch (unexplained)';
}
