/**
 * The kernel engine's process tree (native/proctree*.cc) as the engine uses it. The native tree
 * runs the processes and, when one fails, states the facts: which process, doing what, and for
 * a death the /proc/<pid>/stat it read while the process was a zombie. This names the process
 * as the trace does, decodes the wait statuses and says what happened.
 */
import {
  native,
  wordNativeError,
  type NativeFacts,
  type NativeProcTree,
  type ProcTreeAccessRaw,
  type ProcTreeForkRaw,
  type ProcTreeSpec,
  type ProcTreeStartRaw,
} from '../../native.js';
import { decodeWaitStatus, describeEnd, parseProcStat } from '../../util/procStat.js';

/** What a process was doing, by the command the native tree names. */
const DOING: Record<string, string> = {
  start: 'starting',
  map: 'mapping the regions',
  fork: 'forking',
  write: 'writing',
  read: 'reading',
  protect: 'changing protection',
  exec: "exec'ing",
  exit: 'exiting',
  reap: 'reaping a child',
};

/** A private anonymous region of `pages` 4 KiB pages (no THP) for a tree driven outside the engine (experiments). */
export function privateAnonRegion(pages: number): ProcTreeSpec['regions'][number] {
  return { pages, backing: native().constants.BACKING_ANON_PRIVATE, thp: false, dontfork: false, wipeonfork: false, anywhere: false };
}

const KILLED_ALL = 'every trace process was killed and reaped';

export interface ProcTreeReap {
  /** waitpid()'s status. */
  status: number;
  /** Exit code when the process exited; null when a signal killed it. */
  exitCode: number | null;
  /** The signal that killed it; null when it exited. */
  signal: number | null;
}

/** The trace's processes, one command at a time (see NativeProcTree for each method). */
export class ProcessTree {
  readonly #tree: NativeProcTree;
  /** Trace name of each slot (p0, c1, ...). */
  readonly #names: readonly string[];
  /** Pid of each slot once forked: the native tree forgets them when it is torn down. */
  readonly #pids: number[];

  constructor(spec: ProcTreeSpec, names: readonly string[]) {
    this.#names = names;
    this.#pids = new Array<number>(spec.parents.length).fill(0);
    try {
      this.#tree = new (native().ProcTree)(spec);
    } catch (err) {
      throw this.#worded(err);
    }
  }

  async start(deadlineMs: number): Promise<ProcTreeStartRaw> {
    const r = await this.#call(() => this.#tree.start(deadlineMs));
    this.#pids[0] = r.pid;
    return r;
  }

  async fork(slot: number, childSlot: number, deadlineMs: number): Promise<ProcTreeForkRaw> {
    const r = await this.#call(() => this.#tree.fork(slot, childSlot, deadlineMs));
    this.#pids[childSlot] = r.pid;
    return r;
  }

  access(
    slot: number,
    write: boolean,
    region: number,
    pages: Uint32Array,
    tag: bigint,
    deadlineMs: number,
    how: { paceNs?: number; viaPread?: boolean } = {},
  ): Promise<ProcTreeAccessRaw> {
    return this.#call(() => this.#tree.access(slot, write, region, pages, tag, deadlineMs, how.paceNs ?? 0, how.viaPread === true));
  }

  protect(slot: number, region: number, prot: number, pages: Uint32Array, deadlineMs: number): Promise<{ opNs: number; opFaults: number }> {
    return this.#call(() => this.#tree.protect(slot, region, prot, pages, deadlineMs));
  }

  /** madvise(MADV_PAGEOUT) of the listed pages (empty: the whole region). */
  pageout(slot: number, region: number, pages: Uint32Array, deadlineMs: number): Promise<{ opNs: number; opFaults: number }> {
    return this.#call(() => this.#tree.pageout(slot, region, pages, deadlineMs));
  }

  exec(slot: number, deadlineMs: number): Promise<{ opNs: number }> {
    return this.#call(() => this.#tree.exec(slot, deadlineMs));
  }

  exit(slot: number, deadlineMs: number): Promise<{ opNs: number }> {
    return this.#call(() => this.#tree.exit(slot, deadlineMs));
  }

  async reap(reaperSlot: number, pid: number, deadlineMs: number): Promise<ProcTreeReap> {
    const { status } = await this.#call(() => this.#tree.reap(reaperSlot, pid, deadlineMs));
    return { status, ...decodeWaitStatus(status) };
  }

  destroy(deadlineMs: number): Promise<void> {
    return this.#call(() => this.#tree.destroy(deadlineMs));
  }

  pids(): Int32Array {
    return this.#tree.pids();
  }

  async #call<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw this.#worded(err);
    }
  }

  /** The native failure in words; other errors unchanged. */
  #worded(err: unknown): unknown {
    return wordNativeError(err, (f, nativeMessage) => this.#message(f, nativeMessage));
  }

  #message(f: NativeFacts, nativeMessage: string): string {
    const doing = DOING[String(f.op)] ?? String(f.op);
    switch (f.cause) {
      case 'deadline':
        return `${this.#who(f)} did not finish ${doing} before the step deadline; ${KILLED_ALL}`;
      case 'died': {
        const pid = Number(f.pid);
        const how = typeof f.stat === 'string' ? describeEnd(parseProcStat(pid, f.stat)) : null;
        return how === null
          ? `${this.#who(f)} died while ${doing} (its exit status is unknown); ${KILLED_ALL}`
          : `${this.#who(f)} ${how} while ${doing}; ${KILLED_ALL}`;
      }
      case 'refused':
        return `${this.#who(f)} failed while ${doing}: ${nativeMessage}`;
      case 'interrupted':
        return `the paced ${doing} of ${this.#who(f)} was interrupted (killAllChildren) after ${f.done} of ${f.total} ${f.op === 'read' ? 'loads' : 'stores'}`;
      case 'protocol':
        return `${this.#who(f)} sent an unexpected reply byte ${f.reply}; ${KILLED_ALL}`;
      case 'reap-deadline':
        return `${this.#who(f)} was not reapable in time; ${KILLED_ALL}`;
      case 'unreaped':
        return `some trace processes (process group ${f.pgid}) could not be reaped within ${f.budgetMs} ms`;
      case 'lazy-binding':
        return (
          'the cowlab addon was linked with lazy binding; the process tree needs it linked with -Wl,-z,now ' +
          '(binding.gyp and CMakeLists.txt do this: rebuild with npm run build:addon)'
        );
      default:
        return nativeMessage;
    }
  }

  /** "trace process 'c1' (pid 1234)", from the slot, or from the pid alone. */
  #who(f: NativeFacts): string {
    const pid = Number(f.pid);
    const slot = f.slot !== undefined ? Number(f.slot) : this.#pids.indexOf(pid);
    const name = this.#names[slot];
    return name === undefined ? `trace process ${pid}` : `trace process '${name}' (pid ${pid})`;
  }
}
