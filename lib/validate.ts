import { PulsarError } from './errors.js';

/** Renders a bad option value with its type, for error messages. */
function describeValue(value: unknown): string {
  const type = value === null ? 'null' : typeof value;
  const shown = typeof value === 'string' ? `'${value}'` : String(value);
  return `${shown} (${type})`;
}

/** An `ERR_INVALID_OPTION` error naming the owner, the option, the rule and the bad value. */
export function invalidOption(owner: string, option: string, rule: string, value: unknown): PulsarError {
  return new PulsarError('ERR_INVALID_OPTION', `${owner}: ${option} ${rule}, got ${describeValue(value)}`);
}

/** Checks that `value` is an integer in `[min, max]`, else throws `ERR_INVALID_OPTION`. */
export function checkInteger(owner: string, option: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw invalidOption(owner, option, `must be an integer ${range}`, value);
  }
  return value;
}

/** Longest delay Node's timers accept (2^31 − 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Checks a duration in ms against `[min, MAX_TIMER_MS]`, else throws `ERR_INVALID_OPTION`. */
export function checkTimerMs(owner: string, option: string, value: number, min = 0): number {
  return checkInteger(owner, option, value, min, MAX_TIMER_MS);
}
