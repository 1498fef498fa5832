import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, take } from 'rxjs';
import fc from 'fast-check';
import { degradation, type DegradationEvent, type LatencyInput } from '../../operators/degradation.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** Marble values: a digit d is agent "a" answering in d ms; other letters as listed. */
const latency: Record<string, LatencyInput> = {
  ...Object.fromEntries([...'0123456789'].map(d => [d, { agentId: 'a', latencyMs: Number(d) }])),
  b: { agentId: 'b', latencyMs: 9 },
  n: { agentId: 'a', latencyMs: Number.NaN },
  x: { agentId: 'a', latencyMs: -3 },
  L: { agentId: 'a', left: true },
};

describe('degradation', () => {
  const opts = { baselineSamples: 2, windowSize: 2, baselineAlpha: 0 };

  describe('timing', () => {
    it('degraded when recent reaches factor × baseline, recovered below recoveryFactor × baseline', marbles(m => {
      const source = m.cold('  -1-1-1-1-5-5-5-1-1-1-|', latency);
      const expected = '       ---------d-------r---|';
      m.expect(source.pipe(degradation({ ...opts, scheduler: m.scheduler }))).toBeObservable(expected, {
        d: { type: 'degraded', agentId: 'a', at: 9, latencyMs: 3, baselineMs: 1, ratio: 3 },
        r: { type: 'recovered', agentId: 'a', at: 17, latencyMs: 1, baselineMs: 1, ratio: 1 },
      });
    }));

    it('judges each agent against its own baseline', marbles(m => {
      const source = m.cold('  -2b2b4b4b-|', latency); // a: 2 → 4 ms, degraded; b: steady at 9 ms
      const expected = '       -------d--|';
      m.expect(source.pipe(degradation({ ...opts, scheduler: m.scheduler }))).toBeObservable(expected, {
        d: { type: 'degraded', agentId: 'a', at: 7, latencyMs: 4, baselineMs: 2, ratio: 2 },
      });
    }));

    it('skips non-finite and negative latencies', marbles(m => {
      const source = m.cold('  -11nx9x9-|', latency);
      const expected = '       -----d---|';
      m.expect(source.pipe(degradation({ ...opts, scheduler: m.scheduler }))).toBeObservable(expected, {
        d: { type: 'degraded', agentId: 'a', at: 5, latencyMs: 5, baselineMs: 1, ratio: 5 },
      });
    }));

    it('an agent that leaves is forgotten silently and warms up again', marbles(m => {
      const source = m.cold('  -119L1199-|', latency);
      const expected = '       ---d---e--|';
      const d = (at: number): DegradationEvent => ({ type: 'degraded', agentId: 'a', at, latencyMs: 5, baselineMs: 1, ratio: 5 });
      m.expect(source.pipe(degradation({ ...opts, scheduler: m.scheduler }))).toBeObservable(expected, { d: d(3), e: d(7) });
    }));
  });

  describe('contract', () => {
    it('passes a source error through', marbles(m => {
      const source = m.cold('  -1-#', latency, new Error('boom'));
      m.expect(source.pipe(degradation({ scheduler: m.scheduler }))).toBeObservable('---#', {}, new Error('boom'));
    }));

    it('keeps state per subscription and releases it on unsubscribe', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<LatencyInput>();
      const op = degradation({ ...opts, scheduler });
      const sub = source.pipe(op).subscribe();
      source.next({ agentId: 'a', latencyMs: 1 });
      source.next({ agentId: 'a', latencyMs: 1 });
      sub.unsubscribe();
      expect(source.observed).toBe(false);
      expect(scheduler.pending).toBe(0);
      const got: DegradationEvent[] = [];
      source.pipe(op).subscribe(e => got.push(e));
      source.next({ agentId: 'a', latencyMs: 9 });
      source.next({ agentId: 'a', latencyMs: 9 });
      expect(got).toEqual([]); // a fresh warm-up: the old baseline of 1 ms is gone
    });

    it('stops a synchronous source when unsubscribed', () => {
      let produced = 0;
      const endless = new Observable<LatencyInput>(subscriber => {
        for (let i = 0; i < 1_000_000 && !subscriber.closed; i++) {
          produced++;
          subscriber.next({ agentId: 'a', latencyMs: i < 2 ? 1 : 100 });
        }
      });
      endless.pipe(degradation({ ...opts, scheduler: new VirtualScheduler() }), take(1)).subscribe();
      expect(produced).toBe(3);
    });

    it.each([
      [{ factor: 1 }, /factor/],
      [{ factor: Number.POSITIVE_INFINITY }, /factor/],
      [{ recoveryFactor: 0 }, /recoveryFactor/],
      [{ factor: 2, recoveryFactor: 2.5 }, /recoveryFactor/],
      [{ baselineSamples: 0 }, /baselineSamples/],
      [{ windowSize: 1.5 }, /windowSize/],
      [{ baselineAlpha: 1.1 }, /baselineAlpha/],
      [{ minBaselineMs: 0 }, /minBaselineMs/],
      [{ scheduler: { now: () => 0 } as never }, /scheduler/],
    ])('rejects bad options %o when built', (options, message) => {
      expect(() => degradation(options)).toThrow(RangeError);
      expect(() => degradation(options)).toThrow(message);
    });

    it('infers its types through pipe', () => {
      const out = new Subject<LatencyInput>().pipe(degradation());
      expectTypeOf(out).toEqualTypeOf<Observable<DegradationEvent>>();
      // @ts-expect-error factor is a number
      expect(() => degradation({ factor: '2' })).toThrow(/factor/);
    });
  });

  describe('properties', () => {
    const options = fc.record({
      factor: fc.double({ min: 1.55, max: 4, noNaN: true }),
      baselineSamples: fc.integer({ min: 1, max: 20 }),
      windowSize: fc.integer({ min: 1, max: 20 }),
      baselineAlpha: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    const around = (c: number, spread: number) =>
      fc.double({ min: -spread, max: spread, noNaN: true }).map(u => c * (1 + u));

    function run(opt: object, samples: number[]): DegradationEvent[] {
      const got: DegradationEvent[] = [];
      const source = new Subject<LatencyInput>();
      source.pipe(degradation({ ...opt, scheduler: new VirtualScheduler() })).subscribe(e => got.push(e));
      for (const latencyMs of samples) source.next({ agentId: 'a', latencyMs });
      return got;
    }

    it('never reports a stable agent (latencies within ±20% of a constant) degraded', () => {
      fc.assert(
        fc.property(
          options,
          fc.double({ min: 0, max: 1e6, noNaN: true }).chain(c => fc.array(around(c, 0.2), { maxLength: 300, size: 'max' })),
          (opt, samples) => {
            expect(run(opt, samples)).toEqual([]);
          },
        ),
        { numRuns: 150 },
      );
    });

    it('reports a step to 3.5× once within windowSize samples, and its end once within windowSize', () => {
      const stable = (c: number, n: number, spread: number) =>
        fc.array(around(c, spread), { minLength: n, maxLength: n + 30, size: 'max' });
      const scenario = fc
        .record({
          baselineSamples: fc.integer({ min: 1, max: 20 }),
          windowSize: fc.integer({ min: 1, max: 20 }),
          baselineAlpha: fc.double({ min: 0, max: 1, noNaN: true }),
          c: fc.double({ min: 2, max: 1e4, noNaN: true }),
        })
        .chain(({ c, ...opt }) =>
          fc.tuple(
            fc.constant(opt),
            stable(c, opt.baselineSamples, 0.2), // warm-up and more
            stable(3.5 * c, opt.windowSize, 0.2), // slow: ≥ 2.8c ≥ 2 × any baseline ≤ 1.2c
            stable(c, opt.windowSize, 0.1), // back: ≤ 1.1c < 1.5 × any baseline ≥ 0.8c
          ),
        );
      fc.assert(
        fc.property(scenario, ([opt, before, slow, after]) => {
          const events = run(opt, [...before, ...slow, ...after]);
          expect(events.map(e => e.type)).toEqual(['degraded', 'recovered']);
          const [d, r] = events as [DegradationEvent, DegradationEvent];
          expect(d.latencyMs).toBeGreaterThanOrEqual(2 * d.baselineMs);
          expect(r.latencyMs).toBeLessThan(1.5 * r.baselineMs);
          // Within windowSize samples of each step (virtual time stands still here, so cut the input).
          expect(run(opt, [...before, ...slow.slice(0, opt.windowSize)]).map(e => e.type)).toEqual(['degraded']);
          const cut = [...before, ...slow, ...after.slice(0, opt.windowSize)];
          expect(run(opt, cut).map(e => e.type)).toEqual(['degraded', 'recovered']);
        }),
        { numRuns: 150 },
      );
    });
  });
});

describe('degradation relative to peers', () => {
  const opts = { baselineSamples: 2, windowSize: 2, baselineAlpha: 0, relativeTo: 'peers' } as const;
  /** One round: every agent answers once, in `ms[agent]` ms. */
  const rounds = (...perRound: Array<Record<string, number>>): LatencyInput[] => perRound.flatMap(r => Object.entries(r).map(([agentId, latencyMs]) => ({ agentId, latencyMs })));
  const run = (inputs: LatencyInput[], options: Parameters<typeof degradation>[0] = opts): DegradationEvent[] => {
    const out: DegradationEvent[] = [];
    const source = new Subject<LatencyInput>();
    source.pipe(degradation({ ...options, scheduler: new VirtualScheduler() })).subscribe(e => out.push(e));
    for (const input of inputs) source.next(input);
    return out;
  };
  const steady = { a: 10, b: 10, c: 10, d: 10 };
  const all4x = { a: 40, b: 40, c: 40, d: 40 };

  it('a slowdown shared by every agent (saturation) is no one\'s fault; judged by their own baselines alone it would be everyone\'s', () => {
    const inputs = rounds(steady, steady, steady, all4x, all4x, all4x, steady, steady);
    expect(run(inputs)).toEqual([]);
    expect(run(inputs, { ...opts, relativeTo: 'self' }).filter(e => e.type === 'degraded').map(e => e.agentId)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('one agent ×4 slower than its peers is degraded against their median, and recovers when back', () => {
    const slowA = { ...steady, a: 40 };
    const events = run(rounds(steady, steady, steady, slowA, slowA, slowA, steady, steady, steady));
    expect(events.map(e => [e.type, e.agentId, e.baselineMs])).toEqual([
      ['degraded', 'a', 10],
      ['recovered', 'a', 10],
    ]);
    expect(events[0]).toMatchObject({ latencyMs: 40, ratio: 4 }); // a second slow sample running: its window is all slow
  });

  it('is caught once the others speed up again when all slowed but one stays slow', () => {
    const slowA = { ...steady, a: 40 };
    const types = run(rounds(steady, steady, all4x, all4x, slowA, slowA, slowA, slowA)).map(e => `${e.type}:${e.agentId}`);
    expect(types).toEqual(['degraded:a']);
  });

  it('with fewer than minPeers warmed-up peers, its own baseline decides', () => {
    expect(run(rounds({ a: 10, b: 10 }, { a: 10, b: 10 }, { a: 40, b: 40 }, { a: 40, b: 40 })).map(e => e.agentId)).toEqual(['a', 'b']);
    expect(run(rounds({ a: 10, b: 10 }, { a: 10, b: 10 }, { a: 40, b: 40 }, { a: 40, b: 40 }), { ...opts, minPeers: 1 })).toEqual([]);
  });

  it('rejects bad options with a RangeError naming them', () => {
    expect(() => degradation({ relativeTo: 'others' as never })).toThrow(/relativeTo must be 'self' or 'peers'/);
    expect(() => degradation({ relativeTo: 'peers', minPeers: 0 })).toThrow(/minPeers/);
  });

  it('the median of the peers is the sorted middle, whatever their order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 3, maxLength: 40 }), fc.integer({ min: 1, max: 8 }), (levels, factor) => {
        // Every peer warm at its level, then agent "x" at factor × the median: degraded iff factor ≥ 2.
        const warm = levels.flatMap((ms, i) => [{ agentId: `p${i}`, latencyMs: ms }, { agentId: `p${i}`, latencyMs: ms }]);
        const sorted = [...levels].sort((p, q) => p - q);
        const median = sorted[sorted.length >> 1] as number;
        const x = [1, 1, factor * median, factor * median, factor * median].map(latencyMs => ({ agentId: 'x', latencyMs }));
        const events = run([...warm, ...x], { ...opts, minBaselineMs: 1 });
        return (events.some(e => e.agentId === 'x' && e.type === 'degraded')) === (factor >= 2 && factor * median >= 2);
      }),
      { numRuns: 300 },
    );
  });
});
