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
  /** Time the queue will look at this agent again; ≤ its real deadline, never later. */
  wakeAt = 0;
  suspected = false;

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
 * forgotten. All agents share one timer: a heap keyed by the time each agent must be looked at
 * again. A heartbeat only moves the agent's deadline later (O(1), no allocation); the heap is
 * touched when a deadline moves earlier or when a stale entry reaches the top, about once per
 * `acceptableHeartbeatPauseMs` per agent instead of once per beat.
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

      const wake = function (this: SchedulerAction<unknown>): void {
        timer = undefined;
        timerAt = Infinity;
        const now = scheduler.now();
        for (let top = queue.peek(); top !== undefined && top.wakeAt <= now; top = queue.peek()) {
          const deadline = top.suspicionAt() as number;
          if (deadline <= now) {
            queue.pop();
            top.suspected = true;
            subscriber.next({ type: 'suspected', agentId: top.agentId, at: now, phi: top.phi(now) });
            if (subscriber.closed) return;
          } else {
            top.wakeAt = deadline;
            queue.update(top);
          }
        }
        // Re-entrant heartbeats during `next` may have armed a timer already; keep the earlier one.
        const next = queue.peek();
        if (next !== undefined && next.wakeAt < timerAt) {
          (timer as Subscription | undefined)?.unsubscribe();
          timerAt = next.wakeAt;
          timer = this.schedule(undefined, timerAt - now);
        }
      };

      const track = (agent: TrackedAgent): void => {
        const deadline = agent.suspicionAt() as number;
        if (agent.heapIndex < 0) {
          agent.wakeAt = deadline;
          queue.push(agent);
        } else if (deadline < agent.wakeAt) {
          agent.wakeAt = deadline;
          queue.update(agent);
        } else {
          return; // later deadline: the stale, earlier wake-up finds it when it reaches the top
        }
        if (deadline < timerAt) {
          timer?.unsubscribe();
          timerAt = deadline;
          timer = scheduler.schedule(wake, deadline - scheduler.now());
        }
      };

      operate(source, subscriber, {
        next: beat => {
          const now = scheduler.now();
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
          agent.heartbeat(now);
          track(agent);
          if (agent.suspected) {
            agent.suspected = false;
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
