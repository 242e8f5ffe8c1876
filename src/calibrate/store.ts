/**
 * Where a calibrated cost model lives. `cowlab calibrate` writes it; simulate and validate use
 * it when it exists, and always say which model their times come from.
 *   $COWLAB_COST_MODEL, else $XDG_CONFIG_HOME/cowlab/cost-model.json (~/.config/...).
 * A $COWLAB_COST_MODEL that names no readable model is an error (exit 2), never a silent
 * fall-back to the built-in defaults; only the default location may be absent.
 */
import { existsSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

import { DEFAULT_COST_MODEL, loadCostModel, type CostModel } from '../engines/sim/cost.js';
import { invalidOption } from '../errors.js';
import { checkOutputFile, writeFileAtomic } from '../util/files.js';

/** The environment variable naming the cost model file. */
export const COST_MODEL_ENV = 'COWLAB_COST_MODEL';

/** A cost model is about 1 KiB; anything near this is not one (and /dev/zero never ends). */
const MAX_COST_MODEL_BYTES = 1 << 20;

/** loadCostModel, refusing a device, a pipe or an oversized file before reading a byte. */
function loadCheckedCostModel(path: string, field?: string): CostModel {
  let st;
  try {
    st = statSync(path);
  } catch {
    return loadCostModel(path, field); // it says why the file cannot be read
  }
  if (!st.isFile()) throw invalidOption(field ?? 'costModel', `cannot read '${path}': ${st.isDirectory() ? 'it is a directory' : 'not a regular file'}`);
  if (st.size > MAX_COST_MODEL_BYTES) throw invalidOption(field ?? 'costModel', `cannot read '${path}': ${st.size} bytes, more than the ${MAX_COST_MODEL_BYTES} a cost model may be`);
  return loadCostModel(path, field);
}

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
  if (explicit !== undefined) return { model: loadCheckedCostModel(explicit, field), path: explicit };
  const fromEnv = process.env[COST_MODEL_ENV];
  if (fromEnv) return { model: loadCheckedCostModel(fromEnv, COST_MODEL_ENV), path: fromEnv };
  const path = defaultCostModelPath();
  return existsSync(path) ? { model: loadCheckedCostModel(path), path } : { model: DEFAULT_COST_MODEL, path: null };
}

/** Where a cost model will be written, and the name to blame when that path is wrong. */
export interface CostModelOutput {
  /** Absolute path of the file. */
  path: string;
  /** `--out`, `COWLAB_COST_MODEL`, `XDG_CONFIG_HOME` or `HOME`: what chose the path. */
  field: string;
  /** Only cowlab's own default location gets its directories made. */
  createParents: boolean;
}

/**
 * Chooses and checks where a cost model goes (`out`, else $COWLAB_COST_MODEL, else the default
 * location), creating nothing: call it before measuring, so a bad path exits 2 at once. The
 * directory of an explicit path must exist; only the default ~/.config/cowlab is created.
 */
export function costModelOutput(out?: string, field = '--out'): CostModelOutput {
  let target: CostModelOutput;
  if (out !== undefined) target = { path: out, field, createParents: false };
  else if (process.env[COST_MODEL_ENV]) target = { path: process.env[COST_MODEL_ENV]!, field: COST_MODEL_ENV, createParents: false };
  else target = { path: defaultCostModelPath(), field: process.env.XDG_CONFIG_HOME ? 'XDG_CONFIG_HOME' : 'HOME', createParents: true };
  const path = checkOutputFile(target.path, target.field, { createParents: target.createParents, suggest: 'cost-model.json' });
  return { ...target, path };
}

/**
 * Writes the model atomically (a half-written model must never be loaded): a temporary file
 * beside the target, renamed over it, removed on failure. `to` is a checked output
 * (costModelOutput) or a path (its directory must exist); by default $COWLAB_COST_MODEL or
 * the default location. Returns the path written.
 */
export function saveCostModel(model: CostModel, to?: string | CostModelOutput): string {
  const out = typeof to === 'object' ? to : costModelOutput(to, 'path');
  return writeFileAtomic(out.path, `${JSON.stringify(model, null, 2)}\n`, out.field, { createParents: out.createParents, suggest: 'cost-model.json' });
}
