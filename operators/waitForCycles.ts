import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import { IndexedHeap } from './internal/heap.js';
import { operate } from './internal/operate.js';
import { requireInteger, requireNumber, requireScheduler } from './internal/validate.js';
import { WaitForGraph, type TrackedCycle } from './internal/waitForGraph.js';

export { canonicalCycle } from './internal/waitForGraph.js';

/** `wait`: `from` starts waiting for `to`; `release`: it stops. Edges form a set (see {@link waitForCycles}). */
export interface WaitForEdge {
  readonly type: 'wait' | 'release';
  readonly from: string;
  readonly to: string;
}

/** A circular wait that has persisted `minDurationMs`. */
export interface Deadlock {
  readonly type: 'deadlock';
  /** Cycle order — each member waits for the next, the last for the first — starting at the smallest id. */
  readonly members: readonly string[];
  /** When the cycle formed (its last edge was added). */
  readonly since: number;
  /** When it was reported: `since + minDurationMs`. */
  readonly at: number;
}

/** A reported deadlock's cycle was broken by a `release`. */
export interface DeadlockResolved {
  readonly type: 'resolved';
  readonly members: readonly string[];
  readonly since: number;
  /** When the release that broke it arrived. */
  readonly at: number;
}

export type DeadlockEvent = Deadlock | DeadlockResolved;

export interface WaitForCyclesOptions {
  /**
   * How long a cycle must persist before it is a deadlock (≥ 0 ms, default 120 000). Shorter:
   * faster recovery, more aborted work for waits that would have untangled themselves.
   */
  readonly minDurationMs?: number;
  /**
   * Bound on the simple cycles kept at once (integer ≥ 1, default 10 000). A dense wait-for graph
   * holds exponentially many (every agent waiting on 8 others: > 10 000); past the bound the
   * operator errors with a RangeError naming `maxCycles` rather than hang or miss deadlocks.
   */
  readonly maxCycles?: number;
  readonly scheduler?: SchedulerLike;
}

/**
 * Wait-for edges → a `deadlock` for every simple cycle once it has persisted `minDurationMs`, and
 * `resolved` when a reported cycle is broken.
 *
 * ```
 * source:  -w-W-----------r     (w: a waits for b, W: b waits for a, r: a releases b)   minDurationMs 10
 * result:  -------------d-R     (d: deadlock [a, b], since 3, at 13; R: resolved [a, b] at 15)
 * ```
 *
 * Semantics: edges form a set — a repeated `wait` is ignored (the edge keeps its first time), a
 * `release` removes the edge, a `release` of an absent edge is ignored; `wait a→a` is a cycle of
 * one. Every simple cycle is tracked from the moment its last edge appears (`since`) and is
 * reported exactly at `since + minDurationMs` if none of its edges was released meanwhile; a
 * release before then cancels it silently. A broken cycle that forms again is a new cycle, with a
 * new `since`. Cycles that overlap (share agents or edges) are reported separately.
 *
 * Cost: adding an edge searches only what is reachable from its target for paths back to its source
 * (Johnson's circuit search): O(R) when it closes no cycle, O(R · (c + 1)) when it closes `c`, R =
 * that reachable part. A release is O(total length of the cycles through the edge). Pending
 * deadlines share one scheduled action, re-armed to the earliest. Completion and errors of the
 * source pass through (pending deadlines are dropped); unsubscribing releases the timer and graph.
 *
 * @example
 * waits$.pipe(waitForCycles({ minDurationMs: 120_000 })).subscribe(e =>
 *   e.type === 'deadlock' && abortOneWaiter(e.members));
 */
export function waitForCycles(options: WaitForCyclesOptions = {}): OperatorFunction<WaitForEdge, DeadlockEvent> {
  const { minDurationMs = 120_000, maxCycles = 10_000, scheduler = asyncScheduler } = options;
  requireNumber('minDurationMs', minDurationMs, 0);
  requireInteger('maxCycles', maxCycles, 1);
  requireScheduler(scheduler);

  return source =>
    new Observable<DeadlockEvent>(subscriber => {
      const graph = new WaitForGraph(maxCycles);
      // Cycles not yet reported, by deadline (since + minDurationMs), then creation order.
      const pending = new IndexedHeap<TrackedCycle>(
        (a, b) => a.since < b.since || (a.since === b.since && a.seq < b.seq),
      );
      let timer: Subscription | undefined;
      let timerDue = 0;

      const arm = (): void => {
        const top = pending.peek();
        const due = top === undefined ? 0 : top.since + minDurationMs;
        if (timer !== undefined && top !== undefined && timerDue === due) return;
        timer?.unsubscribe();
        timer = undefined;
        if (top === undefined || subscriber.closed) return;
        timerDue = due;
        timer = scheduler.schedule(fire, Math.max(0, due - scheduler.now()));
      };

      const fire = (): void => {
        timer = undefined;
        const now = scheduler.now();
        // Re-peek each round: a subscriber reacting to `next` may add or release edges re-entrantly.
        for (let top = pending.peek(); top !== undefined && top.since + minDurationMs <= now; top = pending.peek()) {
          pending.pop();
          top.reported = true;
          subscriber.next({ type: 'deadlock', members: top.members, since: top.since, at: now });
          if (subscriber.closed) return;
        }
        arm();
      };

      const onEdge = (edge: WaitForEdge): void => {
        if (edge.type === 'wait') {
          // Throws a RangeError past maxCycles: `operate` turns it into the output's error.
          const formed = graph.addEdge(edge.from, edge.to, scheduler.now());
          if (formed === undefined) return;
          for (const cycle of formed) pending.push(cycle);
          arm();
        } else if (edge.type === 'release') {
          const broken = graph.removeEdge(edge.from, edge.to);
          if (broken === undefined) return;
          // All state settles before any event goes out, so re-entrant edges see a consistent graph.
          for (const cycle of broken) pending.remove(cycle);
          arm();
          const at = scheduler.now();
          for (const cycle of broken) {
            if (!cycle.reported) continue;
            subscriber.next({ type: 'resolved', members: cycle.members, since: cycle.since, at });
            if (subscriber.closed) return;
          }
        }
      };

      operate(source, subscriber, { next: onEdge });

      return () => {
        timer?.unsubscribe();
        timer = undefined;
        pending.clear();
        graph.clear();
      };
    });
}
