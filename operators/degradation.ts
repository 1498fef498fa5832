import { asyncScheduler, defer, filter, finalize, map, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { requireScheduler } from './internal/validate.js';
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
  const { scheduler = asyncScheduler, ...baselineOptions } = options;
  const settled = settleLatencyBaseline(baselineOptions);
  requireScheduler(scheduler);

  return source =>
    defer(() => {
      const agents = new Map<string, LatencyBaseline>();

      const step = (input: LatencyInput): DegradationEvent | undefined => {
        const { agentId } = input;
        if ('left' in input) {
          agents.delete(agentId);
          return undefined;
        }
        const { latencyMs } = input;
        if (!Number.isFinite(latencyMs) || latencyMs < 0) return undefined;
        let agent = agents.get(agentId);
        if (agent === undefined) agents.set(agentId, (agent = new LatencyBaseline(settled)));
        const type = agent.add(latencyMs);
        if (type === undefined) return undefined;
        const baselineMs = agent.baselineMs;
        const recent = agent.recentMs;
        return { type, agentId, at: scheduler.now(), latencyMs: recent, baselineMs, ratio: recent / baselineMs };
      };

      return source.pipe(
        map(step),
        filter((event): event is DegradationEvent => event !== undefined),
        finalize(() => agents.clear()),
      );
    });
}
