import { PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';

/** The part of hdr-histogram-js the bench uses. */
export interface HdrModule {
  build(request?: Record<string, unknown>): HdrHistogram;
  encodeIntoCompressedBase64(histogram: HdrHistogram): string;
  decodeFromCompressedBase64(base64: string): HdrHistogram;
}

/** One histogram of hdr-histogram-js. */
export interface HdrHistogram {
  recordValue(value: number): void;
  add(other: HdrHistogram): void;
  getValueAtPercentile(percentile: number): number;
  readonly maxValue: number;
  readonly mean: number;
  readonly totalCount: number;
  destroy(): void;
}

/** Round trips in µs, from 1 µs to an hour, 3 significant digits (0.1 %), as autocannon records them. */
export const HISTOGRAM = { lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, useWebAssembly: false };

/**
 * hdr-histogram-js, loaded only when a bench runs (an optional dependency: installed with pulsar, never
 * loaded by the library).
 * @throws {PulsarError} `ERR_MISSING_DEPENDENCY` when it is not installed
 */
export async function loadHdrHistogram(): Promise<HdrModule> {
  try {
    const module = (await import('hdr-histogram-js')) as unknown as HdrModule & { default?: HdrModule };
    return typeof module.build === 'function' ? module : module.default!;
  } catch (error) {
    throw new PulsarError('ERR_MISSING_DEPENDENCY', `pulsar bench needs the hdr-histogram-js package: npm install hdr-histogram-js (${messageOf(error)})`, { cause: error });
  }
}
