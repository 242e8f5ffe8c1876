/** `cowlab simulate`: run a trace through the COW simulator and show what it predicts, step by step. */
import type { Command } from 'commander';

import { countRegion, observationsToJson } from '../../engines/observations.js';
import { describeCostModel, isCalibrated, loadCostModel } from '../../engines/sim/cost.js';
import { simulateTrace } from '../../engines/sim/engine.js';
import { resolveSimOptions, THP_PTE_REUSE, type ResolvedSimOptions, type SimOptions } from '../../engines/sim/options.js';
import type { StepObservation, TraceObservations } from '../../engines/types.js';
import { choiceOption } from '../../options.js';
import { formatCount, formatNs, wrapText } from '../../report/format.js';
import { resolveTraceArg } from '../../trace/scenarios.js';
import { describeSelector } from '../../trace/select.js';
import type { Step, Trace } from '../../trace/types.js';
import { action } from '../run.js';
import { print, printJson, table } from '../output.js';

interface Flags {
  json?: boolean;
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

/** Flags (strings) to simulator options, checked with the flag names. */
function toOptions(f: Flags): ResolvedSimOptions {
  const o: SimOptions = {
    reuse: onOff('--reuse', f.reuse),
    thpPteReuse: f.thpPteReuse as SimOptions['thpPteReuse'],
    faultAroundPages: f.faultAround as unknown as number,
    hugeZeroPage: onOff('--huge-zero-page', f.hugeZeroPage),
  };
  if (f.costModel !== undefined) o.costModel = loadCostModel(f.costModel);
  return resolveSimOptions(o, (k) => FLAG[k]);
}

function describeOptions(o: ResolvedSimOptions): string {
  return [
    `reuse ${o.reuse ? 'on' : 'off'}`,
    `THP PTE reuse ${o.thpPteReuse}`,
    `fault-around ${o.faultAroundPages} pages`,
    `huge zero page ${o.hugeZeroPage ? 'on' : 'off'}`,
    `pagemap exclusive ${o.pagemapExclusive}`,
  ].join(', ');
}

/** "write 0..512", "fork -> c1", "mprotect r 0..8/2", "setup". */
function opCell(trace: Trace, s: StepObservation): string {
  if (s.step < 0) return 'setup';
  const step: Step = trace.steps[s.step]!;
  switch (step.op) {
    case 'fork': return `fork -> ${step.child}`;
    case 'write':
    case 'read': return `${step.op} ${describeSelector(step.pages)}`;
    case 'mprotect': return `mprotect ${step.prot}${step.pages ? ` ${describeSelector(step.pages)}` : ''}`;
    default: return step.op;
  }
}

/** Every process the trace creates, in order of birth. */
function processNames(trace: Trace): string[] {
  return ['p0', ...trace.steps.flatMap((s) => (s.op === 'fork' ? [s.child] : []))];
}

function printTable(obs: TraceObservations, options: ResolvedSimOptions): void {
  const trace = obs.trace;
  print(`simulate: ${trace.name}`);
  for (const line of wrapText(trace.description ?? '', 96)) print(`  ${line}`);
  print(`model: Linux 6.18 COW paths; ${describeOptions(options)}`);
  print(`cost model: ${describeCostModel(options.costModel)}`);
  for (const r of trace.regions) {
    const extras = [r.thp ? 'THP' : '', ...r.advice].filter(Boolean).join(', ');
    print(`region ${r.id}: ${formatCount(r.pages)} pages, ${r.map} ${r.backing}${extras ? ` (${extras})` : ''}, populate ${r.populate}`);
  }
  print();
  const procs = processNames(trace);
  const head = ['step', 'op', 'proc', 'region', 'copies', 'reuses', 'zeroFills', 'faults', 'frames', 'time', ...procs];
  const rows: (string | number)[][] = [];
  for (const s of obs.steps) {
    trace.regions.forEach((r, i) => {
      const e = s.events[r.id]!;
      const first = i === 0;
      rows.push([
        first ? (s.step < 0 ? 'setup' : String(s.step)) : '',
        first ? opCell(trace, s) : '',
        first ? s.proc : '',
        r.id,
        formatCount(e.copies), formatCount(e.reuses), formatCount(e.zeroFills), formatCount(e.faults),
        formatCount(s.frames[r.id]),
        first ? formatNs(s.timeNs) : '',
        ...procs.map((p) => {
          const ro = s.processes[p]?.[r.id];
          if (!ro) return '-';
          const c = countRegion(ro);
          return `${c.present}/${c.shared}/${c.exclusive}/${c.zeroPage}`;
        }),
      ]);
    });
  }
  const align = head.map((_, i) => (i === 1 || i === 2 || i === 3 ? 'left' : 'right') as 'left' | 'right');
  print(table(head, rows, align));
  print();
  print('per process: present/shared/exclusive/zeroPage pages ("-": not alive). Events are the acting');
  print("process's faults: copies (new frame for a shared page), reuses (made writable in place), zeroFills");
  print('(fresh page where none or the zero page was), faults (all, including those). frames: distinct');
  print('physical frames mapped by live processes, zero page excluded. time: predicted by the cost model.');
  if (!isCalibrated(options.costModel)) print('note: the cost model is uncalibrated: times are rough estimates, not measurements.');
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('run a trace through the COW simulator: per step copies, reuses, zero-fills, faults, page states')
    .argument('<trace>', 'a built-in scenario name (see `cowlab scenarios`) or a trace JSON file (docs/trace.md)')
    .option('--json', 'print one JSON document: model, then observations with page counts and page lists')
    .option('--reuse <on|off>', 'reuse a COW page nobody else references on write fault (off: always copy)', 'on')
    .option('--thp-pte-reuse <mode>', `reuse pages of a split huge page: ${THP_PTE_REUSE.join(' | ')}`, 'per-page')
    .option('--fault-around <pages>', 'pages a shmem/memfd read fault maps around it (fault_around_bytes / 4096)', '16')
    .option('--huge-zero-page <on|off>', 'reads of untouched huge-page-able memory map the huge zero page', 'on')
    .option('--cost-model <file>', 'time constants from a calibration run (default: uncalibrated estimates)')
    .addHelpText(
      'after',
      `
What it does:
  Replays the trace on a model of the Linux 6.18 memory manager, no real memory involved:
  frames with reference and map counts, per-process page tables, the zero page, a page cache
  for memfd/shared memory. fork copies page table entries only for private memory that was
  ever written (it has an anon_vma) and makes them read-only in both processes; a store to a
  read-only page then copies it, or reuses it in place when nobody else references it; a
  store over nothing or the zero page zero-fills. Shared mappings are never copied. THP:
  a COW store splits the 2 MiB mapping and copies 4 KiB.

  After every step it prints what pagemap would show (present, shared, exclusive, zero page
  per process), the acting process's faults by kind, the region's distinct frames, and the
  step's predicted time. \`cowlab validate\` compares exactly these against real processes.

Model options (defaults match this kernel; change them to model another):
  --reuse off             copy on every write fault (no kernel does this: it exists to show
                          validation failing)
  --thp-pte-reuse never   kernels before 6.15 copy every page of a split huge page
  --fault-around 1        no fault-around (fault_around_bytes = 4096)

Examples:
  cowlab scenarios
  cowlab simulate fork-child-writes-all
  cowlab simulate thp-fork-write --thp-pte-reuse never
  cowlab simulate my-trace.json --json`,
    )
    .action(
      action((arg: string, flags: Flags) => {
        const options = toOptions(flags);
        const trace = resolveTraceArg(arg);
        const obs = simulateTrace(trace, options);
        if (flags.json) {
          const { costModel, checkInvariants: _, ...model } = options;
          printJson({
            model: { ...model, costModel: { calibrated: isCalibrated(costModel), description: describeCostModel(costModel), ...costModel } },
            ...observationsToJson(obs, { pages: true }),
          });
        } else {
          printTable(obs, options);
        }
      }),
    );
}
