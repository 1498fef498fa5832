import fc from 'fast-check';
import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, map, take, type SchedulerLike } from 'rxjs';
import { heartbeatDeadline, type HeartbeatDeadlineOptions } from '../../operators/heartbeatDeadline.js';
import type { Heartbeat, Liveness } from '../../operators/liveness.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const beat = (agentId: string, status?: 'leaving'): Heartbeat => (status ? { agentId, status } : { agentId });
const beats = { a: beat('a'), b: beat('b'), c: beat('c'), l: beat('a', 'leaving'), m: beat('b', 'leaving') };
const label = (e: Liveness): string => `${e.type}:${e.agentId}`;
const events = {
  A: 'alive:a',
  S: 'suspected:a',
  L: 'left:a',
  B: 'alive:b',
  T: 'suspected:b',
  M: 'left:b',
  C: 'alive:c',
  U: 'suspected:c',
};

/** Subscribes to `heartbeatDeadline` fed by a Subject on a VirtualScheduler, recording every event. */
function harness(timeoutMs: number) {
  const scheduler = new VirtualScheduler();
  const source = new Subject<Heartbeat>();
  const seen: Liveness[] = [];
  const errors: unknown[] = [];
  const subscription = source
    .pipe(heartbeatDeadline({ timeoutMs, scheduler }))
    .subscribe({ next: e => seen.push(e), error: (err: unknown) => errors.push(err) });
  const send = (agentId: string, status?: 'leaving'): void => source.next(beat(agentId, status));
  return { scheduler, source, seen, errors, subscription, send };
}

describe('heartbeatDeadline', () => {
  describe('timing', () => {
    it(
      'reads like its doc diagram: alive on the first beat, suspected at lastArrival + timeoutMs, alive again',
      marbles(m => {
        const timeoutMs = m.time('-----|');
        const source = m.hot('   a--a--------------a--', beats);
        const expected = '       A-------S---------A----S';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'counts the deadline from the last arrival, not the first',
      marbles(m => {
        const source = m.hot('   a 3ms a 3ms a 3ms a', beats); // 0, 4, 8, 12
        const expected = '       A 16ms S'; //                    12 + 5
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'suspects a silence of exactly timeoutMs: suspected, then alive, in the same frame',
      marbles(m => {
        const source = m.hot('   a 4ms a 3ms a', beats); // 0, 5, 9
        const expected = '       A 4ms (SA) 5ms S'; //       5: S A, then 9 + 5 = 14
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'does not suspect a silence 1 ms shorter than timeoutMs',
      marbles(m => {
        const source = m.hot('   a 3ms a 3ms a', beats); // 0, 4, 8
        const expected = '       A 12ms S'; //                13
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'suspects once per outage, however long',
      marbles(m => {
        const source = m.hot('   a 99ms a', beats);
        const expected = '       A 4ms S 94ms A 4ms S';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'keeps interleaved agents apart, each on its own deadline',
      marbles(m => {
        const source = m.hot('   a-b-a-b-----c-c-c-c', beats); // a: 0, 4; b: 2, 6; c: 12 … 18
        const expected = '       A-B------S-TC 10ms U';
        const timeoutMs = m.time('-----|');
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'keeps one agent alive while another is suspected and comes back',
      marbles(m => {
        const source = m.hot('   ab-a-a-a-ab-a', beats); // b: 1, 10; a: 0, 3, 5, 7, 9, 12
        const expected = '       AB----T---B----T-S';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );
  });

  describe('leaving', () => {
    it(
      'emits left for a leaving beat, forgets the agent (never suspects it) and greets it anew',
      marbles(m => {
        const source = m.hot('   a 2ms l 20ms a', beats);
        const expected = '       A 2ms L 20ms A 4ms S';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'lets a suspected agent leave',
      marbles(m => {
        const source = m.hot('   a 9ms l', beats);
        const expected = '       A 4ms S 4ms L';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'suspects an agent whose leaving beat comes exactly at its deadline, then lets it leave',
      marbles(m => {
        const source = m.hot('   a 4ms l', beats);
        const expected = '       A 4ms (SL)';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'ignores a leaving beat from an unknown agent',
      marbles(m => {
        const source = m.hot('   l 9ms a', beats);
        const expected = '       - 9ms A 4ms S';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'one agent leaving does not disturb the others',
      marbles(m => {
        const source = m.hot('   a-b-am', beats); // b leaves at 5
        const expected = '       A-B--M 3ms S';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );
  });

  describe('event fields', () => {
    it('reports scheduler time and phi = elapsed / timeoutMs', () => {
      const { scheduler, seen, send } = harness(10);
      scheduler.advanceTo(100);
      send('a');
      scheduler.advanceTo(110);
      scheduler.advanceTo(125);
      send('a');
      scheduler.advanceTo(129);
      send('a', 'leaving');
      expect(seen).toEqual([
        { type: 'alive', agentId: 'a', at: 100, phi: 0 },
        { type: 'suspected', agentId: 'a', at: 110, phi: 1 },
        { type: 'alive', agentId: 'a', at: 125, phi: 0 },
        { type: 'left', agentId: 'a', at: 129, phi: 0.4 },
      ]);
    });

    it('arms one timer for many agents', () => {
      const { scheduler, send, subscription } = harness(10);
      for (let i = 0; i < 50; i++) {
        scheduler.advanceBy(1);
        send(`agent-${i}`);
      }
      expect(scheduler.pending).toBe(1);
      subscription.unsubscribe();
    });

    it('suspects on time when a suspicion feeds a heartbeat back synchronously (re-entrancy)', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<Heartbeat>();
      const seen: string[] = [];
      source.pipe(heartbeatDeadline({ timeoutMs: 10, scheduler })).subscribe(e => {
        seen.push(`${e.at} ${e.type}:${e.agentId}`);
        // A supervisor that starts a replacement the moment an agent is suspected.
        if (e.type === 'suspected' && e.agentId === 'y') source.next(beat('z'));
      });
      source.next(beat('y'));
      scheduler.advanceTo(5);
      source.next(beat('x'));
      scheduler.flush();
      expect(seen).toEqual(['0 alive:y', '5 alive:x', '10 suspected:y', '10 alive:z', '15 suspected:x', '20 suspected:z']);
    });

    it('works on the default asyncScheduler (fake timers, no real waiting)', () => {
      vi.useFakeTimers({ now: 0 });
      try {
        const source = new Subject<Heartbeat>();
        const seen: string[] = [];
        const subscription = source.pipe(heartbeatDeadline({ timeoutMs: 1_000 })).subscribe(e => seen.push(label(e)));
        source.next(beat('a'));
        vi.advanceTimersByTime(999);
        expect(seen).toEqual(['alive:a']);
        vi.advanceTimersByTime(1);
        expect(seen).toEqual(['alive:a', 'suspected:a']);
        subscription.unsubscribe();
        expect(vi.getTimerCount()).toBe(0);
      } finally {
        vi.useRealTimers();
      }
    });
  });

  describe('contract', () => {
    it(
      'passes a source error through',
      marbles(m => {
        const source = m.hot('   a-b-#', beats);
        const expected = '       A-B-#';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'passes completion through and suspects nobody afterwards',
      marbles(m => {
        const source = m.hot('   a-b-|', beats);
        const expected = '       A-B-|';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label))).toBeObservable(expected, events);
      }),
    );

    it(
      'unsubscribes from the source when unsubscribed',
      marbles(m => {
        const source = m.hot('   a-b-a-b-a', beats);
        const sub = '           ^------!';
        const expected = '       A-B-----';
        m.expect(source.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(label)), sub).toBeObservable(expected, events);
        m.expect(source).toHaveSubscriptions(sub);
      }),
    );

    it('releases its timer when unsubscribed: nothing pending, nothing emitted afterwards', () => {
      const { scheduler, seen, send, subscription } = harness(10);
      send('a');
      scheduler.advanceBy(3);
      send('b');
      scheduler.advanceBy(20); // both suspected
      send('a'); // back, timer armed again
      send('c');
      expect(scheduler.pending).toBeGreaterThan(0);
      const before = seen.length;
      subscription.unsubscribe();
      expect(scheduler.pending).toBe(0);
      scheduler.advanceBy(1_000);
      expect(seen).toHaveLength(before);
    });

    it('releases its timer on source completion and on source error', () => {
      for (const end of ['complete', 'error'] as const) {
        const { scheduler, source, send, errors } = harness(10);
        send('a');
        expect(scheduler.pending).toBe(1);
        const failure = new Error('x');
        if (end === 'complete') source.complete();
        else source.error(failure);
        expect(errors).toEqual(end === 'complete' ? [] : [failure]);
        expect(scheduler.pending).toBe(0);
      }
    });

    it('starts afresh for each subscription (state is per subscription, released on unsubscribe)', () => {
      const scheduler = new VirtualScheduler();
      const source = new Subject<Heartbeat>();
      const op = source.pipe(heartbeatDeadline({ timeoutMs: 10, scheduler }));
      const first: string[] = [];
      const sub1 = op.subscribe(e => first.push(label(e)));
      source.next(beat('a'));
      sub1.unsubscribe();
      const second: string[] = [];
      const sub2 = op.subscribe(e => second.push(label(e)));
      source.next(beat('a'));
      expect(first).toEqual(['alive:a']);
      expect(second).toEqual(['alive:a']);
      sub2.unsubscribe();
      expect(scheduler.pending).toBe(0);
    });

    it('stops a synchronous source when unsubscribed', () => {
      let emitted = 0;
      const endless = new Observable<Heartbeat>(o => {
        for (let i = 0; !o.closed && i < 1_000_000; i++) {
          emitted++;
          o.next(beat(`agent-${i}`));
        }
      });
      const scheduler = new VirtualScheduler();
      const seen: Liveness[] = [];
      endless.pipe(heartbeatDeadline({ timeoutMs: 10, scheduler }), take(3)).subscribe(e => seen.push(e));
      expect(seen.map(label)).toEqual(['alive:agent-0', 'alive:agent-1', 'alive:agent-2']);
      expect(emitted).toBe(3);
      expect(scheduler.pending).toBe(0);
    });

    it.each([
      ['0', { timeoutMs: 0 }],
      ['negative', { timeoutMs: -1 }],
      ['NaN', { timeoutMs: NaN }],
      ['Infinity', { timeoutMs: Infinity }],
      ['a string', { timeoutMs: '10' }],
      ['missing', {}],
    ])('rejects timeoutMs %s with a RangeError naming it, when built', (_, options) => {
      const build = () => heartbeatDeadline(options as unknown as HeartbeatDeadlineOptions);
      expect(build).toThrow(RangeError);
      expect(build).toThrow(/timeoutMs/);
    });

    it('rejects missing options and a bad scheduler', () => {
      expect(() => heartbeatDeadline(undefined as unknown as HeartbeatDeadlineOptions)).toThrow(/timeoutMs/);
      expect(() => heartbeatDeadline({ timeoutMs: 5, scheduler: {} as SchedulerLike })).toThrow(RangeError);
      expect(() => heartbeatDeadline({ timeoutMs: 5, scheduler: {} as SchedulerLike })).toThrow(/scheduler/);
    });
  });

  // --- Property: against a model of the deadline rule ---------------------------------------------------

  interface AgentPlan {
    readonly startMs: number;
    /** Gaps between consecutive beats (0 = two beats in the same ms). */
    readonly gaps: readonly number[];
    /** For each beat: does the source schedule the next beat before or after emitting this one? */
    readonly scheduleNextFirst: readonly boolean[];
    /** Gap from the last beat to a leaving beat, if the agent leaves. */
    readonly leaveAfter: number | null;
  }

  type Expected = Array<[type: Liveness['type'], at: number]>;

  /** The rule, per agent: alive at the first beat; suspected at t + T for every silence ≥ T; left. */
  function model(plan: AgentPlan, timeoutMs: number): Expected {
    const out: Expected = [];
    let t = plan.startMs;
    out.push(['alive', t]);
    for (const gap of plan.gaps) {
      if (gap >= timeoutMs) out.push(['suspected', t + timeoutMs], ['alive', t + gap]);
      t += gap;
    }
    if (plan.leaveAfter === null) {
      out.push(['suspected', t + timeoutMs]);
    } else {
      if (plan.leaveAfter >= timeoutMs) out.push(['suspected', t + timeoutMs]);
      out.push(['left', t + plan.leaveAfter]);
    }
    return out;
  }

  const scenario = fc
    .integer({ min: 2, max: 20 })
    .map(halfMs => halfMs / 2) // timeouts of 1, 1.5, 2 … 10 ms: exact in binary, so boundaries are hit exactly
    .chain(timeoutMs => {
      const gap = fc.oneof(
        fc.integer({ min: 0, max: Math.ceil(timeoutMs * 2.5) }),
        fc.constant(timeoutMs), // the boundary, on purpose
        fc.constantFrom(timeoutMs - 0.5, timeoutMs + 0.5),
      ).filter(g => g >= 0);
      const agent = fc
        .record({
          startMs: fc.integer({ min: 0, max: 30 }),
          gaps: fc.array(gap, { maxLength: 10 }),
          leaveAfter: fc.option(gap),
          flags: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        })
        .map(({ flags, ...rest }): AgentPlan => ({ ...rest, scheduleNextFirst: flags }));
      return fc.record({ timeoutMs: fc.constant(timeoutMs), agents: fc.array(agent, { minLength: 1, maxLength: 5 }) });
    });

  it('suspects each agent exactly at lastArrival + timeoutMs for every silence ≥ timeoutMs, and never otherwise', () => {
    fc.assert(
      fc.property(scenario, ({ timeoutMs, agents }) => {
        const { scheduler, source, seen, subscription } = harness(timeoutMs);

        // Each agent is a self-rescheduling action, like a real heartbeat loop. Whether it queues its
        // next beat before or after emitting varies, so at a deadline the detector's timer sometimes
        // runs before the beat and sometimes after: the verdict must not depend on that order.
        agents.forEach((plan, k) => {
          const agentId = `agent-${k}`;
          const leave = plan.leaveAfter;
          scheduler.schedule<number>(function (i = 0) {
            const last = i === plan.gaps.length;
            const nextDelay = last ? leave : plan.gaps[i]!;
            const next = (): void => {
              if (nextDelay !== null) this.schedule(i + 1, nextDelay);
            };
            if (i > plan.gaps.length) {
              source.next(beat(agentId, 'leaving'));
              return;
            }
            if (plan.scheduleNextFirst[i]) next();
            source.next(beat(agentId));
            if (!plan.scheduleNextFirst[i]) next();
          }, plan.startMs);
        });

        scheduler.flush();

        for (let i = 1; i < seen.length; i++) expect(seen[i]!.at).toBeGreaterThanOrEqual(seen[i - 1]!.at);
        for (const e of seen) if (e.type === 'suspected') expect(e.phi).toBe(1);
        agents.forEach((plan, k) => {
          const agentId = `agent-${k}`;
          const actual = seen.filter(e => e.agentId === agentId).map((e): [Liveness['type'], number] => [e.type, e.at]);
          expect(actual).toEqual(model(plan, timeoutMs));
        });

        subscription.unsubscribe();
        expect(scheduler.pending).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
