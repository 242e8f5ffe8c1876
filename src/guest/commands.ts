/**
 * The cowlab commands a guest runs, and how their JSON comes back typed:
 *
 *   observeInGuest   `cowlab observe` (kernel and region engines): observations per trace
 *   envInGuest       `cowlab env --json`
 *   suiteInGuest     `cowlab run --json`: a results document, checked against its schema
 *
 * Each is one boot, however many traces or experiments it carries.
 */
import { CowlabError } from '../errors.js';
import type { Environment } from '../env/environment.js';
import { observationsFromJson } from '../engines/observations.js';
import type { RecordedOutcome } from '../engines/recorded.js';
import type { EngineName } from '../engines/types.js';
import type { ConfigFact, KernelConfig } from '../kernels/config.js';
import type { CachedKernel } from '../kernels/store.js';
import type { Trace } from '../trace/types.js';
import type { ObserveDocument } from '../cli/commands/observe.js';
import { builtinModules, indexModules, moduleKey } from '../kernels/modules.js';
import { findTool, TOOL_PACKAGES, type ToolName } from '../util/tools.js';
import { REQUEST_DIR } from './disk.js';
import { runInGuest, type GuestHooks, type GuestOptions, type GuestResult } from './runner.js';

export interface GuestTarget {
  kernel: CachedKernel;
  options: GuestOptions;
  hooks: GuestHooks;
}

/** How a guest run went, recorded beside what it measured. */
export interface GuestRunInfo {
  accel: 'kvm' | 'tcg';
  accelNote: string | null;
  bootMs: number;
  commandMs: number;
}

const FEATURE_CONFIG: Record<string, { option: ConfigFact; what: string }> = {
  pagemap: { option: 'CONFIG_PROC_PAGE_MONITOR', what: '/proc/<pid>/pagemap' },
  thp: { option: 'CONFIG_TRANSPARENT_HUGEPAGE', what: 'transparent huge pages' },
};

/**
 * Refuses, before anything boots, a kernel whose configuration lacks a feature the command
 * needs (exit 2). A kernel without a known configuration is checked in the guest instead.
 */
export function checkKernelFeatures(kernel: CachedKernel, needs: readonly string[], why: string): void {
  if (!kernel.config.known) return;
  for (const n of needs) {
    const f = FEATURE_CONFIG[n];
    if (f && kernel.config.values[f.option] === null) {
      throw new CowlabError('ERR_KERNEL_FEATURE', `kernel ${kernel.release} has no ${f.what} (${f.option} is not set), which ${why} needs`, { field: '--kernel' });
    }
  }
}

/** The modules of `wanted` the kernel has (as modules or built in); the others are said. */
function availableModules(t: GuestTarget, wanted: readonly string[]): string[] {
  const index = t.kernel.modulesDir === null ? new Map<string, string>() : indexModules(t.kernel.modulesDir);
  const builtin = t.kernel.modulesDir === null ? new Set<string>() : builtinModules(t.kernel.modulesDir);
  return wanted.filter((m) => {
    if (index.has(moduleKey(m)) || builtin.has(moduleKey(m))) return true;
    t.hooks.say?.(`kernel ${t.kernel.release} has no module ${m}: the experiments that need it say so in the guest`);
    return false;
  });
}

function info(r: GuestResult): GuestRunInfo {
  return { accel: r.accel, accelNote: r.accelNote, bootMs: r.bootMs, commandMs: r.commandMs };
}

/** The guest command's stdout as JSON; its failure as an error carrying its own message. */
function jsonResult<T>(t: GuestTarget, r: GuestResult, what: string): T {
  if (r.exitCode !== 0) {
    const said = r.stderr.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('cowlab:')).pop()?.replace(/^cowlab:\s*/, '');
    const message = `${what} failed in the ${t.kernel.release} guest (exit ${r.exitCode}): ${said ?? (r.stderr.trim().split('\n').pop() || 'no message')}`;
    throw new CowlabError(r.exitCode === 2 ? 'ERR_INVALID_OPTION' : 'ERR_GUEST_FAILED', message);
  }
  try {
    return JSON.parse(r.stdout.toString('utf8')) as T;
  } catch (err) {
    throw new CowlabError('ERR_GUEST_FAILED', `${what} in the ${t.kernel.release} guest printed no JSON (${(err as Error).message})`);
  }
}

export interface GuestObservations extends GuestRunInfo {
  env: Environment;
  config: KernelConfig;
  /** Per engine, per trace (the objects passed in). */
  outcomes: Map<EngineName, Map<Trace, RecordedOutcome>>;
}

/** Runs `traces` on `engines` (kernel, region) in the guest: one boot for all of them. */
export async function observeInGuest(t: GuestTarget, traces: readonly Trace[], engines: readonly EngineName[], stepDeadlineMs: number): Promise<GuestObservations> {
  checkKernelFeatures(t.kernel, ['pagemap'], 'observing traces');
  const files: Record<string, string> = {};
  const names = traces.map((trace, i) => {
    const name = `traces/${String(i).padStart(3, '0')}.json`;
    files[name] = JSON.stringify(trace);
    return `${REQUEST_DIR}/${name}`;
  });
  const r = await runInGuest(
    t.kernel,
    { argv: ['observe', ...names, '--engines', engines.join(','), '--step-deadline-ms', String(stepDeadlineMs)], files, needs: ['pagemap'] },
    t.options,
    t.hooks,
  );
  const doc = jsonResult<ObserveDocument>(t, r, 'observing the traces');
  if (doc.traces.length !== traces.length) throw new CowlabError('ERR_GUEST_FAILED', `the guest observed ${doc.traces.length} traces of ${traces.length}`);
  const outcomes = new Map<EngineName, Map<Trace, RecordedOutcome>>();
  for (const e of engines) outcomes.set(e, new Map());
  doc.traces.forEach((entry, i) => {
    for (const o of entry.engines) {
      const observations = o.observations ? { ...observationsFromJson(o.observations), trace: traces[i]! } : null;
      outcomes.get(o.engine)?.set(traces[i]!, { notApplicable: o.notApplicable, observations });
    }
  });
  return { ...info(r), env: doc.env, config: doc.config, outcomes };
}

/** `cowlab env --json` in the guest. */
export async function envInGuest(t: GuestTarget): Promise<{ env: Environment } & GuestRunInfo> {
  const r = await runInGuest(t.kernel, { argv: ['env', '--json'] }, t.options, t.hooks);
  return { ...info(r), env: jsonResult<Environment>(t, r, 'cowlab env') };
}

/**
 * `cowlab run --json` in the guest: the results document as the guest wrote it (unchecked).
 * `carry`: the modules and tools the selected experiments need there (Experiment.guest); a
 * module the kernel lacks is left out with a warning, and the experiment then says why it
 * cannot measure.
 */
export async function suiteInGuest(
  t: GuestTarget,
  names: readonly string[],
  quick: boolean,
  carry: { modules: readonly string[]; tools: readonly ToolName[] } = { modules: [], tools: [] },
  thp: 'never' | 'always' = 'never',
): Promise<{ doc: unknown } & GuestRunInfo> {
  const argv = ['run', ...names, '--json', '--out', '/tmp/cowlab-results', ...(quick ? ['--quick'] : []), '--thp', thp];
  const modules = availableModules(t, carry.modules);
  const tools = carry.tools.filter((tool) => {
    if (findTool(tool) !== null) return true;
    t.hooks.say?.(`${tool} is not installed here, so the guest runs without it (install it with \`apt-get install ${TOOL_PACKAGES[tool]}\`)`);
    return false;
  });
  const r = await runInGuest(t.kernel, { argv, needs: ['pagemap'], modules, tools }, t.options, t.hooks);
  // run exits 1 when an experiment failed; the document still says which and why.
  if (r.exitCode === 1 && r.stdout.length > 0) return { ...info(r), doc: JSON.parse(r.stdout.toString('utf8')) as unknown };
  return { ...info(r), doc: jsonResult<unknown>(t, r, 'cowlab run') };
}
