/** Whether this machine meets an experiment's requirements, and if not, why (one line). */
import { emulatedCpu, type Environment } from '../env/environment.js';
import { anonThpUnavailable } from '../env/thp.js';
import { formatBytes } from '../report/format.js';
import { describeEngines, engineAvailable } from './engines.js';
import type { Requirements } from './types.js';

/** Null when every requirement is met; otherwise the reason the experiment is not measurable. */
export function unmetRequirement(req: Requirements, env: Environment, memoryLimitBytes: number): string | null {
  const missing = (req.engines ?? []).filter((e) => !engineAvailable(e));
  if (missing.length > 0) return `needs ${describeEngines(missing)} (not available)`;
  if (req.root) {
    const p = env.privileges;
    if (!p.pfnVisible) return `needs root: ${p.pfnReason}`;
    if (!p.kpagecount) return `needs root: ${p.kpagecountReason}`;
    if (!p.kpageflags) return `needs root: ${p.kpageflagsReason}`;
  }
  if (req.thp) {
    const missing = anonThpUnavailable(env.thp);
    if (missing === 'absent') return 'needs transparent huge pages: this kernel has none (no /sys/kernel/mm/transparent_hugepage)';
    if (missing === 'never') return 'needs transparent huge pages: THP is disabled (transparent_hugepage/enabled is never)';
  }
  if (req.measuresTime && emulatedCpu(env)) {
    return 'its verdict rests on measured time, and this is an emulated CPU (a TCG guest): times here are not meaningful';
  }
  if (req.minMemoryBytes !== undefined && memoryLimitBytes < req.minMemoryBytes) {
    return `needs ${formatBytes(req.minMemoryBytes)} of memory; half of MemAvailable is ${formatBytes(memoryLimitBytes)}`;
  }
  return null;
}

/** The requirements in words (cowlab list). */
export function describeRequirements(req: Requirements): string {
  const parts: string[] = [];
  if (req.engines?.length) parts.push(`${describeEngines(req.engines)}`);
  if (req.root) parts.push('root (PFNs, kpagecount)');
  if (req.thp) parts.push('THP not never');
  if (req.minMemoryBytes !== undefined) parts.push(`>= ${formatBytes(req.minMemoryBytes)} memory`);
  if (req.measuresTime) parts.push('a real (not emulated) CPU');
  return parts.length ? parts.join(', ') : 'nothing special';
}
