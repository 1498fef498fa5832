/**
 * Suspicion level phi for a heartbeat that has been silent for `timeSinceLastMs`, given the mean
 * and standard deviation of past intervals: the logistic approximation of the normal tail used by
 * Akka's `PhiAccrualFailureDetector` (Hayashibara et al.). phi = 1 means a 10 % chance that a beat
 * is still coming, phi = 8 one in 10^8.
 *
 * Never NaN and never −0; +∞ once the approximation underflows.
 *
 * @example
 * phi(1400, 1000, 100); // ≈ 4.7
 */
export function phi(timeSinceLastMs: number, meanMs: number, stdDevMs: number): number {
  if (Number.isNaN(timeSinceLastMs) || Number.isNaN(meanMs) || Number.isNaN(stdDevMs)) {
    throw new RangeError(`phi needs numbers, got (${timeSinceLastMs}, ${meanMs}, ${stdDevMs})`);
  }
  // 0/0 (zero deviation exactly at the mean) is the centre of the distribution; so is any distance
  // over an infinite deviation, even one whose subtraction overflowed (∞/∞ would be NaN).
  const y = timeSinceLastMs === meanMs || stdDevMs === Infinity ? 0 : (timeSinceLastMs - meanMs) / stdDevMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  // The two branches are the same function; each is the numerically stable form on its side.
  const value = timeSinceLastMs > meanMs ? -Math.log10(e / (1 + e)) : -Math.log10(1 - 1 / (1 + e));
  return value + 0; // folds −0 into 0
}

/**
 * The standardised distance `y = (Δ − mean) / std` at which `phi` reaches `threshold`: the real root
 * of `0.070566·y³ + 1.5976·y − c = 0` with `c = ln((1 − p) / p)`, `p = 10^−threshold` (Cardano; the
 * cubic is increasing, so the root is unique). A detector computes it once, then the instant of
 * suspicion is `lastArrival + mean + y·std` with no polling.
 */
export function phiThresholdOffset(threshold: number): number {
  const c = threshold * Math.LN10 + Math.log1p(-Math.pow(10, -threshold));
  const a = 0.070566;
  const p = 1.5976 / a;
  const q = -c / a;
  const root = Math.sqrt((q * q) / 4 + (p * p * p) / 27);
  return Math.cbrt(-q / 2 + root) + Math.cbrt(-q / 2 - root);
}
