import { PulsarError } from '../errors.js';

/** Renders a bad option value with its type, for error messages. */
function describeValue(value: unknown): string {
  const type = value === null ? 'null' : typeof value;
  const shown = typeof value === 'string' ? `'${value}'` : String(value);
  return `${shown} (${type})`;
}

/** An `ERR_INVALID_OPTION` error naming the owner, the option, the rule and the bad value. */
export function invalidOption(owner: string, option: string, rule: string, value: unknown): PulsarError {
  const reason = `${rule}, got ${describeValue(value)}`;
  return new PulsarError('ERR_INVALID_OPTION', `${owner}: ${option} ${reason}`, { option, reason });
}

/** An `ERR_INVALID_OPTION` error for an option that does not go with others (no value to show). */
export function conflictingOption(owner: string, option: string, rule: string): PulsarError {
  return new PulsarError('ERR_INVALID_OPTION', `${owner}: ${option} ${rule}`, { option, reason: rule });
}

/** Checks that `value` is an integer in `[min, max]`, else throws `ERR_INVALID_OPTION`. */
export function checkInteger(owner: string, option: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw invalidOption(owner, option, `must be an integer ${range}`, value);
  }
  return value;
}

/** Checks that `value` is one of `allowed`, else throws `ERR_INVALID_OPTION` listing them. */
export function checkOneOf<const T extends readonly (string | number)[]>(owner: string, option: string, value: unknown, allowed: T): T[number] {
  if (allowed.includes(value as T[number])) return value as T[number];
  const list = allowed.map((v) => (typeof v === 'string' ? `'${v}'` : String(v)));
  throw invalidOption(owner, option, `must be ${list.slice(0, -1).join(', ')} or ${list.at(-1)!}`, value);
}

/** Longest delay Node's timers accept (2^31 − 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Checks a duration in ms against `[min, MAX_TIMER_MS]`, else throws `ERR_INVALID_OPTION`. */
export function checkTimerMs(owner: string, option: string, value: number, min = 0): number {
  return checkInteger(owner, option, value, min, MAX_TIMER_MS);
}

/**
 * Throws `ERR_INVALID_OPTION` for the first key of `options` that `known` does not list, naming the
 * closest known one: a misspelt option must not be silently ignored. `known` is a record of every option
 * name, so that the compiler checks it against the options type (none missing, none extra).
 */
export function checkKnownOptions<T extends object>(owner: string, options: T, known: Record<keyof T, true>, moved: Readonly<Record<string, string>> = {}): void {
  const names = Object.keys(known);
  for (const key of Object.keys(options)) {
    if (names.includes(key)) continue;
    const hint = Object.hasOwn(moved, key) ? moved[key]! : didYouMean(key, names);
    const reason = `is not an option${hint === '' ? '' : ` (${hint})`}`;
    throw new PulsarError('ERR_INVALID_OPTION', `${owner}: unknown option '${key}'${hint === '' ? '' : ` (${hint})`}`, { option: key, reason });
  }
}

/** Options that belong to the codec, not to the server or client: where to set them instead. */
export const CODEC_OPTION_HINTS: Readonly<Record<string, string>> = {
  maxFrameLength: 'it is the codec\'s: codec: new LengthPrefixedCodec({ maxFrameLength })',
  onTooLong: 'it is the codec\'s: codec: new LengthPrefixedCodec({ onTooLong })',
};

/** `did you mean 'x'?` for the known name nearest to `word`, or `''` when none is near. */
export function didYouMean(word: string, names: readonly string[]): string {
  const hint = closestName(word, names);
  return hint === undefined ? '' : `did you mean '${hint}'?`;
}

/** The name nearest to `word` by edit distance, if near enough to be a likely typo. */
function closestName(word: string, names: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const name of names) {
    const distance = editDistance(word.toLowerCase(), name.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [name, distance];
  }
  return best;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}
