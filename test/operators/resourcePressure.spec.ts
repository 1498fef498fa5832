import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, take } from 'rxjs';
import fc from 'fast-check';
import {
  isExhausted,
  resourcePressure,
  type PressureEvent,
  type UsageInput,
} from '../../operators/resourcePressure.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** Marble values: a digit d is agent "a" at usage d/10 (no resource); m/c are named resources. */
const usage: Record<string, UsageInput> = {
  ...Object.fromEntries([...'0123456789'].map(d => [d, { agentId: 'a', usage: Number(d) / 10 }])),
  M: { agentId: 'a', usage: 0.95, resource: 'memory' },
  m: { agentId: 'a', usage: 0.1, resource: 'memory' },
  C: { agentId: 'a', usage: 1.2, resource: 'cpu' },
  B: { agentId: 'b', usage: 0.9 },
  b: { agentId: 'b', usage: 0.3 },
  n: { agentId: 'a', usage: Number.NaN },
  x: { agentId: 'a', usage: -0.5 },
  i: { agentId: 'a', usage: Number.POSITIVE_INFINITY },
  L: { agentId: 'a', left: true },
};

describe('isExhausted', () => {
  it.each([
    // was, usage, threshold, releaseBelow, is
    [false, 0.89, 0.9, 0.8, false],
    [false, 0.9, 0.9, 0.8, true],
    [false, 1.3, 0.9, 0.8, true],
    [true, 0.85, 0.9, 0.8, true],
    [true, 0.8, 0.9, 0.8, true],
    [true, 0.79, 0.9, 0.8, false],
    [true, 0.89, 0.9, 0.9, false],
    [false, 0, 1, 0, false],
    [true, 0, 1, 0, true],
  ])('was %s, usage %d, threshold %d, releaseBelow %d → %s', (was, u, threshold, releaseBelow, is) => {
    expect(isExhausted(was, u, threshold, releaseBelow)).toBe(is);
  });
});

describe('resourcePressure', () => {
  describe('timing', () => {
    it('exhausted at the threshold, relieved below releaseBelow (default threshold − 0.1), once each', marbles(m => {
      const source = m.cold('  -5-9-9-85-7-|', usage);
      const expected = '       ---e----r---|';
      m.expect(source.pipe(resourcePressure({ scheduler: m.scheduler }))).toBeObservable(expected, {
        e: { type: 'exhausted', agentId: 'a', at: 3, usage: 0.9 },
        r: { type: 'relieved', agentId: 'a', at: 8, usage: 0.5 },
      });
    }));

    it('without hysteresis (releaseBelow = threshold) it follows every crossing', marbles(m => {
      const source = m.cold('  -98989-|', usage);
      const expected = '       -abcde-|';
      const op = resourcePressure({ threshold: 0.9, releaseBelow: 0.9, scheduler: m.scheduler });
      const e = (at: number): PressureEvent => ({ type: 'exhausted', agentId: 'a', at, usage: 0.9 });
      const r = (at: number): PressureEvent => ({ type: 'relieved', agentId: 'a', at, usage: 0.8 });
      m.expect(source.pipe(op)).toBeObservable(expected, { a: e(1), b: r(2), c: e(3), d: r(4), e: e(5) });
    }));

    it('keeps agents and resources apart; the resource is echoed when given', marbles(m => {
      const source = m.cold('  -MC9Bbm9-|', usage);
      const expected = '       -xyzwvt--|';
      m.expect(source.pipe(resourcePressure({ scheduler: m.scheduler }))).toBeObservable(expected, {
        x: { type: 'exhausted', agentId: 'a', resource: 'memory', at: 1, usage: 0.95 },
        y: { type: 'exhausted', agentId: 'a', resource: 'cpu', at: 2, usage: 1.2 },
        z: { type: 'exhausted', agentId: 'a', at: 3, usage: 0.9 },
        w: { type: 'exhausted', agentId: 'b', at: 4, usage: 0.9 },
        v: { type: 'relieved', agentId: 'b', at: 5, usage: 0.3 },
        t: { type: 'relieved', agentId: 'a', resource: 'memory', at: 6, usage: 0.1 },
      });
    }));

    it('skips non-finite and negative readings', marbles(m => {
      const source = m.cold('  -9nxi0-|', usage);
      const expected = '       -e---r-|';
      m.expect(source.pipe(resourcePressure({ scheduler: m.scheduler }))).toBeObservable(expected, {
        e: { type: 'exhausted', agentId: 'a', at: 1, usage: 0.9 },
        r: { type: 'relieved', agentId: 'a', at: 5, usage: 0 },
      });
    }));

    it('an agent that leaves is forgotten silently', marbles(m => {
      const source = m.cold('  -9L0-9-|', usage);
      const expected = '       -e---f-|';
      m.expect(source.pipe(resourcePressure({ scheduler: m.scheduler }))).toBeObservable(expected, {
        e: { type: 'exhausted', agentId: 'a', at: 1, usage: 0.9 },
        f: { type: 'exhausted', agentId: 'a', at: 5, usage: 0.9 },
      });
    }));
  });

  describe('contract', () => {
    it('passes a source error through', marbles(m => {
      const source = m.cold('  -9-#', usage, new Error('boom'));
      m.expect(source.pipe(resourcePressure({ scheduler: m.scheduler }))).toBeObservable('-e-#', {
        e: { type: 'exhausted', agentId: 'a', at: 1, usage: 0.9 },
      }, new Error('boom'));
    }));

    it('keeps state per subscription and releases it on unsubscribe', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<UsageInput>();
      const op = resourcePressure({ scheduler });
      const first: PressureEvent[] = [];
      const sub = source.pipe(op).subscribe(e => first.push(e));
      source.next({ agentId: 'a', usage: 0.95 });
      sub.unsubscribe();
      expect(source.observed).toBe(false);
      expect(scheduler.pending).toBe(0);
      const second: PressureEvent[] = [];
      source.pipe(op).subscribe(e => second.push(e));
      source.next({ agentId: 'a', usage: 0.1 });
      expect(first).toHaveLength(1);
      expect(second).toEqual([]); // no relief for an exhaustion this subscription never saw
    });

    it('stops a synchronous source when unsubscribed', () => {
      let produced = 0;
      const endless = new Observable<UsageInput>(subscriber => {
        for (let i = 0; i < 1_000_000 && !subscriber.closed; i++) {
          produced++;
          subscriber.next({ agentId: 'a', usage: i % 2 === 0 ? 0.95 : 0.1 });
        }
      });
      endless.pipe(resourcePressure({ scheduler: new VirtualScheduler() }), take(3)).subscribe();
      expect(produced).toBe(3);
    });

    it.each([
      [{ threshold: 0 }, /threshold/],
      [{ threshold: 1.5 }, /threshold/],
      [{ threshold: Number.NaN }, /threshold/],
      [{ releaseBelow: -0.1 }, /releaseBelow/],
      [{ threshold: 0.5, releaseBelow: 0.6 }, /releaseBelow/],
      [{ scheduler: null as never }, /scheduler/],
    ])('rejects bad options %o when built', (options, message) => {
      expect(() => resourcePressure(options)).toThrow(RangeError);
      expect(() => resourcePressure(options)).toThrow(message);
    });

    it('defaults releaseBelow to threshold − 0.1, at least 0', () => {
      expect(() => resourcePressure({ threshold: 0.05 })).not.toThrow();
      const got: PressureEvent[] = [];
      const source = new Subject<UsageInput>();
      source.pipe(resourcePressure({ threshold: 0.05, scheduler: new VirtualScheduler() })).subscribe(e => got.push(e));
      source.next({ agentId: 'a', usage: 0.05 });
      source.next({ agentId: 'a', usage: 0 });
      expect(got.map(e => e.type)).toEqual(['exhausted']); // releaseBelow 0: nothing is below it
    });

    it('infers its types through pipe', () => {
      const out = new Subject<UsageInput>().pipe(resourcePressure());
      expectTypeOf(out).toEqualTypeOf<Observable<PressureEvent>>();
      // @ts-expect-error usage is required on a sample
      new Subject<{ agentId: string }>().pipe(resourcePressure());
    });
  });

  describe('properties', () => {
    it('alternates exhausted/relieved per pair and matches the state model', () => {
      const sample = fc.record(
        {
          agentId: fc.constantFrom('a', 'b'),
          usage: fc.oneof(fc.double({ min: 0, max: 1.2, noNaN: true }), fc.constant(Number.NaN), fc.constant(-1)),
          resource: fc.constantFrom('cpu', 'memory'),
        },
        { requiredKeys: ['agentId', 'usage'] },
      );
      fc.assert(
        fc.property(
          fc.double({ min: 0.1, max: 1, noNaN: true }),
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.array(sample, { maxLength: 150, size: 'max' }),
          (threshold, gap, samples) => {
            const releaseBelow = threshold * gap;
            const got: PressureEvent[] = [];
            const source = new Subject<UsageInput>();
            source.pipe(resourcePressure({ threshold, releaseBelow, scheduler: new VirtualScheduler() })).subscribe(e => got.push(e));
            const state = new Map<string, boolean>();
            const expected: string[] = [];
            for (const s of samples) {
              source.next(s);
              if (!Number.isFinite(s.usage) || s.usage < 0) continue;
              const key = `${s.agentId}/${s.resource}`;
              const was = state.get(key) ?? false;
              const is = was ? s.usage >= releaseBelow : s.usage >= threshold;
              state.set(key, is);
              if (is !== was) expected.push(`${is ? 'exhausted' : 'relieved'} ${key} ${s.usage}`);
            }
            expect(got.map(e => `${e.type} ${e.agentId}/${e.resource} ${e.usage}`)).toEqual(expected);
          },
        ),
        { numRuns: 200 },
      );
    });
  });
});
