import { asyncScheduler, defer, filter, finalize, map, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { requireInRange, requireNumber, requireScheduler } from './internal/validate.js';

/** One usage reading of an agent's resource, as a fraction of capacity (1 = full; > 1 allowed). */
export interface UsageSample {
  readonly agentId: string;
  readonly usage: number;
  /** Which resource (`'memory'`, `'cpu'`, …). Samples without one form their own series. */
  readonly resource?: string;
}

/** Announces that an agent is gone: its state is forgotten, no event is emitted. */
export interface UsageAgentLeft {
  readonly agentId: string;
  readonly left: true;
}

export type UsageInput = UsageSample | UsageAgentLeft;

/** An agent's resource crossed into (`exhausted`) or back out of (`relieved`) pressure. */
export interface PressureEvent {
  readonly type: 'exhausted' | 'relieved';
  readonly agentId: string;
  /** Present when the sample named a resource. */
  readonly resource?: string;
  /** Scheduler time of the verdict. */
  readonly at: number;
  /** The usage reading that caused the verdict. */
  readonly usage: number;
}

export interface ResourcePressureOptions {
  /**
   * Usage at or above which a resource is `exhausted`, in (0, 1] (default 0.9). Lower: earlier
   * warning and more room to react, more alarms for loads that would have been fine.
   */
  readonly threshold?: number;
  /**
   * Usage below which an exhausted resource is `relieved`, in [0, threshold] (default
   * `threshold − 0.1`, at least 0). The gap is hysteresis: a reading hovering around `threshold`
   * gives one episode, not a flap per sample. `releaseBelow = threshold` turns it off.
   */
  readonly releaseBelow?: number;
  /** Read for `at` only (default `asyncScheduler`). */
  readonly scheduler?: SchedulerLike;
}

/**
 * The pressure state after one reading: exhausted at `usage ≥ threshold`; once exhausted, it stays
 * so until `usage < releaseBelow`.
 */
export function isExhausted(wasExhausted: boolean, usage: number, threshold: number, releaseBelow: number): boolean {
  return wasExhausted ? usage >= releaseBelow : usage >= threshold;
}

/**
 * Usage samples per agent and resource → `exhausted` when a reading reaches `threshold`,
 * `relieved` when a later one drops below `releaseBelow`; once per episode.
 *
 * ```
 * usage:   -5-9-9-85-7-     (tenths)   threshold 0.9, releaseBelow 0.8
 * result:  ---e----r---
 * ```
 *
 * Readings that are not finite or are negative (NaN, −1, ∞) are bad data from one probe, not
 * broken infrastructure: they are skipped and change nothing. Only exhausted (agent, resource)
 * pairs hold state; `{ agentId, left: true }` forgets an agent silently (no `relieved`: the
 * agent is gone), unsubscribing forgets all.
 *
 * @example
 * usage$.pipe(resourcePressure({ threshold: 0.9 })).subscribe(e =>
 *   e.type === 'exhausted' && reduceLoad(e.agentId, e.resource));
 */
export function resourcePressure(options: ResourcePressureOptions = {}): OperatorFunction<UsageInput, PressureEvent> {
  const { threshold = 0.9, releaseBelow = Math.max(0, threshold - 0.1), scheduler = asyncScheduler } = options;
  requireNumber('threshold', threshold, 0, true);
  requireInRange('threshold', threshold, 0, 1);
  requireInRange('releaseBelow', releaseBelow, 0, threshold);
  requireScheduler(scheduler);

  return source =>
    defer(() => {
      // agentId → its exhausted resources (`undefined` is the unnamed one). Healthy pairs hold nothing.
      const exhausted = new Map<string, Set<string | undefined>>();

      const step = (input: UsageInput): PressureEvent | undefined => {
        const { agentId } = input;
        if ('left' in input) {
          exhausted.delete(agentId);
          return undefined;
        }
        const { usage, resource } = input;
        if (!Number.isFinite(usage) || usage < 0) return undefined;
        const resources = exhausted.get(agentId);
        const was = resources?.has(resource) ?? false;
        const now = isExhausted(was, usage, threshold, releaseBelow);
        if (now === was) return undefined;
        if (now) {
          if (resources === undefined) exhausted.set(agentId, new Set([resource]));
          else resources.add(resource);
        } else if (resources !== undefined) {
          resources.delete(resource);
          if (resources.size === 0) exhausted.delete(agentId);
        }
        const type = now ? 'exhausted' : 'relieved';
        const at = scheduler.now();
        return resource === undefined ? { type, agentId, at, usage } : { type, agentId, resource, at, usage };
      };

      return source.pipe(
        map(step),
        filter((event): event is PressureEvent => event !== undefined),
        finalize(() => exhausted.clear()),
      );
    });
}
