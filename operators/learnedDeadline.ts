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

/**
 * An attempt reported silent is within its group's deadline again: the deadline grew (learned
 * from longer finished work), so its silence is no longer past it. It is watched again.
 */
export interface ClearedAttempt {
  readonly type: 'cleared';
  readonly key: string;
  readonly group: string;
  readonly at: number;
  readonly deadlineMs: number;
}

export type SilenceVerdict = SilentAttempt | ClearedAttempt;

/** The default `factor`: the deadline is this many times the p99 of finished attempts' silences. */
export const DEFAULT_DEADLINE_FACTOR = 1.5;

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
  /** In the list (watched), or out of it (in `reported`: its silence was reported). */
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
  /** Attempts reported silent, waiting for progress or a longer deadline. */
  readonly reported: Set<Entry>;
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
 * group's deadline it is reported once (`silent`), then again only after new progress — or, if a
 * longer deadline learned meanwhile puts it back within, it is `cleared` and watched again. An attempt
 * that `end`s `ok` gives its longest silence as a sample. Within a group every attempt has the same
 * deadline, so attempts ordered by their last sign of life are ordered by deadline: progress moves
 * an attempt to its group's tail in O(1), and one timer per group watches the head. A deadline that
 * changes (a new sample) re-arms that timer: an attempt is judged by the deadline in force when it
 * comes due.
 *
 * @example
 * signals$.pipe(learnedDeadline({ floorMs: 30_000 })).subscribe(({ key }) => hedge(key));
 */
export function learnedDeadline(options: LearnedDeadlineOptions): OperatorFunction<AttemptSignal, SilenceVerdict> {
  const { floorMs, factor = DEFAULT_DEADLINE_FACTOR, percentile = 99, minSamples = 5, windowSize = 128, scheduler = asyncScheduler } = options ?? ({} as LearnedDeadlineOptions);
  requireNumber('floorMs', floorMs, 0, true);
  requireNumber('factor', factor, 1);
  requireInRange('percentile', percentile, 1, 100);
  requireInteger('minSamples', minSamples, 1);
  requireInteger('windowSize', windowSize, minSamples);
  requireScheduler(scheduler);
  const settled: SettledDeadline = { floorMs, factor, percentile, minSamples };

  return source =>
    new Observable<SilenceVerdict>(subscriber => {
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

      const prepend = (entry: Entry): void => {
        const g = entry.group;
        entry.next = g.head;
        entry.prev = undefined;
        if (g.head) g.head.prev = entry;
        else g.tail = entry;
        g.head = entry;
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
        // Compared as the timer was set (`lastAt + deadline`): with fractional times, `now - lastAt`
        // can fall short by a rounding error and the timer would wake at the same instant forever.
        while (g.head !== undefined && g.head.lastAt + g.deadline <= now) {
          const entry = g.head;
          unlink(entry);
          g.reported.add(entry);
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
        const longer = deadline > g.deadline;
        g.deadline = deadline;
        // Shorter: the armed timer may be late. Longer: it fires early and re-arms.
        if (g.timer !== undefined) {
          g.timer.unsubscribe();
          g.timer = undefined;
        }
        if (longer && g.reported.size > 0) clear(g, now);
        arm(g, now);
      };

      /**
       * Watches again the reported attempts that the longer deadline puts back within it. They go
       * to the head of the list: every reported attempt went silent before any listed one (those
       * past the deadline were taken from the head), so the list stays ordered.
       */
      const clear = (g: Group, now: number): void => {
        const back = [...g.reported].filter(e => e.lastAt + g.deadline > now).sort((a, b) => b.lastAt - a.lastAt);
        for (const entry of back) {
          g.reported.delete(entry);
          prepend(entry);
        }
        for (let i = back.length - 1; i >= 0 && !subscriber.closed; i--) {
          const entry = back[i] as Entry;
          subscriber.next({ type: 'cleared', key: entry.key, group: g.id, at: now, deadlineMs: g.deadline });
        }
      };

      operate(source, subscriber, {
        next: signal => {
          const now = scheduler.now();
          switch (signal.type) {
            case 'start': {
              let g = groups.get(signal.group);
              if (g === undefined) {
                g = { id: signal.group, ring: [], ringAt: 0, sorted: [], deadline: floorMs, head: undefined, tail: undefined, reported: new Set(), timer: undefined, timerAt: 0 };
                groups.set(signal.group, g);
              }
              const known = attempts.get(signal.key);
              if (known !== undefined) {
                unlink(known);
                known.group.reported.delete(known);
              }
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
              entry.group.reported.delete(entry);
              append(entry);
              arm(entry.group, now);
              return;
            }
            case 'end': {
              const entry = attempts.get(signal.key);
              if (entry === undefined) return;
              unlink(entry);
              entry.group.reported.delete(entry);
              attempts.delete(signal.key);
              if (signal.ok) sample(entry.group, Math.max(entry.longest, now - entry.lastAt), now);
              return;
            }
            case 'close': {
              const g = groups.get(signal.group);
              if (g === undefined) return;
              g.timer?.unsubscribe();
              groups.delete(signal.group);
              for (let e = g.head; e !== undefined; e = e.next) attempts.delete(e.key);
              for (const e of g.reported) attempts.delete(e.key);
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
