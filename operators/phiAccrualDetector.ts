import { phi, phiThresholdOffset } from './phi.js';
import { requireInteger, requireNumber } from './internal/validate.js';

/** Options of a phi accrual detector; defaults are Akka's. */
export interface PhiAccrualDetectorOptions {
  /** phi at which an agent is suspected. Lower: faster detection, more false suspicions. Default 8. */
  readonly threshold?: number;
  /** Intervals kept for the statistics. Larger: steadier estimate, slower to adapt. Default 1000. */
  readonly maxSampleSize?: number;
  /** Floor of the standard deviation, so perfectly regular beats do not make phi explode. Default 100. */
  readonly minStdDeviationMs?: number;
  /** Pause tolerated on top of the mean interval (GC, bursts). Larger: fewer false suspicions, slower detection. Default 3000. */
  readonly acceptableHeartbeatPauseMs?: number;
  /** Interval assumed before any is measured. Default 1000. */
  readonly firstHeartbeatEstimateMs?: number;
}

/** Options settled and checked once, shared by every detector built from them. */
export class PhiSettings {
  readonly threshold: number;
  readonly maxSampleSize: number;
  readonly minStdDeviationMs: number;
  readonly acceptableHeartbeatPauseMs: number;
  readonly firstHeartbeatEstimateMs: number;
  /** `y` at which phi reaches the threshold (see `phiThresholdOffset`). */
  readonly thresholdOffset: number;

  constructor(options: PhiAccrualDetectorOptions = {}) {
    const {
      threshold = 8,
      maxSampleSize = 1000,
      minStdDeviationMs = 100,
      acceptableHeartbeatPauseMs = 3000,
      firstHeartbeatEstimateMs = 1000,
    } = options;
    // Above ~300 the tail probability underflows a double; no real deployment wants that.
    this.threshold = requireNumber('threshold', threshold, 0, true);
    if (threshold > 300) throw new RangeError(`threshold must be <= 300, got ${threshold}`);
    this.maxSampleSize = requireInteger('maxSampleSize', maxSampleSize, 1);
    this.minStdDeviationMs = requireNumber('minStdDeviationMs', minStdDeviationMs, 0, true);
    this.acceptableHeartbeatPauseMs = requireNumber('acceptableHeartbeatPauseMs', acceptableHeartbeatPauseMs, 0);
    this.firstHeartbeatEstimateMs = requireNumber('firstHeartbeatEstimateMs', firstHeartbeatEstimateMs, 0, true);
    this.thresholdOffset = phiThresholdOffset(this.threshold);
  }
}

/**
 * A window of the last `maxSampleSize` heartbeat intervals with running sums: O(1) `add`, `mean`
 * and population `variance`. Grows up to `maxSampleSize`, then overwrites the oldest.
 */
export class IntervalWindow<Settings extends { readonly maxSampleSize: number } = { readonly maxSampleSize: number }> {
  private readonly intervals: number[] = [];
  private oldest = 0;
  private sum = 0;
  private squaredSum = 0;

  /** `settings` is held by reference: thousands of windows share one object. */
  constructor(readonly settings: Settings) {
    requireInteger('maxSampleSize', settings.maxSampleSize, 1);
  }

  get size(): number {
    return this.intervals.length;
  }

  get mean(): number {
    return this.intervals.length === 0 ? 0 : this.sum / this.intervals.length;
  }

  /** Population variance; 0 for fewer than two samples (never negative from rounding). */
  get variance(): number {
    const n = this.intervals.length;
    if (n === 0) return 0;
    const mean = this.sum / n;
    return Math.max(0, this.squaredSum / n - mean * mean);
  }

  add(interval: number): void {
    const intervals = this.intervals;
    if (intervals.length < this.settings.maxSampleSize) {
      intervals.push(interval);
    } else {
      const oldest = this.oldest;
      const dropped = intervals[oldest] as number;
      this.sum -= dropped;
      this.squaredSum -= dropped * dropped;
      intervals[oldest] = interval;
      this.oldest = oldest + 1 === intervals.length ? 0 : oldest + 1;
    }
    this.sum += interval;
    this.squaredSum += interval * interval;
  }
}

/**
 * The phi accrual failure detector of one agent, as Akka's `PhiAccrualFailureDetector`: a window of
 * heartbeat intervals with running sums (O(1) per heartbeat), phi over `mean + acceptableHeartbeatPauseMs`
 * and `max(std, minStdDeviationMs)`, bootstrapped from `firstHeartbeatEstimateMs`, and no sampling of
 * the first interval after an outage. Time is whatever clock the caller passes (scheduler time).
 *
 * @example
 * const detector = new PhiAccrualDetector({ threshold: 8 });
 * detector.heartbeat(0);
 * detector.heartbeat(1000);
 * detector.isAvailable(2000); // true
 * detector.suspicionAt();     // first ms at which phi >= 8 if no beat comes
 */
export class PhiAccrualDetector extends IntervalWindow<PhiSettings> {
  // Few fields on purpose: a coordinator holds one detector per agent (see the memory benchmark).
  private lastArrival = 0;
  /**
   * A whole ms before the closed-form instant where phi reaches the threshold (exact up to
   * floating rounding, ≪ 1 ms). Kept whole so it stays a small integer, not a boxed double.
   */
  private lowerBound = 0;

  constructor(options: PhiAccrualDetectorOptions | PhiSettings = {}) {
    super(options instanceof PhiSettings ? options : new PhiSettings(options));
  }

  /** True once the first heartbeat has arrived (which seeds the window). */
  get isMonitoring(): boolean {
    return this.size > 0;
  }

  /** Population standard deviation of the sampled intervals, floored at `minStdDeviationMs`. */
  get stdDeviationMs(): number {
    return Math.max(Math.sqrt(this.variance), this.settings.minStdDeviationMs);
  }

  /**
   * A whole ms at or before `suspicionAt()`, known without evaluating phi: what a timer queue may
   * key on, and what lets a beat well inside the deadline skip every `exp` and `log10`.
   */
  get suspicionLowerBound(): number {
    return this.lowerBound;
  }

  /** Records a heartbeat arriving at `nowMs`. */
  heartbeat(nowMs: number): void {
    const settings = this.settings;
    if (this.size === 0) {
      const estimate = settings.firstHeartbeatEstimateMs;
      const spread = Math.floor(estimate / 4);
      this.add(estimate - spread);
      this.add(estimate + spread);
    } else if (this.isAvailable(nowMs)) {
      // The first beat after an outage is not sampled: its long interval would skew the statistics.
      this.add(nowMs - this.lastArrival);
    }
    this.lastArrival = nowMs;
    this.lowerBound = Math.floor(this.crossing()) - 1;
  }

  /** Suspicion level at `nowMs`; 0 before the first heartbeat. */
  phi(nowMs: number): number {
    if (this.size === 0) return 0;
    return phi(nowMs - this.lastArrival, this.mean + this.settings.acceptableHeartbeatPauseMs, this.stdDeviationMs);
  }

  /** `phi(nowMs) < threshold`. */
  isAvailable(nowMs: number): boolean {
    // phi is increasing in time; a whole ms before the closed-form crossing it is below threshold.
    if (this.size === 0 || nowMs <= this.suspicionLowerBound) return true;
    return this.phi(nowMs) < this.settings.threshold;
  }

  /**
   * First whole ms at which phi reaches the threshold if no heartbeat comes; undefined before the
   * first. The closed-form crossing settled on the exact ms by phi itself: O(1), a few `exp`.
   */
  suspicionAt(): number | undefined {
    if (this.size === 0) return undefined;
    const threshold = this.settings.threshold;
    const mean = this.mean + this.settings.acceptableHeartbeatPauseMs;
    const std = this.stdDeviationMs;
    const last = this.lastArrival;
    let at = Math.ceil(this.crossing());
    // Rounding can put the closed form a ms off either way; phi is monotone, so step.
    while (phi(at - 1 - last, mean, std) >= threshold) at--;
    while (phi(at - last, mean, std) < threshold) at++;
    return at;
  }

  private crossing(): number {
    const settings = this.settings;
    return this.lastArrival + this.mean + settings.acceptableHeartbeatPauseMs + settings.thresholdOffset * this.stdDeviationMs;
  }
}
