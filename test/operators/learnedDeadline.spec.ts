import { marbles } from 'rxjs-marbles/jest';
import { Subject, map, throwError } from 'rxjs';
import type { SchedulerLike } from 'rxjs';
import { deadlineOf, learnedDeadline, type AttemptSignal, type LearnedDeadlineOptions, type SilenceVerdict } from '../../operators/learnedDeadline.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

// Attempts x and y in group g, z in group h.
const signals: Record<string, AttemptSignal> = {
  x: { type: 'start', key: 'x', group: 'g' },
  y: { type: 'start', key: 'y', group: 'g' },
  z: { type: 'start', key: 'z', group: 'h' },
  p: { type: 'progress', key: 'x' },
  q: { type: 'progress', key: 'y' },
  e: { type: 'end', key: 'x', ok: true },
  f: { type: 'end', key: 'y', ok: true },
  n: { type: 'end', key: 'x', ok: false },
  c: { type: 'close', group: 'g' },
};
const label = (s: SilenceVerdict): string => (s.type === 'silent' ? `${s.key}:${s.silentMs}/${s.deadlineMs}${s.learned ? 'L' : ''}` : `${s.key} cleared:${s.deadlineMs}`);

describe('deadlineOf', () => {
  const settled = { floorMs: 100, factor: 1.5, percentile: 99, minSamples: 3 };
  it.each<[string, number[], number]>([
    ['the floor with no samples', [], 100],
    ['the floor with fewer than minSamples', [500, 900], 100],
    ['factor × the p99 once there are enough (nearest rank of 3: the largest)', [200, 300, 400], 600],
    ['never below the floor', [10, 20, 30], 100],
    ['rounded up to a whole ms', [1, 1, 101], 152],
    ['p99 of 200 samples is the 198th (one outlier ignored)', [...Array.from({ length: 198 }, (_, i) => i + 1), 5000, 9000], 297],
  ])('%s', (_, samples, expected) => {
    expect(deadlineOf(samples, settled)).toBe(expected);
  });
});

describe('learnedDeadline', () => {
  const op = (scheduler: SchedulerLike, extra: Partial<LearnedDeadlineOptions> = {}) =>
    learnedDeadline({ floorMs: 5, minSamples: 1, factor: 2, scheduler, ...extra });

  describe('timing', () => {
    it(
      'reports an attempt silent for the floor while its group has no samples, once per silence',
      marbles(m => {
        const source = m.hot('   x 19ms p', signals); // silent at 5; again only after the progress at 20: at 25
        const expected = '       -----x 19ms x';
        m.expect(source.pipe(op(m.scheduler), map(label))).toBeObservable(expected, { x: 'x:5/5' });
      }),
    );

    it(
      'learns the deadline from a finished attempt: factor × its longest silence',
      marbles(m => {
        const source = m.hot('   x 3ms e - y', signals); // x silent 4 → deadline 8; y starts at 6
        const expected = '       ------ 8ms y'; //               6 + 8 = 14
        m.expect(source.pipe(op(m.scheduler), map(label))).toBeObservable(expected, { y: 'y:8/8L' });
      }),
    );

    it(
      'samples the longest silence, not the whole duration: an attempt that shows progress teaches a short deadline',
      marbles(m => {
        const source = m.hot('   x-p-p-p-e-y', signals); // x ran 8 ms, never silent more than 2 → deadline max(5, 4)
        const expected = '       ---------- 5ms y'; //        10 + 5 = 15
        m.expect(source.pipe(op(m.scheduler), map(label))).toBeObservable(expected, { y: 'y:5/5L' });
      }),
    );

    it(
      'restarts the deadline on progress',
      marbles(m => {
        const source = m.hot('   x--p--p', signals); // 0, 3, 6 → 11
        const expected = '       ----------- x';
        m.expect(source.pipe(op(m.scheduler), map(label))).toBeObservable(expected, { x: 'x:5/5' });
      }),
    );

    it(
      'judges an attempt by the deadline in force when it comes due: a longer one learned meanwhile spares it',
      marbles(m => {
        const source = m.hot('   x-y-f', signals); // x due at 5 by the floor; y ends at 4 after 2 ms: deadline 3 × 2
        const expected = '       ------x';
        m.expect(source.pipe(op(m.scheduler, { factor: 3 }), map(label))).toBeObservable(expected, { x: 'x:6/6L' });
      }),
    );

    it(
      'clears a reported attempt that a longer deadline learned since puts back within it, and judges it by that deadline',
      marbles(m => {
        const source = m.hot('   x-y 9ms f', signals); // x, y silent at 5 and 7 (floor); y ends at 12, silent 10: deadline 20
        const expected = '       -----x-y----X 7ms Y'; //        x is cleared at 12 (silent 12 < 20), silent again at 20
        m.expect(source.pipe(op(m.scheduler), map(label))).toBeObservable(expected, { x: 'x:5/5', y: 'y:5/5', X: 'x cleared:20', Y: 'x:20/20L' });
      }),
    );

    it(
      'keeps groups apart, each with its own deadline',
      marbles(m => {
        const source = m.hot('   x 3ms e z y', signals); // g learns 4 → 8; h has the floor
        const expected = '       ---------- z 3ms y'; //       z: 5 + 5; y: 6 + 8
        m.expect(source.pipe(op(m.scheduler), map(label))).toBeObservable(expected, { z: 'z:5/5', y: 'y:8/8L' });
      }),
    );

    it(
      'forgets an attempt that ends without a sample (failed), and a closed group',
      marbles(m => {
        const source = m.hot('   x-n-y-c 20ms y', signals); // y restarts the group after close
        const expected = '       -------- 20ms ----y';
        m.expect(source.pipe(op(m.scheduler), map(label))).toBeObservable(expected, { y: 'y:5/5' });
      }),
    );
  });

  describe('the contract cases', () => {
    it('passes a source error through', () => {
      const seen: unknown[] = [];
      throwError(() => new Error('boom'))
        .pipe(learnedDeadline({ floorMs: 5, scheduler: new VirtualScheduler() }))
        .subscribe({ error: (e: unknown) => seen.push(e) });
      expect(seen).toEqual([new Error('boom')]);
    });

    it('releases its timers and state when unsubscribed', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<AttemptSignal>();
      const seen: SilenceVerdict[] = [];
      const sub = source.pipe(learnedDeadline({ floorMs: 5, scheduler })).subscribe(s => seen.push(s));
      source.next(signals.x as AttemptSignal);
      source.next(signals.z as AttemptSignal);
      expect(scheduler.pending).toBe(2);
      sub.unsubscribe();
      expect(scheduler.pending).toBe(0);
      scheduler.advanceBy(100);
      expect(seen).toEqual([]);
    });

    it('reports on time when a report feeds a new attempt back synchronously (re-entrancy: a hedge starts at once)', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<AttemptSignal>();
      const seen: string[] = [];
      source.pipe(learnedDeadline({ floorMs: 10, scheduler })).subscribe(s => {
        seen.push(`${s.at} ${s.key}`);
        if (s.key === 'x') source.next({ type: 'start', key: 'backup', group: 'g' });
      });
      source.next(signals.x as AttemptSignal);
      scheduler.advanceTo(5);
      source.next(signals.y as AttemptSignal);
      scheduler.flush();
      expect(seen).toEqual(['10 x', '15 y', '20 backup']);
    });

    it.each<[Partial<LearnedDeadlineOptions>, string]>([
      [{ floorMs: 0 }, 'floorMs must be a finite number > 0, got 0'],
      [{ floorMs: 5, factor: 0.5 }, 'factor must be a finite number >= 1, got 0.5'],
      [{ floorMs: 5, percentile: 0 }, 'percentile must be a number in [1, 100], got 0'],
      [{ floorMs: 5, minSamples: 0 }, 'minSamples must be an integer >= 1, got 0'],
      [{ floorMs: 5, minSamples: 10, windowSize: 4 }, 'windowSize must be an integer >= 10, got 4'],
    ])('rejects %o when built', (options, message) => {
      expect(() => learnedDeadline(options as LearnedDeadlineOptions)).toThrow(new RangeError(message));
    });
  });

  it('reports at fractional times where now - lastAt falls short of the deadline by a rounding error (it once woke at that instant forever)', () => {
    const scheduler = new VirtualScheduler();
    const source = new Subject<AttemptSignal>();
    const seen: SilenceVerdict[] = [];
    source.pipe(learnedDeadline({ floorMs: 10_000, scheduler })).subscribe(s => seen.push(s));
    scheduler.advanceTo(8586.114935868232);
    source.next({ type: 'start', key: 'k', group: 'g' });
    expect(18586.11493586823 - 8586.114935868232).toBeLessThan(10_000); // the rounding error itself
    scheduler.advanceTo(18586.11493586823);
    expect(seen.map(s => s.key)).toEqual(['k']);
    expect(scheduler.pending).toBe(0);
  });

  it('keeps only the latest windowSize samples: an old long silence stops counting', () => {
    const scheduler = new VirtualScheduler();
    const source = new Subject<AttemptSignal>();
    const seen: SilenceVerdict[] = [];
    source.pipe(learnedDeadline({ floorMs: 5, minSamples: 1, windowSize: 2, factor: 1, scheduler })).subscribe(s => seen.push(s));
    const run = (key: string, ms: number): void => {
      source.next({ type: 'start', key, group: 'g' });
      scheduler.advanceBy(ms);
      source.next({ type: 'end', key, ok: true });
    };
    run('a', 50); // silent at 5 (floor), then finishes: deadline 50
    run('b', 10);
    run('c', 10); // the 50 has left the window: deadline 10
    source.next({ type: 'start', key: 'd', group: 'g' });
    scheduler.advanceBy(10);
    expect(seen.map(s => `${s.key}:${s.deadlineMs}`)).toEqual(['a:5', 'd:10']);
  });
});
