/** Bounds of a periodic sweep: fine enough for accurate timing, coarse enough to stay cheap. */
const MIN_SWEEP_MS = 5;
const MAX_SWEEP_MS = 500;

/**
 * The period of a sweep that enforces `timeouts` (ms; `0` entries are off): a tenth of the shortest,
 * clamped to 5–500 ms, which bounds how late a deadline can be noticed.
 */
export function sweepPeriod(...timeouts: number[]): number {
  const shortest = Math.min(...timeouts.map((ms) => ms || Infinity));
  return Math.min(MAX_SWEEP_MS, Math.max(MIN_SWEEP_MS, Math.floor(shortest / 10)));
}
