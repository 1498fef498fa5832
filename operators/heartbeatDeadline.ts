import { Observable, asyncScheduler, type OperatorFunction, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { operate } from './internal/operate.js';
import { requireNumber, requireScheduler } from './internal/validate.js';
import type { Heartbeat, Liveness } from './liveness.js';

export interface HeartbeatDeadlineOptions {
  /** Silence after which an agent is suspected. Lower: faster detection, more false suspicions. */
  readonly timeoutMs: number;
  /** Clock and timers; arrival time is `scheduler.now()`. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
}

/** An agent in the arrival-ordered list. */
interface Entry {
  readonly agentId: string;
  lastArrival: number;
  prev: Entry | undefined;
  next: Entry | undefined;
  /** In the list (awaiting its deadline) or suspected (out of it). */
  listed: boolean;
}

/**
 * A fixed-deadline failure detector per `agentId`: suspected at `lastArrival + timeoutMs`.
 *
 * ```
 * heartbeats: a--a--------------a--     timeoutMs: 5
 * liveness:   A-------S---------A--
 * ```
 *
 * Emits the same events as `phiAccrual` (`alive`, `suspected` once per outage, `left`); `phi` is
 * the elapsed fraction of the deadline (1 at suspicion). The deadline is inclusive: a beat that comes
 * exactly `timeoutMs` after the previous one finds the agent suspected (`suspected`, then `alive`, at
 * the same instant), whatever order the scheduler runs same-time actions in. Since every deadline
 * is arrival + the same timeout, agents ordered by last arrival are ordered by deadline: a heartbeat
 * moves its agent to the tail of a list in O(1), and one timer watches the head.
 *
 * @example
 * heartbeats$.pipe(heartbeatDeadline({ timeoutMs: 60_000 })).subscribe(console.log);
 */
export function heartbeatDeadline(options: HeartbeatDeadlineOptions): OperatorFunction<Heartbeat, Liveness> {
  const { timeoutMs, scheduler = asyncScheduler } = options ?? ({} as HeartbeatDeadlineOptions);
  requireNumber('timeoutMs', timeoutMs, 0, true);
  requireScheduler(scheduler);

  return source =>
    new Observable<Liveness>(subscriber => {
      const agents = new Map<string, Entry>();
      let head: Entry | undefined;
      let tail: Entry | undefined;
      let timer: Subscription | undefined;

      const unlink = (entry: Entry): void => {
        if (!entry.listed) return;
        if (entry.prev) entry.prev.next = entry.next;
        else head = entry.next;
        if (entry.next) entry.next.prev = entry.prev;
        else tail = entry.prev;
        entry.prev = entry.next = undefined;
        entry.listed = false;
      };

      const append = (entry: Entry): void => {
        entry.prev = tail;
        entry.next = undefined;
        if (tail) tail.next = entry;
        else head = entry;
        tail = entry;
        entry.listed = true;
      };

      /**
       * Suspects every agent whose deadline has come. Runs from the timer and before each beat, so a
       * beat arriving exactly at a deadline meets the suspicion first, whichever of the two the
       * scheduler happens to run first at that instant.
       */
      const expire = (now: number): void => {
        while (head !== undefined && head.lastArrival + timeoutMs <= now) {
          const entry = head;
          unlink(entry);
          subscriber.next({ type: 'suspected', agentId: entry.agentId, at: now, phi: (now - entry.lastArrival) / timeoutMs });
          if (subscriber.closed) return;
        }
      };

      const wake = function (this: SchedulerAction<unknown>): void {
        // `timer` stays set while this runs, so a heartbeat fed back synchronously from `next` does not
        // arm a second, later timer that would leave the current head's deadline unwatched.
        const now = scheduler.now();
        expire(now);
        if (subscriber.closed) return;
        timer = head === undefined ? undefined : this.schedule(undefined, head.lastArrival + timeoutMs - now);
      };

      operate(source, subscriber, {
        next: beat => {
          const now = scheduler.now();
          expire(now);
          if (subscriber.closed) return;
          const id = beat.agentId;
          const entry = agents.get(id);
          if (beat.status === 'leaving') {
            if (entry === undefined) return;
            unlink(entry);
            agents.delete(id);
            subscriber.next({ type: 'left', agentId: id, at: now, phi: (now - entry.lastArrival) / timeoutMs });
            return;
          }
          const wasSuspected = entry !== undefined && !entry.listed;
          const current = entry ?? { agentId: id, lastArrival: now, prev: undefined, next: undefined, listed: false };
          if (entry === undefined) agents.set(id, current);
          unlink(current);
          current.lastArrival = now;
          append(current);
          // Deadlines only move later while a timer is armed (heads leave, beats append), so an armed
          // timer is early, never late: it re-arms for the new head when it fires.
          if (timer === undefined) timer = scheduler.schedule(wake, (head as Entry).lastArrival + timeoutMs - now);
          if (entry === undefined || wasSuspected) subscriber.next({ type: 'alive', agentId: id, at: now, phi: 0 });
        },
      });

      return () => {
        timer?.unsubscribe();
        timer = undefined;
        head = tail = undefined;
        agents.clear();
      };
    });
}
