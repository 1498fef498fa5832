import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, of, take, type SchedulerLike } from 'rxjs';
import fc from 'fast-check';
import {
  RollingWindow,
  nearestRank,
  performanceWindow,
  summarize,
  type ExecutionRecord,
  type PerformanceSnapshot,
} from '../../operators/performanceWindow.js';
import { coveredMs } from '../../operators/internal/rollingWindow.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const rec = (ok: boolean, latencyMs: number, messages: number, at?: number): ExecutionRecord =>
  at === undefined ? { protocol: 'mesh', ok, latencyMs, messages } : { protocol: 'mesh', ok, latencyMs, messages, at };

const EMPTY = { count: 0, successRate: 0, meanLatencyMs: 0, p50LatencyMs: 0, p95LatencyMs: 0, throughputPerSec: 0, messagesPerExecution: 0 };

/** The definition, written out: filter the window, sort, take ranks; throughput over the time covered since `since`. */
function naive(records: readonly { t: number; r: ExecutionRecord }[], windowMs: number, now: number, since = -Infinity): PerformanceSnapshot {
  const kept = records.filter(({ t }) => t > now - windowMs);
  const inside = kept.map(({ r }) => r);
  const n = inside.length;
  if (n === 0) return { at: now, ...EMPTY };
  const sorted = inside.map(r => r.latencyMs).sort((a, b) => a - b);
  const rank = (p: number): number => sorted[Math.max(1, Math.ceil((p * n) / 100)) - 1]!;
  const sum = (f: (r: ExecutionRecord) => number): number => inside.reduce((s, r) => s + f(r), 0);
  return {
    at: now,
    count: n,
    successRate: inside.filter(r => r.ok).length / n,
    meanLatencyMs: sum(r => r.latencyMs) / n,
    p50LatencyMs: rank(50),
    p95LatencyMs: rank(95),
    throughputPerSec: ((covered: number) => (covered > 0 ? n / (covered / 1000) : 0))(now - Math.max(now - windowMs, Math.min(since, ...kept.map(({ t }) => t)))),
    messagesPerExecution: sum(r => r.messages) / n,
  };
}

describe('nearestRank', () => {
  it.each([
    // Reference values: the nearest-rank method's textbook examples.
    [[15, 20, 35, 40, 50], 5, 15],
    [[15, 20, 35, 40, 50], 30, 20],
    [[15, 20, 35, 40, 50], 40, 20],
    [[15, 20, 35, 40, 50], 50, 35],
    [[15, 20, 35, 40, 50], 100, 50],
    [[3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 25, 7],
    [[3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 50, 8],
    [[3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 75, 15],
    [[3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 95, 20],
    [[42], 1, 42],
    [[42], 95, 42],
    [[1, 2], 50, 1],
    [[1, 2], 95, 2],
    [Array.from({ length: 20 }, (_, i) => i + 1), 95, 19],
    [Array.from({ length: 60 }, (_, i) => i + 1), 95, 57],
    [[], 50, 0],
  ])('%j at p%d = %d', (sorted, percent, expected) => {
    expect(nearestRank(sorted, percent)).toBe(expected);
  });

  it.each([0, -1, 101, NaN])('rejects percent %d', percent => {
    expect(() => nearestRank([1], percent)).toThrow(RangeError);
  });
});

describe('coveredMs', () => {
  it.each([
    // [case, now, windowMs, since, oldest stamp, covered]
    ['watched 20 s through a 5-minute window: 20 s, not 300', 20_000, 300_000, 0, 1_200, 20_000],
    ['watched longer than the window: the window', 900_000, 300_000, 0, 650_000, 300_000],
    ['watched since forever (no start given): the window', 5_000, 1_000, -Infinity, 4_500, 1_000],
    ['a record stamped before watching began: from that record', 10_000, 60_000, 4_000, 1_000, 9_000],
    ['... but never beyond the window', 10_000, 6_000, 4_000, 1_000, 6_000],
    ['nothing in the window: since watching began', 3_000, 60_000, 1_000, undefined, 2_000],
    ['at the instant watching began: nothing covered yet', 7_000, 60_000, 7_000, 7_000, 0],
  ])('%s', (_, now, windowMs, since, oldest, expected) => {
    expect(coveredMs(now, windowMs, since, oldest)).toBe(expected);
  });
});

describe('throughputPerSec', () => {
  // A steady 3.3 completions a second for 20 s (66 of them), read through a 5-minute window.
  const steady = Array.from({ length: 66 }, (_, i) => rec(true, 50, 2, Math.round(((i + 1) * 1000) / 3.3)));
  it.each<[string, ExecutionRecord[], number, number, number | undefined, number]>([
    ['a stream younger than the window: over the time watched', steady, 300_000, 20_000, 0, 3.3],
    ['the same without a start: over the whole window (the old, misleading reading)', steady, 300_000, 20_000, undefined, 0.22],
    ['a full window: over the window', [rec(true, 1, 1, 9_500), rec(true, 1, 1, 9_800)], 1_000, 10_000, 0, 2],
    ['records before watching began count from their stamp', [rec(true, 1, 1, 0), rec(true, 1, 1, 500)], 10_000, 2_000, 1_000, 1],
    ['idle after subscribing, then one record: over the whole watch', [rec(true, 1, 1, 4_000)], 60_000, 4_000, 0, 0.25],
    ['records at the instant watching began: no time covered, 0', [rec(true, 1, 1, 0), rec(true, 1, 1, 0)], 1_000, 0, 0, 0],
    ['empty: 0', [], 1_000, 5_000, 0, 0],
  ])('%s', (_, records, windowMs, now, since, expected) => {
    const snapshot = since === undefined ? summarize(records, windowMs, now) : summarize(records, windowMs, now, since);
    expect(snapshot.throughputPerSec).toBeCloseTo(expected, 10);
    const w = new RollingWindow(windowMs, since);
    for (const r of records) w.add(r, now);
    expect(w.snapshot(now).throughputPerSec).toBeCloseTo(expected, 10);
  });
});

describe('summarize', () => {
  it.each<[string, ExecutionRecord[], number, number, Partial<PerformanceSnapshot>]>([
    ['empty window reads all zeros, never NaN', [], 1000, 5000, { at: 5000, ...EMPTY }],
    ['one record', [rec(true, 120, 3, 4900)], 1000, 5000,
      { count: 1, successRate: 1, meanLatencyMs: 120, p50LatencyMs: 120, p95LatencyMs: 120, throughputPerSec: 1, messagesPerExecution: 3 }],
    ['stamped exactly now − windowMs: outside', [rec(true, 1, 1, 4000)], 1000, 5000, { count: 0 }],
    ['stamped 1 ms later: inside', [rec(true, 1, 1, 4001)], 1000, 5000, { count: 1 }],
    ['no `at`: stamped now', [rec(false, 10, 2)], 1000, 5000, { count: 1, successRate: 0 }],
    ['stamped in the future: inside', [rec(true, 10, 2, 9000)], 1000, 5000, { count: 1 }],
    ['mixed', [rec(true, 100, 4, 4500), rec(false, 300, 6, 4600), rec(true, 200, 2, 4700), rec(true, 900, 0, 3000)], 2000, 5000,
      { count: 3, successRate: 2 / 3, meanLatencyMs: 200, p50LatencyMs: 200, p95LatencyMs: 300, throughputPerSec: 1.5, messagesPerExecution: 4 }],
  ])('%s', (_, records, windowMs, now, expected) => {
    expect(summarize(records, windowMs, now)).toMatchObject(expected);
  });

  it('rejects a record that would poison the sums', () => {
    expect(() => summarize([rec(true, NaN, 1)], 10, 0)).toThrow(/latencyMs/);
    expect(() => summarize([rec(true, 1, -1)], 10, 0)).toThrow(/messages/);
    expect(() => summarize([rec(true, 1, 1, Infinity)], 10, 0)).toThrow(/at/);
  });
});

describe('RollingWindow', () => {
  it('inserts late records in time order and expires them by their stamp', () => {
    const w = new RollingWindow(100);
    w.add(rec(true, 30, 1, 50), 50);
    w.add(rec(false, 10, 1, 20), 60); // late: stamped before the first
    w.add(rec(true, 20, 1), 70);
    expect(w.snapshot(70)).toMatchObject({ count: 3, p50LatencyMs: 20, p95LatencyMs: 30 });
    w.expire(120); // the record stamped 20 leaves (20 <= 120 − 100)
    expect(w.snapshot(120)).toMatchObject({ count: 2, successRate: 1, p50LatencyMs: 20, meanLatencyMs: 25 });
    w.expire(170);
    expect(w.snapshot(170)).toEqual({ at: 170, ...EMPTY });
  });

  it('drops a record already outside the window', () => {
    const w = new RollingWindow(100);
    expect(w.add(rec(true, 1, 1, 0), 100)).toBe(false);
    expect(w.count).toBe(0);
  });

  it('survives long runs with compaction', () => {
    const w = new RollingWindow(10);
    for (let t = 0; t < 10_000; t++) w.add(rec(t % 2 === 0, t % 7, 1), t);
    expect(w.snapshot(9999)).toEqual(naive(Array.from({ length: 10 }, (_, i) => ({ t: 9990 + i, r: rec((9990 + i) % 2 === 0, (9990 + i) % 7, 1) })), 10, 9999));
  });

  it('keeps the percentiles of a window of thousands (latencies held in many sorted blocks, split and emptied)', () => {
    const w = new RollingWindow(3000);
    const all: { t: number; r: ExecutionRecord }[] = [];
    let x = 12345;
    for (let t = 0; t < 9000; t++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      // Many equal values (a multiset) and a drift, so that blocks fill, split and empty as records expire.
      const r = rec(t % 3 !== 0, (x % 500) + Math.floor(t / 100), 1);
      all.push({ t, r });
      w.add(r, t);
      if (t % 997 === 0 || t === 8999) expect(w.snapshot(t)).toEqual(naive(all, 3000, t));
    }
  });

  it('rejects a bad windowMs', () => {
    expect(() => new RollingWindow(0)).toThrow(/windowMs/);
  });
});

describe('performanceWindow', () => {
  const a = rec(true, 100, 4);
  const b = rec(false, 300, 6);
  const c = rec(true, 200, 2);

  it('emits a snapshot per record over the window ending now', marbles(m => {
    const windowMs = m.time('--------|');
    const source = m.hot('   -a--b------c-|', { a, b, c });
    const expected = '      -A--B------C-|';
    m.expect(source.pipe(performanceWindow({ windowMs, scheduler: m.scheduler }))).toBeObservable(expected, {
      // Throughput over the time covered since the subscription at 0: 1 in 1 ms, 2 in 4 ms, then 2 in the window's 8 ms.
      A: { at: 1, count: 1, successRate: 1, meanLatencyMs: 100, p50LatencyMs: 100, p95LatencyMs: 100, throughputPerSec: 1000, messagesPerExecution: 4 },
      B: { at: 4, count: 2, successRate: 0.5, meanLatencyMs: 200, p50LatencyMs: 100, p95LatencyMs: 300, throughputPerSec: 500, messagesPerExecution: 5 },
      // a (stamped 1) left the window at 9.
      C: { at: 11, count: 2, successRate: 0.5, meanLatencyMs: 250, p50LatencyMs: 200, p95LatencyMs: 300, throughputPerSec: 250, messagesPerExecution: 4 },
    });
  }));

  it('stamps a record with its own `at`; a too-old one still yields a snapshot', marbles(m => {
    const source = m.hot('-a--o-|', { a: rec(true, 10, 1, 0), o: rec(true, 99, 1, -50) });
    const expected = '    -A--B-|';
    const snapshot = { count: 1, successRate: 1, meanLatencyMs: 10, p50LatencyMs: 10, p95LatencyMs: 10, messagesPerExecution: 1 };
    m.expect(source.pipe(performanceWindow({ windowMs: 10, scheduler: m.scheduler }))).toBeObservable(expected, {
      A: { at: 1, ...snapshot, throughputPerSec: 1000 },
      B: { at: 4, ...snapshot, throughputPerSec: 250 },
    });
  }));

  it('passes a source error through', marbles(m => {
    const source = m.hot('-a-#', { a });
    m.expect(source.pipe(performanceWindow({ windowMs: 10, scheduler: m.scheduler }))).toBeObservable('-x-#', {
      x: { at: 1, count: 1, successRate: 1, meanLatencyMs: 100, p50LatencyMs: 100, p95LatencyMs: 100, throughputPerSec: 1000, messagesPerExecution: 4 },
    });
  }));

  it('errors downstream on a malformed record', marbles(m => {
    const source = m.hot('-a-|', { a: rec(true, NaN, 1) });
    m.expect(source.pipe(performanceWindow({ windowMs: 10, scheduler: m.scheduler }))).toBeObservable(
      '-#', undefined, new RangeError('record.latencyMs must be a finite number >= 0, got NaN'),
    );
  }));

  it('holds no timer and releases its window on unsubscribe', () => {
    const scheduler = new VirtualScheduler();
    const records = new Subject<ExecutionRecord>();
    const seen: PerformanceSnapshot[] = [];
    const sub = records.pipe(performanceWindow({ windowMs: 10, scheduler })).subscribe(s => seen.push(s));
    records.next(a);
    expect(scheduler.pending).toBe(0);
    sub.unsubscribe();
    expect(records.observed).toBe(false);
    // A new subscription starts from an empty window.
    records.pipe(performanceWindow({ windowMs: 10, scheduler })).subscribe(s => seen.push(s));
    records.next(b);
    expect(seen.map(s => s.count)).toEqual([1, 1]);
  });

  it('stops a synchronous source when unsubscribed', () => {
    let sent = 0;
    const endless = new Observable<ExecutionRecord>(s => {
      for (let i = 0; i < 100_000 && !s.closed; i++) {
        sent++;
        s.next(a);
      }
    });
    const counts: number[] = [];
    endless.pipe(performanceWindow({ windowMs: 10, scheduler: new VirtualScheduler() }), take(3)).subscribe(s => counts.push(s.count));
    expect(counts).toEqual([1, 2, 3]);
    expect(sent).toBe(3);
  });

  it.each<[string, object]>([
    ['windowMs', { windowMs: 0 }],
    ['windowMs', { windowMs: -5 }],
    ['windowMs', { windowMs: NaN }],
    ['windowMs', {}],
    ['scheduler', { windowMs: 10, scheduler: {} }],
  ])('rejects bad %s when built: %j', (name, options) => {
    expect(() => performanceWindow(options as never)).toThrow(RangeError);
    expect(() => performanceWindow(options as never)).toThrow(new RegExp(name));
  });

  it('types: infers the snapshot through pipe and requires windowMs', () => {
    expectTypeOf(of(a).pipe(performanceWindow({ windowMs: 1 }))).toEqualTypeOf<Observable<PerformanceSnapshot>>();
    // @ts-expect-error windowMs is required
    expect(() => performanceWindow({ scheduler: undefined as unknown as SchedulerLike })).toThrow(/windowMs/);
    // @ts-expect-error takes execution records only
    of(1).pipe(performanceWindow({ windowMs: 1 }));
  });

  it('property: every snapshot equals the naive recomputation over all records seen', () => {
    const step = fc.record({
      dt: fc.integer({ min: 0, max: 20 }),
      ok: fc.boolean(),
      latencyMs: fc.integer({ min: 0, max: 2000 }),
      messages: fc.integer({ min: 0, max: 30 }),
      atOffset: fc.option(fc.integer({ min: -40, max: 10 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.array(step, { maxLength: 80 }), (windowMs, steps) => {
        const scheduler = new VirtualScheduler();
        const records = new Subject<ExecutionRecord>();
        const seen: PerformanceSnapshot[] = [];
        const sub = records.pipe(performanceWindow({ windowMs, scheduler })).subscribe(s => seen.push(s));
        const log: { t: number; r: ExecutionRecord }[] = [];
        for (const { dt, ok, latencyMs, messages, atOffset } of steps) {
          scheduler.advanceBy(dt);
          const now = scheduler.now();
          const r = rec(ok, latencyMs, messages, atOffset === undefined ? undefined : now + atOffset);
          log.push({ t: r.at ?? now, r });
          records.next(r);
          expect(seen.at(-1)).toEqual(naive(log, windowMs, now, 0));
        }
        expect(seen).toHaveLength(steps.length);
        sub.unsubscribe();
      }),
      { numRuns: 200 },
    );
  });
});
