/**
 * The simulator's model as CLI flags, shared by `simulate` and `validate`. Every model switch
 * comes from the kernel profile of the kernel under test (profiles.ts); a flag given on the
 * command line overrides that one switch, and `--profile <release>` picks another kernel's
 * profile outright. What was chosen, and why, is printed with every result.
 */
import type { Command } from 'commander';

import { chooseCostModel, type ChosenCostModel } from '../calibrate/store.js';
import { describeCostModel } from '../engines/sim/cost.js';
import {
  HUGE_ZERO_WRITE,
  MPROTECT_UPGRADE,
  PAGEMAP_EXCLUSIVE,
  PMD_EXCLUSIVE,
  resolveSimOptions,
  SWAP_DEVICES,
  SWAPIN_WRITABLE,
  THP_PTE_REUSE,
  type ResolvedSimOptions,
  type SimOptions,
} from '../engines/sim/options.js';
import { profileFor, type KernelProfile, type ProfileSwitch } from '../engines/sim/profiles.js';
import { invalidOption } from '../errors.js';
import type { KernelFacts } from '../kernels/facts.js';
import { parseVersion } from '../kernels/version.js';
import { choiceOption } from '../options.js';

export interface SimFlags {
  reuse?: string;
  thpPteReuse?: string;
  faultAround?: string;
  hugeZeroPage?: string;
  pagemapExclusive?: string;
  pmdExclusive?: string;
  hugeZeroWrite?: string;
  mprotectUpgrade?: string;
  swap?: string;
  swapinWritable?: string;
  profile?: string;
  costModel?: string;
}

const FLAG: Record<keyof SimOptions, string> = {
  reuse: '--reuse', thpPteReuse: '--thp-pte-reuse', faultAroundPages: '--fault-around', hugeZeroPage: '--huge-zero-page',
  pagemapExclusive: '--pagemap-exclusive', pmdExclusive: '--pmd-exclusive', hugeZeroWrite: '--huge-zero-write',
  mprotectUpgrade: '--mprotect-upgrade', swap: '--swap', swapinWritable: '--swapin-writable', costModel: '--cost-model',
  checkInvariants: '--check-invariants',
};

/** Which SimFlags field carries each switch (as the user typed it). */
const FLAG_FIELD: Record<ProfileSwitch, keyof SimFlags> = {
  reuse: 'reuse', thpPteReuse: 'thpPteReuse', faultAroundPages: 'faultAround', hugeZeroPage: 'hugeZeroPage',
  pagemapExclusive: 'pagemapExclusive', pmdExclusive: 'pmdExclusive', hugeZeroWrite: 'hugeZeroWrite', mprotectUpgrade: 'mprotectUpgrade',
  swap: 'swap', swapinWritable: 'swapinWritable',
};

const onOff = (flag: string, v: string) => choiceOption(flag, v, ['on', 'off'] as const) === 'on';

export function addSimFlags(cmd: Command): Command {
  const fromProfile = '(default: from the kernel profile)';
  return cmd
    .option('--profile <release>', 'model this kernel release (e.g. 6.1, 6.12.117) instead of the kernel under test')
    .option('--reuse <on|off>', `reuse a COW page nobody else references on write fault (off: always copy) ${fromProfile}`)
    .option('--thp-pte-reuse <mode>', `reuse pages of a split huge page: ${THP_PTE_REUSE.join(' | ')} ${fromProfile}`)
    .option('--huge-zero-write <mode>', `a write to the huge zero page: ${HUGE_ZERO_WRITE.join(' | ')} ${fromProfile}`)
    .option('--pmd-exclusive <mode>', `pagemap's exclusive bit for a PMD-mapped THP: ${PMD_EXCLUSIVE.join(' | ')} ${fromProfile}`)
    .option('--pagemap-exclusive <mode>', `pagemap's exclusive bit for large folios: ${PAGEMAP_EXCLUSIVE.join(' | ')} ${fromProfile}`)
    .option('--mprotect-upgrade <mode>', `mprotect(RW) makes exclusive pages writable: ${MPROTECT_UPGRADE.join(' | ')} ${fromProfile}`)
    .option('--fault-around <pages>', 'pages a shmem/memfd read fault maps around it (fault_around_bytes / 4096) (default: 16)')
    .option('--huge-zero-page <on|off>', `reads of untouched huge-page-able memory map the huge zero page ${fromProfile}`)
    .option('--swap <device>', `the swap reclaim (pageout) writes to: ${SWAP_DEVICES.join(' | ')} (sync-io: zram, pmem) ${fromProfile}`)
    .option('--swapin-writable <mode>', `what a swap-in of an exclusive page maps: ${SWAPIN_WRITABLE.join(' | ')} ${fromProfile}`)
    .option(
      '--cost-model <file>',
      "time constants: a file from `cowlab calibrate`, or 'default' for the uncalibrated estimates " +
        '(default: the calibrated model in ~/.config/cowlab/cost-model.json when there is one)',
    );
}

/** The switches given on the command line (checked), without defaults. */
export function explicitSimOptions(f: SimFlags): Partial<SimOptions> {
  const o: Partial<SimOptions> = {};
  if (f.reuse !== undefined) o.reuse = onOff('--reuse', f.reuse);
  if (f.thpPteReuse !== undefined) o.thpPteReuse = choiceOption('--thp-pte-reuse', f.thpPteReuse, THP_PTE_REUSE);
  if (f.hugeZeroWrite !== undefined) o.hugeZeroWrite = choiceOption('--huge-zero-write', f.hugeZeroWrite, HUGE_ZERO_WRITE);
  if (f.pmdExclusive !== undefined) o.pmdExclusive = choiceOption('--pmd-exclusive', f.pmdExclusive, PMD_EXCLUSIVE);
  if (f.pagemapExclusive !== undefined) o.pagemapExclusive = choiceOption('--pagemap-exclusive', f.pagemapExclusive, PAGEMAP_EXCLUSIVE);
  if (f.mprotectUpgrade !== undefined) o.mprotectUpgrade = choiceOption('--mprotect-upgrade', f.mprotectUpgrade, MPROTECT_UPGRADE);
  if (f.faultAround !== undefined) o.faultAroundPages = f.faultAround as unknown as number;
  if (f.hugeZeroPage !== undefined) o.hugeZeroPage = onOff('--huge-zero-page', f.hugeZeroPage);
  if (f.swap !== undefined) o.swap = choiceOption('--swap', f.swap, SWAP_DEVICES);
  if (f.swapinWritable !== undefined) o.swapinWritable = choiceOption('--swapin-writable', f.swapinWritable, SWAPIN_WRITABLE);
  // Range checks (fault-around a power of two, ...) with the flag names.
  resolveSimOptions(o, (k) => FLAG[k]);
  return o;
}

/** --profile: a release like 6.1 or 6.12.117 (exit 2 for anything else). */
export function forcedProfile(f: SimFlags): KernelProfile | null {
  if (f.profile === undefined) return null;
  if (parseVersion(f.profile) === null || !/^v?\d+\.\d+(\.\d+)?([-+.~].*)?$/.test(f.profile)) {
    throw invalidOption('--profile', `'${f.profile}' is not a kernel release (e.g. 6.1, 6.12, 6.18.44)`);
  }
  return profileFor(f.profile);
}

export interface SimConfig {
  options: ResolvedSimOptions;
  costModel: ChosenCostModel;
  profile: KernelProfile;
  /** Switches the command line set over the profile. */
  overrides: Partial<Record<ProfileSwitch, string>>;
}

/**
 * The simulator for one kernel: its profile (or the forced one), the command line's switches
 * over it, and the cost model. Checks every flag (exit 2) even when the kernel is not known yet:
 * call it early with the host's facts, then again per kernel.
 */
export function simConfigFor(f: SimFlags, kernel: KernelFacts | string): SimConfig {
  const costModel = chooseCostModel(f.costModel, '--cost-model');
  const explicit = explicitSimOptions(f);
  const profile = forcedProfile(f) ?? profileFor(kernel);
  const options = resolveSimOptions({ ...profile.options, ...explicit, costModel: costModel.model }, (k) => FLAG[k]);
  const overrides: SimConfig['overrides'] = {};
  for (const k of Object.keys(explicit) as ProfileSwitch[]) overrides[k] = f[FLAG_FIELD[k]]!;
  return { options, costModel, profile, overrides };
}

/** "profile 6.1 (6.1.192); --reuse off over it" */
export function describeSimConfig(c: SimConfig): string {
  const over = Object.keys(c.overrides).map((k) => `${FLAG[k as ProfileSwitch]} ${c.overrides[k as ProfileSwitch]}`);
  return `profile ${c.profile.name} (${c.profile.version})${over.length ? `, with ${over.join(', ')} over it` : ''}; ${describeSimOptions(c.options)}`;
}

export function describeSimOptions(o: ResolvedSimOptions): string {
  return [
    `reuse ${o.reuse ? 'on' : 'off'}`,
    `THP PTE reuse ${o.thpPteReuse}`,
    `huge zero write ${o.hugeZeroWrite}`,
    `PMD exclusive ${o.pmdExclusive}`,
    `pagemap exclusive ${o.pagemapExclusive}`,
    `mprotect upgrade ${o.mprotectUpgrade}`,
    `fault-around ${o.faultAroundPages} pages`,
    `huge zero page ${o.hugeZeroPage ? 'on' : 'off'}`,
    `swap ${o.swap}`,
    `swap-in writable ${o.swapinWritable}`,
  ].join(', ');
}

/** The profile and overrides as JSON (validate, simulate --json). */
export function simConfigJson(c: SimConfig): Record<string, unknown> {
  const { costModel: _, checkInvariants: __, ...model } = c.options;
  return { profile: c.profile, overrides: c.overrides, simOptions: model };
}

export function describeChosenCostModel(c: ChosenCostModel): string {
  return `${describeCostModel(c.model)}${c.path ? ` (${c.path})` : ''}`;
}
