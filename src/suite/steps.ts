/**
 * The measuring loop every experiment repeats, in one place: before each step check Ctrl-C and
 * report progress; after it keep a checkpoint (so Ctrl-C keeps what was measured); stop a
 * sweep early when the time budget is spent, with a note saying where. And the {full, quick}
 * tables experiments size themselves with.
 *
 *   const steps = new Steps(ctx, 1 + FRACTIONS.length);
 *   steps.next('eager copy');
 *   const raw = { eager: measureEager(), cow: [] };
 *   steps.keep(raw);
 *   await steps.sweep(sized(ctx, FRACTIONS), raw, {
 *     detail: (f) => `COW, ${f} written`,
 *     measure: async (f) => { raw.cow.push(await measureCow(f)); },
 *   });
 */
import type { RunContext } from './types.js';

/** A value for each size of the suite: the default one and --quick. */
export interface BySize<T> {
  full: T;
  quick: T;
}

/** The value of `table` for this run's size. */
export function sized<T>(ctx: Pick<RunContext, 'quick'>, table: BySize<T>): T {
  return ctx.quick ? table.quick : table.full;
}

/** Returned by a sweep's measure to end the sweep after this item (e.g. nothing more can be
 *  measured here). */
export const STOP = 'stop';

export interface SweepOptions<T> {
  /** The progress line of each item. */
  detail: (item: T, index: number) => string;
  /** Measures one item and records it into the raw result; STOP ends the sweep. */
  measure: (item: T, index: number) => Promise<void | typeof STOP> | void | typeof STOP;
  /** Checks the budget before each item: once it is spent, the sweep stops and notes
   *  "<what> stopped before <item>: the N s budget was spent". */
  stopBefore?: { what: string; item: (item: T) => string };
  /** Checks the budget after each item, once `minItems` are done (a band needs a few): the
   *  sweep stops with note(items done). */
  stopAfter?: { minItems: number; note: (done: number) => string };
}

/**
 * The steps of one experiment's run, counted for its progress line: `total` steps, each begun
 * with next() or as an item of sweep().
 */
export class Steps {
  #done = 0;

  constructor(
    private readonly ctx: RunContext,
    readonly total: number,
  ) {}

  /** Steps begun so far. */
  get done(): number {
    return this.#done;
  }

  /** Begins the next step: stops here on Ctrl-C, then reports `detail` as the progress. */
  next(detail: string): void {
    this.ctx.signal.throwIfAborted();
    this.ctx.progress(this.#done++, this.total, detail);
  }

  /** Keeps `raw` as the partial result (what the results file records on Ctrl-C). */
  keep(raw: unknown): void {
    this.ctx.checkpoint(raw);
  }

  /** Reports every step done (the progress line's end). */
  finish(): void {
    this.ctx.progress(this.total, this.total);
  }

  /** One step per item, in order, keeping `raw` after each; returns the items measured. */
  async sweep<T>(items: readonly T[], raw: unknown, o: SweepOptions<T>): Promise<number> {
    let measured = 0;
    for (const [i, item] of items.entries()) {
      this.ctx.signal.throwIfAborted();
      if (o.stopBefore && this.ctx.overBudget()) {
        this.ctx.note(`${o.stopBefore.what} stopped before ${o.stopBefore.item(item)}: the ${this.ctx.budgetMs / 1000} s budget was spent`);
        break;
      }
      this.next(o.detail(item, i));
      const outcome = await o.measure(item, i);
      measured++;
      this.keep(raw);
      if (outcome === STOP) break;
      if (o.stopAfter && measured >= o.stopAfter.minItems && this.ctx.overBudget()) {
        this.ctx.note(o.stopAfter.note(measured));
        break;
      }
    }
    return measured;
  }
}
