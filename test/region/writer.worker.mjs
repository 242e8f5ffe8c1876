// A writer thread of the concurrency test: attaches a view by handle and stores op i's value
// ((id << 24) | i) into a random 32-bit word of it, for `ops` ops, publishing how many ops are
// complete in a shared counter after each store. The word sequence comes from mulberry32(seed),
// so the main thread can replay it.
import { parentPort, workerData } from 'node:worker_threads';

const { CowView } = await import(workerData.index);
const { mulberry32 } = await import(workerData.prng);
const view = CowView.attach(workerData.handle);
const words = new Uint32Array(view.buffer);
const done = new Int32Array(workerData.progress);
const rnd = mulberry32(workerData.seed);
const n = words.length;
for (let i = 0; i < workerData.ops; i++) {
  words[Math.floor(rnd() * n)] = ((workerData.id << 24) | i) >>> 0;
  Atomics.store(done, workerData.id, i + 1);
  // Every so often prepareWrite a page from this thread too (a JS-facing call racing the main thread's forks).
  if ((i & 0x3fff) === 0x2000) view.prepareWrite(i % view.pages, (i % view.pages) + 1);
}
view.release();
parentPort.postMessage('done');
