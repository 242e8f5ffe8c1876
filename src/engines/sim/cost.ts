/**
 * The simulator's time prediction: a handful of constants, one per kind of event, measured
 * on the kernel engine by a calibration run and stored as JSON (a CostModel). Without one the
 * simulator uses DEFAULT_COST_MODEL: rough figures for this class of VM, marked uncalibrated
 * (measuredAt null) so every output can say its times are guesses.
 *
 *   forkBaseNs      the fork() call itself, with no page table to copy
 *   forkPerPageNs   per page table entry fork copies (a PTE, or a PMD for a whole THP)
 *   copyNs          a write fault that copies a 4 KiB page (COW copy, memfd private fill)
 *   reuseNs         a write fault that makes a COW page writable in place
 *   zeroFillNs      a fault that allocates and clears a fresh 4 KiB page
 *   hugeZeroFillNs  a fault that allocates and clears a 2 MiB huge page
 *   faultNs         any other fault: mapping the zero page or a page-cache page
 *   accessNs        a load or store that takes no fault (includes the timer's own cost)
 */
import { readFileSync, statSync } from 'node:fs';

import { zod } from '../../util/lazyZod.js';

import { CowlabError } from '../../errors.js';
import { issueText } from '../../trace/schema.js';

export interface CostConstants {
  forkBaseNs: number;
  forkPerPageNs: number;
  copyNs: number;
  reuseNs: number;
  zeroFillNs: number;
  hugeZeroFillNs: number;
  faultNs: number;
  accessNs: number;
}

export interface CostModel {
  version: 1;
  /** The machine the constants were measured on (kernel, CPU, THP mode, ...). */
  env: Record<string, string | number | boolean | null>;
  constants: CostConstants;
  /** ISO time of the calibration run; null for the uncalibrated defaults. */
  measuredAt: string | null;
}

/**
 * Uncalibrated defaults, from the figures in docs/contributing.md for this Firecracker VM
 * (a warm COW fault 5-6 µs per 4 KiB page) and rough ratios between fault kinds. Use them
 * for orders of magnitude only; `cowlab calibrate` replaces them with measurements.
 */
export const DEFAULT_COST_MODEL: CostModel = Object.freeze({
  version: 1,
  env: { note: 'uncalibrated defaults (rough figures for a Firecracker VM, kernel 6.18)' },
  constants: Object.freeze({
    forkBaseNs: 150_000,
    forkPerPageNs: 15,
    copyNs: 5_500,
    reuseNs: 1_500,
    zeroFillNs: 3_500,
    hugeZeroFillNs: 250_000,
    faultNs: 1_500,
    accessNs: 30,
  }),
  measuredAt: null,
}) as CostModel;

export function isCalibrated(model: CostModel): boolean {
  return model.measuredAt !== null;
}

/** One line for reports: where the constants come from. */
export function describeCostModel(model: CostModel): string {
  if (!isCalibrated(model)) return 'uncalibrated defaults (times are rough estimates)';
  const kernel = model.env.kernel;
  return `calibrated ${model.measuredAt}${typeof kernel === 'string' ? ` on kernel ${kernel}` : ''}`;
}

/** The cost model schema, built on first use (importing cowlab builds no schema). */
function costModelSchema() {
  const z = zod();
  const ns = z.number().min(0).finite();
  return z.strictObject({
    version: z.literal(1),
    env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).default({}),
    constants: z.strictObject({
      forkBaseNs: ns,
      forkPerPageNs: ns,
      copyNs: ns,
      reuseNs: ns,
      zeroFillNs: ns,
      hugeZeroFillNs: ns.default(DEFAULT_COST_MODEL.constants.hugeZeroFillNs),
      faultNs: ns,
      accessNs: ns,
    }),
    measuredAt: z.string().min(1).nullable(),
  });
}

/** Checks a cost model document; errors name the field (`costModel.constants.copyNs: ...`). */
export function parseCostModel(input: unknown, source?: string): CostModel {
  const r = costModelSchema().safeParse(input, { reportInput: true });
  if (r.success) return r.data;
  const { field, message } = issueText(r.error.issues[0]!, ['costModel'], 'number');
  return invalidCostModel(field, `${message}${source ? ` (in ${source})` : ''}`);
}

function invalidCostModel(field: string, message: string): never {
  throw new CowlabError('ERR_INVALID_OPTION', `${field}: ${message}`, { field });
}

/** Reads a cost model JSON file (as written by `cowlab calibrate`). */
/** The largest cost model file read (they are a few hundred bytes). */
export const MAX_COST_MODEL_BYTES = 1024 * 1024;

export function loadCostModel(path: string, field = 'costModel'): CostModel {
  let text: string;
  try {
    // A cost model is a few hundred bytes: a device, a FIFO or a huge file is not one.
    const st = statSync(path);
    if (!st.isFile()) return invalidCostModel(field, `cannot read '${path}': not a regular file`);
    if (st.size > MAX_COST_MODEL_BYTES) return invalidCostModel(field, `cannot read '${path}': ${st.size} bytes, more than a cost model's ${MAX_COST_MODEL_BYTES}`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return invalidCostModel(field, `cannot read '${path}': ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return invalidCostModel(field, `not valid JSON: ${(err as Error).message} (in ${path})`);
  }
  return parseCostModel(json, path);
}
