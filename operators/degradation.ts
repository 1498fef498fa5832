import { asyncScheduler, defer, filter, finalize, map, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { requireInteger, requireScheduler } from './internal/validate.js';
import { LatencyBaseline, settleLatencyBaseline, type LatencyBaselineOptions } from './latencyBaseline.js';

/** One response-time measurement of an agent. */
export interface LatencySample {
  readonly agentId: string;
  readonly latencyMs: number;
}

/** Announces that an agent is gone: its baseline is forgotten, no event is emitted. */
export interface LatencyAgentLeft {
  readonly agentId: string;
  readonly left: true;
}

export type LatencyInput = LatencySample | LatencyAgentLeft;

/** An agent's recent response time crossed `factor × baseline` (`degraded`) or came back (`recovered`). */
export interface DegradationEvent {
  readonly type: 'degraded' | 'recovered';
  readonly agentId: string;
  /** Scheduler time of the verdict. */
  readonly at: number;
  /** The recent level: mean of the last `windowSize` samples. */
  readonly latencyMs: number;
  /** The baseline compared against (never below `minBaselineMs`). */
  readonly baselineMs: number;
  /** `latencyMs / baselineMs`. */
  readonly ratio: number;
}

export interface DegradationOptions extends LatencyBaselineOptions {
  /** Read for `at` only (default `asyncScheduler`). */
  readonly scheduler?: SchedulerLike;
  /**
   * `self` (default): an agent is degraded against its own baseline. `peers`: also only when its
   * recent level is ≥ `factor` × the median recent level of the other warmed-up agents for
   * `windowSize` of its samples running (with at least `minPeers` of them; fewer, and its own
   * baseline alone decides), and it recovers once below
   * `recoveryFactor` × that median or its own baseline. A slowdown shared by everyone (a saturated
   * coordinator, a loaded machine) is then no agent's fault; one agent ×4 slower than the rest is.
   */
  readonly relativeTo?: 'self' | 'peers';
  /** With `relativeTo: 'peers'`: the fewest other warmed-up agents to compare with (integer ≥ 1, default 2). */
  readonly minPeers?: number;
}

/**
 * Per agent, recent response time against the agent's own baseline → `degraded` when the recent
 * level reaches `factor × baseline`, `recovered` when it falls below `recoveryFactor × baseline`;
 * once per episode.
 *
 * ```
 * latency: -1-1-1-1-5-5-5-1-1-1-   baselineSamples 2, windowSize 2, factor 2, recoveryFactor 1.5
 * result:  ---------d-------r---   (d: recent (1+5)/2 = 3 ≥ 2 × 1; r: recent 1 < 1.5 × 1)
 * ```
 *
 * Definitions: the baseline is the mean of the first `baselineSamples` samples, then an EWMA
 * (`baselineAlpha`) of the samples taken while healthy and below `factor × baseline`, floored at
 * `minBaselineMs`; the recent level is the mean of the last `windowSize` samples. Samples with a
 * non-finite or negative `latencyMs` are bad data and skipped. `{ agentId, left: true }` forgets
 * an agent silently; unsubscribing forgets all. O(1) per sample.
 *
 * @example
 * latency$.pipe(degradation({ factor: 2 })).subscribe(e =>
 *   e.type === 'degraded' && reduceLoad(e.agentId));
 */
export function degradation(options: DegradationOptions = {}): OperatorFunction<LatencyInput, DegradationEvent> {
  const { scheduler = asyncScheduler, relativeTo = 'self', minPeers = 2, ...baselineOptions } = options;
  const settled = settleLatencyBaseline(baselineOptions);
  requireScheduler(scheduler);
  if (relativeTo !== 'self' && relativeTo !== 'peers') throw new RangeError(`relativeTo must be 'self' or 'peers', got ${String(relativeTo)}`);
  requireInteger('minPeers', minPeers, 1);

  return source =>
    defer(() => {
      const agents = new Map<string, PeerEntry>();
      let scratch = new Float64Array(16);

      /** Median recent level of the warmed-up agents but `self`, or undefined with fewer than `minPeers`. */
      const peerMedian = (self: PeerEntry): number | undefined => {
        if (scratch.length < agents.size) scratch = new Float64Array(2 * agents.size);
        let n = 0;
        for (const entry of agents.values()) if (entry !== self && entry.baseline.isWarm) scratch[n++] = entry.baseline.recentMs;
        return n < minPeers ? undefined : select(scratch, n, n >> 1);
      };

      const event = (type: DegradationEvent['type'], agentId: string, agent: LatencyBaseline, baselineMs: number): DegradationEvent => {
        const recent = agent.recentMs;
        return { type, agentId, at: scheduler.now(), latencyMs: recent, baselineMs, ratio: recent / baselineMs };
      };

      const step = (input: LatencyInput): DegradationEvent | undefined => {
        const { agentId } = input;
        if ('left' in input) {
          agents.delete(agentId);
          return undefined;
        }
        const { latencyMs } = input;
        if (!Number.isFinite(latencyMs) || latencyMs < 0) return undefined;
        let entry = agents.get(agentId);
        if (entry === undefined) agents.set(agentId, (entry = { baseline: new LatencyBaseline(settled), reported: false, strikes: 0 }));
        const agent = entry.baseline;
        const type = agent.add(latencyMs);
        if (relativeTo === 'self') return type === undefined ? undefined : event(type, agentId, agent, agent.baselineMs);
        // Against its peers: only while its own baseline also says slow (cheap, and rare when healthy).
        // It must stay that much slower than its peers for `windowSize` of its samples running: when
        // everyone slows at once, whoever's window fills first is briefly ahead of the others.
        if (!entry.reported) {
          if (!agent.isDegraded) {
            entry.strikes = 0;
            return undefined;
          }
          const median = peerMedian(entry);
          const base = median === undefined ? agent.baselineMs : Math.max(median, settled.minBaselineMs);
          if (agent.recentMs < settled.factor * base) {
            entry.strikes = 0;
            return undefined;
          }
          if (median !== undefined && ++entry.strikes < settled.windowSize) return undefined;
          entry.reported = true;
          entry.strikes = 0;
          return event('degraded', agentId, agent, base);
        }
        const median = peerMedian(entry);
        const base = median === undefined ? agent.baselineMs : Math.max(median, settled.minBaselineMs);
        if (agent.isDegraded && agent.recentMs >= settled.recoveryFactor * base) return undefined;
        entry.reported = false;
        return event('recovered', agentId, agent, base);
      };

      return source.pipe(
        map(step),
        filter((event): event is DegradationEvent => event !== undefined),
        finalize(() => agents.clear()),
      );
    });
}

interface PeerEntry {
  readonly baseline: LatencyBaseline;
  /** A `degraded` was emitted for it (peers mode): its `recovered` is owed. */
  reported: boolean;
  /** Its samples in a row that found it `factor` × slower than its peers. */
  strikes: number;
}

/** The `k`-th smallest of `values[0..n)` (reorders them; Hoare's quickselect, O(n) on average). */
function select(values: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = values[(lo + hi) >> 1] as number;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((values[i] as number) < pivot) i++;
      while ((values[j] as number) > pivot) j--;
      if (i <= j) {
        const t = values[i] as number;
        values[i++] = values[j] as number;
        values[j--] = t;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return values[k] as number;
}
