import { Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { IndexedHeap } from '../operators/internal/heap.js';

class VirtualAction<T> extends Subscription implements SchedulerAction<T> {
  heapIndex = -1;
  time = 0;
  seq = 0;

  constructor(
    private readonly scheduler: VirtualScheduler,
    readonly work: (this: SchedulerAction<T>, state?: T) => void,
    public state: T | undefined,
  ) {
    super();
    this.add(() => scheduler.dequeue(this));
  }

  schedule(state?: T, delay = 0): Subscription {
    if (this.closed) return this;
    this.state = state;
    this.scheduler.enqueue(this, delay);
    return this;
  }
}

// State types differ per action; the queue only orders them by time.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyAction = VirtualAction<any>;

export interface VirtualSchedulerOptions {
  /** Virtual time at which the clock starts. */
  readonly startMs?: number;
}

/**
 * A `SchedulerLike` in virtual time, backed by a binary heap of timers: O(log n) to schedule,
 * re-schedule or cancel, where RxJS's `VirtualTimeScheduler` re-sorts its whole queue on every
 * schedule. Actions due at the same time run in the order they were scheduled.
 *
 * Nothing runs until time is moved with `advanceBy`, `advanceTo` or `flush`.
 *
 * @example
 * const scheduler = new VirtualScheduler();
 * timer(1000, scheduler).subscribe(() => console.log(scheduler.now())); // 1000
 * scheduler.flush();
 */
export class VirtualScheduler implements SchedulerLike {
  private clock: number;
  private nextSeq = 0;
  private readonly queue = new IndexedHeap<AnyAction>(
    (a, b) => a.time < b.time || (a.time === b.time && a.seq < b.seq),
  );

  constructor({ startMs = 0 }: VirtualSchedulerOptions = {}) {
    if (!Number.isFinite(startMs)) throw new RangeError(`startMs must be a finite number, got ${startMs}`);
    this.clock = startMs;
  }

  now(): number {
    return this.clock;
  }

  /** Number of actions waiting to run. */
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
    if (!(ms >= 0)) throw new RangeError(`ms must be >= 0, got ${ms}`);
    this.advanceTo(this.clock + ms);
  }

  /** Runs every action due at or before `ms` and leaves the clock at `ms`. */
  advanceTo(ms: number): void {
    if (Number.isNaN(ms) || ms < this.clock) throw new RangeError(`ms must be >= now() (${this.clock}), got ${ms}`);
    this.runUntil(ms);
    this.clock = ms;
  }

  /** Runs actions until none is left; the clock stays at the last one's time. */
  flush(): void {
    this.runUntil(Infinity);
  }

  /** @internal */
  enqueue(action: AnyAction, delay: number): void {
    action.time = this.clock + (delay > 0 ? delay : 0);
    action.seq = this.nextSeq++;
    if (action.heapIndex >= 0) this.queue.update(action);
    else this.queue.push(action);
  }

  /** @internal */
  dequeue(action: AnyAction): void {
    this.queue.remove(action);
  }

  private runUntil(limit: number): void {
    const queue = this.queue;
    for (let next = queue.peek(); next !== undefined && next.time <= limit; next = queue.peek()) {
      queue.pop();
      this.clock = next.time;
      try {
        next.work.call(next, next.state);
      } catch (err) {
        next.unsubscribe();
        throw err;
      }
    }
  }
}
