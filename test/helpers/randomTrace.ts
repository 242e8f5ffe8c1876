/**
 * Seeded random traces that are valid by construction: the generator keeps the same books as
 * the parser (live processes, exec'd ones, inherited regions, read-only pages), so every
 * trace it returns passes parseTrace. For invariant tests over shapes nobody wrote by hand.
 */
import type { PageSelector, RegionSpec, Step, Trace } from '../../src/trace/types.js';
import { mulberry32 } from '../../src/util/prng.js';

interface Proc {
  name: string;
  execd: boolean;
  /** Per region: per-page read-only flags, or null when the process does not map it. */
  prot: (Uint8Array | null)[];
}

const REGION_KINDS: Omit<RegionSpec, 'id' | 'pages' | 'populate'>[] = [
  { map: 'private', backing: 'anon', thp: false, advice: [] },
  { map: 'private', backing: 'anon', thp: true, advice: [] },
  { map: 'private', backing: 'anon', thp: false, advice: ['wipeonfork'] },
  { map: 'private', backing: 'anon', thp: true, advice: ['wipeonfork'] },
  { map: 'private', backing: 'anon', thp: false, advice: ['dontfork'] },
  { map: 'shared', backing: 'anon', thp: false, advice: [] },
  { map: 'private', backing: 'memfd', thp: false, advice: [] },
  { map: 'shared', backing: 'memfd', thp: false, advice: ['dontfork'] },
];

/**
 * `cowHeavy`: only private memory populated by writes, and only fork/write/read/exit, so
 * most writes meet shared pages and many meet pages whose sharers left (copies and reuses).
 */
export function randomTrace(seed: number, opts: { steps?: number; maxPages?: number; cowHeavy?: boolean } = {}): Trace {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(a: readonly T[]): T => a[int(a.length)]!;
  const maxPages = opts.maxPages ?? 1200;

  const regions: RegionSpec[] = [];
  const nRegions = 1 + int(3);
  for (let r = 0; r < nRegions; r++) {
    const kind = opts.cowHeavy ? pick(REGION_KINDS.filter((k) => k.map === 'private' && k.advice.length === 0)) : pick(REGION_KINDS);
    const pages = kind.thp ? 512 * (1 + int(2)) + pick([0, 0, 37]) : 1 + int(maxPages);
    const populate = opts.cowHeavy ? 'write' : pick(['none', 'read', 'write'] as const);
    regions.push({ id: `r${r}`, pages, ...kind, advice: [...kind.advice], populate });
  }

  const procs: Proc[] = [{ name: 'p0', execd: false, prot: regions.map((r) => new Uint8Array(r.pages)) }];
  let born = 0;
  const steps: Step[] = [];
  const nSteps = opts.steps ?? 20 + int(40);

  const selector = (pages: number): PageSelector => {
    switch (int(4)) {
      case 0: {
        const start = int(pages);
        return { start, end: start + 1 + int(pages - start), stride: 1 + int(3) };
      }
      case 1: {
        const list = Array.from({ length: 1 + int(8) }, () => int(pages));
        return { pages: list };
      }
      case 2:
        return { random: 1 + int(pages), seed: int(1000) };
      default:
        return { start: 0, end: pages, stride: 1 };
    }
  };
  const pagesOf = (sel: PageSelector): number[] => {
    if ('pages' in sel) return sel.pages;
    if ('random' in sel) return []; // not needed: random writes are replaced below
    const out: number[] = [];
    for (let i = sel.start; i < sel.end; i += sel.stride ?? 1) out.push(i);
    return out;
  };

  for (let s = 0; s < nSteps; s++) {
    const live = procs.filter(Boolean);
    if (live.length === 0) break;
    const p = pick(live);
    const mapped = p.execd ? [] : regions.map((_, r) => r).filter((r) => p.prot[r] !== null);
    const op = opts.cowHeavy
      ? pick(['fork', 'write', 'write', 'write', 'read', 'exit'] as const)
      : pick(['fork', 'fork', 'fork', 'write', 'write', 'write', 'write', 'write', 'write', 'read', 'read', 'read', 'mprotect', 'exit', 'exit', 'exec'] as const);
    if (p.execd && (op === 'fork' || op === 'exec')) continue; // an exec'd process may only exit
    if (op === 'fork' && procs.length < 4) {
      const child: Proc = {
        name: `c${++born}`,
        execd: p.execd,
        prot: p.prot.map((pr, r) => (pr === null || regions[r]!.advice.includes('dontfork') ? null : pr.slice())),
      };
      procs.push(child);
      steps.push({ op: 'fork', proc: p.name, child: child.name });
    } else if ((op === 'write' || op === 'read') && mapped.length > 0) {
      const r = pick(mapped);
      const region = regions[r]!;
      let sel = selector(region.pages);
      if (op === 'write') {
        // Only writable pages: fall back to a list of writable ones (or skip the step).
        const prot = p.prot[r]!;
        const wanted = 'random' in sel ? null : pagesOf(sel);
        if (wanted === null || wanted.some((i) => prot[i] === 1)) {
          const writable: number[] = [];
          for (let i = 0; i < region.pages; i++) if (prot[i] === 0) writable.push(i);
          if (writable.length === 0) continue;
          sel = { pages: Array.from({ length: 1 + int(16) }, () => pick(writable)) };
        }
      }
      steps.push({ op, proc: p.name, region: region.id, pages: sel });
    } else if (op === 'mprotect' && mapped.length > 0) {
      const r = pick(mapped);
      const region = regions[r]!;
      const prot = rnd() < 0.5 ? 'r' : 'rw';
      const whole = rnd() < 0.5;
      const sel = whole ? undefined : (() => {
        const start = int(region.pages);
        return { start, end: Math.min(region.pages, start + 1 + int(600)), stride: 1 };
      })();
      const pages = sel ? pagesOf(sel) : Array.from({ length: region.pages }, (_, i) => i);
      for (const i of pages) p.prot[r]![i] = prot === 'r' ? 1 : 0;
      steps.push(sel ? { op: 'mprotect', proc: p.name, region: region.id, prot, pages: sel } : { op: 'mprotect', proc: p.name, region: region.id, prot });
    } else if (op === 'exec') {
      p.execd = true;
      steps.push({ op: 'exec', proc: p.name });
    } else if (op === 'exit') {
      procs.splice(procs.indexOf(p), 1);
      steps.push({ op: 'exit', proc: p.name });
    }
  }
  return { name: `random-${seed}`, regions, steps };
}
