/**
 * A memory cgroup of the run's own, below the cgroup this process is in: a memory limit for
 * some processes (to see what the kernel does when a COW copy passes it), and the cgroup's own
 * count of OOM kills. cgroup v2 (memory.max, memory.events) or v1 (memory.limit_in_bytes,
 * memory.oom_control). Created under the caller's cgroup, never changing the caller's own
 * settings; removed by remove() once its processes are gone.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { CowlabError } from '../errors.js';

export interface MemoryCgroup {
  readonly path: string;
  readonly version: 1 | 2;
  /** Moves process `pid` into the cgroup (its later allocations are charged here). */
  add(pid: number): void;
  /** Processes the kernel's OOM killer killed in this cgroup. */
  oomKills(): number;
  /** Removes the cgroup (retrying while its last processes are still being torn down). */
  remove(): Promise<void>;
}

/** Where this process's memory cgroup is, and which version; or why there is none. */
function ownMemoryCgroup(): { dir: string; version: 1 | 2 } | string {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('memory'));
  if (v1 && existsSync('/sys/fs/cgroup/memory')) return { dir: join('/sys/fs/cgroup/memory', v1[2] ?? '/'), version: 1 };
  const v2 = lines.map((l) => l.split(':')).find((f) => f[0] === '0' && f[1] === '');
  if (v2) {
    const dir = join('/sys/fs/cgroup', v2[2] ?? '/');
    const enabled = (readFileSyncOr(join(dir, 'cgroup.subtree_control')) ?? '').split(/\s+/);
    if (enabled.includes('memory')) return { dir, version: 2 };
    return `the memory controller is not enabled for the children of this process's cgroup (${dir}/cgroup.subtree_control), and enabling it is a global change`;
  }
  return 'no memory cgroup controller is mounted (neither cgroup v1 memory nor cgroup v2)';
}

function readFileSyncOr(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Creates the cgroup with `limitBytes` of memory (and no swap). ERR_NOT_MEASURABLE when this
 *  machine has no memory cgroup cowlab may create (with the reason). */
export function createMemoryCgroup(name: string, limitBytes: number): MemoryCgroup {
  const own = ownMemoryCgroup();
  if (typeof own === 'string') throw new CowlabError('ERR_NOT_MEASURABLE', `no memory cgroup: ${own}`);
  const path = join(own.dir, `${name}-${process.pid}`);
  try {
    mkdirSync(path);
  } catch (err) {
    throw new CowlabError('ERR_NOT_MEASURABLE', `cannot create the memory cgroup ${path}: ${(err as Error).message}`, { cause: err });
  }
  const set = (file: string, value: string) => {
    if (existsSync(join(path, file))) writeFileSync(join(path, file), value);
  };
  try {
    if (own.version === 2) {
      writeFileSync(join(path, 'memory.max'), String(limitBytes));
      set('memory.swap.max', '0');
    } else {
      writeFileSync(join(path, 'memory.limit_in_bytes'), String(limitBytes));
      set('memory.memsw.limit_in_bytes', String(limitBytes));
    }
  } catch (err) {
    rmdirSync(path);
    throw new CowlabError('ERR_NOT_MEASURABLE', `cannot limit the memory cgroup ${path}: ${(err as Error).message}`, { cause: err });
  }
  return {
    path,
    version: own.version,
    add: (pid) => writeFileSync(join(path, 'cgroup.procs'), String(pid)),
    oomKills: () => {
      const text = readFileSync(join(path, own.version === 2 ? 'memory.events' : 'memory.oom_control'), 'utf8');
      const m = /^oom_kill (\d+)$/m.exec(text);
      return m ? Number(m[1]) : 0;
    },
    remove: async () => {
      for (let i = 0; ; i++) {
        try {
          rmdirSync(path);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
          if (i >= 200) throw new CowlabError('ERR_SYSCALL', `cannot remove the memory cgroup ${path}: ${(err as Error).message}`, { cause: err });
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    },
  };
}
