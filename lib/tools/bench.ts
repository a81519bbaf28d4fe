import { Worker } from 'node:worker_threads';
import { hostPort } from '../util/format.js';
import { runLoad, type LoadResult, type LoadSpec } from './bench-load.js';
import type { CodecSpec } from './codec-spec.js';
import { HISTOGRAM, loadHdrHistogram } from './histogram.js';

/** Options of {@link bench}. */
export interface BenchOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** The server's port. */
  port: number;
  /** The server's framing. @default a 4-byte big-endian length */
  codec?: CodecSpec;
  /** Connections (`-c`). @default 10 */
  connections?: number;
  /** Frames in flight per connection (`-d`). @default 1 */
  depth?: number;
  /** Payload bytes per frame (`-s`). @default 64 */
  size?: number;
  /** Seconds measured (`-D`). @default 10 */
  duration?: number;
  /** Seconds of load before measuring (`--warmup`). @default 1 */
  warmup?: number;
  /** A cap on frames/s sent, over all connections (`--rate`); `0`: none. @default 0 */
  rate?: number;
  /** Worker threads sharing the connections (`--threads`); 1 runs in this thread. @default 1 */
  threads?: number;
  /** Called about every second while measuring, with the frames/s of that second. */
  onProgress?: (progress: BenchProgress) => void;
}

/** One second of a bench, while it runs. */
export interface BenchProgress {
  /** Seconds since measuring started (negative during the warm-up). */
  second: number;
  /** Answers checked in the last second. */
  framesPerSec: number;
}

/** Latency percentiles of a bench, in ms. */
export interface BenchLatency {
  /** The median round trip. */
  p50: number;
  /** 90 % of round trips took at most this. */
  p90: number;
  /** 99 % took at most this. */
  p99: number;
  /** 99.9 % took at most this. */
  p999: number;
  /** The slowest. */
  max: number;
  /** The mean. */
  mean: number;
}

/** What `pulsar bench` measured (also its `--json` output). */
export interface BenchResult {
  /** `host:port`. */
  target: string;
  /** Connections opened. */
  connections: number;
  /** Frames in flight per connection. */
  depth: number;
  /** Payload bytes per frame. */
  size: number;
  /** Threads the connections were spread over. */
  threads: number;
  /** The rate cap in frames/s, `0` for none. */
  rate: number;
  /** Seconds measured (the warm-up excluded). */
  seconds: number;
  /** Answers received and checked while measuring. */
  frames: number;
  /** `frames / seconds`. */
  framesPerSec: number;
  /** Payload bytes sent and received while measuring. */
  bytes: number;
  /** `bytes / seconds / 10^6`: megabytes (not MiB) per second, both ways. */
  mbPerSec: number;
  /** Round trips, from the frame's write to its answer, in ms (HDR histogram, 3 significant digits). */
  latency: BenchLatency;
  /** Connections that failed during the run (reset or closed by the server). */
  errors: number;
  /** Answers that were not the frame sent: another payload or length, out of order, undecodable bytes. */
  mismatches: number;
  /** Heartbeat frames received (never counted as answers). */
  heartbeats: number;
}

/**
 * `pulsar bench`: drives a server with `connections × depth` frames in flight (an echo: every answer must
 * be the frame it answers, in order), optionally capped in rate and spread over worker threads, and
 * measures answers per second and round trips in an HDR histogram.
 * @throws Node's error (`ECONNREFUSED`…) when the server cannot be reached
 */
export async function bench(options: BenchOptions): Promise<BenchResult> {
  const { host = '127.0.0.1', port, codec = {}, connections = 10, depth = 1, size = 64, duration = 10, warmup = 1, rate = 0, threads = 1 } = options;
  const shares = Array.from({ length: Math.min(threads, connections) }, (_, i) => Math.floor(connections / threads) + (i < connections % threads ? 1 : 0));
  const specs: LoadSpec[] = shares.map((share) => ({
    host, port, codec, connections: share, depth, size, warmupMs: warmup * 1000, durationMs: duration * 1000, rate: (rate * share) / connections,
  }));
  const counted = new Array<number>(specs.length).fill(0);
  const stopProgress = reportProgress(counted, warmup, options.onProgress);
  let results: LoadResult[];
  try {
    results = await Promise.all(specs.map((spec, i) => (specs.length === 1 ? runLoad(spec, (frames) => (counted[i] = frames)) : inWorker(spec, (frames) => (counted[i] = frames)))));
  } finally {
    stopProgress();
  }
  return summarize(results, { target: hostPort(host, port), connections, depth, size, threads: specs.length, rate });
}

/**
 * Runs a share in a worker thread: the built `bench-worker` file next to this one, or from the sources
 * (tests, development) the TypeScript file through tsx, registered in the worker first.
 */
function inWorker(spec: LoadSpec, progress: (frames: number) => void): Promise<LoadResult> {
  const here = import.meta.url;
  const extension = /\.(c?js|ts)$/.exec(here)?.[1] ?? 'js';
  const file = new URL(`./bench-worker.${extension}`, here);
  const worker = extension === 'ts'
    ? new Worker(`import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(file.href)}); })`, { eval: true, workerData: spec })
    : new Worker(file, { workerData: spec });
  return new Promise((resolve, reject) => {
    worker.on('message', (message: { progress?: number; result?: LoadResult; error?: string }) => {
      if (message.progress !== undefined) progress(message.progress);
      else if (message.result !== undefined) resolve(message.result);
      else reject(new Error(message.error));
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`a bench thread exited (${code})`)));
  });
}

/** Calls `onProgress` every second with that second's answers; returns the way to stop. */
function reportProgress(counted: number[], warmup: number, onProgress: BenchOptions['onProgress']): () => void {
  if (onProgress === undefined) return () => {};
  const started = Date.now() + warmup * 1000;
  let last = 0;
  const timer = setInterval(() => {
    const total = counted.reduce((sum, n) => sum + n, 0);
    onProgress({ second: Math.round((Date.now() - started) / 1000), framesPerSec: Math.max(0, total - last) });
    last = total;
  }, 1000);
  return () => clearInterval(timer);
}

async function summarize(results: LoadResult[], shape: Pick<BenchResult, 'target' | 'connections' | 'depth' | 'size' | 'threads' | 'rate'>): Promise<BenchResult> {
  const hdr = await loadHdrHistogram();
  const merged = hdr.build(HISTOGRAM);
  for (const { histogram } of results) {
    const part = hdr.decodeFromCompressedBase64(histogram);
    merged.add(part);
    part.destroy();
  }
  const ms = (us: number): number => Math.round(us) / 1000;
  const latency = merged.totalCount === 0
    ? { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 }
    : { p50: ms(merged.getValueAtPercentile(50)), p90: ms(merged.getValueAtPercentile(90)), p99: ms(merged.getValueAtPercentile(99)), p999: ms(merged.getValueAtPercentile(99.9)), max: ms(merged.maxValue), mean: ms(merged.mean) };
  merged.destroy();
  const seconds = Math.max(...results.map((r) => r.elapsedMs)) / 1000;
  const sum = (key: 'frames' | 'bytes' | 'errors' | 'mismatches' | 'heartbeats'): number => results.reduce((total, r) => total + r[key], 0);
  const frames = sum('frames');
  const bytes = sum('bytes');
  return {
    ...shape, seconds, frames, framesPerSec: frames / seconds, bytes, mbPerSec: bytes / seconds / 1e6, latency,
    errors: sum('errors'), mismatches: sum('mismatches'), heartbeats: sum('heartbeats'),
  };
}

/** The summary `pulsar bench` prints. */
export function formatBench(result: BenchResult): string {
  const int = (n: number): string => Math.round(n).toLocaleString('en-US');
  const { latency: l } = result;
  return [
    `${result.target}: ${result.connections} connection(s) × ${result.depth} in flight, ${result.size} B payloads, ${result.threads} thread(s)${result.rate > 0 ? `, capped at ${int(result.rate)} frames/s` : ''}`,
    `  ${int(result.frames)} answers in ${result.seconds.toFixed(2)} s: ${int(result.framesPerSec)} frames/s, ${result.mbPerSec.toFixed(1)} MB/s (payload, both ways)`,
    `  latency ms: p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}  (mean ${l.mean.toFixed(3)})`,
    `  errors ${result.errors}, mismatches ${result.mismatches}, heartbeats ${result.heartbeats}`,
  ].join('\n');
}
