/**
 * predictSnapshot: what the next snapshot (fork, then writes while the child lives) of a
 * recorded process will cost, by the simulator: COW memory over time and at the end, and fork
 * time. What-ifs reshape the recorded trace before simulating it:
 *
 * - scaleMemory K (integer): K times the memory. Every region is K times larger (split at the
 *   trace limit of 2^24 pages), every resident page stands for K resident pages, and each
 *   recorded write of page p goes to one of p's K pages (K*p .. K*p+K-1), chosen at random per
 *   interval: the same writes per second, spread over K times the data.
 * - scaleRate R: R times the writes per second: each predicted interval takes the writes of R
 *   recorded intervals (fractions accumulate).
 * - snapshotSeconds T: the child lives T s. When the recording is shorter, its intervals repeat
 *   from the start: the recorded write set stays the hot set (a page written again costs no
 *   second copy), which underestimates a workload that keeps touching new pages.
 *
 * Fork time: from a fork cost per GiB of resident memory (measured here by forking cowlab itself
 * at two sizes, measureForkCost) when given, else the simulator's cost model (forkBaseNs plus
 * forkPerPageNs per page-table entry fork copies).
 */
import { CowlabError, invalidOption } from '../errors.js';
import { Simulator } from '../engines/sim/simulator.js';
import { isCalibrated } from '../engines/sim/cost.js';
import { resolveSimOptions, type SimOptions } from '../engines/sim/options.js';
import { Mapping } from '../memory/mapping.js';
import { timeSpawn } from '../probes/spawn.js';
import { MAX_REGION_PAGES } from '../trace/schema.js';
import { parseTrace } from '../trace/parse.js';
import { selectPages } from '../trace/select.js';
import type { RegionSpec, Step, Trace } from '../trace/types.js';
import { mulberry32 } from '../util/prng.js';
import { recordMeta } from './record.js';
import { PAGE_BYTES } from './proc.js';

export interface ForkCost {
  /** ns per GiB of resident private memory. */
  perGiBNs: number;
  baseNs: number;
  source: string;
}

export interface PredictOptions {
  trace: Trace;
  scaleMemory?: number;
  scaleRate?: number;
  snapshotSeconds?: number;
  /** ms per recorded interval, for a trace that did not come from `cowlab record`. */
  intervalMs?: number;
  sim?: SimOptions;
  forkCost?: ForkCost;
}

export interface PredictPoint {
  tS: number;
  /** Pages copied so far (both processes' copies: the child's Private_Dirty). */
  cowBytes: number;
  /** Pages p0 allocated new (zero fills): memory the parent grew by, not COW. */
  newBytes: number;
}

export interface PredictResult {
  name: string;
  scaleMemory: number;
  scaleRate: number;
  snapshotSeconds: number;
  intervalMs: number;
  /** Resident private memory at the fork (what fork copies page tables for). */
  residentBytes: number;
  /** Size of the recorded regions (mapped or not). */
  regionBytes: number;
  fork: { ms: number; source: string };
  points: PredictPoint[];
  cowBytes: number;
  newBytes: number;
  /** Distinct pages written in the snapshot, bytes (an upper bound of COW: pages not resident get zero fills). */
  writtenBytes: number;
  /** ms the simulation took. */
  simMs: number;
  notes: string[];
}

const GiB = 2 ** 30;

/** The regions of the scaled trace: each original region r becomes ceil(K*pages / 2^24) parts. */
function scaledRegions(trace: Trace, k: number): { specs: RegionSpec[]; partsOf: number[][] } {
  const specs: RegionSpec[] = [];
  const partsOf: number[][] = [];
  for (const r of trace.regions) {
    const total = r.pages * k;
    const parts: number[] = [];
    for (let first = 0, n = 0; first < total; first += MAX_REGION_PAGES, n++) {
      parts.push(specs.length);
      specs.push({ ...r, id: k === 1 && total <= MAX_REGION_PAGES ? r.id : `${r.id.slice(0, 56)}x${n}`, pages: Math.min(MAX_REGION_PAGES, total - first) });
    }
    partsOf.push(parts);
  }
  return { specs, partsOf };
}

/** Groups scaled page numbers of one original region into write steps per part. */
function writes(proc: string, specs: RegionSpec[], parts: number[], pages: number[], out: Step[]): void {
  const per = new Map<number, number[]>();
  for (const p of pages) {
    const part = Math.floor(p / MAX_REGION_PAGES);
    const list = per.get(part) ?? [];
    list.push(p - part * MAX_REGION_PAGES);
    per.set(part, list);
  }
  for (const [part, list] of [...per].sort((a, b) => a[0] - b[0])) {
    list.sort((a, b) => a - b);
    const runs: { start: number; end: number }[] = [];
    for (const p of list) {
      const last = runs.at(-1);
      if (last && last.end === p) last.end++;
      else if (!last || last.end < p) runs.push({ start: p, end: p + 1 });
    }
    const region = specs[parts[part]!]!.id;
    if (runs.length <= 8) for (const r of runs) out.push({ op: 'write', proc, region, pages: r });
    else out.push({ op: 'write', proc, region, pages: { pages: [...new Set(list)] } });
  }
}

export function predictSnapshot(options: PredictOptions): PredictResult {
  const k = options.scaleMemory ?? 1;
  const rate = options.scaleRate ?? 1;
  if (!Number.isInteger(k) || k < 1 || k > 4096) throw invalidOption('scaleMemory', `must be an integer from 1 to 4096, got ${k}`);
  if (!(rate > 0) || rate > 1000) throw invalidOption('scaleRate', `must be a number above 0 and at most 1000, got ${rate}`);
  const trace = options.trace;
  const meta = recordMeta(trace);
  const notes: string[] = [];
  const forkAt = trace.steps.findIndex((s) => s.op === 'fork' && s.proc === 'p0');
  if (forkAt < 0) throw invalidOption('trace', `trace '${trace.name}' has no fork of p0: predict needs a snapshot (p0 forks, then writes); record one with cowlab record`);
  const intervalMs = meta?.intervalMs ?? options.intervalMs;
  if (intervalMs === undefined) throw invalidOption('intervalMs', `trace '${trace.name}' was not made by cowlab record: say how long each write step lasted (--interval-ms)`);
  const child = (trace.steps[forkAt] as { child: string }).child;

  // The recorded intervals after the fork: p0's writes, per original region.
  const after = trace.steps.slice(forkAt + 1);
  const stepInterval = meta?.stepInterval ?? after.map((_s, i) => i);
  const recorded: Map<number, number[]>[] = [];
  after.forEach((st, i) => {
    if (st.op !== 'write' || st.proc !== 'p0') return;
    const k2 = stepInterval[i] ?? i;
    while (recorded.length <= k2) recorded.push(new Map());
    const r = trace.regions.findIndex((x) => x.id === st.region);
    const region = trace.regions[r]!;
    const list = recorded[k2]!.get(r) ?? [];
    for (const p of selectPages(st.pages, region.pages)) list.push(p);
    recorded[k2]!.set(r, list);
  });
  const intervals = Math.max(meta?.intervals ?? recorded.length, recorded.length, 1);
  while (recorded.length < intervals) recorded.push(new Map());
  const recordedS = (intervals * intervalMs) / 1000;
  const snapshotSeconds = options.snapshotSeconds ?? recordedS / rate;
  if (!(snapshotSeconds > 0) || snapshotSeconds > 86_400) throw invalidOption('snapshotSeconds', `must be above 0 and at most 86400, got ${snapshotSeconds}`);
  const outIntervals = Math.max(1, Math.round((snapshotSeconds * 1000) / intervalMs));
  if (outIntervals * rate > intervals + 1e-9) notes.push(`the snapshot needs ${(outIntervals * rate).toFixed(0)} recorded intervals, the recording has ${intervals}: its intervals repeat (the recorded write set stays the hot set; a workload that keeps writing new pages will cost more)`);

  // The scaled trace: populate (p0's writes before the fork), fork, one interval after another, exit.
  const { specs, partsOf } = scaledRegions(trace, k);
  const steps: Step[] = [];
  const resident = trace.regions.map((r) => (r.populate === 'write' ? null : new Set<number>()));
  for (const st of trace.steps.slice(0, forkAt)) {
    if (st.op !== 'write' || st.proc !== 'p0') continue;
    const r = trace.regions.findIndex((x) => x.id === st.region);
    for (const p of selectPages(st.pages, trace.regions[r]!.pages)) resident[r]?.add(p);
  }
  let residentPages = 0;
  trace.regions.forEach((r, i) => {
    const set = resident[i];
    if (set === null || r.populate === 'write') {
      for (const part of partsOf[i]!) specs[part]!.populate = 'write';
      residentPages += r.pages * k;
      return;
    }
    for (const part of partsOf[i]!) specs[part]!.populate = 'none';
    const pages: number[] = [];
    for (const p of [...set!].sort((a, b) => a - b)) for (let j = 0; j < k; j++) pages.push(p * k + j);
    residentPages += pages.length;
    writes('p0', specs, partsOf[i]!, pages, steps);
  });
  const forkIdx = steps.length;
  steps.push({ op: 'fork', proc: 'p0', child });
  const rnd = mulberry32(0x5eed);
  // The simulator observes every region after every step: simulate at most `buckets` write
  // phases (a bucket holds consecutive intervals; the order of p0's writes within one does not
  // change the copies), so a 64 GiB process stays a matter of seconds.
  const totalPages = specs.reduce((n, r) => n + r.pages, 0);
  const buckets = Math.max(2, Math.min(outIntervals, 60, Math.floor(2 ** 26 / totalPages)));
  if (buckets < outIntervals) notes.push(`simulated in ${buckets} phases of ${((outIntervals / buckets) * intervalMs / 1000).toFixed(2)} s (the curve has that resolution; the final COW does not depend on it)`);
  const bucketEnd = (b: number) => Math.round(((b + 1) * outIntervals) / buckets);
  const stepAt: number[] = []; // per scaled step after the fork: the output interval it ends
  let taken = 0;
  const distinct = trace.regions.map(() => new Set<number>());
  for (let b = 0, m0 = 0; b < buckets; b++) {
    const m1 = bucketEnd(b);
    const upto = Math.round(m1 * rate);
    const byRegion = new Map<number, number[]>();
    for (; taken < upto; taken++) {
      for (const [r, pages] of recorded[taken % intervals]!) {
        const list = byRegion.get(r) ?? [];
        for (const p of pages) list.push(k === 1 ? p : p * k + Math.floor(rnd() * k));
        byRegion.set(r, list);
      }
    }
    for (const [r, pages] of [...byRegion].sort((a, b2) => a[0] - b2[0])) {
      const before = steps.length;
      for (const p of pages) distinct[r]!.add(p);
      writes('p0', specs, partsOf[r]!, pages, steps);
      for (let st = before; st < steps.length; st++) stepAt.push(m1 - 1);
    }
    m0 = m1;
    void m0;
  }
  steps.push({ op: 'exit', proc: child });
  const scaled = parseTrace({ name: `${trace.name.slice(0, 180)}-predicted`, regions: specs, steps });

  // Simulate, keeping per step only the events.
  const simOptions = resolveSimOptions(options.sim ?? {});
  const t0 = performance.now();
  const sim = new Simulator(scaled, simOptions);
  sim.setup();
  let forkNs = 0;
  const cowByInterval = new Float64Array(outIntervals);
  const newByInterval = new Float64Array(outIntervals);
  for (let i = 0; !sim.done; i++) {
    const obs = sim.step();
    if (i < forkIdx) continue; // populate
    if (i === forkIdx) {
      forkNs = obs.timeNs ?? 0;
      continue;
    }
    const m = stepAt[i - forkIdx - 1];
    if (m === undefined) continue;
    for (const e of Object.values(obs.events)) {
      cowByInterval[m] = cowByInterval[m]! + (e.copies ?? 0) * PAGE_BYTES;
      newByInterval[m] = newByInterval[m]! + (e.zeroFills ?? 0) * PAGE_BYTES;
    }
  }
  const simMs = performance.now() - t0;
  const points: PredictPoint[] = [{ tS: 0, cowBytes: 0, newBytes: 0 }];
  let cow = 0;
  let fresh = 0;
  for (let b = 0; b < buckets; b++) {
    const m = bucketEnd(b) - 1;
    cow += cowByInterval[m]!;
    fresh += newByInterval[m]!;
    points.push({ tS: ((m + 1) * intervalMs) / 1000, cowBytes: cow, newBytes: fresh });
  }
  const residentBytes = residentPages * PAGE_BYTES;
  const fork = options.forkCost
    ? { ms: (options.forkCost.baseNs + (options.forkCost.perGiBNs * residentBytes) / GiB) / 1e6, source: options.forkCost.source }
    : {
        ms: forkNs / 1e6,
        source: `the simulator's cost model (forkBaseNs ${simOptions.costModel.constants.forkBaseNs} + forkPerPageNs ${simOptions.costModel.constants.forkPerPageNs} per page-table entry${isCalibrated(simOptions.costModel) ? ', calibrated' : ', uncalibrated defaults'})`,
      };
  return {
    name: trace.name,
    scaleMemory: k,
    scaleRate: rate,
    snapshotSeconds,
    intervalMs,
    residentBytes,
    regionBytes: specs.reduce((n, r) => n + r.pages * PAGE_BYTES, 0),
    fork,
    points,
    cowBytes: cow,
    newBytes: fresh,
    writtenBytes: distinct.reduce((n, s) => n + s.size, 0) * PAGE_BYTES,
    simMs,
    notes,
  };
}

/**
 * Fork cost on this host: cowlab forks itself (fork + exec of /bin/true; the fork call is
 * timed) with `smallMiB` and `largeMiB` of extra private memory written, `repeats` times each,
 * and fits base + per-GiB through the medians. About a second.
 */
export async function measureForkCost(smallMiB = 64, largeMiB = 512, repeats = 5): Promise<ForkCost> {
  const medianCall = async (mib: number): Promise<number> => {
    const m = mib > 0 ? Mapping.create({ pages: (mib * 2 ** 20) / PAGE_BYTES, thp: 'never' }) : null;
    try {
      if (m) new Uint8Array(m.buffer).fill(1);
      const xs: number[] = [];
      await timeSpawn({ kind: 'fork', program: '/bin/true' }); // warm-up
      for (let i = 0; i < repeats; i++) xs.push((await timeSpawn({ kind: 'fork', program: '/bin/true' })).callNs);
      xs.sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)]!;
    } finally {
      m?.unmap();
    }
  };
  const a = await medianCall(smallMiB);
  const b = await medianCall(largeMiB);
  const perGiBNs = Math.max(0, ((b - a) * 1024) / (largeMiB - smallMiB));
  if (!Number.isFinite(perGiBNs)) throw new CowlabError('ERR_VERIFY', 'fork cost measurement gave no figure');
  return {
    perGiBNs,
    baseNs: Math.max(0, a - (perGiBNs * smallMiB) / 1024),
    source: `measured here: cowlab's fork() at +${smallMiB} MiB and +${largeMiB} MiB written (median of ${repeats}): ${(perGiBNs / 1e6).toFixed(2)} ms per GiB resident`,
  };
}
