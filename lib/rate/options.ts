import type { ConnectionRateOptions } from '../admission/connection-rate.js';
import { checkInteger, checkKnownOptions, checkTimerMs, conflictingOption, invalidOption } from '../util/validate.js';
import type { RateLimitOptions } from './read-limiter.js';

const OWNER = 'PulsarServer';

/** A positive, finite number (a rate may be fractional: 1 MiB per 10 s). */
function checkRate(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalidOption(OWNER, option, 'must be a number above 0', value);
  return value;
}

/** The server's `rateLimit`, resolved: `null` for none. */
export function resolveRateLimit(option: RateLimitOptions | undefined): Readonly<Required<Omit<RateLimitOptions, 'frames' | 'bytes'>> & Pick<RateLimitOptions, 'frames' | 'bytes'>> | null {
  if (option === undefined) return null;
  if (typeof option !== 'object' || option === null) throw invalidOption(OWNER, 'rateLimit', 'must be an object { frames, bytes, interval, burst }', option);
  checkKnownOptions(`${OWNER} rateLimit`, option, { frames: true, bytes: true, interval: true, burst: true });
  if (option.frames === undefined && option.bytes === undefined) throw conflictingOption(OWNER, 'rateLimit', 'needs frames, bytes or both');
  return Object.freeze({
    ...(option.frames === undefined ? {} : { frames: checkRate('rateLimit.frames', option.frames) }),
    ...(option.bytes === undefined ? {} : { bytes: checkRate('rateLimit.bytes', option.bytes) }),
    interval: checkTimerMs(OWNER, 'rateLimit.interval', option.interval ?? 1000, 1),
    burst: checkRate('rateLimit.burst', option.burst ?? 1),
  });
}

/** The server's `connectionRate`, resolved: `null` for none. */
export function resolveConnectionRate(option: ConnectionRateOptions | undefined): Readonly<Required<ConnectionRateOptions>> | null {
  if (option === undefined) return null;
  if (typeof option !== 'object' || option === null) throw invalidOption(OWNER, 'connectionRate', 'must be an object { count, interval }', option);
  checkKnownOptions(`${OWNER} connectionRate`, option, { count: true, interval: true, maxAddresses: true });
  return Object.freeze({
    count: checkInteger(OWNER, 'connectionRate.count', option.count, 1),
    interval: checkTimerMs(OWNER, 'connectionRate.interval', option.interval ?? 1000, 1),
    maxAddresses: checkInteger(OWNER, 'connectionRate.maxAddresses', option.maxAddresses ?? 100_000, 1),
  });
}
