/** The simulator's model options as CLI flags, shared by `simulate` and `validate`. */
import type { Command } from 'commander';

import { chooseCostModel, type ChosenCostModel } from '../calibrate/store.js';
import { describeCostModel } from '../engines/sim/cost.js';
import { resolveSimOptions, THP_PTE_REUSE, type ResolvedSimOptions, type SimOptions } from '../engines/sim/options.js';
import { choiceOption } from '../options.js';

export interface SimFlags {
  reuse: string;
  thpPteReuse: string;
  faultAround: string;
  hugeZeroPage: string;
  costModel?: string;
}

const FLAG: Record<keyof SimOptions, string> = {
  reuse: '--reuse', thpPteReuse: '--thp-pte-reuse', faultAroundPages: '--fault-around', hugeZeroPage: '--huge-zero-page',
  pagemapExclusive: '--pagemap-exclusive', costModel: '--cost-model', checkInvariants: '--check-invariants',
};

const onOff = (flag: string, v: string) => choiceOption(flag, v, ['on', 'off'] as const) === 'on';

export function addSimFlags(cmd: Command): Command {
  return cmd
    .option('--reuse <on|off>', 'reuse a COW page nobody else references on write fault (off: always copy)', 'on')
    .option('--thp-pte-reuse <mode>', `reuse pages of a split huge page: ${THP_PTE_REUSE.join(' | ')}`, 'per-page')
    .option('--fault-around <pages>', 'pages a shmem/memfd read fault maps around it (fault_around_bytes / 4096)', '16')
    .option('--huge-zero-page <on|off>', 'reads of untouched huge-page-able memory map the huge zero page', 'on')
    .option(
      '--cost-model <file>',
      "time constants: a file from `cowlab calibrate`, or 'default' for the uncalibrated estimates " +
        '(default: the calibrated model in ~/.config/cowlab/cost-model.json when there is one)',
    );
}

export interface SimConfig {
  options: ResolvedSimOptions;
  costModel: ChosenCostModel;
}

/** Flags (strings) to simulator options, checked with the flag names. */
export function simOptionsFromFlags(f: SimFlags): SimConfig {
  const costModel = chooseCostModel(f.costModel, '--cost-model');
  const options = resolveSimOptions(
    {
      reuse: onOff('--reuse', f.reuse),
      thpPteReuse: f.thpPteReuse as SimOptions['thpPteReuse'],
      faultAroundPages: f.faultAround as unknown as number,
      hugeZeroPage: onOff('--huge-zero-page', f.hugeZeroPage),
      costModel: costModel.model,
    },
    (k) => FLAG[k],
  );
  return { options, costModel };
}

export function describeSimOptions(o: ResolvedSimOptions): string {
  return [
    `reuse ${o.reuse ? 'on' : 'off'}`,
    `THP PTE reuse ${o.thpPteReuse}`,
    `fault-around ${o.faultAroundPages} pages`,
    `huge zero page ${o.hugeZeroPage ? 'on' : 'off'}`,
    `pagemap exclusive ${o.pagemapExclusive}`,
  ].join(', ');
}

export function describeChosenCostModel(c: ChosenCostModel): string {
  return `${describeCostModel(c.model)}${c.path ? ` (${c.path})` : ''}`;
}
