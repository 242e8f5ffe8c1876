/** Engines by name, for the CLI and validate: `--engines sim,kernel`. */
import { invalidOption } from '../errors.js';
import { KernelEngine } from './kernel/engine.js';
import { RegionEngine } from './region/engine.js';
import { SimEngine } from './sim/engine.js';
import type { SimOptions } from './sim/options.js';
import type { Engine, EngineName } from './types.js';

export const ENGINE_NAMES: readonly EngineName[] = ['sim', 'kernel', 'region'];

/** "sim,kernel" -> ['sim', 'kernel']: known names, no repeats, at least `min`. */
export function parseEngineList(text: string, field = 'engines', min = 2): EngineName[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(ENGINE_NAMES as readonly string[]).includes(n)) {
      throw invalidOption(field, `unknown engine '${n}'; engines: ${ENGINE_NAMES.join(', ')}`);
    }
  }
  if (new Set(names).size !== names.length) throw invalidOption(field, `an engine is listed twice in '${text}'`);
  if (names.length < min) throw invalidOption(field, `needs at least ${min} engines to compare, got '${text}'`);
  return names as EngineName[];
}

export interface EngineConfig {
  sim?: SimOptions;
}

export function createEngine(name: EngineName, config: EngineConfig = {}): Engine {
  switch (name) {
    case 'sim': return new SimEngine(config.sim ?? {});
    case 'kernel': return new KernelEngine();
    case 'region': return new RegionEngine();
  }
}
