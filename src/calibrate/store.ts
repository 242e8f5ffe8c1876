/**
 * Where a calibrated cost model lives. `cowlab calibrate` writes it; simulate and validate use
 * it when it exists, and always say which model their times come from.
 *   $COWLAB_COST_MODEL, else $XDG_CONFIG_HOME/cowlab/cost-model.json (~/.config/...).
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';

import { DEFAULT_COST_MODEL, loadCostModel, type CostModel } from '../engines/sim/cost.js';

export function defaultCostModelPath(): string {
  if (process.env.COWLAB_COST_MODEL) return process.env.COWLAB_COST_MODEL;
  const config = process.env.XDG_CONFIG_HOME || join(os.homedir(), '.config');
  return join(config, 'cowlab', 'cost-model.json');
}

export interface ChosenCostModel {
  model: CostModel;
  /** The file it came from; null for the built-in uncalibrated defaults. */
  path: string | null;
}

/**
 * The cost model to predict with: `explicit` ('default' for the uncalibrated built-in, or a
 * file), else the calibrated one at the default path when there is one, else the built-in.
 */
export function chooseCostModel(explicit?: string, field = 'costModel'): ChosenCostModel {
  if (explicit === 'default') return { model: DEFAULT_COST_MODEL, path: null };
  if (explicit !== undefined) return { model: loadCostModel(explicit, field), path: explicit };
  const path = defaultCostModelPath();
  return existsSync(path) ? { model: loadCostModel(path), path } : { model: DEFAULT_COST_MODEL, path: null };
}

/** Writes the model atomically (a half-written model must never be loaded). */
export function saveCostModel(model: CostModel, path = defaultCostModelPath()): string {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(model, null, 2)}\n`);
  renameSync(tmp, path);
  return path;
}
