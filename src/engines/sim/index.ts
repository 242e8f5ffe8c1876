/** The COW simulator: a model of the Linux memory manager's COW paths (see simulator.ts), with a
 *  profile per kernel behaviour that changed between releases (profiles.ts). */
export { SimEngine, simulateTrace } from './engine.js';
export { Simulator, type SimState, type ProcessState, type VmaState, type FrameTable } from './simulator.js';
export { checkInvariants } from './invariants.js';
export {
  resolveSimOptions,
  DEFAULT_SIM_OPTIONS,
  THP_PTE_REUSE,
  PAGEMAP_EXCLUSIVE,
  PMD_EXCLUSIVE,
  HUGE_ZERO_WRITE,
  MPROTECT_UPGRADE,
  type SimOptions,
  type ResolvedSimOptions,
  type ThpPteReuse,
  type PagemapExclusive,
  type PmdExclusive,
  type HugeZeroWrite,
  type MprotectUpgrade,
} from './options.js';
export {
  BEHAVIOURS,
  KNOBS,
  profileFor,
  profileTable,
  type Behaviour,
  type Change,
  type Knob,
  type KernelProfile,
  type ProfileEntry,
  type ProfileSwitch,
} from './profiles.js';
export {
  DEFAULT_COST_MODEL,
  loadCostModel,
  parseCostModel,
  isCalibrated,
  describeCostModel,
  type CostModel,
  type CostConstants,
} from './cost.js';
export { FRAME_UNUSED, FRAME_USED, FRAME_FREED, HPAGE_PMD_NR } from './physmem.js';
export { PTE_PRESENT, PTE_WRITE, PTE_SPECIAL, PTE_HUGE, PTE_DIRTY, PMD_NONE, PMD_TABLE, PMD_HUGE, PMD_HUGE_ZERO } from './vm.js';
