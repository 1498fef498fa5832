import { requireInteger, requireNumber } from './validate.js';

/**
 * Round-trip time and retransmission timeout of one peer, as TCP computes them (RFC 6298): a
 * smoothed round trip `srtt` and its mean deviation `rttvar`, updated by each measured sample, and
 * `rto = srtt + max(G, 4·rttvar)` kept within `[minRtoMs, maxRtoMs]`. Pure and O(1) per sample.
 *
 *   first sample R:   srtt = R,  rttvar = R / 2
 *   each next R:      rttvar = 3/4·rttvar + 1/4·|srtt − R|   (with the srtt before this sample)
 *                     srtt   = 7/8·srtt   + 1/8·R
 *
 * Feed it only unambiguous samples (Karn's rule): a round trip whose request was sent more than
 * once cannot tell which copy was answered, so it is not measured. Back-off on repeated loss is
 * {@link retransmitDelay}'s, per message, so that one lost message does not slow the next.
 *
 * Options and their trade-offs:
 * - `initialRtoMs` (1000): the timeout before anything was measured. Lower: a message lost before
 *   the first sample costs less; higher: a slow first answer is not retransmitted needlessly.
 * - `minRtoMs` (20): the floor. Lower: a loss on a fast link costs less; higher: fewer spurious
 *   retransmissions when the answerer stalls briefly (a GC pause, a busy event loop). A spurious
 *   retransmission costs one duplicate message and one lost sample, never a wrong result.
 * - `maxRtoMs` (60 000): the cap, of the timeout and of its backed-off values.
 * - `granularityMs` (1): the clock's tick, `G` above: the deviation term never goes below it.
 *
 * @example
 * const rtt = new RttEstimator({ initialRtoMs: 3000 });
 * rtt.rto;        // 3000
 * rtt.sample(10); // srtt 10, rttvar 5
 * rtt.rto;        // 30 (10 + 4·5)
 */
export class RttEstimator {
  private smoothed = 0;
  private variation = 0;
  private samples = 0;
  private readonly initialRtoMs: number;
  private readonly minRtoMs: number;
  private readonly maxRtoMs: number;
  private readonly granularityMs: number;

  constructor(options: RttEstimatorOptions = {}) {
    const { initialRtoMs = 1000, minRtoMs = 20, maxRtoMs = 60_000, granularityMs = 1 } = options;
    this.minRtoMs = requireNumber('minRtoMs', minRtoMs, 0, true);
    this.maxRtoMs = requireNumber('maxRtoMs', maxRtoMs, minRtoMs);
    this.initialRtoMs = requireNumber('initialRtoMs', initialRtoMs, 0, true);
    this.granularityMs = requireNumber('granularityMs', granularityMs, 0);
  }

  /** A measured round trip, ms (>= 0; anything else is ignored: a clock that went back measures nothing). */
  sample(rttMs: number): void {
    if (!(rttMs >= 0) || !Number.isFinite(rttMs)) return;
    if (this.samples === 0) {
      this.smoothed = rttMs;
      this.variation = rttMs / 2;
    } else {
      this.variation = 0.75 * this.variation + 0.25 * Math.abs(this.smoothed - rttMs);
      this.smoothed = 0.875 * this.smoothed + 0.125 * rttMs;
    }
    this.samples++;
  }

  /** Samples taken so far. */
  get count(): number {
    return this.samples;
  }

  /** Smoothed round trip, ms; undefined before the first sample. */
  get srtt(): number | undefined {
    return this.samples === 0 ? undefined : this.smoothed;
  }

  /** Mean deviation of the round trip, ms; undefined before the first sample. */
  get rttvar(): number | undefined {
    return this.samples === 0 ? undefined : this.variation;
  }

  /** The retransmission timeout now, ms: `initialRtoMs` (clamped) until the first sample. */
  get rto(): number {
    const raw = this.samples === 0 ? this.initialRtoMs : this.smoothed + Math.max(this.granularityMs, 4 * this.variation);
    return Math.min(this.maxRtoMs, Math.max(this.minRtoMs, raw));
  }
}

export interface RttEstimatorOptions {
  readonly initialRtoMs?: number;
  readonly minRtoMs?: number;
  readonly maxRtoMs?: number;
  readonly granularityMs?: number;
}

/**
 * Retransmissions timed at the plain `rto` before back-off starts. Loss of a message that stands
 * alone (one assignment, one result: a "thin stream") is random, not congestion: doubling the wait
 * after each loss made the expected cost of a message at 30 % loss grow without bound. Linux's
 * thin-stream mode (`tcp_thin_linear_timeouts`) keeps the first 6 retransmissions linear for the
 * same reason; after them it backs off exponentially, as RFC 6298 does from the first.
 */
export const LINEAR_RETRANSMISSIONS = 6;

/**
 * Doublings of the timeout at most: a wait of 8 rto. TCP backs off to 60 s because its losses
 * mean congestion; a lone message's losses here are random, and a longer wait after many of them
 * only adds delay to a message that is no likelier to be lost. A slower peer raises the rto
 * itself (its round trips are measured), which the back-off multiplies.
 */
export const MAX_DOUBLINGS = 3;

/**
 * How long to wait for the answer to a message's `n`th retransmission (0: to the first send):
 * `rtoMs` for the first {@link LINEAR_RETRANSMISSIONS}, then doubled per retransmission up to
 * {@link MAX_DOUBLINGS} times, never above `maxMs` (nor below `rtoMs`).
 *
 * @example
 * retransmitDelay(20, 0);   // 20
 * retransmitDelay(20, 6);   // 20
 * retransmitDelay(20, 7);   // 40
 * retransmitDelay(20, 9);   // 160
 * retransmitDelay(20, 100); // 160
 */
export function retransmitDelay(rtoMs: number, n: number, maxMs = 60_000): number {
  requireNumber('rtoMs', rtoMs, 0);
  requireInteger('n', n, 0);
  const doublings = Math.min(MAX_DOUBLINGS, Math.max(0, n - LINEAR_RETRANSMISSIONS));
  return Math.max(rtoMs, Math.min(maxMs, rtoMs * 2 ** doublings));
}
