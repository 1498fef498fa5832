import { asyncScheduler, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { requireNumber } from '../operators/internal/validate.js';
import { VirtualScheduler, type VirtualSchedulerOptions } from './virtualScheduler.js';

export interface PacedSchedulerOptions extends VirtualSchedulerOptions {
  /** Virtual ms per wall ms (> 0, default 1). Higher: a shorter run to watch, the same events. */
  readonly speed?: number;
  /** Wall ms between catch-ups (> 0, default 20). Lower: smoother to watch, more wake-ups. */
  readonly tickMs?: number;
  /**
   * Most virtual ms one catch-up runs (> 0, default 1000). When the machine cannot keep up, the
   * run falls behind the wall clock instead of holding the event loop (a live view, Ctrl-C) for
   * long; what happens, and in which order, is the same.
   */
  readonly maxStepMs?: number;
  /**
   * The wall clock: `now()` is read at each catch-up and `schedule()` wakes the catch-ups.
   * Default `asyncScheduler`; a `VirtualScheduler` in tests, which then move it by hand.
   */
  readonly wall?: SchedulerLike;
}

/**
 * A {@link VirtualScheduler} that moves itself along with the wall clock: every `tickMs` of wall
 * time it runs what is due up to `speed ×` the wall time elapsed since `start()`. The run is the
 * virtual scheduler's, in virtual time: a timer fires at its virtual time whatever the wall-clock
 * moment it is run at, and actions due at the same time run in the order they were scheduled. So a
 * run paced to the wall clock is the same run, event for event, however loaded the machine and
 * however large each catch-up's step; only the moment a person sees it changes. Work done outside
 * the scheduler (a Promise settling, I/O) would see the wall clock's steps: keep it out of a run
 * that must replay.
 *
 * ```
 * wall:     --t--t--t--t--   tickMs 2, speed 2: each tick runs the next 4 virtual ms
 * virtual:  a---b---c-d---   (all the actions due by then, in virtual-time order)
 * ```
 *
 * Nothing runs before `start()` or after `stop()`; `advanceBy`, `advanceTo` and `flush` work as on
 * a `VirtualScheduler` while it is stopped. An action that throws stops the pacing and the error
 * leaves the catch-up on the wall scheduler (as a throwing action of `asyncScheduler` would).
 *
 * @example
 * const scheduler = new PacedScheduler({ speed: 2 });
 * scheduler.start();
 * timer(1000, scheduler).subscribe(() => scheduler.stop()); // fires after about 500 ms of wall time
 */
export class PacedScheduler extends VirtualScheduler {
  private readonly speed: number;
  private readonly tickMs: number;
  private readonly maxStepMs: number;
  private readonly wall: SchedulerLike;
  private ticking: Subscription | undefined;
  /** Wall time and virtual time at `start()`: the pace is measured from there. */
  private wallOrigin = 0;
  private virtualOrigin = 0;

  constructor(options: PacedSchedulerOptions = {}) {
    const { speed = 1, tickMs = 20, maxStepMs = 1000, wall = asyncScheduler, ...virtual } = options;
    super(virtual);
    this.speed = requireNumber('speed', speed, 0, true);
    this.tickMs = requireNumber('tickMs', tickMs, 0, true);
    this.maxStepMs = requireNumber('maxStepMs', maxStepMs, 0, true);
    const w = wall as { now?: unknown; schedule?: unknown } | null;
    if (w === null || typeof w !== 'object' || typeof w.now !== 'function' || typeof w.schedule !== 'function' || w === this) {
      throw new RangeError(`wall must be a SchedulerLike other than the paced scheduler itself, got ${String(wall)}`);
    }
    this.wall = wall;
  }

  /** Whether it is moving with the wall clock. */
  get paced(): boolean {
    return this.ticking !== undefined;
  }

  /** Virtual ms it is behind the pace (0 when it keeps up). */
  get lagMs(): number {
    return this.ticking === undefined ? 0 : Math.max(0, this.target() - this.now());
  }

  /** Starts moving with the wall clock from now (nothing if it already does). */
  start(): void {
    if (this.ticking !== undefined) return;
    this.wallOrigin = this.wall.now();
    this.virtualOrigin = this.now();
    const self = this;
    this.ticking = this.wall.schedule(function (this: SchedulerAction<undefined>) {
      // Re-armed first: a catch-up that stops the pacing (an action calling stop()) cancels it.
      this.schedule(undefined, self.tickMs);
      self.catchUp();
    }, this.tickMs);
  }

  /** Stops moving; the clock stays where it is and the actions not yet due stay queued. */
  stop(): void {
    this.ticking?.unsubscribe();
    this.ticking = undefined;
  }

  /** Runs what is due by the wall clock now, at most `maxStepMs` of it: what each tick does. */
  catchUp(): void {
    if (this.ticking === undefined) return;
    const now = this.now();
    const to = Math.min(this.target(), now + this.maxStepMs);
    if (!(to > now)) return; // a wall clock set back: wait for it rather than go back
    try {
      this.advanceTo(to);
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** Where the virtual clock should be by the wall clock. */
  private target(): number {
    return this.virtualOrigin + (this.wall.now() - this.wallOrigin) * this.speed;
  }
}
