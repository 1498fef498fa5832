import { Observable, asyncScheduler, type OperatorFunction, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { operate } from './internal/operate.js';
import { nearestRank } from './internal/rollingWindow.js';
import { requireInRange, requireInteger, requireNumber, requireScheduler } from './internal/validate.js';

/**
 * What an attempt at some work says: it `start`s (in a `group` of like work, e.g. its task), it
 * shows `progress`, it `end`s (`ok`: it finished, so how long it kept silent is a sample of how
 * long such work keeps silent). `close` forgets a group and everything in it.
 */
export type AttemptSignal =
  | { readonly type: 'start'; readonly key: string; readonly group: string }
  | { readonly type: 'progress'; readonly key: string }
  | { readonly type: 'end'; readonly key: string; readonly ok: boolean }
  | { readonly type: 'close'; readonly group: string };

/** An attempt has been silent (no start or progress) for its group's deadline. */
export interface SilentAttempt {
  readonly type: 'silent';
  readonly key: string;
  readonly group: string;
  readonly at: number;
  /** Since its start or its last progress. */
  readonly silentMs: number;
  /** The deadline it ran past. */
  readonly deadlineMs: number;
  /** Whether the deadline came from finished work (else it is the floor). */
  readonly learned: boolean;
}

export interface LearnedDeadlineOptions {
  /**
   * Least deadline, and the deadline until `minSamples` attempts of the group have finished.
   * Lower: hangs found sooner, long silent work taken for a hang until its peers have finished.
   */
  readonly floorMs: number;
  /** The deadline is `factor ×` the `percentile` of the finished attempts' longest silences. Higher: fewer false verdicts, slower ones. Default 1.5. */
  readonly factor?: number;
  /** Percentile of the samples, in [1, 100]. Default 99. */
  readonly percentile?: number;
  /** Finished attempts a group needs before its deadline is learned. Default 5. */
  readonly minSamples?: number;
  /** Samples kept per group (the latest). More: steadier, slower to follow a change. Default 128. */
  readonly windowSize?: number;
  /** Clock and timers. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
}

export interface SettledDeadline {
  readonly floorMs: number;
  readonly factor: number;
  readonly percentile: number;
  readonly minSamples: number;
}

/**
 * The deadline learned from a group's samples (ascending): the floor until there are
 * `minSamples`, then `factor ×` their `percentile` (nearest rank), never below the floor.
 *
 * @example deadlineOf([40_000, 50_000, 60_000, 70_000, 80_000], { floorMs: 30_000, factor: 1.5, percentile: 99, minSamples: 5 }) // 120 000
 */
export function deadlineOf(sortedAsc: ArrayLike<number>, { floorMs, factor, percentile, minSamples }: SettledDeadline): number {
  if (sortedAsc.length < minSamples) return floorMs;
  return Math.max(floorMs, Math.ceil(factor * nearestRank(sortedAsc, percentile)));
}

/** An attempt in its group's list, oldest last sign of life first. */
interface Entry {
  readonly key: string;
  readonly group: Group;
  lastAt: number;
  /** Longest silence so far (start to progress, progress to progress). */
  longest: number;
  prev: Entry | undefined;
  next: Entry | undefined;
  /** In the list (watched), or out of it (its silence was reported; it waits for progress). */
  listed: boolean;
}

interface Group {
  readonly id: string;
  /** The latest samples in arrival order (a ring) and the same ones sorted. */
  readonly ring: number[];
  ringAt: number;
  readonly sorted: number[];
  deadline: number;
  head: Entry | undefined;
  tail: Entry | undefined;
  timer: Subscription | undefined;
  /** When the armed timer fires. */
  timerAt: number;
}

/**
 * A progress deadline per attempt, learned per group from how long finished attempts kept
 * silent: long work stops looking like a hang once its peers have shown its length.
 *
 * ```
 * signals: x-y-f      (x, y start; y ends ok after 2 ms; floorMs 5, factor 3, minSamples 1)
 * silent:  ------X    x was due at 5 by the floor; the sample made the deadline 6
 * ```
 *
 * Each attempt `key` is watched from its `start` and from each `progress`; once silent for its
 * group's deadline it is reported once (`silent`), then again only after new progress. An attempt
 * that `end`s `ok` gives its longest silence as a sample. Within a group every attempt has the same
 * deadline, so attempts ordered by their last sign of life are ordered by deadline: progress moves
 * an attempt to its group's tail in O(1), and one timer per group watches the head. A deadline that
 * changes (a new sample) re-arms that timer: an attempt is judged by the deadline in force when it
 * comes due.
 *
 * @example
 * signals$.pipe(learnedDeadline({ floorMs: 30_000 })).subscribe(({ key }) => hedge(key));
 */
export function learnedDeadline(options: LearnedDeadlineOptions): OperatorFunction<AttemptSignal, SilentAttempt> {
  const { floorMs, factor = 1.5, percentile = 99, minSamples = 5, windowSize = 128, scheduler = asyncScheduler } = options ?? ({} as LearnedDeadlineOptions);
  requireNumber('floorMs', floorMs, 0, true);
  requireNumber('factor', factor, 1);
  requireInRange('percentile', percentile, 1, 100);
  requireInteger('minSamples', minSamples, 1);
  requireInteger('windowSize', windowSize, minSamples);
  requireScheduler(scheduler);
  const settled: SettledDeadline = { floorMs, factor, percentile, minSamples };

  return source =>
    new Observable<SilentAttempt>(subscriber => {
      const attempts = new Map<string, Entry>();
      const groups = new Map<string, Group>();

      const unlink = (entry: Entry): void => {
        if (!entry.listed) return;
        const g = entry.group;
        if (entry.prev) entry.prev.next = entry.next;
        else g.head = entry.next;
        if (entry.next) entry.next.prev = entry.prev;
        else g.tail = entry.prev;
        entry.prev = entry.next = undefined;
        entry.listed = false;
      };

      const append = (entry: Entry): void => {
        const g = entry.group;
        entry.prev = g.tail;
        entry.next = undefined;
        if (g.tail) g.tail.next = entry;
        else g.head = entry;
        g.tail = entry;
        entry.listed = true;
      };

      /** Arms the group's timer for its head, unless one armed already fires no later. */
      const arm = (g: Group, now: number): void => {
        if (g.head === undefined) return;
        const due = Math.max(now, g.head.lastAt + g.deadline);
        if (g.timer !== undefined && g.timerAt <= due) return;
        g.timer?.unsubscribe();
        g.timerAt = due;
        g.timer = scheduler.schedule(function (this: SchedulerAction<Group>, group?: Group) {
          wake(group as Group);
        }, due - now, g);
      };

      const wake = (g: Group): void => {
        g.timer = undefined;
        const now = scheduler.now();
        while (g.head !== undefined && now - g.head.lastAt >= g.deadline) {
          const entry = g.head;
          unlink(entry);
          subscriber.next({ type: 'silent', key: entry.key, group: g.id, at: now, silentMs: now - entry.lastAt, deadlineMs: g.deadline, learned: g.sorted.length >= minSamples });
          if (subscriber.closed || groups.get(g.id) !== g) return;
        }
        arm(g, now);
      };

      const sample = (g: Group, value: number, now: number): void => {
        if (g.ring.length < windowSize) {
          g.ring.push(value);
        } else {
          const old = g.ring[g.ringAt] as number;
          g.ring[g.ringAt] = value;
          g.ringAt = (g.ringAt + 1) % windowSize;
          g.sorted.splice(lowerBound(g.sorted, old), 1);
        }
        g.sorted.splice(lowerBound(g.sorted, value), 0, value);
        const deadline = deadlineOf(g.sorted, settled);
        if (deadline === g.deadline) return;
        g.deadline = deadline;
        // Shorter: the armed timer may be late. Longer: it fires early and re-arms.
        if (g.timer !== undefined) {
          g.timer.unsubscribe();
          g.timer = undefined;
        }
        arm(g, now);
      };

      operate(source, subscriber, {
        next: signal => {
          const now = scheduler.now();
          switch (signal.type) {
            case 'start': {
              let g = groups.get(signal.group);
              if (g === undefined) {
                g = { id: signal.group, ring: [], ringAt: 0, sorted: [], deadline: floorMs, head: undefined, tail: undefined, timer: undefined, timerAt: 0 };
                groups.set(signal.group, g);
              }
              const known = attempts.get(signal.key);
              if (known !== undefined) unlink(known);
              const entry: Entry = { key: signal.key, group: g, lastAt: now, longest: 0, prev: undefined, next: undefined, listed: false };
              attempts.set(signal.key, entry);
              append(entry);
              arm(g, now);
              return;
            }
            case 'progress': {
              const entry = attempts.get(signal.key);
              if (entry === undefined) return;
              entry.longest = Math.max(entry.longest, now - entry.lastAt);
              entry.lastAt = now;
              unlink(entry);
              append(entry);
              arm(entry.group, now);
              return;
            }
            case 'end': {
              const entry = attempts.get(signal.key);
              if (entry === undefined) return;
              unlink(entry);
              attempts.delete(signal.key);
              if (signal.ok) sample(entry.group, Math.max(entry.longest, now - entry.lastAt), now);
              return;
            }
            case 'close': {
              const g = groups.get(signal.group);
              if (g === undefined) return;
              g.timer?.unsubscribe();
              groups.delete(signal.group);
              // Attempts reported silent are out of the list: found by their group (once per group's life).
              for (const [key, e] of attempts) if (e.group === g) attempts.delete(key);
              return;
            }
          }
        },
      });

      return () => {
        for (const g of groups.values()) g.timer?.unsubscribe();
        groups.clear();
        attempts.clear();
      };
    });
}

/** First index whose value is not below `value`. */
function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
