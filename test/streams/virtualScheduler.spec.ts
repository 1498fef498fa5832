import fc from 'fast-check';
import { marbles } from 'rxjs-marbles/jest';
import {
  Observable,
  Subscription,
  TimeoutError,
  bufferTime,
  catchError,
  debounceTime,
  delay,
  interval,
  map,
  of,
  sampleTime,
  take,
  throttleTime,
  timeout,
  timer,
  type SchedulerAction,
  type SchedulerLike,
} from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** Runs `work` at `delay` and records `[now, label]` into `log`. */
function at(s: VirtualScheduler, log: Array<[number, string]>, delayMs: number, label: string): Subscription {
  return s.schedule(() => log.push([s.now(), label]), delayMs);
}

describe('VirtualScheduler', () => {
  describe('clock', () => {
    it('starts at 0, or at startMs', () => {
      expect(new VirtualScheduler().now()).toBe(0);
      expect(new VirtualScheduler({ startMs: 1_000 }).now()).toBe(1_000);
    });

    it.each([NaN, Infinity, -Infinity])('rejects startMs %s', startMs => {
      expect(() => new VirtualScheduler({ startMs })).toThrow(RangeError);
      expect(() => new VirtualScheduler({ startMs })).toThrow(/startMs/);
    });

    it('delays count from startMs', () => {
      const s = new VirtualScheduler({ startMs: 100 });
      const log: Array<[number, string]> = [];
      at(s, log, 5, 'a');
      s.flush();
      expect(log).toEqual([[105, 'a']]);
    });
  });

  describe('ordering', () => {
    it('runs actions by time, and same-time actions in the order they were scheduled', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      at(s, log, 10, 'a');
      at(s, log, 5, 'b');
      at(s, log, 10, 'c');
      at(s, log, 0, 'd');
      at(s, log, 10, 'e');
      at(s, log, 5, 'f');
      s.flush();
      expect(log).toEqual([
        [0, 'd'],
        [5, 'b'],
        [5, 'f'],
        [10, 'a'],
        [10, 'c'],
        [10, 'e'],
      ]);
    });

    it('puts an action scheduled from inside work with delay 0 after the same-time actions already queued', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      s.schedule(() => {
        log.push([s.now(), 'a']);
        at(s, log, 0, 'a-child');
      }, 3);
      at(s, log, 3, 'b');
      s.flush();
      expect(log).toEqual([
        [3, 'a'],
        [3, 'b'],
        [3, 'a-child'],
      ]);
    });

    it('counts delays scheduled from inside work from the running action’s time', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      s.schedule(() => at(s, log, 4, 'child'), 6);
      s.advanceTo(100);
      expect(log).toEqual([[10, 'child']]);
    });

    it('treats negative and NaN delays as 0', () => {
      const s = new VirtualScheduler({ startMs: 50 });
      const log: Array<[number, string]> = [];
      at(s, log, 0, 'zero');
      at(s, log, -5, 'negative');
      at(s, log, NaN, 'nan');
      at(s, log, -Infinity, '-inf');
      expect(s.pending).toBe(4);
      s.advanceBy(0);
      expect(log).toEqual([
        [50, 'zero'],
        [50, 'negative'],
        [50, 'nan'],
        [50, '-inf'],
      ]);
      expect(s.now()).toBe(50);
    });

    it('never runs an action with an infinite delay, and flush() keeps a finite clock', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      const never = at(s, log, Infinity, 'never');
      at(s, log, 7, 'a');
      expect(s.pending).toBe(1);
      s.flush();
      expect(log).toEqual([[7, 'a']]);
      expect(s.now()).toBe(7);
      never.unsubscribe();
      expect(never.closed).toBe(true);
    });

    it('takes a queued action off the queue when it is rescheduled with an infinite delay', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      const action = s.schedule(() => log.push([s.now(), 'x']), 5) as unknown as SchedulerAction<unknown>;
      action.schedule(undefined, Infinity);
      expect(s.pending).toBe(0);
      s.flush();
      expect(log).toEqual([]);
    });
  });

  describe('advanceBy / advanceTo / flush', () => {
    it('advanceBy runs every action due at or before now + ms and leaves the clock there', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      at(s, log, 5, 'a');
      at(s, log, 10, 'b');
      at(s, log, 11, 'c');
      s.advanceBy(10);
      expect(log).toEqual([
        [5, 'a'],
        [10, 'b'],
      ]);
      expect(s.now()).toBe(10);
      s.advanceBy(0);
      expect(log).toHaveLength(2);
      s.advanceBy(20);
      expect(log).toEqual([
        [5, 'a'],
        [10, 'b'],
        [11, 'c'],
      ]);
      expect(s.now()).toBe(30);
    });

    it('advanceTo runs every action due at or before ms and leaves the clock at ms, even with nothing queued', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      at(s, log, 3, 'a');
      s.advanceTo(2);
      expect(log).toEqual([]);
      expect(s.now()).toBe(2);
      s.advanceTo(3);
      expect(log).toEqual([[3, 'a']]);
      s.advanceTo(3); // same time: allowed, nothing new
      s.advanceTo(1_000);
      expect(s.now()).toBe(1_000);
    });

    it('shows each action its own time in now()', () => {
      const s = new VirtualScheduler();
      const seen: number[] = [];
      for (const d of [2, 9, 4]) s.schedule(() => seen.push(s.now()), d);
      s.advanceTo(50);
      expect(seen).toEqual([2, 4, 9]);
    });

    it('flush runs everything, including actions scheduled while flushing, and leaves the clock at the last one', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      at(s, log, 5, 'a');
      s.schedule(() => at(s, log, 20, 'late'), 10);
      s.flush();
      expect(log).toEqual([
        [5, 'a'],
        [30, 'late'],
      ]);
      expect(s.now()).toBe(30);
      expect(s.pending).toBe(0);
    });

    it('flush with nothing queued leaves the clock alone', () => {
      const s = new VirtualScheduler({ startMs: 42 });
      s.flush();
      expect(s.now()).toBe(42);
    });

    it.each([-1, NaN, Infinity, -Infinity])('advanceBy(%s) is a RangeError and changes nothing', ms => {
      const s = new VirtualScheduler({ startMs: 10 });
      const log: Array<[number, string]> = [];
      at(s, log, 0, 'a');
      expect(() => s.advanceBy(ms)).toThrow(RangeError);
      expect(s.now()).toBe(10);
      expect(log).toEqual([]);
    });

    it.each([9, NaN, Infinity, -Infinity])('advanceTo(%s) from 10 is a RangeError and changes nothing', ms => {
      const s = new VirtualScheduler({ startMs: 10 });
      const log: Array<[number, string]> = [];
      at(s, log, 0, 'a');
      expect(() => s.advanceTo(ms)).toThrow(RangeError);
      expect(s.now()).toBe(10);
      expect(log).toEqual([]);
    });

    it('refuses to advance time from inside an action (the clock would go back afterwards)', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      s.schedule(() => s.advanceBy(100), 5);
      at(s, log, 50, 'later');
      expect(() => s.advanceTo(10)).toThrow(/inside a scheduled action/);
      expect(s.now()).toBe(5);
      expect(log).toEqual([]);
      s.advanceTo(60);
      expect(log).toEqual([[50, 'later']]);
      expect(s.now()).toBe(60);
    });
  });

  describe('cancellation', () => {
    it('an action unsubscribed before it runs never runs and leaves the queue', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      const a = at(s, log, 5, 'a');
      at(s, log, 5, 'b');
      expect(s.pending).toBe(2);
      a.unsubscribe();
      a.unsubscribe(); // idempotent
      expect(a.closed).toBe(true);
      expect(s.pending).toBe(1);
      s.flush();
      expect(log).toEqual([[5, 'b']]);
    });

    it('an action can cancel another one due at the same time', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      let victim: Subscription | undefined;
      s.schedule(() => victim?.unsubscribe(), 5);
      victim = at(s, log, 5, 'victim');
      s.flush();
      expect(log).toEqual([]);
    });

    it('cancelling through a parent subscription removes the action', () => {
      const s = new VirtualScheduler();
      const parent = new Subscription();
      parent.add(s.schedule(() => undefined, 5));
      parent.add(s.schedule(() => undefined, 6));
      expect(s.pending).toBe(2);
      parent.unsubscribe();
      expect(s.pending).toBe(0);
    });

    it('unsubscribing after the action ran is harmless', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      const a = at(s, log, 1, 'a');
      at(s, log, 2, 'b');
      s.advanceTo(1);
      a.unsubscribe();
      expect(s.pending).toBe(1);
      s.flush();
      expect(log).toEqual([
        [1, 'a'],
        [2, 'b'],
      ]);
    });
  });

  describe('rescheduling', () => {
    it('this.schedule(state, delay) from inside work runs the same action again with the new state (like interval)', () => {
      const s = new VirtualScheduler();
      const seen: Array<[number, number]> = [];
      const sub = s.schedule<number>(function (n = 0) {
        seen.push([s.now(), n]);
        if (n < 3) expect(this.schedule(n + 1, 10)).toBe(this);
      }, 5);
      s.flush();
      expect(seen).toEqual([
        [5, 0],
        [15, 1],
        [25, 2],
        [35, 3],
      ]);
      expect(sub.closed).toBe(false); // like RxJS's actions: done, not cancelled
      expect(s.pending).toBe(0);
    });

    it('a periodic action stops when its subscription is unsubscribed', () => {
      const s = new VirtualScheduler();
      const times: number[] = [];
      const periodic = s.schedule(function () {
        times.push(s.now());
        this.schedule(undefined, 4);
      }, 4);
      s.advanceTo(13);
      expect(times).toEqual([4, 8, 12]);
      expect(s.pending).toBe(1);
      periodic.unsubscribe();
      expect(s.pending).toBe(0);
      s.advanceTo(100);
      expect(times).toEqual([4, 8, 12]);
    });

    it('an action that unsubscribes itself cannot reschedule', () => {
      const s = new VirtualScheduler();
      let runs = 0;
      s.schedule(function () {
        runs++;
        this.unsubscribe();
        this.schedule(undefined, 1);
      }, 1);
      s.flush();
      expect(runs).toBe(1);
      expect(s.pending).toBe(0);
    });

    it('rescheduling a queued action from outside moves it (and behind other same-time actions)', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      const a = s.schedule(() => log.push([s.now(), 'a']), 2) as unknown as SchedulerAction<unknown>;
      at(s, log, 9, 'b');
      a.schedule(undefined, 9);
      expect(s.pending).toBe(2);
      s.flush();
      expect(log).toEqual([
        [9, 'b'],
        [9, 'a'],
      ]);
    });
  });

  describe('errors', () => {
    it('an action that throws: the error leaves advanceTo, the clock stays at the thrower, the rest stays queued', () => {
      const s = new VirtualScheduler();
      const log: Array<[number, string]> = [];
      at(s, log, 1, 'a');
      s.schedule(() => {
        throw new Error('boom');
      }, 3);
      at(s, log, 3, 'b');
      at(s, log, 8, 'c');
      expect(() => s.advanceTo(10)).toThrow('boom');
      expect(s.now()).toBe(3);
      expect(log).toEqual([[1, 'a']]);
      expect(s.pending).toBe(2);
      s.advanceTo(10);
      expect(log).toEqual([
        [1, 'a'],
        [3, 'b'],
        [8, 'c'],
      ]);
      expect(s.now()).toBe(10);
    });

    it('a periodic action that throws after rescheduling itself is cancelled', () => {
      const s = new VirtualScheduler();
      let runs = 0;
      const sub = s.schedule(function () {
        runs++;
        this.schedule(undefined, 1);
        if (runs === 2) throw new Error('second run');
      }, 1);
      expect(() => s.flush()).toThrow('second run');
      expect(sub.closed).toBe(true);
      expect(s.pending).toBe(0);
      s.flush();
      expect(runs).toBe(2);
    });

    it('errors from advanceBy and flush too', () => {
      const s = new VirtualScheduler();
      s.schedule(() => {
        throw new Error('one');
      }, 1);
      s.schedule(() => {
        throw new Error('two');
      }, 2);
      expect(() => s.advanceBy(5)).toThrow('one');
      expect(() => s.flush()).toThrow('two');
      expect(s.now()).toBe(2);
      s.advanceBy(5);
      expect(s.now()).toBe(7);
    });
  });

  it('pending counts queued actions only', () => {
    const s = new VirtualScheduler();
    expect(s.pending).toBe(0);
    const a = s.schedule(() => undefined, 1);
    s.schedule(() => undefined, 2);
    let again = true;
    s.schedule(function () {
      if (again) this.schedule(undefined, 10);
      again = false;
    }, 3);
    expect(s.pending).toBe(3);
    a.unsubscribe();
    expect(s.pending).toBe(2);
    s.advanceTo(2);
    expect(s.pending).toBe(1);
    s.advanceTo(3);
    expect(s.pending).toBe(1); // rescheduled itself
    s.flush();
    expect(s.pending).toBe(0);
  });

  it('pending leaves out the action that is running', () => {
    const s = new VirtualScheduler();
    const seen: number[] = [];
    s.schedule<number>(function (n = 0) {
      seen.push(s.pending);
      if (n < 1) this.schedule(n + 1, 5);
      seen.push(s.pending);
    }, 1);
    s.schedule(() => seen.push(s.pending), 2);
    s.flush();
    expect(seen).toEqual([1, 2, 1, 0, 0]);
  });
});

// --- The same emission times as RxJS's TestScheduler, with RxJS's own operators ---------------------------

interface Recorded {
  readonly frame: number;
  readonly kind: 'N' | 'E' | 'C';
  readonly value?: unknown;
}

/** `TestScheduler.parseMarbles` in run mode (1 ms per frame), usable outside `run()` too. */
function parseRunMarbles(marble: string, values?: Record<string, unknown>): Recorded[] {
  const previous = TestScheduler.frameTimeFactor;
  TestScheduler.frameTimeFactor = 1;
  try {
    return TestScheduler.parseMarbles(marble, values, 'error', false, true).map(({ frame, notification }) =>
      notification.kind === 'N'
        ? { frame, kind: 'N', value: notification.value }
        : { frame, kind: notification.kind },
    );
  } finally {
    TestScheduler.frameTimeFactor = previous;
  }
}

/** A cold observable replaying `marble` on any scheduler: the same source for both schedulers. */
function coldOn(marble: string, scheduler: SchedulerLike): Observable<string> {
  const messages = parseRunMarbles(marble);
  return new Observable<string>(subscriber => {
    const subscription = new Subscription();
    for (const { frame, kind, value } of messages) {
      subscription.add(
        scheduler.schedule(() => {
          if (kind === 'N') subscriber.next(value as string);
          else if (kind === 'E') subscriber.error(new Error('source error'));
          else subscriber.complete();
        }, frame),
      );
    }
    return subscription;
  });
}

function recordOn(s: VirtualScheduler, observable: Observable<unknown>): Recorded[] {
  const out: Recorded[] = [];
  observable.subscribe({
    next: value => out.push({ frame: s.now(), kind: 'N', value }),
    error: () => out.push({ frame: s.now(), kind: 'E' }),
    complete: () => out.push({ frame: s.now(), kind: 'C' }),
  });
  s.flush();
  return out;
}

interface OperatorCase {
  readonly name: string;
  readonly source?: string;
  readonly build: (source: Observable<string>, scheduler: SchedulerLike) => Observable<unknown>;
  readonly expected: string;
  readonly values?: Record<string, unknown>;
}

const cases: OperatorCase[] = [
  { name: 'timer(3)', build: (_, s) => timer(3, s).pipe(map(() => 'x')), expected: '3ms (x|)' },
  {
    name: 'timer(2, 3) with take(3)',
    build: (_, s) => timer(2, 3, s).pipe(take(3)),
    expected: '2ms a 2ms b 2ms (c|)',
    values: { a: 0, b: 1, c: 2 },
  },
  {
    name: 'timer(0, 0) with take(3) (re-schedules at the same time)',
    build: (_, s) => timer(0, 0, s).pipe(take(3)),
    expected: '(abc|)',
    values: { a: 0, b: 1, c: 2 },
  },
  { name: 'timer(Date) reads now()', build: (_, s) => timer(new Date(5), s).pipe(map(() => 'x')), expected: '5ms (x|)' },
  {
    name: 'interval(4) with take(3)',
    build: (_, s) => interval(4, s).pipe(take(3)),
    expected: '4ms a 3ms b 3ms (c|)',
    values: { a: 0, b: 1, c: 2 },
  },
  { name: 'delay(3)', source: 'a-b--c|', build: (src, s) => src.pipe(delay(3, s)), expected: '---a-b--(c|)' },
  { name: 'delay(0)', source: 'ab-c|', build: (src, s) => src.pipe(delay(0, s)), expected: 'ab-c|' },
  {
    name: 'debounceTime(3) (re-schedules from inside work)',
    source: 'a-b----c-d|',
    build: (src, s) => src.pipe(debounceTime(3, s)),
    expected: '-----b----(d|)',
  },
  {
    name: 'bufferTime(4) (periodic)',
    source: 'a-b---c--|',
    build: (src, s) => src.pipe(bufferTime(4, s), map(buffer => buffer.join(''))),
    expected: '4ms x 3ms y (e|)',
    values: { x: 'ab', y: 'c', e: '' },
  },
  {
    name: 'timeout({ each: 3 })',
    source: 'a-b-----c|',
    build: (src, s) =>
      src.pipe(
        timeout({ each: 3, scheduler: s }),
        catchError((err: unknown) => of(err instanceof TimeoutError ? 'T' : 'other')),
      ),
    expected: 'a-b--(T|)',
  },
  {
    name: 'timeout({ each: 3 }) that never fires',
    source: 'a-b-c|',
    build: (src, s) => src.pipe(timeout({ each: 3, scheduler: s })),
    expected: 'a-b-c|',
  },
  { name: 'throttleTime(3)', source: 'abc-d-e--|', build: (src, s) => src.pipe(throttleTime(3, s)), expected: 'a---d----|' },
  { name: 'sampleTime(3)', source: 'ab-cd----|', build: (src, s) => src.pipe(sampleTime(3, s)), expected: '---c--d--|' },
  { name: 'a source error passes through delay', source: 'a-#', build: (src, s) => src.pipe(delay(5, s)), expected: '--#' },
];

describe('VirtualScheduler under RxJS operators: the same emission times as TestScheduler', () => {
  for (const c of cases) {
    describe(c.name, () => {
      it(
        'TestScheduler agrees with the diagram',
        marbles(m => {
          const source = coldOn(c.source ?? '|', m.scheduler);
          m.expect(c.build(source, m.scheduler)).toBeObservable(c.expected, c.values, new Error('source error'));
        }),
      );

      it('VirtualScheduler produces the diagram', () => {
        const s = new VirtualScheduler();
        const source = coldOn(c.source ?? '|', s);
        expect(recordOn(s, c.build(source, s))).toEqual(parseRunMarbles(c.expected, c.values));
        expect(s.pending).toBe(0);
      });
    });
  }
});

// --- Property: the heap scheduler against a naive sorted-array model -------------------------------------

type Command =
  /**
   * A new action: runs `1 + repeats` times, `period` apart; on each run it may spawn a one-shot
   * child, on its first run it may cancel or move another action (or itself), then it
   * re-schedules itself.
   */
  | { readonly kind: 'schedule'; readonly delay: number; readonly repeats: number; readonly period: number; readonly child: number | null; readonly poke: Poke | null }
  | { readonly kind: 'cancel'; readonly pick: number }
  /** `action.schedule(undefined, delay)` from outside: moves a queued action, re-queues a finished one. */
  | { readonly kind: 'reschedule'; readonly pick: number; readonly delay: number }
  | { readonly kind: 'advance'; readonly ms: number };

/** What a running action does to another one (picked among all actions made so far). */
type Poke = { readonly kind: 'cancel'; readonly pick: number } | { readonly kind: 'reschedule'; readonly pick: number; readonly delay: number };

const poke: fc.Arbitrary<Poke | null> = fc.option(
  fc.oneof(
    fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('reschedule' as const), pick: fc.nat(), delay: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: -1, max: 12 }) }, { weight: 1, arbitrary: fc.constant(Infinity) }) }),
  ),
  { freq: 3 },
);

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('schedule' as const),
      delay: fc.oneof(fc.integer({ min: -3, max: 30 }), fc.constant(NaN)),
      repeats: fc.integer({ min: 0, max: 3 }),
      period: fc.integer({ min: -1, max: 10 }),
      child: fc.option(fc.integer({ min: -1, max: 8 })),
      poke,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('reschedule' as const),
      pick: fc.nat(),
      delay: fc.oneof({ weight: 5, arbitrary: fc.integer({ min: -3, max: 30 }) }, { weight: 1, arbitrary: fc.constant(Infinity) }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 25 }) }) },
);

interface Spec {
  repeats: number;
  readonly period: number;
  readonly child: number | null;
  /** Done on the action's first run only (two actions moving each other would never stop). */
  poke: Poke | null;
}

/** The obviously-correct scheduler: an array searched for its (time, seq) minimum. */
class Model {
  clock = 0;
  private seq = 0;
  readonly log: Array<[number, number]> = [];
  readonly specs: Spec[] = [];
  private readonly cancelled = new Set<number>();
  queue: Array<{ id: number; time: number; seq: number }> = [];

  create(spec: Spec, delayMs: number): void {
    this.specs.push(spec);
    this.enqueue(this.specs.length - 1, delayMs);
  }

  enqueue(id: number, delayMs: number): void {
    this.queue.push({ id, time: this.clock + (delayMs > 0 ? delayMs : 0), seq: this.seq++ });
  }

  cancel(id: number): void {
    this.cancelled.add(id);
    this.queue = this.queue.filter(e => e.id !== id);
  }

  reschedule(id: number, delayMs: number): void {
    if (this.cancelled.has(id)) return;
    this.queue = this.queue.filter(e => e.id !== id);
    if (delayMs !== Infinity) this.enqueue(id, delayMs);
  }

  runUntil(limit: number): void {
    for (;;) {
      let best: (typeof this.queue)[number] | undefined;
      for (const e of this.queue) if (e.time <= limit && (!best || e.time < best.time || (e.time === best.time && e.seq < best.seq))) best = e;
      if (!best) return;
      const run = best;
      this.queue = this.queue.filter(e => e !== run);
      this.clock = run.time;
      this.log.push([run.time, run.id]);
      const spec = this.specs[run.id]!;
      // Same order as the real work below: child, poke, then the re-schedule.
      if (spec.child !== null) this.create({ repeats: 0, period: 0, child: null, poke: null }, spec.child);
      const { poke } = spec;
      spec.poke = null;
      if (poke !== null) {
        const target = poke.pick % this.specs.length;
        if (poke.kind === 'cancel') this.cancel(target);
        else this.reschedule(target, poke.delay);
      }
      if (spec.repeats > 0) {
        spec.repeats--;
        this.reschedule(run.id, spec.period);
      }
    }
  }
}

/** Runs `commands` on a VirtualScheduler and on the model, comparing them after every command. */
function agreesWithModel(commands: readonly Command[]): void {
  const s = new VirtualScheduler();
  const model = new Model();
  const log: Array<[number, number]> = [];
  const subscriptions: Subscription[] = [];

  const create = (spec: Spec, delayMs: number): void => {
    const id = subscriptions.length;
    let left = spec.repeats;
    subscriptions.push(
      s.schedule(function () {
        log.push([s.now(), id]);
        if (spec.child !== null) create({ repeats: 0, period: 0, child: null, poke: null }, spec.child);
        const { poke } = spec;
        spec.poke = null;
        if (poke !== null) {
          const target = subscriptions[poke.pick % subscriptions.length] as unknown as SchedulerAction<undefined>;
          if (poke.kind === 'cancel') target.unsubscribe();
          else target.schedule(undefined, poke.delay);
        }
        if (left > 0) {
          left--;
          this.schedule(undefined, spec.period);
        }
      }, delayMs),
    );
  };

  for (const c of commands) {
    if (c.kind === 'schedule') {
      const spec = { repeats: c.repeats, period: c.period, child: c.child, poke: c.poke };
      create(spec, c.delay);
      model.create({ ...spec }, c.delay);
    } else if (c.kind === 'cancel') {
      if (subscriptions.length === 0) continue;
      const id = c.pick % subscriptions.length;
      subscriptions[id]!.unsubscribe();
      model.cancel(id);
    } else if (c.kind === 'reschedule') {
      if (subscriptions.length === 0) continue;
      const id = c.pick % subscriptions.length;
      (subscriptions[id] as unknown as SchedulerAction<undefined>).schedule(undefined, c.delay);
      model.reschedule(id, c.delay);
    } else {
      const target = model.clock + c.ms;
      s.advanceBy(c.ms);
      model.runUntil(target);
      model.clock = target;
    }
    expect(log).toEqual(model.log);
    expect(s.now()).toBe(model.clock);
    expect(s.pending).toBe(model.queue.length);
  }
  s.flush();
  model.runUntil(Infinity);
  expect(log).toEqual(model.log);
  expect(s.now()).toBe(model.clock);
  expect(s.pending).toBe(0);
}

/** Like `command`, but with many timers: fractional, shared and far-apart times (the queue hashes times). */
const wideDelay = fc.oneof(
  fc.integer({ min: 0, max: 30 }),
  fc.double({ min: 0, max: 30, noNaN: true }),
  fc.integer({ min: 0, max: 2 ** 40 }),
  fc.constant(-0),
);
const wideCommand: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('schedule' as const),
      delay: wideDelay,
      repeats: fc.integer({ min: 0, max: 3 }),
      period: fc.integer({ min: -1, max: 10 }),
      child: fc.option(fc.integer({ min: -1, max: 8 })),
      poke,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('reschedule' as const), pick: fc.nat(), delay: wideDelay }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 0, max: 25 }), fc.double({ min: 0, max: 25, noNaN: true })) }) },
);

describe('VirtualScheduler property', () => {
  it('runs exactly the (time, id) sequence of a naive sorted-array model', () => {
    fc.assert(fc.property(fc.array(command, { maxLength: 60 }), agreesWithModel), { numRuns: 200 });
  });

  it('agrees with the model with many timers at fractional, shared and far-apart times', () => {
    fc.assert(fc.property(fc.array(wideCommand, { minLength: 50, maxLength: 250, size: 'max' }), agreesWithModel), { numRuns: 60 });
  });
});

describe('VirtualScheduler.advanceInline (for an action that runs a queue of its own)', () => {
  it('moves the clock on only inside a run, up to its limit, and only while nothing else is due before or at that time', () => {
    const scheduler = new VirtualScheduler();
    expect(scheduler.advanceInline(5)).toBe(false); // not running
    const answers: Array<[number, boolean, number]> = [];
    const ask = (time: number): void => void answers.push([time, scheduler.advanceInline(time), scheduler.now()]);
    scheduler.schedule(() => {
      ask(15); // before the action at 20: the clock moves
      ask(20); // the action at 20 was queued first: it goes first
      ask(12); // behind the clock: due now, nothing else is due now
    }, 10);
    scheduler.schedule(() => undefined, 20);
    scheduler.schedule(() => ask(60), 30); // past the run's limit
    scheduler.advanceTo(50);
    expect(answers).toEqual([
      [15, true, 15],
      [20, false, 15],
      [12, true, 15],
      [60, false, 30],
    ]);
    expect(scheduler.now()).toBe(50);
  });
});
