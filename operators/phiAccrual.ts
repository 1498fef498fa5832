import { Observable, asyncScheduler, type OperatorFunction, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { IndexedHeap, type HeapNode } from './internal/heap.js';
import { operate } from './internal/operate.js';
import { requireScheduler } from './internal/validate.js';
import type { Heartbeat, Liveness } from './liveness.js';
import { PhiAccrualDetector, PhiSettings, type PhiAccrualDetectorOptions } from './phiAccrualDetector.js';

export interface PhiAccrualOptions extends PhiAccrualDetectorOptions {
  /** Clock and timers; arrival time is `scheduler.now()`. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
}

/** One agent: its detector plus its place in the shared timer queue. */
class TrackedAgent extends PhiAccrualDetector implements HeapNode {
  heapIndex = -1;
  /** When the queue looks at this agent again: at or before its deadline, never after. */
  wakeAt = 0;

  constructor(
    readonly agentId: string,
    settings: PhiSettings,
  ) {
    super(settings);
  }
}

/**
 * A phi accrual failure detector per `agentId` (see `PhiAccrualDetector`), driven by arrival time.
 *
 * ```
 * heartbeats: a---a---a-------------------------a--
 * liveness:   A--------------------------S------A--   A = alive, S = suspected (at suspicionAt())
 * ```
 *
 * Emits `alive` on an agent's first heartbeat and when it beats again after suspicion,
 * `suspected` once per outage at the exact first ms where phi reaches the threshold (computed by
 * inverting phi, never polled), and `left` for a `status: 'leaving'` beat, after which the agent is
 * forgotten. All agents share one timer: a heap keyed by a lower bound of each agent's deadline.
 * A heartbeat only moves the deadline later (O(1), no allocation, no phi evaluated); the heap is
 * touched when a deadline moves earlier or when a stale entry reaches the top, about once per
 * deadline span per agent instead of once per beat.
 *
 * @example
 * heartbeats$.pipe(phiAccrual({ threshold: 8, acceptableHeartbeatPauseMs: 3000 }))
 *   .subscribe(({ type, agentId, at }) => console.log(type, agentId, at));
 */
export function phiAccrual(options: PhiAccrualOptions = {}): OperatorFunction<Heartbeat, Liveness> {
  const { scheduler = asyncScheduler, ...detectorOptions } = options;
  requireScheduler(scheduler);
  const settings = new PhiSettings(detectorOptions);

  return source =>
    new Observable<Liveness>(subscriber => {
      const agents = new Map<string, TrackedAgent>();
      const queue = new IndexedHeap<TrackedAgent>((a, b) => a.wakeAt < b.wakeAt);
      let timer: Subscription | undefined;
      let timerAt = Infinity;

      /** Suspects every agent whose deadline has come; false if the consumer unsubscribed meanwhile. */
      const expire = (now: number): boolean => {
        for (let top = queue.peek(); top !== undefined && top.wakeAt <= now; top = queue.peek()) {
          // A stale key: look again at the new bound; settle the exact ms only once it is due.
          const bound = top.suspicionLowerBound;
          if (bound > now) {
            top.wakeAt = bound;
            queue.update(top);
            continue;
          }
          const deadline = top.suspicionAt() as number;
          if (deadline <= now) {
            queue.pop(); // out of the queue until it beats again: that is what "suspected" means here
            subscriber.next({ type: 'suspected', agentId: top.agentId, at: now, phi: top.phi(now) });
            if (subscriber.closed) return false;
          } else {
            top.wakeAt = deadline;
            queue.update(top);
          }
        }
        return true;
      };

      const wake = function (this: SchedulerAction<unknown>): void {
        timer = undefined;
        timerAt = Infinity;
        const now = scheduler.now();
        if (!expire(now)) return;
        // Re-entrant heartbeats during `next` may have armed a timer already; keep the earlier one.
        const next = queue.peek();
        if (next !== undefined && next.wakeAt < timerAt) {
          (timer as Subscription | undefined)?.unsubscribe();
          timerAt = next.wakeAt;
          timer = this.schedule(undefined, timerAt - now);
        }
      };

      const track = (agent: TrackedAgent): void => {
        // Keys are lower bounds of the deadline, so no phi is evaluated per beat; the exact
        // instant is settled only when an agent reaches the top of the queue.
        const bound = agent.suspicionLowerBound;
        if (agent.heapIndex < 0) {
          agent.wakeAt = bound;
          queue.push(agent);
        } else if (bound < agent.wakeAt) {
          agent.wakeAt = bound;
          queue.update(agent);
        } else {
          return; // a later deadline: the earlier, stale wake-up finds it at the top
        }
        if (bound < timerAt) {
          timer?.unsubscribe();
          timerAt = bound;
          timer = scheduler.schedule(wake, bound - scheduler.now());
        }
      };

      operate(source, subscriber, {
        next: beat => {
          const now = scheduler.now();
          // A beat landing on a deadline comes after it (deadlines are inclusive), whichever of
          // the beat and the timer the scheduler happens to run first.
          const due = queue.peek();
          if (due !== undefined && due.wakeAt <= now && !expire(now)) return;
          const id = beat.agentId;
          let agent = agents.get(id);
          if (beat.status === 'leaving') {
            if (agent === undefined) return;
            queue.remove(agent);
            agents.delete(id);
            subscriber.next({ type: 'left', agentId: id, at: now, phi: agent.phi(now) });
            return;
          }
          if (agent === undefined) {
            agent = new TrackedAgent(id, settings);
            agents.set(id, agent);
            agent.heartbeat(now);
            track(agent);
            subscriber.next({ type: 'alive', agentId: id, at: now, phi: agent.phi(now) });
            return;
          }
          const wasSuspected = agent.heapIndex < 0;
          agent.heartbeat(now);
          track(agent);
          if (wasSuspected) {
            subscriber.next({ type: 'alive', agentId: id, at: now, phi: agent.phi(now) });
          }
        },
      });

      return () => {
        timer?.unsubscribe();
        timer = undefined;
        queue.clear();
        agents.clear();
      };
    });
}
