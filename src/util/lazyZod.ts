/**
 * zod, loaded on first use rather than when cowlab is imported: only parsing a trace or a
 * cost model needs it, and a process that only measures should not carry it.
 */
import { createRequire } from 'node:module';

import type { z as Z } from 'zod';

let loaded: typeof Z | undefined;

export function zod(): typeof Z {
  return (loaded ??= (createRequire(import.meta.url)('zod') as { z: typeof Z }).z);
}
