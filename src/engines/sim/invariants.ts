/**
 * The model's invariants, recomputed from the page tables alone (independently of the
 * counters the handlers keep), as the kernel's own accounting demands:
 *
 *   - a folio's refcount equals its mappings (PTEs of its pages, PMDs of the whole folio)
 *     plus one if a page cache holds it;
 *   - a page's mapcount equals the PTEs that map it, a folio's entire mapcount the PMDs;
 *   - a frame is freed exactly when its refcount reaches zero: a used frame has references,
 *     a freed one has none, and no entry points to a freed (or never allocated) frame;
 *   - a writable entry in a private mapping maps an anonymous page exclusive to its process
 *     (else a store would skip the COW fault), and a page marked exclusive is mapped once;
 *   - a shared mapping maps exactly its region's page-cache pages;
 *   - a process that exited maps nothing;
 *   - a swap slot's count equals the swap entries that hold it, a swap entry holds a slot in
 *     use, and a swap-cache folio holds one reference and is anonymous.
 */
import { FRAME_FREED, FRAME_USED, HPAGE_PMD_NR } from './physmem.js';
import type { SimState } from './simulator.js';
import { PMD_HUGE, PMD_HUGE_ZERO, PMD_NONE, PMD_SHIFT_PAGES, PTE_HUGE, PTE_PRESENT, PTE_SPECIAL, PTE_SWAP, PTE_WRITE } from './vm.js';

const MAX_PROBLEMS = 20;

/** Returns the broken invariants (empty when all hold), each as one sentence. */
export function checkInvariants(s: SimState): string[] {
  const problems: string[] = [];
  const problem = (p: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const f = s.frames;
  const n = f.top + 1;
  const refs = new Int32Array(n);
  const ptes = new Int32Array(n);
  const pmds = new Int32Array(n);
  const usable = (p: number) => p >= 1 && p <= f.top && f.frameState[p] === FRAME_USED;
  const slotHolders = new Int32Array(s.swap?.count.length ?? 0);

  for (const proc of s.processes) {
    if (!proc.alive) {
      if (proc.vmas.some((v) => v !== null)) problem(`${proc.name} exited but still has VMAs`);
      continue;
    }
    proc.vmas.forEach((vma, r) => {
      if (vma === null) return;
      const where = `${proc.name}/${s.regions[r]!.id}`;
      const cache = s.pageCache[r] ?? null;
      const pages = vma.pfn.length;
      for (let chunk = 0; chunk < vma.pmd.length; chunk++) {
        const start = chunk << PMD_SHIFT_PAGES;
        const end = Math.min(start + HPAGE_PMD_NR, pages);
        const pmd = vma.pmd[chunk]!;
        if (pmd === PMD_HUGE || pmd === PMD_HUGE_ZERO) {
          const head = vma.pfn[start]!;
          for (let i = start; i < end; i++) {
            const fl = vma.flags[i]!;
            const mirror = pmd === PMD_HUGE ? vma.pfn[i] === head + (i - start) : (fl & PTE_SPECIAL) !== 0;
            if ((fl & (PTE_PRESENT | PTE_HUGE)) !== (PTE_PRESENT | PTE_HUGE) || !mirror) {
              problem(`${where} page ${i}: entry does not mirror its huge PMD`);
              break;
            }
          }
          if (pmd === PMD_HUGE_ZERO) {
            if ((vma.flags[start]! & PTE_WRITE) !== 0) problem(`${where} chunk ${chunk}: huge zero page mapped writable`);
            continue;
          }
          if (!usable(head) || f.head[head] !== head || f.nrPages[head] !== HPAGE_PMD_NR) {
            problem(`${where} chunk ${chunk}: PMD maps pfn ${head}, not a live huge folio`);
            continue;
          }
          pmds[head]!++;
          refs[head]!++;
          if ((vma.flags[start]! & PTE_WRITE) !== 0 && !vma.shared && (f.anon[head] !== 1 || f.anonExclusive[head] !== 1)) {
            problem(`${where} chunk ${chunk}: writable huge PMD of a page not exclusive to ${proc.name}`);
          }
          continue;
        }
        for (let i = start; i < end; i++) {
          const fl = vma.flags[i]!;
          if ((fl & PTE_SWAP) !== 0) {
            const slot = vma.pfn[i]!;
            if (s.swap === null || slot < 1 || slot >= slotHolders.length) problem(`${where} page ${i}: swap entry of slot ${slot}, which does not exist`);
            else slotHolders[slot]!++;
            continue;
          }
          if ((fl & PTE_PRESENT) === 0) continue;
          if (pmd === PMD_NONE) problem(`${where} page ${i}: present entry without a page table`);
          if ((fl & PTE_HUGE) !== 0) problem(`${where} page ${i}: huge mirror in a page table`);
          if ((fl & PTE_SPECIAL) !== 0) {
            if ((fl & PTE_WRITE) !== 0) problem(`${where} page ${i}: zero page mapped writable`);
            continue;
          }
          const p = vma.pfn[i]!;
          if (!usable(p)) {
            problem(`${where} page ${i}: entry points to ${p >= 1 && p <= f.top && f.frameState[p] === FRAME_FREED ? 'freed' : 'unknown'} frame ${p}`);
            continue;
          }
          ptes[p]!++;
          refs[f.head[p]!]!++;
          if (vma.shared) {
            if (cache === null || cache[i] !== p) problem(`${where} page ${i}: shared mapping of pfn ${p}, not its page-cache page`);
          } else if ((fl & PTE_WRITE) !== 0 && (f.anon[f.head[p]!] !== 1 || f.anonExclusive[p] !== 1)) {
            problem(`${where} page ${i}: writable entry of pfn ${p}, which is not an anonymous page exclusive to ${proc.name}`);
          }
        }
      }
    });
  }

  s.pageCache.forEach((cache, r) => {
    if (cache === null) return;
    for (let i = 0; i < cache.length; i++) {
      const p = cache[i]!;
      if (p === 0) continue;
      if (!usable(p) || f.anon[p] === 1) problem(`page cache of ${s.regions[r]!.id} page ${i}: pfn ${p} is not a live page-cache frame`);
      else refs[p]!++;
    }
  });

  if (s.swap !== null) {
    const { count, cache } = s.swap;
    for (let slot = 1; slot < count.length; slot++) {
      if (count[slot] !== slotHolders[slot]) problem(`swap slot ${slot}: count ${count[slot]} but ${slotHolders[slot]} entries hold it`);
      const p = cache[slot]!;
      if (p === 0) continue;
      if (!usable(p) || f.anon[p] !== 1) problem(`swap slot ${slot}: swap cache holds pfn ${p}, not a live anonymous frame`);
      else refs[p]!++;
    }
  }

  for (let p = 1; p < n; p++) {
    const state = f.frameState[p];
    if (state === FRAME_USED) {
      if (f.mapcount[p] !== ptes[p]) problem(`pfn ${p}: mapcount ${f.mapcount[p]} but ${ptes[p]} PTEs map it`);
      if (f.anonExclusive[p] === 1 && ptes[p]! + pmds[f.head[p]!]! > 1) problem(`pfn ${p}: marked exclusive but mapped ${ptes[p]! + pmds[f.head[p]!]!} times`);
      if (f.head[p] !== p) continue;
      if (f.refcount[p] !== refs[p]) problem(`folio ${p}: refcount ${f.refcount[p]} but ${refs[p]} mappings and page-cache references`);
      if (f.entireMapcount[p] !== pmds[p]) problem(`folio ${p}: entire mapcount ${f.entireMapcount[p]} but ${pmds[p]} PMDs map it`);
      if (f.refcount[p]! <= 0) problem(`folio ${p}: in use with refcount ${f.refcount[p]}`);
    } else if (state === FRAME_FREED) {
      if (f.head[p] === p && f.refcount[p] !== 0) problem(`folio ${p}: freed with refcount ${f.refcount[p]}`);
      if (f.mapcount[p] !== 0 || ptes[p] !== 0) problem(`pfn ${p}: freed but still mapped`);
    } else {
      problem(`pfn ${p}: below top but never allocated`);
    }
  }
  return problems;
}
