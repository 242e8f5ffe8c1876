/** Trace builders and readers for the kernel engine tests (traces are built in code). */
import { expect } from 'vitest';

import {
  KernelEngine,
  pfnAccess,
  type KernelRunDetailed,
  type PageSelector,
  type RegionSpec,
  type Step,
  type StepObservation,
  type Trace,
} from '../../src/index.js';
import { descendants } from '../helpers/processes.js';

export const engine = new KernelEngine();

const access = pfnAccess();
export const asRoot = access.pfnVisible && access.kpagecount && access.kpageflags;
export const NEEDS_ROOT = 'needs root: PFNs and /proc/kpage* are hidden otherwise';

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

/** The observation after step `i` (-1: setup). */
export function obs(r: KernelRunDetailed, i: number): StepObservation {
  return r.observations.steps[i + 1]!;
}

/** Pages of `proc` in region `id` after step `i`: how many are present, exclusive, zero page. */
export function pages(r: KernelRunDetailed, i: number, proc: string, id = 'm') {
  const o = obs(r, i).processes[proc]?.[id];
  if (!o) throw new Error(`no process ${proc} after step ${i}`);
  return { present: count(o.present), exclusive: count(o.exclusive), zeroPage: count(o.zeroPage) };
}

export function events(r: KernelRunDetailed, i: number, id = 'm') {
  return obs(r, i).events[id]!;
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
