import { asyncScheduler, defer, finalize, map, type OperatorFunction, type SchedulerLike } from 'rxjs';
import { RollingWindow, type ExecutionRecord, type PerformanceSnapshot } from './internal/rollingWindow.js';
import { requireNumber, requireScheduler } from './internal/validate.js';

export { RollingWindow, checkRecord, nearestRank, summarize } from './internal/rollingWindow.js';
export type { ExecutionRecord, PerformanceSnapshot } from './internal/rollingWindow.js';

export interface PerformanceWindowOptions {
  /**
   * Length of the rolling window. Longer: steadier numbers, slower to show a change (and more
   * records held in memory).
   */
  readonly windowMs: number;
  /** Clock: a record without `at` is stamped `scheduler.now()`. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
}

/**
 * A rolling window over execution records: one `PerformanceSnapshot` of the window
 * `(now − windowMs, now]` per record, where `now = scheduler.now()` when the record arrives.
 *
 * ```
 * records:   -a--b------c-|     windowMs: 8
 * snapshots: -A--B------C-|     A = {a}, B = {a, b}, C = {b, c} (a expired at 9)
 * ```
 *
 * A record counts from `record.at ?? now`; one already older than the window changes nothing but
 * still yields a snapshot. Snapshots are emitted only on records (no timer): records expiring
 * while nothing arrives show up in the next snapshot. Percentiles are nearest-rank; throughput is
 * over the time the window covers since the subscription (`count / covered s`: a stream watched for
 * 20 s through a 5-minute window is divided by 20 s, not 300); an empty window is all zeros (see
 * `PerformanceSnapshot`). A record
 * with a NaN, infinite or negative `latencyMs` / `messages` (or a non-finite `at`) is a broken
 * producer: a `RangeError` downstream.
 *
 * @example
 * executions$.pipe(performanceWindow({ windowMs: 60_000 }))
 *   .subscribe(s => console.log(`${s.count} runs, p95 ${s.p95LatencyMs} ms, ok ${s.successRate}`));
 */
export function performanceWindow(options: PerformanceWindowOptions): OperatorFunction<ExecutionRecord, PerformanceSnapshot> {
  const { windowMs, scheduler = asyncScheduler } = options ?? ({} as PerformanceWindowOptions);
  requireNumber('windowMs', windowMs, 0, true);
  requireScheduler(scheduler);

  return source =>
    defer(() => {
      const window = new RollingWindow(windowMs, scheduler.now());
      return source.pipe(
        map(record => {
          const now = scheduler.now();
          window.add(record, now);
          return window.snapshot(now);
        }),
        finalize(() => window.clear()),
      );
    });
}
