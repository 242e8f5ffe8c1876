/**
 * Which engines the suite can use. experiments/engines.ts registers the simulator, the kernel
 * engine and the region engine; experiments that need an engine that is not registered are not
 * measurable, and say which. (Whether an engine can run a given trace on this machine is its
 * own supports().)
 */
import type { Engine, EngineName } from '../engines/types.js';

const DESCRIPTIONS: Record<EngineName, string> = {
  sim: 'the simulator',
  kernel: 'the kernel engine',
  region: 'the region manager',
};

const registered = new Map<EngineName, () => Engine>();

/** Makes an engine available to experiments (a factory: engines may hold resources). */
export function registerEngine(name: EngineName, create: () => Engine): void {
  registered.set(name, create);
}

/** Makes an engine unavailable again (tests; a host that must not use it); returns its factory. */
export function unregisterEngine(name: EngineName): (() => Engine) | undefined {
  const create = registered.get(name);
  registered.delete(name);
  return create;
}

export function engineAvailable(name: EngineName): boolean {
  return registered.has(name);
}

/** A fresh instance of a registered engine; throws for one that is not. */
export function createEngine(name: EngineName): Engine {
  const create = registered.get(name);
  if (!create) throw new Error(`${DESCRIPTIONS[name]} is not available`);
  return create();
}

/** "the simulator and the region manager" */
export function describeEngines(names: readonly EngineName[]): string {
  const d = names.map((n) => DESCRIPTIONS[n]);
  return d.length <= 1 ? (d[0] ?? '') : `${d.slice(0, -1).join(', ')} and ${d[d.length - 1]}`;
}
