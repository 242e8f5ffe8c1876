/**
 * The engines the suite runs on, made available to experiments (src/suite/engines.ts). Imported
 * once by experiments/index.ts. The simulator models the kernel the suite runs on (its profile:
 * src/engines/sim/profiles.ts; in a guest, the guest's kernel) and uses the calibrated cost
 * model when there is one (~/.config/cowlab/cost-model.json, as `cowlab simulate` and
 * `validate` do).
 */
import { chooseCostModel } from '../src/calibrate/store.js';
import { KernelEngine } from '../src/engines/kernel/engine.js';
import { RegionEngine } from '../src/engines/region/engine.js';
import { profileFor, SimEngine } from '../src/engines/sim/index.js';
import { environment } from '../src/env/environment.js';
import { runningKernelFacts } from '../src/kernels/facts.js';
import { registerEngine } from '../src/suite/engines.js';

registerEngine('sim', () => new SimEngine({ ...profileFor(runningKernelFacts(environment())).options, costModel: chooseCostModel().model }));
registerEngine('kernel', () => new KernelEngine());
registerEngine('region', () => new RegionEngine());
