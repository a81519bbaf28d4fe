// A worker thread of `pulsar bench --threads N`: runs its share of the load and posts progress and the
// result to the main thread (see bench.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { runLoad, type LoadSpec } from './bench-load.js';

const port = parentPort!;
runLoad(workerData as LoadSpec, (frames) => port.postMessage({ progress: frames })).then(
  (result) => port.postMessage({ result }),
  (error: unknown) => port.postMessage({ error: error instanceof Error ? `${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}`.trim() : String(error) }),
);
