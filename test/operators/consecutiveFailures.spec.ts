import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, take } from 'rxjs';
import fc from 'fast-check';
import {
  consecutiveFailures,
  type DeliveryInput,
  type LinkFailureEvent,
} from '../../operators/consecutiveFailures.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const ab = 'a->b';
const inputs: Record<string, DeliveryInput> = {
  x: { link: ab, ok: false },
  o: { link: ab, ok: true },
  y: { link: 'b->c', ok: false },
  p: { link: 'b->c', ok: true },
  c: { link: ab, closed: true },
};

describe('consecutiveFailures', () => {
  describe('timing', () => {
    it('is failing at the limit-th consecutive failure, once, and recovered at the next success', marbles(m => {
      const source = m.cold('  -x-x-x-x-o-x-o-|', inputs);
      const expected = '       -----f---r-----|';
      m.expect(source.pipe(consecutiveFailures({ limit: 3, scheduler: m.scheduler }))).toBeObservable(expected, {
        f: { type: 'failing', link: ab, at: 5, failures: 3 },
        r: { type: 'recovered', link: ab, at: 9, failures: 4 },
      });
    }));

    it('a success before the limit resets the run silently', marbles(m => {
      const source = m.cold('  -x-x-o-x-x-x-|', inputs);
      const expected = '       -----------f-|';
      m.expect(source.pipe(consecutiveFailures({ limit: 3, scheduler: m.scheduler }))).toBeObservable(expected, {
        f: { type: 'failing', link: ab, at: m.time('-----------|'), failures: 3 },
      });
    }));

    it('counts each link on its own', marbles(m => {
      const source = m.cold('  -xyxp-y-o-|', inputs);
      const expected = '       ---a----b-|';
      m.expect(source.pipe(consecutiveFailures({ limit: 2, scheduler: m.scheduler }))).toBeObservable(expected, {
        a: { type: 'failing', link: ab, at: 3, failures: 2 },
        b: { type: 'recovered', link: ab, at: 8, failures: 2 },
      });
    }));

    it('limit 1: every failure after a success is a new episode', marbles(m => {
      const source = m.cold('  -xxo-x-|', inputs);
      const expected = '       -f-r-g-|';
      m.expect(source.pipe(consecutiveFailures({ limit: 1, scheduler: m.scheduler }))).toBeObservable(expected, {
        f: { type: 'failing', link: ab, at: 1, failures: 1 },
        r: { type: 'recovered', link: ab, at: 3, failures: 2 },
        g: { type: 'failing', link: ab, at: 5, failures: 1 },
      });
    }));

    it('a closed link is forgotten: no recovered, the count starts again', marbles(m => {
      const source = m.cold('  -xxc-o-xx-|', inputs);
      const expected = '       --f-----g-|';
      m.expect(source.pipe(consecutiveFailures({ limit: 2, scheduler: m.scheduler }))).toBeObservable(expected, {
        f: { type: 'failing', link: ab, at: 2, failures: 2 },
        g: { type: 'failing', link: ab, at: 8, failures: 2 },
      });
    }));
  });

  describe('contract', () => {
    it('passes a source error through', marbles(m => {
      const source = m.cold('  -x-#', inputs, new Error('boom'));
      m.expect(source.pipe(consecutiveFailures({ scheduler: m.scheduler }))).toBeObservable('---#', {}, new Error('boom'));
    }));

    it('keeps state per subscription and releases it on unsubscribe', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<DeliveryInput>();
      const op = consecutiveFailures({ limit: 2, scheduler });
      const first: LinkFailureEvent[] = [];
      const sub = source.pipe(op).subscribe(e => first.push(e));
      source.next({ link: ab, ok: false });
      sub.unsubscribe();
      expect(source.observed).toBe(false);
      expect(scheduler.pending).toBe(0);
      const second: LinkFailureEvent[] = [];
      source.pipe(op).subscribe(e => second.push(e));
      source.next({ link: ab, ok: false });
      expect(first).toEqual([]);
      expect(second).toEqual([]); // the first subscription's failure did not carry over
      source.next({ link: ab, ok: false });
      expect(second).toEqual([{ type: 'failing', link: ab, at: 0, failures: 2 }]);
    });

    it('stops a synchronous source when unsubscribed', () => {
      let produced = 0;
      const endless = new Observable<DeliveryInput>(subscriber => {
        for (let i = 0; i < 1_000_000 && !subscriber.closed; i++) {
          produced++;
          subscriber.next({ link: ab, ok: false });
        }
      });
      const got: LinkFailureEvent[] = [];
      endless.pipe(consecutiveFailures({ limit: 3, scheduler: new VirtualScheduler() }), take(1)).subscribe(e => got.push(e));
      expect(got).toHaveLength(1);
      expect(produced).toBe(3);
    });

    it.each([
      [{ limit: 0 }, /limit/],
      [{ limit: 2.5 }, /limit/],
      [{ limit: Number.NaN }, /limit/],
      [{ scheduler: {} as never }, /scheduler/],
    ])('rejects bad options %o when built', (options, message) => {
      expect(() => consecutiveFailures(options)).toThrow(RangeError);
      expect(() => consecutiveFailures(options)).toThrow(message);
    });

    it('infers its types through pipe', () => {
      const out = new Subject<DeliveryInput>().pipe(consecutiveFailures());
      expectTypeOf(out).toEqualTypeOf<Observable<LinkFailureEvent>>();
      // @ts-expect-error limit is a number
      expect(() => consecutiveFailures({ limit: '5' })).toThrow(/limit/);
    });
  });

  describe('properties', () => {
    it('matches a plain counter model', () => {
      const outcome = fc.record({ link: fc.constantFrom('a->b', 'b->a', 'c->a'), ok: fc.boolean() });
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 5 }), fc.array(outcome, { maxLength: 200, size: 'max' }), (limit, outcomes) => {
          const expected: Omit<LinkFailureEvent, 'at'>[] = [];
          const count = new Map<string, number>();
          for (const { link, ok } of outcomes) {
            const n = count.get(link) ?? 0;
            if (ok) {
              if (n >= limit) expected.push({ type: 'recovered', link, failures: n });
              count.set(link, 0);
            } else {
              count.set(link, n + 1);
              if (n + 1 === limit) expected.push({ type: 'failing', link, failures: limit });
            }
          }
          const actual: Omit<LinkFailureEvent, 'at'>[] = [];
          const source = new Subject<DeliveryInput>();
          source.pipe(consecutiveFailures({ limit, scheduler: new VirtualScheduler() })).subscribe(({ at: _at, ...e }) => actual.push(e));
          for (const o of outcomes) source.next(o);
          expect(actual).toEqual(expected);
        }),
        { numRuns: 200 },
      );
    });
  });
});
