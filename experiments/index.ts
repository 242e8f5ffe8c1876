/**
 * The experiment suite, in the order `cowlab run` runs it and `cowlab list` lists it. One file
 * per experiment; add a new one here (docs/experiments.md says how to write it).
 */
import type { AnyExperiment } from '../src/suite/types.js';
import './engines.js'; // makes the sim, kernel and region engines available to the experiments
import copyout from './copyout.js';
import cowVsCopy from './cow-vs-copy.js';
import eagerStack from './eager-stack.js';
import fdSharing from './fd-sharing.js';
import firstWriteCost from './first-write-cost.js';
import forkCost from './fork-cost.js';
import forkExec from './fork-exec.js';
import forkWriteLatency from './fork-write-latency.js';
import fragmentation from './fragmentation.js';
import ksm from './ksm.js';
import modelValidation from './model-validation.js';
import overcommit from './overcommit.js';
import overlayCopyUp from './overlay-copy-up.js';
import pins from './pins.js';
import refcounts from './refcounts.js';
import secondWrite from './second-write.js';
import sharedVsPrivate from './shared-vs-private.js';
import snapshotInstant from './snapshot-instant.js';
import snapshotLifetime from './snapshot-lifetime.js';
import { simulatorPredictor, snapshotLoadExperiment } from './snapshot-load.js';
import thpCow from './thp-cow.js';
import writeTracking from './write-tracking.js';
import zeroPage from './zero-page.js';
import redisBgsave from './redis-bgsave.js';
import reclaimSharing from './reclaim-sharing.js';
import mthpCow from './mthp-cow.js';
import recordWritesExperiment from './record-writes.js';

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
  // Storage copy-on-write (issue 14): real file systems on loop devices.
  snapshotInstant,
  firstWriteCost,
  secondWrite,
  overlayCopyUp,
  snapshotLifetime,
  // COW inside the memory manager (issue 12).
  pins,
  fdSharing,
  overcommit,
  ksm,
  // Userspace write tracking compared (issue 15).
  writeTracking,
  // COW inside the memory manager (issue 12), continued.
  fragmentation,
  // Real programs (issue 13).
  redisBgsave,
  // COW inside the memory manager (issue 12), continued: reclaim and swap.
  reclaimSharing,
  mthpCow,
  // Real programs (issue 13), continued: what record sees.
  recordWritesExperiment,
];
