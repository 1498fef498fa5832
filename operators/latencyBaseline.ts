import { requireInRange, requireInteger, requireNumber } from './internal/validate.js';

/** Options of one agent's {@link LatencyBaseline}, the same as `degradation`'s. */
export interface LatencyBaselineOptions {
  /** Degraded when recent ≥ factor × baseline (> 1, default 2). Lower: earlier alarms, more false ones. */
  readonly factor?: number;
  /**
   * Recovered when recent < recoveryFactor × baseline, in (0, factor] (default halfway,
   * `(1 + factor) / 2`). Hysteresis: an agent hovering around `factor` is one episode, not a flap.
   */
  readonly recoveryFactor?: number;
  /**
   * Warm-up: the baseline starts as the mean of an agent's first `baselineSamples` samples
   * (integer ≥ 1, default 10), and there is no verdict before. More: a sturdier baseline, later
   * first verdict.
   */
  readonly baselineSamples?: number;
  /**
   * The recent level is the mean of the last `windowSize` samples (integer ≥ 1, default 5).
   * Larger: one slow response alone does not alarm, but detection takes more samples.
   */
  readonly windowSize?: number;
  /**
   * After warm-up the baseline follows healthy samples slowly: `baseline += baselineAlpha ×
   * (sample − baseline)`, in [0, 1] (default 0.02; 0 freezes it). Samples taken while degraded or
   * at ≥ factor × baseline are never learned, so a slow agent cannot drag its own baseline up
   * (nor is the sample that causes a verdict).
   */
  readonly baselineAlpha?: number;
  /**
   * Floor of the baseline (> 0, default 1 ms): an agent answering in ~0 ms (virtual time,
   * in-process) would otherwise be "degraded" by any non-zero latency.
   */
  readonly minBaselineMs?: number;
}

export type SettledLatencyBaselineOptions = Required<LatencyBaselineOptions>;

/** Fills in the defaults and checks each option (a RangeError naming the bad one). */
export function settleLatencyBaseline(options: LatencyBaselineOptions): SettledLatencyBaselineOptions {
  const {
    factor = 2,
    recoveryFactor = (1 + factor) / 2,
    baselineSamples = 10,
    windowSize = 5,
    baselineAlpha = 0.02,
    minBaselineMs = 1,
  } = options;
  requireNumber('factor', factor, 1, true);
  requireNumber('recoveryFactor', recoveryFactor, 0, true);
  if (recoveryFactor > factor) {
    throw new RangeError(`recoveryFactor must be <= factor (${factor}), got ${recoveryFactor}`);
  }
  requireInteger('baselineSamples', baselineSamples, 1);
  requireInteger('windowSize', windowSize, 1);
  requireInRange('baselineAlpha', baselineAlpha, 0, 1);
  requireNumber('minBaselineMs', minBaselineMs, 0, true);
  return { factor, recoveryFactor, baselineSamples, windowSize, baselineAlpha, minBaselineMs };
}

/**
 * One agent's response time against its own baseline: the pure core of `degradation`.
 * O(1) per sample, one ring of `windowSize` numbers, no allocation after construction.
 *
 * @example
 * const agent = new LatencyBaseline({ baselineSamples: 2, windowSize: 1 });
 * [10, 10, 25].map(ms => agent.add(ms)); // [undefined, undefined, 'degraded']
 */
export class LatencyBaseline {
  private readonly o: SettledLatencyBaselineOptions;
  private readonly ring: Float64Array;
  private next = 0;
  private filled = 0;
  private sum = 0;
  private count = 0;
  private baseline = 0;
  private degraded = false;

  constructor(options: LatencyBaselineOptions = {}) {
    this.o = settleLatencyBaseline(options);
    this.ring = new Float64Array(this.o.windowSize);
  }

  /** Adds a sample (finite, ≥ 0: the caller filters) and returns the verdict it causes, if any. */
  add(latencyMs: number): 'degraded' | 'recovered' | undefined {
    const o = this.o;
    const ring = this.ring;
    this.sum += latencyMs - (ring[this.next] as number);
    ring[this.next] = latencyMs;
    this.next = (this.next + 1) % ring.length;
    if (this.filled < ring.length) this.filled++;
    // Re-add the ring once per lap, so running-sum rounding cannot drift: still O(1) amortised.
    if (this.next === 0) {
      let sum = 0;
      for (let i = 0; i < ring.length; i++) sum += ring[i] as number;
      this.sum = sum;
    }

    this.count++;
    if (this.count <= o.baselineSamples) {
      this.baseline += latencyMs; // the warm-up sum, turned into a mean on its last sample
      if (this.count === o.baselineSamples) this.baseline /= o.baselineSamples;
      return undefined;
    }

    // Judge against the baseline as it was before this sample, then learn from it if healthy.
    const base = this.baselineMs;
    const recent = this.recentMs;
    let verdict: 'degraded' | 'recovered' | undefined;
    if (!this.degraded && recent >= o.factor * base) {
      this.degraded = true;
      verdict = 'degraded';
    } else if (this.degraded && recent < o.recoveryFactor * base) {
      this.degraded = false;
      verdict = 'recovered';
    }
    // The sample that causes a verdict is not learned either, so the event's baseline is the one judged.
    if (verdict === undefined && !this.degraded && latencyMs < o.factor * base) {
      this.baseline += o.baselineAlpha * (latencyMs - this.baseline);
    }
    return verdict;
  }

  /** Mean of the last `windowSize` samples (0 before any). */
  get recentMs(): number {
    return this.filled === 0 ? 0 : this.sum / this.filled;
  }

  /** The baseline compared against, floored at `minBaselineMs` (the floor itself during warm-up). */
  get baselineMs(): number {
    return this.isWarm ? Math.max(this.baseline, this.o.minBaselineMs) : this.o.minBaselineMs;
  }

  get ratio(): number {
    return this.recentMs / this.baselineMs;
  }

  get isDegraded(): boolean {
    return this.degraded;
  }

  /** True once `baselineSamples` samples have been seen and verdicts can be given. */
  get isWarm(): boolean {
    return this.count >= this.o.baselineSamples;
  }
}
