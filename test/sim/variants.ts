/** Simulator option sets the table-driven sim tests run every trace under. */
import type { SimOptions } from '../../src/engines/sim/options.js';

export const SIM_VARIANTS: { name: string; options: SimOptions }[] = [
  { name: 'defaults', options: {} },
  { name: 'reuse off', options: { reuse: false } },
  { name: 'THP PTE reuse never', options: { thpPteReuse: 'never' } },
  { name: 'no fault-around', options: { faultAroundPages: 1 } },
  { name: 'no huge zero page, folio exclusivity', options: { hugeZeroPage: false, pagemapExclusive: 'folio' } },
];
