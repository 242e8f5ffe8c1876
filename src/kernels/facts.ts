/**
 * What the simulator needs to know about the kernel a trace ran on, to choose its profile:
 * the release and upstream version, the build configuration, and the run-time knobs the model
 * reads (use_zero_page). Recorded with every result that names a profile.
 */
import type { SwapDevice } from '../engines/sim/options.js';
import type { Environment } from '../env/environment.js';
import { runningKernelConfig, type KernelConfig } from './config.js';
import { formatVersion, kernelVersion } from './version.js';

export interface KernelFacts {
  release: string;
  build: string;
  /** Upstream x.y.z (Debian: the stable version from `uname -v`), or null when unknown. */
  version: string | null;
  config: KernelConfig;
  knobs: {
    /** transparent_hugepage/enabled. */
    thpEnabled: string | null;
    /** transparent_hugepage/use_zero_page. */
    useZeroPage: boolean | null;
    /** The swap reclaim writes to (env/swap.ts); null or absent where not recorded. */
    swap?: SwapDevice | null;
  };
}

/** Facts of the kernel an environment was recorded on (`config`: from wherever it is known). */
export function factsFromEnvironment(env: Environment, config: KernelConfig): KernelFacts {
  const v = kernelVersion(env.kernel, env.kernelBuild);
  return {
    release: env.kernel,
    build: env.kernelBuild,
    version: v ? formatVersion(v) : null,
    config,
    knobs: { thpEnabled: env.thp.enabled, useZeroPage: env.thp.useZeroPage, swap: env.swap?.kind ?? null },
  };
}

/** The running kernel's facts. */
export function runningKernelFacts(env: Environment): KernelFacts {
  return factsFromEnvironment(env, runningKernelConfig(env.kernel));
}
