import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, take } from 'rxjs';
import fc from 'fast-check';
import { waitForCycles, type DeadlockEvent, type WaitForEdge } from '../../operators/waitForCycles.js';
import { bruteForceCycles } from './internal/bruteForceCycles.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const wait = (from: string, to: string): WaitForEdge => ({ type: 'wait', from, to });
const release = (from: string, to: string): WaitForEdge => ({ type: 'release', from, to });

const key = (members: readonly string[]): string => members.join(',');

describe('waitForCycles', () => {
  const edges: Record<string, WaitForEdge> = {
    w: wait('a', 'b'),
    W: wait('b', 'a'),
    r: release('a', 'b'),
    R: release('b', 'a'),
    x: wait('b', 'c'),
    y: wait('c', 'a'),
    s: wait('a', 'a'),
    S: release('a', 'a'),
    z: release('c', 'd'),
  };

  describe('timing', () => {
    it('reports a cycle exactly minDurationMs after it formed, and its resolution', marbles(m => {
      const source = m.hot('  -w-W-----------r', edges);
      const expected = '      -------------d-e';
      const op = waitForCycles({ minDurationMs: m.time('----------|'), scheduler: m.scheduler });
      m.expect(source.pipe(op)).toBeObservable(expected, {
        d: { type: 'deadlock', members: ['a', 'b'], since: 3, at: 13 },
        e: { type: 'resolved', members: ['a', 'b'], since: 3, at: 15 },
      });
    }));

    it('a release before the deadline cancels it silently', marbles(m => {
      const source = m.hot('  -w-W---r-------', edges);
      const expected = '      ---------------';
      m.expect(source.pipe(waitForCycles({ minDurationMs: 10, scheduler: m.scheduler }))).toBeObservable(expected);
    }));

    it('a cycle broken and formed again is a new cycle with a new since', marbles(m => {
      const source = m.hot('  -wW--r-w------------R', edges);
      const expected = '      -----------------d--e';
      m.expect(source.pipe(waitForCycles({ minDurationMs: 10, scheduler: m.scheduler }))).toBeObservable(expected, {
        d: { type: 'deadlock', members: ['a', 'b'], since: 7, at: 17 },
        e: { type: 'resolved', members: ['a', 'b'], since: 7, at: 20 },
      });
    }));

    it('times two overlapping cycles on their own', marbles(m => {
      // [a,b] forms at 2 (due 12); [a,b,c] at 6 (due 16). Releasing b→a at 14 breaks only [a,b];
      // releasing a→b at 18 breaks [a,b,c].
      const source = m.hot('  -wW--xy-------R---r', edges);
      const expected = '      ------------d-e-f-g';
      m.expect(source.pipe(waitForCycles({ minDurationMs: 10, scheduler: m.scheduler }))).toBeObservable(expected, {
        d: { type: 'deadlock', members: ['a', 'b'], since: 2, at: 12 },
        e: { type: 'resolved', members: ['a', 'b'], since: 2, at: 14 },
        f: { type: 'deadlock', members: ['a', 'b', 'c'], since: 6, at: 16 },
        g: { type: 'resolved', members: ['a', 'b', 'c'], since: 6, at: 18 },
      });
    }));

    it('ignores a repeated wait (the edge keeps its first time) and a release of an absent edge', marbles(m => {
      const source = m.hot('  -wWz-w', edges);
      const expected = '      ------------d';
      m.expect(source.pipe(waitForCycles({ minDurationMs: 10, scheduler: m.scheduler }))).toBeObservable(expected, {
        d: { type: 'deadlock', members: ['a', 'b'], since: 2, at: 12 },
      });
    }));

    it('a self-wait is a cycle of one; minDurationMs 0 reports at the same instant', marbles(m => {
      const source = m.hot('  -s--S', edges);
      const expected = '      -d--e';
      m.expect(source.pipe(waitForCycles({ minDurationMs: 0, scheduler: m.scheduler }))).toBeObservable(expected, {
        d: { type: 'deadlock', members: ['a'], since: 1, at: 1 },
        e: { type: 'resolved', members: ['a'], since: 1, at: 4 },
      });
    }));

    it('completion passes through at once, dropping pending deadlines', marbles(m => {
      const source = m.cold('  -wW--|', edges);
      m.expect(source.pipe(waitForCycles({ minDurationMs: 10, scheduler: m.scheduler }))).toBeObservable('-----|');
    }));

    it('keeps one scheduled action, re-armed to the earliest deadline', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<WaitForEdge>();
      const got: DeadlockEvent[] = [];
      source.pipe(waitForCycles({ minDurationMs: 100, scheduler })).subscribe(e => got.push(e));
      for (let i = 0; i < 20; i++) {
        source.next(wait(`p${i}`, `q${i}`));
        source.next(wait(`q${i}`, `p${i}`));
        scheduler.advanceBy(1);
      }
      expect(scheduler.pending).toBe(1);
      source.next(release('q0', 'p0')); // the earliest goes: the timer moves to the next one
      expect(scheduler.pending).toBe(1);
      scheduler.advanceTo(101);
      expect(got.map(e => [e.type, key(e.members), e.at])).toEqual([['deadlock', 'p1,q1', 101]]);
      scheduler.flush();
      expect(got).toHaveLength(19);
      expect(scheduler.pending).toBe(0);
    });

    it('lets a subscriber release edges re-entrantly from a deadlock', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<WaitForEdge>();
      const got: string[] = [];
      source.pipe(waitForCycles({ minDurationMs: 10, scheduler })).subscribe(e => {
        got.push(`${e.type} ${key(e.members)} @${e.at}`);
        // Break the chain as the engine would: the last member stops waiting for the first.
        if (e.type === 'deadlock') source.next(release(e.members[e.members.length - 1] as string, e.members[0] as string));
      });
      source.next(wait('a', 'b'));
      source.next(wait('b', 'c'));
      source.next(wait('c', 'a'));
      source.next(wait('b', 'a'));
      scheduler.flush();
      expect(got).toEqual(['deadlock a,b,c @10', 'resolved a,b,c @10', 'deadlock a,b @10', 'resolved a,b @10']);
      expect(scheduler.pending).toBe(0);
    });
  });

  describe('contract', () => {
    it('passes a source error through', marbles(m => {
      const source = m.cold('  -wW-#', edges, new Error('boom'));
      m.expect(source.pipe(waitForCycles({ minDurationMs: 10, scheduler: m.scheduler }))).toBeObservable('----#', {}, new Error('boom'));
    }));

    it('releases its timer and graph on unsubscribe', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<WaitForEdge>();
      const got: DeadlockEvent[] = [];
      const sub = source.pipe(waitForCycles({ minDurationMs: 10, scheduler })).subscribe(e => got.push(e));
      source.next(wait('a', 'b'));
      source.next(wait('b', 'a'));
      expect(scheduler.pending).toBe(1);
      sub.unsubscribe();
      expect(scheduler.pending).toBe(0);
      expect(source.observed).toBe(false);
      scheduler.flush();
      expect(got).toEqual([]);
    });

    it('stops a synchronous source when unsubscribed', () => {
      const scheduler = new VirtualScheduler();
      let produced = 0;
      // A cycle, then (once it is reported) a synchronous burst that breaks and re-forms it.
      const source = new Observable<WaitForEdge>(subscriber => {
        subscriber.next(wait('a', 'b'));
        subscriber.next(wait('b', 'a'));
        scheduler.schedule(() => {
          for (let i = 0; i < 1_000_000 && !subscriber.closed; i++) {
            produced++;
            subscriber.next(i % 2 === 0 ? release('b', 'a') : wait('b', 'a'));
          }
        }, 20);
      });
      const got: DeadlockEvent[] = [];
      source.pipe(waitForCycles({ minDurationMs: 10, scheduler }), take(2)).subscribe(e => got.push(e));
      scheduler.flush();
      expect(got.map(e => e.type)).toEqual(['deadlock', 'resolved']);
      expect(produced).toBe(1);
      expect(scheduler.pending).toBe(0);
    });

    it('errors with a RangeError naming maxCycles when the graph holds too many cycles', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<WaitForEdge>();
      let error: unknown;
      source.pipe(waitForCycles({ minDurationMs: 10, maxCycles: 2, scheduler })).subscribe({ error: e => (error = e) });
      source.next(wait('a', 'b'));
      source.next(wait('b', 'a'));
      source.next(wait('a', 'a'));
      expect(error).toBeUndefined();
      source.next(wait('b', 'b'));
      expect(error).toBeInstanceOf(RangeError);
      expect(String(error)).toMatch(/maxCycles/);
      expect(scheduler.pending).toBe(0);
      expect(source.observed).toBe(false);
    });

    it.each([
      [{ minDurationMs: -1 }, /minDurationMs/],
      [{ minDurationMs: Number.NaN }, /minDurationMs/],
      [{ maxCycles: 0 }, /maxCycles/],
      [{ maxCycles: 1.5 }, /maxCycles/],
      [{ scheduler: 5 as never }, /scheduler/],
    ])('rejects bad options %o when built', (options, message) => {
      expect(() => waitForCycles(options)).toThrow(RangeError);
      expect(() => waitForCycles(options)).toThrow(message);
    });

    it('infers its types through pipe', () => {
      const out = new Subject<WaitForEdge>().pipe(waitForCycles());
      expectTypeOf(out).toEqualTypeOf<Observable<DeadlockEvent>>();
      // @ts-expect-error only wait and release
      new Subject<WaitForEdge>().next({ type: 'hold', from: 'a', to: 'b' });
    });
  });

  describe('properties', () => {
    interface Step {
      readonly dt: number;
      readonly edge: WaitForEdge;
    }
    const node = fc.constantFrom('a', 'b', 'c', 'd', 'e');
    const step: fc.Arbitrary<Step> = fc.record({
      dt: fc.integer({ min: 0, max: 8 }),
      edge: fc.record({ type: fc.constantFrom<'wait' | 'release'>('wait', 'wait', 'release'), from: node, to: node }),
    });

    it('reports exactly the cycles that persisted minDurationMs, at since + minDurationMs (vs brute force)', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 12 }), fc.array(step, { maxLength: 80, size: 'max' }), (whole, steps) => {
          // A half-integer duration never ties with the integer input times: the model is exact.
          const minDurationMs = whole + 0.5;
          const scheduler = new VirtualScheduler();
          const source = new Subject<WaitForEdge>();
          const actual: string[] = [];
          source.pipe(waitForCycles({ minDurationMs, scheduler })).subscribe(e =>
            actual.push(`${e.at} ${e.type} ${key(e.members)} since ${e.since}`),
          );

          // The model: the graph's simple cycles after every input, by brute force.
          const expected: string[] = [];
          const present = new Set<string>();
          let open = new Map<string, number>(); // cycle → since
          let t = 0;
          for (const { dt, edge } of steps) {
            t += dt;
            scheduler.advanceTo(t);
            source.next(edge);
            const e = `${edge.from}>${edge.to}`;
            if (edge.type === 'wait') present.add(e);
            else present.delete(e);
            const now = bruteForceCycles(present);
            const next = new Map<string, number>();
            for (const c of now) next.set(c, open.get(c) ?? t);
            for (const [c, since] of open) {
              if (now.has(c)) continue;
              // Ended at t: reported if it lasted minDurationMs (a tie is impossible), then resolved.
              if (t - since > minDurationMs) {
                expected.push(`${since + minDurationMs} deadlock ${c} since ${since}`);
                expected.push(`${t} resolved ${c} since ${since}`);
              }
            }
            open = next;
          }
          scheduler.flush();
          for (const [c, since] of open) expected.push(`${since + minDurationMs} deadlock ${c} since ${since}`);

          const at = (s: string): number => Number(s.split(' ')[0]);
          // Emitted in time order…
          expect(actual.map(at)).toEqual([...actual.map(at)].sort((x, y) => x - y));
          // …sound (nothing reported that was not a cycle over its whole span) and complete.
          expect([...actual].sort()).toEqual([...expected].sort());
        }),
        { numRuns: 200 },
      );
    });
  });
});
