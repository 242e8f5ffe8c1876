/**
 * The experiment suite, in the order `cowlab run` runs it and `cowlab list` lists it. One file
 * per experiment; add a new one here (docs/experiments.md says how to write it).
 */
import type { AnyExperiment } from '../src/suite/types.js';
import './engines.js'; // makes the sim, kernel and region engines available to the experiments
import copyout from './copyout.js';
import cowVsCopy from './cow-vs-copy.js';
import eagerStack from './eager-stack.js';
import forkCost from './fork-cost.js';
import forkExec from './fork-exec.js';
import forkWriteLatency from './fork-write-latency.js';
import modelValidation from './model-validation.js';
import refcounts from './refcounts.js';
import sharedVsPrivate from './shared-vs-private.js';
import { simulatorPredictor, snapshotLoadExperiment } from './snapshot-load.js';
import thpCow from './thp-cow.js';
import zeroPage from './zero-page.js';
import redisBgsave from './redis-bgsave.js';

export const EXPERIMENTS: readonly AnyExperiment[] = [
  forkWriteLatency,
  forkCost,
  forkExec,
  cowVsCopy,
  zeroPage,
  sharedVsPrivate,
  refcounts,
  thpCow,
  copyout,
  snapshotLoadExperiment(simulatorPredictor), // predicted by the simulator
  eagerStack,
  modelValidation,
  redisBgsave,
];
