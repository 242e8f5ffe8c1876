/**
 * Whatever happens to a run (a step past its deadline, a trace process killed from outside,
 * Node itself killed, a bad trace), no trace process outlives it: every one is killed and
 * reaped, and nothing is left open.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterEach, describe, expect, it } from 'vitest';

import { CowlabError } from '../../src/errors.js';
import { MAX_TRACE_PROCESSES, type Step, type Trace } from '../../src/internal.js';
import { native } from '../../src/native.js';
import { DIST_INDEX } from '../helpers/cli.js';
import { rejection } from '../helpers/errors.js';
import { collectGarbage, descendants, killUntilZombie, openFdCount } from '../helpers/processes.js';
import { all, engine, events, expectNoProcessesLeft, region, trace } from './helpers.js';

afterEach(() => expectNoProcessesLeft());

describe('a step that does not finish before its deadline', () => {
  it('rejects with ERR_CHILD_DEADLINE after killing and reaping every trace process', async () => {
    const big = 262_144; // 1 GiB written page by page: far longer than the deadline
    const t = trace('too-slow', [region({ pages: big, populate: 'none' })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'm', pages: all(big) },
    ]);
    const err = await rejection(engine.run(t, { stepDeadlineMs: 100 }));
    expect(err.code).toBe('ERR_CHILD_DEADLINE');
    expect(err.message).toMatch(/deadline.*killed and reaped/);
    expectNoProcessesLeft();
  });
});

describe('a trace process killed from outside after the fork', () => {
  /** p0 forks c1, c1 is killed with SIGKILL, then `writer` writes: how the run rejects. */
  async function killC1ThenWrite(writer: string): Promise<CowlabError> {
    const t = trace('killed', [region({ pages: 16 })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: writer, region: 'm', pages: all(16) },
    ]);
    return rejection(
      engine.run(t, {
        onStep: (done) => {
          if (done !== 1) return;
          killUntilZombie(descendants().find((p) => p.ppid !== process.pid)!.pid);
        },
      }),
    );
  }

  it('fails its own next step with ERR_CHILD_FAILED naming the signal, and reaps the rest', async () => {
    const err = await killC1ThenWrite('c1');
    expect({ code: err.code, message: err.message }).toEqual({
      code: 'ERR_CHILD_FAILED',
      message: expect.stringMatching(/^steps\[1\] \(c1: write m\): .*killed by signal 9/),
    });
  });

  it("fails another process's step with ERR_CHILD_FAILED naming the dead one, not the ESRCH of reading its pagemap", async () => {
    // p0's write succeeds; Node's read of the dead c1's pagemap after it is what fails.
    const err = await killC1ThenWrite('p0');
    expect({ code: err.code, message: err.message }).toEqual({
      code: 'ERR_CHILD_FAILED',
      message: expect.stringMatching(/^steps\[1\] \(p0: write m\): trace process 'c1' \(pid \d+\) was killed by signal 9 \(SIGKILL\); then .*(ESRCH|has exited \(a zombie\))/),
    });
  });
});

describe('killAllChildren() (what Ctrl-C in cowlab run calls)', () => {
  it('kills the whole tree, grandchildren included, through its process group: the run rejects and nothing is left', async () => {
    const t = trace('interrupted', [region({ pages: 64 })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'fork', proc: 'c1', child: 'c2' },
      { op: 'write', proc: 'c2', region: 'm', pages: all(64) },
    ]);
    let killed = -1;
    let alive: number[] = [];
    const err = await rejection(
      engine.run(t, {
        onStep: (done) => {
          if (done !== 2) return;
          alive = descendants().map((p) => p.pid);
          killed = native().killAllChildren();
        },
      }),
    );
    expect(killed).toBe(1); // one registry entry: the group p0 leads
    expect(alive.length).toBe(3); // p0, c1, c2
    expect(err.code).toBe('ERR_CHILD_FAILED');
    expect(err.message).toMatch(/^steps\[2\] \(c2: write m\): .*killed by signal 9/);
    for (const pid of alive) expect(existsSync(`/proc/${pid}`), `pid ${pid}`).toBe(false);
    expect(native().killAllChildren()).toBe(0); // the entry went with the tree
  });

  it('is left with nothing to kill after runs that end normally, whoever reaped the last process', async () => {
    await engine.run(trace('parent-first', [region({ pages: 8 })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'exit', proc: 'p0' }, // reaped by Node while c1 still holds the group
      { op: 'exit', proc: 'c1' }, // the last member: Node's reap empties the group
    ]));
    await engine.run(trace('left-running', [region({ pages: 8 })], [{ op: 'fork', proc: 'p0', child: 'c1' }]));
    expect(native().killAllChildren()).toBe(0);
  });
});

describe('exits in any order', () => {
  it('reaps each process through its parent, through Node once the parent is gone, and after an exec’d parent exits', async () => {
    const r = await engine.runDetailed(
      trace('exit-orders', [region({ pages: 8 })], [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'fork', proc: 'c1', child: 'c2' },
        { op: 'fork', proc: 'c1', child: 'c3' },
        { op: 'exec', proc: 'c1' },
        { op: 'exit', proc: 'c2' }, // a zombie of c1, which now runs cat and never waits
        { op: 'exit', proc: 'c1' }, // reaped by p0; c2 (and c3) pass to Node, which reaps c2
        { op: 'exit', proc: 'p0' }, // Node's own child
        { op: 'write', proc: 'c3', region: 'm', pages: all(8) }, // an orphan keeps running
        { op: 'exit', proc: 'c3' },
      ]),
    );
    expect(Object.keys(r.observations.steps[8]!.processes)).toEqual(['c3']);
    expect(events(r, 7).reuses).toBe(8); // every other mapper is gone
    expect(Object.keys(r.observations.steps[9]!.processes)).toEqual([]);
    expect(descendants()).toEqual([]);
  });
});

describe('Node killed in the middle of a run', () => {
  it('leaves no trace process behind: each reads EOF on its command pipe and exits within a second', async () => {
    // A long trace (50,000 small steps), built in the script: two forks, then writes.
    const script = `
      const { KernelEngine } = await import(${JSON.stringify(DIST_INDEX)});
      const steps = [{ op: 'fork', proc: 'p0', child: 'c1' }, { op: 'fork', proc: 'c1', child: 'c2' }];
      for (let i = 0; i < 50000; i++) steps.push({ op: 'write', proc: 'c' + (1 + (i % 2)), region: 'm', pages: { pages: [i % 16] } });
      const trace = { name: 'endless', regions: [${JSON.stringify(region({ pages: 16 }))}], steps };
      await new KernelEngine().run(trace, { onStep: (done) => { if (done === 3) console.log('ready'); } });
      console.log('finished');`;
    // Orphans of the killed Node come to this process (a subreaper), which reaps them.
    const before = native().setChildSubreaper(true);
    try {
      const node = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise((resolve) => node.once('exit', resolve));
      await new Promise<void>((resolve, reject) => {
        let out = '';
        node.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('ready')) resolve();
        });
        node.once('exit', () => reject(new Error(`the script ended before the trace ran: ${out}`)));
      });
      const traced = descendants(node.pid!).map((p) => p.pid);
      expect(traced).toHaveLength(3);
      node.kill('SIGKILL');
      await exited;
      // Gone: no longer in /proc, or exited and reaped here. A process still in /proc that is
      // not (yet) this process's child belongs to a trace process that has not exited yet.
      const gone = (pid: number): boolean => {
        if (!existsSync(`/proc/${pid}`)) return true;
        try {
          return native().reapChild(pid) !== null;
        } catch (err) {
          if ((err as CowlabError).errno === 'ECHILD') return false;
          throw err;
        }
      };
      let left = traced;
      const deadline = Date.now() + 1000;
      while (left.length > 0 && Date.now() < deadline) {
        left = left.filter((pid) => !gone(pid));
        if (left.length > 0) await sleep(10);
      }
      expect(left).toEqual([]);
    } finally {
      native().setChildSubreaper(before);
    }
  });
});

describe('a trace the kernel engine refuses', () => {
  const cases: { name: string; regions?: Trace['regions']; steps: Step[]; field: string; message: RegExp }[] = [
    {
      name: 'a write to a page the process made read-only',
      steps: [
        { op: 'mprotect', proc: 'p0', region: 'm', prot: 'r', pages: { pages: [3] } },
        { op: 'write', proc: 'p0', region: 'm', pages: { pages: [2, 3] } },
      ],
      field: 'steps[1].pages',
      message: /page 3 .* read-only/,
    },
    {
      name: 'a child touching a MADV_DONTFORK region',
      regions: [region({ advice: ['dontfork'] })],
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'read', proc: 'c1', region: 'm', pages: { pages: [0] } },
      ],
      field: 'steps[1].region',
      message: /does not map region 'm'/,
    },
    {
      name: 'a command to a process that exited',
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'exit', proc: 'c1' },
        { op: 'write', proc: 'c1', region: 'm', pages: { pages: [0] } },
      ],
      field: 'steps[2].proc',
      message: /process 'c1' already exited at steps\[1\]/,
    },
    {
      name: 'a process that exec’d writing to a region',
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'exec', proc: 'c1' },
        { op: 'write', proc: 'c1', region: 'm', pages: { pages: [0] } },
      ],
      field: 'steps[2].proc',
      message: /exec'd/,
    },
    {
      name: 'a child name used twice',
      steps: [
        { op: 'fork', proc: 'p0', child: 'c1' },
        { op: 'fork', proc: 'p0', child: 'c1' },
      ],
      field: 'steps[1].child',
      message: /already used/,
    },
    { name: 'an unknown region', steps: [{ op: 'read', proc: 'p0', region: 'x', pages: { pages: [0] } }], field: 'steps[0].region', message: /no region 'x'/ },
    { name: 'a page outside the region', steps: [{ op: 'read', proc: 'p0', region: 'm', pages: { pages: [64] } }], field: 'steps[0].pages.pages[0]', message: /page 64 is beyond region 'm'/ },
  ];

  it.each(cases)('rejects $name with ERR_TRACE_INVALID naming the step, before forking anything', async (c) => {
    const err = await rejection(engine.run(trace('bad', c.regions ?? [region()], c.steps)));
    expect(err.code).toBe('ERR_TRACE_INVALID');
    expect(err.field).toBe(c.field);
    expect(err.message).toMatch(c.message);
  });

  it('says why it cannot run a trace this machine cannot host, and run() rejects it as ERR_NOT_MEASURABLE', async () => {
    expect(engine.supports(trace('ok', [region()], []))).toBeNull();
    const wipeShared = trace('wipe-shared', [region({ map: 'shared', advice: ['wipeonfork'] })], []);
    expect(engine.supports(wipeShared)).toMatch(/MADV_WIPEONFORK applies only to private anonymous/);
    const forks: Step[] = Array.from({ length: MAX_TRACE_PROCESSES }, (_, i) => ({ op: 'fork', proc: 'p0', child: `c${i}` }));
    expect(engine.supports(trace('crowd', [region()], forks))).toMatch(/at most 256/);
    const err = await rejection(engine.run(wipeShared));
    expect(err.code).toBe('ERR_NOT_MEASURABLE');
  });
});

describe('many runs', () => {
  it('leak no file descriptor, process or zombie, and two trees can run side by side', async () => {
    const t = trace('small', [region({ pages: 8 })], [
      { op: 'fork', proc: 'p0', child: 'c1' },
      { op: 'write', proc: 'c1', region: 'm', pages: all(8) },
      { op: 'exec', proc: 'c1' },
      { op: 'exit', proc: 'p0' },
    ]);
    await engine.run(t);
    collectGarbage();
    const fds = openFdCount();
    for (let i = 0; i < 20; i++) {
      const [a, b] = await Promise.all([engine.runDetailed(t), engine.runDetailed(t)]);
      expect(events(a, 1).copies).toBe(8);
      expect(events(b, 1).copies).toBe(8);
    }
    collectGarbage();
    expect(openFdCount()).toBe(fds);
  });
});
