/**
 * The kernels a command runs on: `host` (this machine, no guest) or a kernel booted in a QEMU
 * guest. Every spec is parsed and every guest kernel obtained before anything runs, so a bad
 * spec fails at once (exit 2) and a matrix never stops half way for a typo.
 */
import type { KernelSpec } from './spec.js';
import { parseKernelList } from './spec.js';
import { obtainKernel, type Say } from './obtain.js';
import type { CachedKernel } from './store.js';

export interface KernelTarget {
  spec: KernelSpec;
  /** How results name it: the spec as the user wrote it ("host", "debian:6.1"). */
  label: string;
  /** Null for the host; the kernel to boot otherwise. */
  kernel: CachedKernel | null;
}

export const HOST_TARGET: KernelTarget = { spec: { kind: 'host', text: 'host' }, label: 'host', kernel: null };

/** `--kernel` values (repeatable, comma lists) to targets; none given: the host alone. */
export async function resolveTargets(values: readonly string[] | undefined, say: Say = () => {}): Promise<KernelTarget[]> {
  const specs = parseKernelList(values ?? []);
  if (specs.length === 0) return [HOST_TARGET];
  const out: KernelTarget[] = [];
  for (const spec of specs) {
    if (spec.kind === 'host') out.push(HOST_TARGET);
    else out.push({ spec, label: spec.text, kernel: await obtainKernel(spec, { say: (l) => say(`${spec.text}: ${l}`) }) });
  }
  return out;
}
