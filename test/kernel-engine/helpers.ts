/** Trace builders and readers for the kernel engine tests (traces are built in code). */
import { expect } from 'vitest';

import {
  environment,
  KernelEngine,
  pfnAccess,
  profileFor,
  runningKernelFacts,
  simulateTrace,
  type KernelRunDetailed,
  type PageSelector,
  type RegionSpec,
  type Step,
  type StepObservation,
  type Trace,
  type TraceObservations,
} from '../../src/index.js';
import { descendants } from '../helpers/processes.js';

export const engine = new KernelEngine();

const access = pfnAccess();
export const asRoot = access.pfnVisible && access.kpagecount && access.kpageflags;
export const NEEDS_ROOT = 'needs root: PFNs and /proc/kpage* are hidden otherwise';

/**
 * The simulator's profile of the kernel under test. Whatever COW behaviour differs between
 * kernels (profiles.ts BEHAVIOURS) is expected as this profile predicts it, never as a constant:
 * these tests run on the host and in guests of other kernels.
 */
export const profile = profileFor(runningKernelFacts(environment()));

/** The profile's prediction of a trace: the simulator's observations of every step. */
export function predict(t: Trace): TraceObservations {
  return simulateTrace(t, profile.options);
}

/** "the profile of 6.18.44 (thpPteReuse per-page)": which kernel and switch values an expectation came from. */
export function because(...switches: (keyof typeof profile.options)[]): string {
  return `the profile of ${profile.version} (${switches.map((s) => `${s} ${String(profile.options[s])}`).join(', ')})`;
}

export function region(o: Partial<RegionSpec> = {}): RegionSpec {
  return { id: 'm', pages: 64, map: 'private', backing: 'anon', thp: false, advice: [], populate: 'write', ...o };
}

export function trace(name: string, regions: RegionSpec[], steps: Step[]): Trace {
  return { name, regions, steps };
}

export const all = (n: number): PageSelector => ({ start: 0, end: n });

export function count(a: Uint8Array | null | undefined): number | null {
  if (!a) return null;
  let c = 0;
  for (const v of a) c += v;
  return c;
}

type Observed = KernelRunDetailed | TraceObservations;

/** The observation after step `i` (-1: setup), of a kernel run or of a prediction. */
export function obs(r: Observed, i: number): StepObservation {
  return ('observations' in r ? r.observations : r).steps[i + 1]!;
}

/** Pages of `proc` in region `id` after step `i`: how many are present, exclusive, zero page. */
export function pages(r: Observed, i: number, proc: string, id = 'm') {
  const o = obs(r, i).processes[proc]?.[id];
  if (!o) throw new Error(`no process ${proc} after step ${i}`);
  return { present: count(o.present), exclusive: count(o.exclusive), zeroPage: count(o.zeroPage) };
}

export function events(r: Observed, i: number, id = 'm') {
  return obs(r, i).events[id]!;
}

/**
 * `predicted` with every field the kernel engine could not observe here (null in `observed`:
 * no PFNs, no zero-page information) set to null, so what it did observe is compared exactly.
 */
export function asObservable<T extends { [K in keyof T]: number | null }>(predicted: T, observed: T): T {
  const out = { ...predicted };
  for (const k of Object.keys(out) as (keyof T)[]) if (observed[k] === null) out[k] = null as T[keyof T];
  return out;
}

/** Expects the kernel's events, pages of `procs` and frames after step `i` to be the prediction's. */
export function expectAsPredicted(r: KernelRunDetailed, p: TraceObservations, i: number, procs: string[], what: string, id = 'm'): void {
  const seen = events(r, i, id);
  expect(seen, `events after step ${i}, as ${what}`).toEqual(asObservable(events(p, i, id), seen));
  for (const proc of procs) {
    const got = pages(r, i, proc, id);
    expect(got, `${proc}'s pages after step ${i}, as ${what}`).toEqual(asObservable(pages(p, i, proc, id), got));
  }
  const frames = obs(r, i).frames[id] ?? null;
  if (frames !== null) expect(frames, `frames after step ${i}, as ${what}`).toBe(obs(p, i).frames[id]);
}

/** PFNs of `proc`'s pages in region `id` after step `i`. */
export function pfns(r: KernelRunDetailed, i: number, proc: string, id = 'm'): number[] {
  return Array.from(r.details[i + 1]!.pagemap[proc]![id]!.pfn);
}

/** The values a read step returned. */
export function readValues(r: KernelRunDetailed, i: number): bigint[] {
  return Array.from(r.details[i + 1]!.access[0]!.values!);
}

/** Every process this test process started is gone: none alive, none a zombie. */
export function expectNoProcessesLeft(): void {
  expect(descendants()).toEqual([]);
}
