import fc from 'fast-check';
import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, map, take } from 'rxjs';
import { phiAccrual, type PhiAccrualOptions } from '../../operators/phiAccrual.js';
import { PhiAccrualDetector } from '../../operators/phiAccrualDetector.js';
import type { Heartbeat, Liveness } from '../../operators/liveness.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

// Small numbers so diagrams stay short: after beats at 0, 10, 20 the reference detector reaches
// phi 3 at 35 (checked against PhiAccrualDetector below); after a lone beat at 0, at 17.
const fast = { firstHeartbeatEstimateMs: 10, minStdDeviationMs: 1, acceptableHeartbeatPauseMs: 0, threshold: 3 };
const beat = (agentId: string, status?: 'leaving'): Heartbeat => (status ? { agentId, status } : { agentId });
const beats = { a: beat('a'), b: beat('b'), l: beat('a', 'leaving') };
const label = (e: Liveness): string => `${e.type}:${e.agentId}`;
const events = { A: 'alive:a', S: 'suspected:a', L: 'left:a', B: 'alive:b', T: 'suspected:b' };

describe('phiAccrual', () => {
  it('uses the reference instants of the diagrams below', () => {
    const fd = new PhiAccrualDetector(fast);
    fd.heartbeat(0);
    expect(fd.suspicionAt()).toBe(17);
    fd.heartbeat(10);
    fd.heartbeat(20);
    expect(fd.suspicionAt()).toBe(35);
  });

  it('suspects a silent agent at suspicionAt() and welcomes it back', marbles(m => {
    const source = m.hot('    a 9ms a 9ms a 19ms a', beats);
    const expected = '        A 34ms S 4ms A 14ms S';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
  }));

  it('treats a beat landing exactly on the deadline as coming after it', marbles(m => {
    const source = m.hot('    a 9ms a 9ms a 14ms a', beats);
    const expected = '        A 34ms (SA) 11ms S';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
  }));

  it('suspects once per outage, however long', marbles(m => {
    const source = m.hot('    a 99ms a', beats);
    const expected = '        A 16ms S 82ms A 16ms S';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
  }));

  it('keeps agents apart', marbles(m => {
    const source = m.hot('    a 4ms b 4ms a 4ms b 4ms a 4ms b', beats);
    const ref = (times: number[]): number => {
      const fd = new PhiAccrualDetector(fast);
      for (const t of times) fd.heartbeat(t);
      return fd.suspicionAt()!;
    };
    const sa = ref([0, 10, 20]);
    const sb = ref([5, 15, 25]);
    expect([sa, sb]).toEqual([35, 40]);
    const expected = '        A 4ms B 29ms S 4ms T';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
  }));

  it('suspects agents due in the same ms in the order of their beats (first come, first served)', marbles(m => {
    // Same history, so the same deadline (35, as for a alone above); the wake-ups are served in
    // the order the agents were filed, which is the order of their beats.
    const ab = m.hot('    (ab) 6ms (ab) 6ms (ab)', beats);
    m.expect(ab.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable('(AB) 31ms (ST)', events);
    const ba = m.hot('    (ba) 6ms (ba) 6ms (ba)', beats);
    m.expect(ba.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable('(BA) 31ms (TS)', events);
  }));

  it('forgets an agent that leaves: it is not suspected, and comes back as new', marbles(m => {
    const source = m.hot('    a 9ms l 99ms a', beats);
    const expected = '        A 9ms L 99ms A 16ms S';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
  }));

  it('ignores a leaving beat from an unknown agent', marbles(m => {
    const source = m.hot('    l 9ms a', beats);
    const expected = '        10ms A 16ms S';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
  }));

  it('keeps any string apart as an agent id, property names and indices included', () => {
    const scheduler = new VirtualScheduler();
    const ids = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', '0', '00', '4294967295', '', '-1', '1.5'];
    const beats$ = new Subject<Heartbeat>();
    const seen: string[] = [];
    beats$.pipe(phiAccrual({ ...fast, scheduler })).subscribe(e => seen.push(`${e.type}:${e.agentId}`));
    for (const id of ids) beats$.next(beat(id));
    beats$.next(beat('__proto__', 'leaving'));
    beats$.next(beat('0', 'leaving'));
    scheduler.advanceBy(100);
    expect(seen).toEqual([
      ...ids.map(id => `alive:${id}`),
      'left:__proto__',
      'left:0',
      ...ids.filter(id => id !== '__proto__' && id !== '0').map(id => `suspected:${id}`),
    ]);
  });

  it('passes completion through and stops its timer', marbles(m => {
    const source = m.cold('   a 4ms |', beats);
    const expected = '        A 4ms |';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
  }));

  it('passes a source error through', marbles(m => {
    const source = m.cold('   a 4ms #', beats, new Error('link down'));
    const expected = '        A 4ms #';
    m.expect(source.pipe(phiAccrual({ ...fast, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events, new Error('link down'));
  }));

  it('errors downstream when a subscriber callback throws, and releases its timer', () => {
    const scheduler = new VirtualScheduler();
    const source = new Subject<Heartbeat>();
    const errors: unknown[] = [];
    source.pipe(phiAccrual({ ...fast, scheduler }), map(e => { if (e.type === 'suspected') throw new Error('boom'); return e; }))
      .subscribe({ error: err => errors.push(err) });
    source.next(beat('a'));
    scheduler.advanceTo(100);
    expect(errors).toEqual([new Error('boom')]);
    expect(scheduler.pending).toBe(0);
  });

  it('releases its timer and every agent on unsubscribe', () => {
    const scheduler = new VirtualScheduler();
    const source = new Subject<Heartbeat>();
    const seen: Liveness[] = [];
    const subscription = source.pipe(phiAccrual({ ...fast, scheduler })).subscribe(e => seen.push(e));
    for (let i = 0; i < 100; i++) source.next(beat(`agent-${i}`));
    expect(scheduler.pending).toBe(1); // one timer for all agents
    subscription.unsubscribe();
    expect(scheduler.pending).toBe(0);
    expect(source.observed).toBe(false);
    scheduler.advanceTo(1000);
    expect(seen.filter(e => e.type === 'suspected')).toEqual([]);
  });

  it('stops a synchronous source when unsubscribed', () => {
    let emitted = 0;
    const endless = new Observable<Heartbeat>(o => {
      for (let i = 0; !o.closed && i < 1_000_000; i++) {
        emitted++;
        o.next(beat(`agent-${i}`));
      }
    });
    const seen: Liveness[] = [];
    endless.pipe(phiAccrual({ ...fast, scheduler: new VirtualScheduler() }), take(3)).subscribe(e => seen.push(e));
    expect(seen).toHaveLength(3);
    expect(emitted).toBe(3);
  });

  it.each([
    ['threshold', { threshold: -1 }],
    ['maxSampleSize', { maxSampleSize: 0 }],
    ['minStdDeviationMs', { minStdDeviationMs: -5 }],
    ['acceptableHeartbeatPauseMs', { acceptableHeartbeatPauseMs: Number.NaN }],
    ['firstHeartbeatEstimateMs', { firstHeartbeatEstimateMs: 0 }],
    ['scheduler', { scheduler: {} as never }],
  ])('rejects a bad %s when built', (name, options) => {
    expect(() => phiAccrual(options as PhiAccrualOptions)).toThrow(RangeError);
    expect(() => phiAccrual(options as PhiAccrualOptions)).toThrow(name);
  });

  // A beat within the learned jitter is never late; a jitter the window has not learned (a lone
  // outlier after many even beats) may be, so each agent is judged against the reference detector.
  it('suspects exactly when the reference detector says: no agent that beats within its learned jitter, every silent one at the computed instant', () => {
    const agentPlan = fc.record({
      intervalScale: fc.double({ min: 0.8, max: 1.25, noNaN: true }),
      jitter: fc.double({ min: 0, max: 0.2, noNaN: true }),
      startMs: fc.integer({ min: 0, max: 2000 }),
      beats: fc.integer({ min: 1, max: 40 }),
      silent: fc.boolean(),
      offsets: fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 40, maxLength: 40 }),
    });
    const options = fc.record({
      threshold: fc.double({ min: 4, max: 12, noNaN: true }),
      acceptableHeartbeatPauseMs: fc.integer({ min: 0, max: 3000 }),
      firstHeartbeatEstimateMs: fc.integer({ min: 100, max: 2000 }),
    });
    const horizon = 400_000;
    fc.assert(
      fc.property(fc.array(agentPlan, { minLength: 1, maxLength: 8 }), options, (plans, opts) => {
        const scheduler = new VirtualScheduler();
        const source = new Subject<Heartbeat>();
        const seen: Liveness[] = [];
        const subscription = source.pipe(phiAccrual({ ...opts, scheduler })).subscribe(e => seen.push(e));
        const wanted = new Map<string, Liveness[]>();
        plans.forEach((plan, i) => {
          const id = `agent-${i}`;
          const intervalMs = Math.round(opts.firstHeartbeatEstimateMs * plan.intervalScale);
          const reference = new PhiAccrualDetector(opts);
          const suspicions: Liveness[] = [];
          let t = plan.startMs;
          let due = Infinity;
          for (let k = 0; plan.silent ? k < plan.beats : t < horizon; k++) {
            const at = t;
            reference.heartbeat(at);
            scheduler.schedule(() => source.next(beat(id)), at);
            t += Math.max(1, Math.round(intervalMs * (1 + plan.jitter * plan.offsets[k % 40]!)));
            const last = plan.silent ? k + 1 === plan.beats : t >= horizon;
            // The next beat, if any, is late when it comes at or after the reference's deadline.
            due = reference.suspicionAt()!;
            if (due <= (last ? horizon : t)) suspicions.push({ type: 'suspected', agentId: id, at: due, phi: reference.phi(due) });
          }
          if (plan.silent) expect(due).toBeLessThanOrEqual(horizon); // so a silent agent's suspicion is among those wanted
          wanted.set(id, suspicions);
        });
        scheduler.advanceTo(horizon);
        subscription.unsubscribe();
        for (const [id, want] of wanted) {
          expect(seen.filter(e => e.agentId === id && e.type === 'suspected')).toEqual(want);
        }
        expect(scheduler.pending).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});
