import { Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { TimerQueue, type TimerNode } from './timerQueue.js';

// State types differ per action; the queue only orders them by time.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyAction = VirtualAction<any>;

class VirtualAction<T> extends Subscription implements SchedulerAction<T>, TimerNode<AnyAction> {
  // Kept by the scheduler's timer queue.
  timerNext: AnyAction | undefined = undefined;
  timerPrev: AnyAction | undefined = undefined;
  timerBucket = -1;

  constructor(
    private readonly scheduler: VirtualScheduler,
    readonly work: (this: SchedulerAction<T>, state?: T) => void,
    public state: T | undefined,
  ) {
    super();
  }

  schedule(state?: T, delay = 0): Subscription {
    if (this.closed) return this;
    this.state = state;
    this.scheduler.enqueue(this, delay);
    return this;
  }

  // Leaves the queue before closing; an override instead of `add(() => …)` saves a closure and a
  // finaliser array per action.
  override unsubscribe(): void {
    if (this.closed) return;
    this.scheduler.dequeue(this);
    super.unsubscribe();
  }
}

export interface VirtualSchedulerOptions {
  /** Virtual time at which the clock starts. */
  readonly startMs?: number;
}

/**
 * A `SchedulerLike` in virtual time, backed by a binary heap of timers (see `TimerQueue`: a heap of
 * the distinct due times, each with its FIFO list of actions): O(log n) to schedule, re-schedule or
 * cancel, where RxJS's `VirtualTimeScheduler` re-sorts its whole queue on every schedule. Actions
 * due at the same time run in the order they were scheduled.
 *
 * Nothing runs until time is moved with `advanceBy`, `advanceTo` or `flush`. A delay that is negative
 * or NaN counts as 0; an infinite delay never comes due, so the action is not queued (as in RxJS's
 * `TestScheduler`). An action that throws is cancelled and the error leaves `advanceBy`/`advanceTo`/
 * `flush` with the clock at that action's time; the other actions stay queued.
 *
 * @example
 * const scheduler = new VirtualScheduler();
 * timer(1000, scheduler).subscribe(() => console.log(scheduler.now())); // 1000
 * scheduler.flush();
 */
export class VirtualScheduler implements SchedulerLike {
  private clock: number;
  private running = false;
  /** Where the run in progress stops (meaningful while `running`). */
  private limit = 0;
  private readonly queue = new TimerQueue<AnyAction>();

  constructor({ startMs = 0 }: VirtualSchedulerOptions = {}) {
    if (!Number.isFinite(startMs)) throw new RangeError(`startMs must be a finite number, got ${startMs}`);
    this.clock = startMs;
  }

  now(): number {
    return this.clock;
  }

  /** Number of actions waiting to run (an action leaves the queue when it starts running). */
  get pending(): number {
    return this.queue.size;
  }

  schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
    const action = new VirtualAction<T>(this, work, state);
    this.enqueue(action, delay);
    return action;
  }

  /** Runs every action due within the next `ms` and leaves the clock at `now() + ms`. */
  advanceBy(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`ms must be a finite number >= 0, got ${ms}`);
    this.advanceTo(this.clock + ms);
  }

  /** Runs every action due at or before `ms` and leaves the clock at `ms`. */
  advanceTo(ms: number): void {
    if (!Number.isFinite(ms) || ms < this.clock) {
      throw new RangeError(`ms must be a finite number >= now() (${this.clock}), got ${ms}`);
    }
    this.runUntil(ms);
    this.clock = ms;
  }

  /** Runs actions until none is left; the clock stays at the last one's time. */
  flush(): void {
    this.runUntil(Infinity);
  }

  /** @internal */
  enqueue(action: AnyAction, delay: number): void {
    if (delay === Infinity) {
      this.queue.remove(action);
      return;
    }
    this.queue.set(action, this.clock + (delay > 0 ? delay : 0));
  }

  /** @internal */
  dequeue(action: AnyAction): void {
    this.queue.remove(action);
  }

  /**
   * @internal For an action that runs a queue of its own (the in-memory network's messages in
   * flight): moves the clock on to `time` and answers true when nothing else is due until then
   * (strictly: an action due at the same time was queued first and goes first) and the run in
   * progress reaches it — exactly when the action, re-armed for `time`, would be the next to run.
   * The caller then runs that work at once instead of a trip through the timer queue for each item;
   * the order of everything, and so the event log, is the same.
   */
  advanceInline(time: number): boolean {
    const at = time > this.clock ? time : this.clock;
    if (!this.running || at > this.limit) return false;
    if (this.queue.size > 0 && this.queue.peekTime() <= at) return false;
    this.clock = at;
    return true;
  }

  private runUntil(limit: number): void {
    // Advancing from inside an action would run later actions and then set the clock back.
    if (this.running) throw new Error('VirtualScheduler: cannot advance time from inside a scheduled action');
    this.running = true;
    this.limit = limit;
    const queue = this.queue;
    try {
      while (queue.size > 0) {
        const time = queue.peekTime();
        if (time > limit) break;
        this.clock = time;
        // Off the queue while it runs (a periodic action that re-schedules itself goes behind the
        // actions already due at its new time). When another action is due at the same time,
        // taking this one off writes to it, so it is on its way into the cache while this one
        // runs: thousands of actions due in no memory order make every first touch a miss.
        const action = queue.shift();
        try {
          // A method call, so `this` is the action; `work.call(…)` looked `call` up on a
          // different function each time, a generic property load per action.
          action.work(action.state);
        } catch (err) {
          action.unsubscribe();
          throw err;
        }
      }
    } finally {
      this.running = false;
    }
  }
}
