export { send } from './send.js';
export type { SendOptions } from './send.js';
export { bench, formatBench } from './bench.js';
export type { BenchLatency, BenchOptions, BenchProgress, BenchResult } from './bench.js';
export { codecOf } from './codec-spec.js';
export type { CodecSpec } from './codec-spec.js';
export { display, hexDump, payloadOf, printableText } from './display.js';
export type { DisplayMode } from './display.js';
export { didYouMean } from '../util/validate.js';
