/**
 * Parses and checks a trace document (docs/trace.md). First the shape (zod, schema.ts), then
 * the meaning, step by step, simulating the processes' lives: who exists, who exited or
 * exec'd, which regions each one maps, which pages are read-only. Every rejection is a
 * CowlabError ERR_TRACE_INVALID whose message starts with the field, e.g.
 * `steps[3].pages.end: 2048 is beyond region 'heap' (1024 pages)`.
 *
 * The parser checks the trace, not the machine: a 64 GiB region is a valid trace, which the
 * simulator predicts anywhere. Whether a run fits this machine's memory is the engine's to say,
 * before it allocates (the kernel and region engines ask engines/sim/peak.ts).
 */
import { statSync, type Stats } from 'node:fs';

import type { z } from 'zod';

import { CowlabError } from '../errors.js';
import { readBoundedText } from '../util/files.js';
import { formatPath, issueText, MAX_KERNEL_PLACED_REGIONS, MAX_TRACE_FILE_BYTES, MAX_TRACE_PROCESSES, OPS, traceSchemas } from './schema.js';
import { selectPages as selectedPages } from './select.js';
import {
  ROOT_PROC,
  type AccessOptions,
  type PageSelector,
  type RegionSpec,
  type RootKind,
  type Step,
  type StepOp,
  type Trace,
  type WriteVia,
} from './types.js';

export interface ParseTraceOptions {
  /** Where the document came from (a file name), added to error messages. */
  source?: string;
}

/** The error every rejected trace raises: `field: message`, code ERR_TRACE_INVALID. */
export function traceInvalid(field: string, message: string, source?: string): CowlabError {
  return new CowlabError('ERR_TRACE_INVALID', `${field}: ${message}${source ? ` (in ${source})` : ''}`, { field });
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, at: readonly PropertyKey[], source?: string): T {
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  const { field, message } = issueText(r.error.issues[0]!, at);
  const more = r.error.issues.length - 1;
  throw traceInvalid(field, more > 0 ? `${message} (and ${more} more problem${more > 1 ? 's' : ''})` : message, source);
}

const SELECTOR_FORMS = 'must be a page selector: {"start", "end", "stride"?}, {"pages": [...]} or {"random", "seed"}';

/** Checks a page selector against its region; returns it with defaults applied. */
function parseSelector(value: unknown, at: readonly PropertyKey[], region: RegionSpec, source?: string): PageSelector {
  const field = formatPath(at);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw traceInvalid(field, SELECTOR_FORMS, source);
  const beyond = (n: number) => `${n} is beyond region '${region.id}' (${region.pages} pages)`;
  if ('random' in value) {
    const sel = parseWith(traceSchemas().random, value, at, source);
    if (sel.random > region.pages) {
      throw traceInvalid(`${field}.random`, `${sel.random} is more than the ${region.pages} pages of region '${region.id}'`, source);
    }
    return { random: sel.random, seed: sel.seed };
  }
  if ('pages' in value) {
    const sel = parseWith(traceSchemas().list, value, at, source);
    const bad = sel.pages.findIndex((p) => p >= region.pages);
    if (bad >= 0) throw traceInvalid(`${field}.pages[${bad}]`, `page ${beyond(sel.pages[bad]!)}`, source);
    return { pages: [...sel.pages] };
  }
  if ('start' in value || 'end' in value || 'stride' in value) {
    const sel = parseWith(traceSchemas().range, value, at, source);
    if (sel.end > region.pages) throw traceInvalid(`${field}.end`, beyond(sel.end), source);
    if (sel.start >= sel.end) throw traceInvalid(field, `empty range ${sel.start}..${sel.end} (start must be below end)`, source);
    return { start: sel.start, end: sel.end, stride: sel.stride };
  }
  throw traceInvalid(field, SELECTOR_FORMS, source);
}

/**
 * Per page of one region in one process: the step whose mprotect r made it read-only, or -1.
 * Null while no mprotect ever touched the region in this process (every page writable): most
 * traces never call mprotect, and a table of 4 bytes per page would cost 64 MiB per process
 * for a 64 GiB region.
 */
type Protection = Int32Array | null;

/** What the checker knows about one process while it walks the steps. */
interface ProcLife {
  name: string;
  /** Index of the fork step that created it; -1 for p0. */
  bornAt: number;
  exitedAt: number | null;
  /** Index of its exec step: from then on it runs another program, maps no region, and can only exit. */
  execdAt: number | null;
  /** Per region: its protection, or why the process does not map it. */
  regions: (Protection | string)[];
}

/** The table a region's first mprotect in a process starts from: every page writable. */
function allWritable(pages: number): Int32Array {
  return new Int32Array(pages).fill(-1);
}

/** Walks the steps as the processes would live them, rejecting what cannot happen. */
class TraceChecker {
  private readonly procs = new Map<string, ProcLife>();
  private readonly regionIndex = new Map<string, number>();

  constructor(
    private readonly regions: RegionSpec[],
    private readonly root: RootKind,
    private readonly source?: string,
  ) {
    regions.forEach((r, i) => this.regionIndex.set(r.id, i));
    this.procs.set(ROOT_PROC, {
      name: ROOT_PROC, bornAt: -1, exitedAt: null, execdAt: null,
      regions: regions.map(() => null),
    });
  }

  private fail(field: string, message: string): never {
    throw traceInvalid(field, message, this.source);
  }

  private liveNames(): string {
    const live = [...this.procs.values()].filter((p) => p.exitedAt === null).map((p) => p.name);
    return live.length ? live.join(', ') : 'none';
  }

  /** The acting process of step `i`: it must exist and be alive. */
  private live(i: number, name: string): ProcLife {
    const p = this.procs.get(name);
    if (!p) this.fail(`steps[${i}].proc`, `no process '${name}' (live processes: ${this.liveNames()})`);
    if (p.exitedAt !== null) this.fail(`steps[${i}].proc`, `process '${name}' already exited at steps[${p.exitedAt}]`);
    return p;
  }

  /** The region `regionId` and its index: the region must exist and be mapped in `p`. */
  private mapped(i: number, p: ProcLife, regionId: string): { region: RegionSpec; r: number; prot: Protection } {
    const r = this.regionIndex.get(regionId);
    if (r === undefined) {
      this.fail(`steps[${i}].region`, `no region '${regionId}' (regions: ${this.regions.map((x) => x.id).join(', ')})`);
    }
    if (p.execdAt !== null) this.fail(`steps[${i}].proc`, `process '${p.name}' exec'd at steps[${p.execdAt}] and maps no region`);
    const prot = p.regions[r]!;
    if (typeof prot === 'string') this.fail(`steps[${i}].region`, prot);
    return { region: this.regions[r]!, r, prot };
  }

  check(i: number, raw: unknown): Step {
    const at = ['steps', i];
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) this.fail(`steps[${i}]`, 'must be an object with an "op"');
    const op = (raw as { op?: unknown }).op;
    if (op === undefined) this.fail(`steps[${i}].op`, `is required (ops: ${OPS.join(', ')})`);
    if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
      this.fail(`steps[${i}].op`, `unknown op ${typeof op === 'string' ? `'${op}'` : String(op)} (ops: ${OPS.join(', ')})`);
    }
    switch (op as StepOp) {
      case 'fork': return this.fork(i, parseWith(traceSchemas().steps.fork, raw, at, this.source));
      case 'write': return this.access(i, parseWith(traceSchemas().steps.write, raw, at, this.source));
      case 'read': return this.access(i, parseWith(traceSchemas().steps.read, raw, at, this.source));
      case 'exit': return this.exit(i, parseWith(traceSchemas().steps.exit, raw, at, this.source));
      case 'exec': return this.exec(i, parseWith(traceSchemas().steps.exec, raw, at, this.source));
      case 'mprotect': return this.mprotect(i, parseWith(traceSchemas().steps.mprotect, raw, at, this.source));
      case 'pageout': return this.pageout(i, parseWith(traceSchemas().steps.pageout, raw, at, this.source));
    }
  }

  /**
   * After exec a process runs another program (the kernel engine's runs `cat` on its command
   * pipe): it takes no more commands from the trace, so all it can still do is exit.
   */
  private notExecd(i: number, p: ProcLife, what: string): void {
    if (p.execdAt === null) return;
    this.fail(`steps[${i}].proc`, `process '${p.name}' exec'd at steps[${p.execdAt}] and runs another program: it cannot ${what} (after exec a process can only exit)`);
  }

  private fork(i: number, s: { proc: string; child: string }): Step {
    const parent = this.live(i, s.proc);
    this.notExecd(i, parent, 'fork');
    if (s.child === ROOT_PROC) this.fail(`steps[${i}].child`, `'${ROOT_PROC}' is the root process and cannot be forked into`);
    const used = this.procs.get(s.child);
    if (used) this.fail(`steps[${i}].child`, `process name '${s.child}' is already used (forked at steps[${used.bornAt}])`);
    if (this.procs.size >= MAX_TRACE_PROCESSES) {
      this.fail(
        `steps[${i}].child`,
        `a trace has at most ${MAX_TRACE_PROCESSES} processes (p0 and ${MAX_TRACE_PROCESSES - 1} forks); this fork would make the ${this.procs.size + 1}th`,
      );
    }
    const regions = parent.regions.map((prot, r) => {
      if (typeof prot === 'string') return prot;
      if (this.regions[r]!.advice.includes('dontfork')) {
        return `process '${s.child}' does not map region '${this.regions[r]!.id}' (MADV_DONTFORK: not inherited at the fork at steps[${i}])`;
      }
      return prot === null ? null : prot.slice();
    });
    this.procs.set(s.child, { name: s.child, bornAt: i, exitedAt: null, execdAt: null, regions });
    return { op: 'fork', proc: s.proc, child: s.child };
  }

  private access(
    i: number,
    s: { op: 'write' | 'read'; proc: string; region: string; pages: unknown; via?: WriteVia } & AccessOptions,
  ): Step {
    const p = this.live(i, s.proc);
    const { region, prot } = this.mapped(i, p, s.region);
    const pages = parseSelector(s.pages, ['steps', i, 'pages'], region, this.source);
    if (s.op === 'write') this.checkWritable(i, p, region, prot, pages);
    const extra: AccessOptions & { via?: WriteVia } = {};
    if (s.timing !== undefined) extra.timing = s.timing;
    if (s.paceNs !== undefined && s.paceNs > 0) extra.paceNs = s.paceNs;
    if (s.op === 'write' && s.via === 'pread') extra.via = 'pread';
    return s.op === 'write'
      ? { op: 'write', proc: s.proc, region: s.region, pages, ...extra }
      : { op: 'read', proc: s.proc, region: s.region, pages, ...extra };
  }

  /** With p0 'node', p0 is the Node process: cowlab cannot make it exit or exec. */
  private notNode(i: number, p: ProcLife, what: string): void {
    if (p.name !== ROOT_PROC || this.root !== 'node') return;
    this.fail(`steps[${i}].proc`, `p0 is the Node process itself (trace p0: 'node'): it cannot ${what}`);
  }

  /** A store to a page its VMA does not allow would kill the process with SIGSEGV. */
  private checkWritable(i: number, p: ProcLife, region: RegionSpec, prot: Protection, sel: PageSelector): void {
    if (prot === null) return; // never mprotected: every page is writable
    const pages = selectedPages(sel, region.pages);
    for (let k = 0; k < pages.length; k++) {
      const page = pages[k]!;
      const since = prot[page]!;
      if (since >= 0) {
        this.fail(
          `steps[${i}].pages`,
          `page ${page} of region '${region.id}' is read-only in process '${p.name}' (mprotect r at steps[${since}]); the write would SIGSEGV`,
        );
      }
    }
  }

  private mprotect(i: number, s: { proc: string; region: string; prot: 'r' | 'rw'; pages?: unknown }): Step {
    const p = this.live(i, s.proc);
    const { region, r, prot: known } = this.mapped(i, p, s.region);
    const sel = s.pages === undefined ? undefined : parseSelector(s.pages, ['steps', i, 'pages'], region, this.source);
    const pages = sel === undefined ? null : selectedPages(sel, region.pages);
    const prot = known ?? (p.regions[r] = allWritable(region.pages));
    const apply = (page: number) => {
      if (s.prot === 'rw') prot[page] = -1;
      else if (prot[page]! < 0) prot[page] = i;
    };
    if (pages === null) for (let page = 0; page < region.pages; page++) apply(page);
    else for (const page of pages) apply(page);
    return sel === undefined
      ? { op: 'mprotect', proc: s.proc, region: s.region, prot: s.prot }
      : { op: 'mprotect', proc: s.proc, region: s.region, prot: s.prot, pages: sel };
  }

  /**
   * MADV_PAGEOUT is modelled for private anonymous memory of 4 KiB pages: reclaim of page-cache
   * (memfd, shared) pages and the splitting of huge pages it would need are not, so a trace
   * that asks for them is refused rather than predicted wrongly.
   */
  private pageout(i: number, s: { proc: string; region: string; pages?: unknown }): Step {
    const p = this.live(i, s.proc);
    const { region } = this.mapped(i, p, s.region);
    if (region.map !== 'private' || region.backing !== 'anon') {
      this.fail(`steps[${i}].region`, `pageout is modelled for private anonymous regions only; region '${region.id}' is ${region.map} ${region.backing}`);
    }
    if (region.thp) {
      this.fail(`steps[${i}].region`, `pageout is modelled for regions of 4 KiB pages only; region '${region.id}' has thp (reclaim would split its huge pages)`);
    }
    const sel = s.pages === undefined ? undefined : parseSelector(s.pages, ['steps', i, 'pages'], region, this.source);
    return sel === undefined ? { op: 'pageout', proc: s.proc, region: s.region } : { op: 'pageout', proc: s.proc, region: s.region, pages: sel };
  }

  private exit(i: number, s: { proc: string; afterMs?: number }): Step {
    const p = this.live(i, s.proc);
    this.notNode(i, p, 'exit');
    p.exitedAt = i;
    return s.afterMs ? { op: 'exit', proc: s.proc, afterMs: s.afterMs } : { op: 'exit', proc: s.proc };
  }

  private exec(i: number, s: { proc: string }): Step {
    const p = this.live(i, s.proc);
    this.notNode(i, p, 'exec');
    this.notExecd(i, p, 'exec again');
    p.execdAt = i;
    return { op: 'exec', proc: s.proc };
  }
}

function checkRegions(regions: RegionSpec[], source?: string): void {
  const seen = new Map<string, number>();
  let placedByKernel = 0;
  regions.forEach((r, i) => {
    const before = seen.get(r.id);
    if (before !== undefined) throw traceInvalid(`regions[${i}].id`, `region id '${r.id}' is already used by regions[${before}]`, source);
    seen.set(r.id, i);
    const privateAnon = r.map === 'private' && r.backing === 'anon';
    if (r.advice.includes('wipeonfork') && !privateAnon) {
      throw traceInvalid(`regions[${i}].advice`, 'wipeonfork applies to private anonymous regions only (the kernel rejects it with EINVAL)', source);
    }
    if (r.thp && !privateAnon) {
      throw traceInvalid(`regions[${i}].thp`, 'huge pages are modelled for private anonymous regions only (shmem THP is off here)', source);
    }
    if (r.thp && r.placement === 'kernel') {
      throw traceInvalid(`regions[${i}].placement`, "placement 'kernel' is for regions of 4 KiB pages: a THP region is always placed on a 2 MiB boundary", source);
    }
    if (r.placement === 'kernel' && ++placedByKernel > MAX_KERNEL_PLACED_REGIONS) {
      throw traceInvalid(
        `regions[${i}].placement`,
        `at most ${MAX_KERNEL_PLACED_REGIONS} regions of a trace may have placement 'kernel' (the simulator predicts every place of each, and their outcomes multiply)`,
        source,
      );
    }
  });
}

/** Traces parseTrace returned: engines may run them without checking again (do not mutate them). */
const checked = new WeakSet<Trace>();

/** True for a trace object parseTrace returned (so it needs no second check). */
export function isCheckedTrace(trace: Trace): boolean {
  return checked.has(trace);
}

/**
 * Checks a trace document (already parsed JSON) and returns it with every default applied:
 * region map/backing/thp/advice/populate and range strides. Throws ERR_TRACE_INVALID naming
 * the step and field of the first problem.
 */
export function parseTrace(input: unknown, opts: ParseTraceOptions = {}): Trace {
  const doc = parseWith(traceSchemas().trace, input, [], opts.source);
  const regions: RegionSpec[] = doc.regions.map((r) => ({ ...r, advice: [...r.advice] }));
  checkRegions(regions, opts.source);
  const checker = new TraceChecker(regions, doc.p0 ?? 'process', opts.source);
  const steps = doc.steps.map((raw, i) => checker.check(i, raw));
  const trace: Trace = { name: doc.name, regions, steps };
  if (doc.description !== undefined) trace.description = doc.description;
  if (doc.p0 === 'node') trace.p0 = 'node';
  checked.add(trace);
  return trace;
}

function badFile(path: string, why: string, cause?: unknown): CowlabError {
  return new CowlabError('ERR_INVALID_OPTION', `trace: cannot read '${path}': ${why}`, { field: 'trace', cause });
}

function fileKind(st: Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * The text of trace file `path`: a regular file of at most MAX_TRACE_FILE_BYTES. Devices
 * (/dev/zero), FIFOs and sockets are refused before anything is opened (a FIFO would wait for a
 * writer), a file over the cap before a byte is read; readBoundedText (util/files.ts) reads the
 * rest with the cap, so a file that grows meanwhile is refused once it passes it.
 */
function readTraceFile(path: string): string {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw badFile(path, code === 'ENOENT' ? 'no such file' : (err as Error).message, err);
  }
  if (st.isDirectory()) throw badFile(path, 'it is a directory');
  if (!st.isFile()) {
    throw new CowlabError('ERR_INVALID_OPTION', `trace: '${path}' is not a regular file (${fileKind(st)}); a trace is read from a file`, { field: 'trace' });
  }
  return readBoundedText(path, MAX_TRACE_FILE_BYTES, 'trace');
}

/**
 * Reads a trace from a file path, or from JSON text (anything starting with '{'). A file must be
 * a regular file of at most MAX_TRACE_FILE_BYTES (64 MiB), and so must the text
 * (ERR_INVALID_OPTION otherwise, before any parsing).
 */
export function loadTrace(pathOrJsonText: string, opts: ParseTraceOptions = {}): Trace {
  let text = pathOrJsonText;
  let source = opts.source;
  if (!pathOrJsonText.trimStart().startsWith('{')) {
    source ??= pathOrJsonText;
    text = readTraceFile(pathOrJsonText);
  } else if (pathOrJsonText.length > MAX_TRACE_FILE_BYTES) {
    throw new CowlabError('ERR_INVALID_OPTION', `trace: the trace text is more than the ${MAX_TRACE_FILE_BYTES / 2 ** 20} MiB limit`, { field: 'trace' });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw traceInvalid('trace', `not valid JSON: ${(err as Error).message}`, source);
  }
  return parseTrace(json, { ...opts, ...(source === undefined ? {} : { source }) });
}
