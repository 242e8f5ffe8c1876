/**
 * The fork probe (native/forkprobe.cc): fork this process once over a region and time the
 * stores that make the kernel copy or reuse its pages. The native probe returns raw results
 * and, when the child fails, the facts of the failure; this is its typed contract, with those
 * failures worded.
 */
import { native, wordNativeError, type ForkProbeInput, type ForkProbeRaw, type NativeFacts } from '../native.js';
import { PAGEMAP_FRAME } from '../pagemap/pagemap.js';
import { describeWaitStatus } from '../util/procStat.js';

export interface ForkProbeOptions extends Omit<ForkProbeInput, 'kpagecount'> {
  /** Read /proc/kpagecount of every present page right after the fork (root only). */
  kpagecount: boolean;
}

/** What the parent was waiting for, by the probe's stage. */
const STAGES: Record<string, string> = {
  'child-pagemap': 'waiting for the child to read its pagemap',
  'child-writes': "waiting for the child's writes",
  'child-exit': 'waiting for the child to exit',
};

/** What the child was doing, by the step it reported failing. */
const STEPS: Record<string, string> = {
  'pagemap-after-fork': 'reading its pagemap after fork',
  vmstat: 'reading /proc/vmstat',
  'pagemap-after-writes': 'reading its pagemap after the writes',
  'pagemap-end': 'reading its final pagemap',
  read: 'reading(2) into its pages',
  protocol: 'talking to the parent',
};

/**
 * Runs one fork probe. Rejects with ERR_CHILD_FAILED (the child died, or failed a step),
 * ERR_CHILD_DEADLINE (it was killed at the deadline), ERR_INTERRUPTED (killAllChildren stopped
 * a paced writer) or ERR_SYSCALL; the child is reaped on every path.
 */
export async function forkProbe(options: ForkProbeOptions): Promise<ForkProbeRaw> {
  try {
    return await native().forkProbe({ ...options, kpagecount: options.kpagecount ? PAGEMAP_FRAME : null });
  } catch (err) {
    throw wordNativeError(err, probeMessage);
  }
}

function probeMessage(f: NativeFacts, nativeMessage: string): string {
  const who = `the forked child (pid ${f.childPid})`;
  const stage = STAGES[String(f.stage)] ?? 'finishing';
  switch (f.cause) {
    case 'step':
      return `${who} failed ${STEPS[String(f.step)] ?? String(f.step)}: ${nativeMessage}`;
    case 'died':
      return `${who} ${describeWaitStatus(Number(f.waitStatus))} while ${stage}`;
    case 'deadline':
      return `${who} did not finish within ${f.deadlineMs} ms and was killed (parent was ${stage})`;
    case 'interrupted':
      return `the paced writer was interrupted (killAllChildren) after ${f.done} of ${f.total} stores`;
    default:
      return nativeMessage;
  }
}

/**
 * Finds the child of the probe about to start: the native probe reports its pid only once
 * the child is reaped, but the addon lists every live child it forked, so this run's child
 * is the one that was not there before the run. Ends (always null) once the run returned.
 */
export function watchChild(): { childPid: () => number | null; end: () => void } {
  const before = new Set(native().liveChildren());
  let running = true;
  return {
    childPid: () => (running ? (native().liveChildren().find((pid) => !before.has(pid)) ?? null) : null),
    end: () => {
      running = false;
    },
  };
}
