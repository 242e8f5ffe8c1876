/**
 * An experiment that is described (claim, what it measures, what it needs) but waits for an
 * engine that is not built yet. It is listed and reported as not measurable with the reason
 * (the runner checks requirements first, so the missing engine is named); it never runs.
 * When its engines exist, replace it with a full defineExperiment (see docs/experiments.md).
 */
import { z } from 'zod';

import { CowlabError } from '../errors.js';
import type { Experiment } from './types.js';

export type PlannedExperiment = Omit<Experiment<null>, 'raw' | 'run' | 'verdict' | 'present' | 'planned' | 'budgetMs'>;

export function plannedExperiment(e: PlannedExperiment): Experiment<null> {
  return {
    ...e,
    planned: true,
    budgetMs: { full: 0, quick: 0 },
    raw: z.null(),
    run: () => Promise.reject(new CowlabError('ERR_NOT_MEASURABLE', `${e.name} is not implemented yet`)),
    verdict: () => ({ verdict: 'not-measurable', figure: 'not measured', reason: 'not implemented yet', metrics: [] }),
    present: () => ({ charts: [], tables: [] }),
  };
}
