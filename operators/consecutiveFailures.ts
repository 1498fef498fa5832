import { asyncScheduler, defer, filter, finalize, map, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { requireInteger, requireScheduler } from './internal/validate.js';

/** The outcome of one delivery attempt over a link (`"a->b"`, or any string naming the link). */
export interface DeliveryOutcome {
  readonly link: string;
  readonly ok: boolean;
}

/** Announces that a link is gone: its count is forgotten, no event is emitted. */
export interface LinkClosed {
  readonly link: string;
  readonly closed: true;
}

export type DeliveryInput = DeliveryOutcome | LinkClosed;

/**
 * A link's health verdict. `failing`: the run of consecutive failures reached `limit`
 * (`failures` = `limit`). `recovered`: the first success after `failing` (`failures` = the length
 * of the run that just ended, ≥ `limit`).
 */
export interface LinkFailureEvent {
  readonly type: 'failing' | 'recovered';
  readonly link: string;
  /** Scheduler time of the verdict. */
  readonly at: number;
  readonly failures: number;
}

export interface ConsecutiveFailuresOptions {
  /**
   * Consecutive failures that make a link `failing` (integer ≥ 1, default 5). Lower: faster
   * detection, more false alarms from isolated drops on a lossy link.
   */
  readonly limit?: number;
  /** Read for `at` only (default `asyncScheduler`). */
  readonly scheduler?: SchedulerLike;
}

/**
 * Delivery outcomes per link → `failing` once a link's run of consecutive failures reaches
 * `limit`, `recovered` at its next success. A success resets the run; one `failing` per run.
 *
 * ```
 * source:  -x-x-x-x-o-x-o-     (x: failure on "a->b", o: success)   limit 3
 * result:  -----f---r-----     (f: failing, failures 3; r: recovered, failures 4)
 * ```
 *
 * Only links inside a run of failures hold state (a counter in a Map), so memory follows the
 * links currently failing; `{ link, closed: true }` forgets a link, unsubscribing forgets all.
 *
 * @example
 * outcomes$.pipe(consecutiveFailures({ limit: 5 })).subscribe(e =>
 *   e.type === 'failing' ? reroute(e.link) : restore(e.link));
 */
export function consecutiveFailures(
  options: ConsecutiveFailuresOptions = {},
): OperatorFunction<DeliveryInput, LinkFailureEvent> {
  const { limit = 5, scheduler = asyncScheduler } = options;
  requireInteger('limit', limit, 1);
  requireScheduler(scheduler);

  return source =>
    defer(() => {
      // link → length of its current run of failures (absent: last outcome was a success).
      const runs = new Map<string, number>();

      const step = (input: DeliveryInput): LinkFailureEvent | undefined => {
        const { link } = input;
        if ('closed' in input) {
          runs.delete(link);
          return undefined;
        }
        const run = runs.get(link) ?? 0;
        if (input.ok) {
          if (run === 0) return undefined;
          runs.delete(link);
          return run >= limit ? { type: 'recovered', link, at: scheduler.now(), failures: run } : undefined;
        }
        runs.set(link, run + 1);
        return run + 1 === limit ? { type: 'failing', link, at: scheduler.now(), failures: limit } : undefined;
      };

      return source.pipe(
        map(step),
        filter((event): event is LinkFailureEvent => event !== undefined),
        finalize(() => runs.clear()),
      );
    });
}
