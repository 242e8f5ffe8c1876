/**
 * The engines the suite runs on, made available to experiments (src/suite/engines.ts). Imported
 * once by experiments/index.ts. The simulator uses the calibrated cost model when there is one
 * (~/.config/cowlab/cost-model.json, as `cowlab simulate` and `validate` do).
 */
import { chooseCostModel } from '../src/calibrate/store.js';
import { KernelEngine } from '../src/engines/kernel/engine.js';
import { RegionEngine } from '../src/engines/region/engine.js';
import { SimEngine } from '../src/engines/sim/index.js';
import { registerEngine } from '../src/suite/engines.js';

registerEngine('sim', () => new SimEngine({ costModel: chooseCostModel().model }));
registerEngine('kernel', () => new KernelEngine());
registerEngine('region', () => new RegionEngine());
