import fc from 'fast-check';
import { marbles } from 'rxjs-marbles/jest';
import { NEVER, Observable, Subject, from, map, take, type SchedulerLike } from 'rxjs';
import type { DeliveryInput } from '../../operators/consecutiveFailures.js';
import type { LatencyInput } from '../../operators/degradation.js';
import type { Heartbeat } from '../../operators/liveness.js';
import { PhiAccrualDetector } from '../../operators/phiAccrualDetector.js';
import type { UsageInput } from '../../operators/resourcePressure.js';
import type { WaitForEdge } from '../../operators/waitForCycles.js';
import {
  FAULT_KINDS,
  FAULT_TABLE,
  detectFaults,
  faultKey,
  type DetectFaultsOptions,
  type FaultDetectorInputs,
  type FaultEvent,
} from '../../src/faultDetector.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** `+kind:subject` for a detection, `-kind:subject` for a resolution. */
const label = (f: FaultEvent): string => `${f.type === 'detected' ? '+' : '-'}${faultKey(f)}`;

const beats: Record<string, Heartbeat> = { a: { agentId: 'a' }, b: { agentId: 'b' }, l: { agentId: 'a', status: 'leaving' } };
const deliveries: Record<string, DeliveryInput> = {
  x: { link: 'a->b', ok: false },
  o: { link: 'a->b', ok: true },
  y: { link: 'b->a', ok: false },
  c: { link: 'a->b', closed: true },
};
const latencies: Record<string, LatencyInput> = {
  ...Object.fromEntries([...'0123456789'].map(d => [d, { agentId: 'a', latencyMs: Number(d) * 10 }])),
  L: { agentId: 'a', left: true },
};
const usages: Record<string, UsageInput> = {
  ...Object.fromEntries([...'0123456789'].map(d => [d, { agentId: 'a', usage: Number(d) / 10 }])),
  h: { agentId: 'a', usage: 0.89 },
  m: { agentId: 'a', usage: 0.95, resource: 'memory' },
  n: { agentId: 'a', usage: 0.5, resource: 'memory' },
};
const waits: Record<string, WaitForEdge> = {
  w: { type: 'wait', from: 'a', to: 'b' },
  W: { type: 'wait', from: 'b', to: 'a' },
  r: { type: 'release', from: 'a', to: 'b' },
};
const labels = {
  T: '+agent_timeout:a',
  t: '-agent_timeout:a',
  U: '+agent_timeout:b',
  C: '+communication_failure:a->b',
  c: '-communication_failure:a->b',
  D: '+communication_failure:b->a',
  P: '+performance_degradation:a',
  p: '-performance_degradation:a',
  R: '+resource_exhaustion:a',
  r: '-resource_exhaustion:a',
  K: '+protocol_deadlock:a b',
  k: '-protocol_deadlock:a b',
};

/** Feeds every input from a Subject on a VirtualScheduler and records what comes out. */
function harness(options: DetectFaultsOptions = {}, startMs = 0) {
  const scheduler = new VirtualScheduler({ startMs });
  const subjects = {
    heartbeats: new Subject<Heartbeat>(),
    latencies: new Subject<LatencyInput>(),
    deliveries: new Subject<DeliveryInput>(),
    usage: new Subject<UsageInput>(),
    waits: new Subject<WaitForEdge>(),
  };
  const seen: FaultEvent[] = [];
  const errors: unknown[] = [];
  let completed = false;
  const subscription = detectFaults(subjects, { ...options, scheduler }).subscribe({
    next: f => seen.push(f),
    error: (err: unknown) => errors.push(err),
    complete: () => (completed = true),
  });
  return { scheduler, ...subjects, seen, errors, subscription, completed: () => completed };
}

describe('detectFaults', () => {
  describe('the seed’s table', () => {
    it.each([
      ['agent_timeout', 60_000, 'medium', 'detector.timeoutMs'],
      ['communication_failure', 5, 'high', 'communication.limit'],
      ['performance_degradation', 2, 'medium', 'degradation.factor'],
      ['resource_exhaustion', 0.9, 'high', 'resources.threshold'],
      ['protocol_deadlock', 120_000, 'critical', 'deadlock.minDurationMs'],
    ] as const)('%s: threshold %d, severity %s, set by %s', (kind, threshold, severity, option) => {
      expect(FAULT_TABLE[kind]).toMatchObject({ threshold, severity, option });
    });

    it('lists the five kinds and cannot be changed', () => {
      expect(FAULT_KINDS).toEqual(['agent_timeout', 'communication_failure', 'performance_degradation', 'resource_exhaustion', 'protocol_deadlock']);
      expect(Object.isFrozen(FAULT_TABLE)).toBe(true);
      expect(Object.isFrozen(FAULT_TABLE.agent_timeout)).toBe(true);
    });

    it('keys a fault by kind and subject', () => {
      expect(faultKey({ kind: 'agent_timeout', agentId: 'a' })).toBe('agent_timeout:a');
      expect(faultKey({ kind: 'communication_failure', link: 'a->b' })).toBe('communication_failure:a->b');
      expect(faultKey({ kind: 'protocol_deadlock', members: ['a', 'b'] })).toBe('protocol_deadlock:a b');
    });
  });

  describe('timing', () => {
    it(
      'reads like its doc diagram',
      marbles(m => {
        const heartbeats = m.hot('  a--a----------a--', beats);
        const deliveries$ = m.hot(' -xxx-o-----------', deliveries);
        const expected = '          ---C-c--T-----t----T'; // and a times out again at 19
        const options = { detector: { kind: 'deadline', timeoutMs: 5 }, communication: { limit: 3 }, scheduler: m.scheduler } as const;
        m.expect(detectFaults({ heartbeats, deliveries: deliveries$ }, options).pipe(map(label))).toBeObservable(expected, labels);
      }),
    );

    describe('agent_timeout', () => {
      it(
        'defaults to a 60 s deadline: detected exactly 60 000 ms after the last heartbeat',
        marbles(m => {
          const heartbeats = m.hot('a 29999ms a', beats); // beats at 0 and 30 000
          const expected = '        90000ms T';
          m.expect(detectFaults({ heartbeats }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it(
        'a heartbeat 59 999 ms after the last is in time; one at 60 000 ms comes after the timeout',
        marbles(m => {
          const heartbeats = m.hot('a 59998ms a 59998ms a', beats); // 0, 59 999, 119 998: gaps of 59 999
          const expected = '        179998ms T';
          m.expect(detectFaults({ heartbeats }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable(expected, labels);
          const late = m.hot('     a 59999ms a', beats); // 0, 60 000
          const expectedLate = '   60000ms (Tt|)';
          m.expect(detectFaults({ heartbeats: late }, { scheduler: m.scheduler }).pipe(take(2), map(label))).toBeObservable(expectedLate, labels);
        }),
      );

      it('describes the fault with the table’s severity and the silence it measured', () => {
        const h = harness();
        h.heartbeats.next({ agentId: 'a' });
        h.scheduler.advanceTo(60_000);
        h.heartbeats.next({ agentId: 'a' });
        expect(h.seen).toEqual([
          { type: 'detected', kind: 'agent_timeout', severity: 'medium', at: 60_000, agentId: 'a', detail: 'no heartbeat from a for 60000 ms (timeout 60000 ms)' },
          { type: 'resolved', kind: 'agent_timeout', severity: 'medium', at: 60_000, agentId: 'a', detail: 'a heartbeats again' },
        ]);
      });

      it(
        'a first heartbeat is not a recovery, a departure is neither fault nor recovery',
        marbles(m => {
          const heartbeats = m.hot('ab--l---a---', beats);
          const expected = '        ------U------T'; // b times out at 6; a left at 4, is new again at 8, times out at 13
          const options = { detector: { kind: 'deadline', timeoutMs: 5 }, scheduler: m.scheduler } as const;
          m.expect(detectFaults({ heartbeats }, options).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it(
        'a suspected agent that leaves is forgotten, and its next first beat is not a recovery',
        marbles(m => {
          const heartbeats = m.hot('a-------l-a-------', beats);
          const expected = '        -----T---------T';
          const options = { detector: { kind: 'deadline', timeoutMs: 5 }, scheduler: m.scheduler } as const;
          m.expect(detectFaults({ heartbeats }, options).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it('with the phi detector: detected at the detector’s suspicionAt, resolved when beats resume', () => {
        const h = harness({ detector: { kind: 'phi', threshold: 8, acceptableHeartbeatPauseMs: 500 } });
        const reference = new PhiAccrualDetector({ threshold: 8, acceptableHeartbeatPauseMs: 500 });
        for (let t = 0; t <= 10_000; t += 1000) {
          h.scheduler.advanceTo(t);
          h.heartbeats.next({ agentId: 'a' });
          reference.heartbeat(t);
        }
        const due = reference.suspicionAt() as number;
        h.scheduler.advanceTo(due - 1);
        expect(h.seen).toEqual([]);
        h.scheduler.advanceTo(due);
        expect(h.seen).toHaveLength(1);
        expect(h.seen[0]).toMatchObject({ type: 'detected', kind: 'agent_timeout', severity: 'medium', at: due, agentId: 'a' });
        expect(h.seen[0]!.detail).toMatch(/^phi \d+(\.\d+)? ≥ 8 for a/);
        h.scheduler.advanceTo(due + 5000);
        h.heartbeats.next({ agentId: 'a' });
        expect(h.seen.map(label)).toEqual(['+agent_timeout:a', '-agent_timeout:a']);
      });
    });

    describe('communication_failure', () => {
      it(
        'detected at the 5th consecutive failure on a link, resolved at its next success',
        marbles(m => {
          const deliveries$ = m.hot('-xxxxoxxxxxxo-', deliveries);
          const expected = '         ----------C-c-';
          m.expect(detectFaults({ heartbeats: NEVER, deliveries: deliveries$ }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it(
        'counts each link on its own, and forgets a closed link',
        marbles(m => {
          const deliveries$ = m.hot('xyxyxyxyxycxxxxx', deliveries);
          const expected = '         --------CD-----C'; // closed at 10: a new run, not a recovery
          m.expect(detectFaults({ heartbeats: NEVER, deliveries: deliveries$ }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it('describes the failures', () => {
        const h = harness();
        for (let i = 0; i < 5; i++) h.deliveries.next({ link: 'a->b', ok: false });
        expect(h.seen).toEqual([
          { type: 'detected', kind: 'communication_failure', severity: 'high', at: 0, link: 'a->b', detail: '5 consecutive delivery failures on a->b' },
        ]);
      });
    });

    describe('performance_degradation', () => {
      const degradation = { baselineSamples: 2, windowSize: 1, baselineAlpha: 0 } as const;

      it(
        'detected at 2 × the baseline, not at 1.9 ×, resolved when back below the recovery factor',
        marbles(m => {
          // baseline 10 ms (two samples of "1"); 20 ms is 2 ×; 10 ms is below the recovery factor 1.5 ×
          const latencies$ = m.hot('-11-2-1-', latencies);
          const expected = '        ----P-p-';
          m.expect(detectFaults({ heartbeats: NEVER, latencies: latencies$ }, { degradation, scheduler: m.scheduler }).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it('does not flag 1.9 × the baseline', () => {
        const h = harness({ degradation });
        for (const latencyMs of [10, 10, 19, 19.99, 19]) h.latencies.next({ agentId: 'a', latencyMs });
        expect(h.seen).toEqual([]);
        h.latencies.next({ agentId: 'a', latencyMs: 20 });
        expect(h.seen).toEqual([
          {
            type: 'detected',
            kind: 'performance_degradation',
            severity: 'medium',
            at: 0,
            agentId: 'a',
            detail: expect.stringMatching(/^a responds in 20 ms, 2 × its baseline of 10 ms$/) as unknown as string,
          },
        ]);
      });
    });

    describe('resource_exhaustion', () => {
      it(
        'detected at usage 0.9, not at 0.89, resolved below the release level',
        marbles(m => {
          const usage = m.hot('  -5h9h8-7-', usages);
          const expected = '     ---R---r-';
          m.expect(detectFaults({ heartbeats: NEVER, usage }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it('names the resource when the sample did', () => {
        const h = harness();
        h.usage.next({ agentId: 'a', usage: 0.95, resource: 'memory' });
        h.usage.next({ agentId: 'a', usage: 0.5, resource: 'memory' });
        expect(h.seen).toEqual([
          { type: 'detected', kind: 'resource_exhaustion', severity: 'high', at: 0, agentId: 'a', resource: 'memory', detail: 'a uses 95 % of memory (threshold 90 %)' },
          { type: 'resolved', kind: 'resource_exhaustion', severity: 'high', at: 0, agentId: 'a', resource: 'memory', detail: 'a is down to 50 % of memory' },
        ]);
      });
    });

    describe('protocol_deadlock', () => {
      it(
        'detected once a circular wait has lasted 120 s, resolved when it is broken',
        marbles(m => {
          const waits$ = m.hot('-wW 120000ms r', waits); // the cycle forms at 2
          const expected = '    --- 119999ms Kk'; //    reported at 120 002, broken at 120 003
          m.expect(detectFaults({ heartbeats: NEVER, waits: waits$ }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable(expected, labels);
        }),
      );

      it(
        'a circular wait broken before 120 s is no deadlock',
        marbles(m => {
          const waits$ = m.hot('-wW 119998ms r', waits); // broken at 120 001, 1 ms early
          m.expect(detectFaults({ heartbeats: NEVER, waits: waits$ }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable('-', labels);
        }),
      );

      it('names the members with the table’s severity', () => {
        const h = harness();
        h.waits.next({ type: 'wait', from: 'b', to: 'a' });
        h.waits.next({ type: 'wait', from: 'a', to: 'b' });
        h.scheduler.advanceTo(120_000);
        expect(h.seen).toEqual([
          { type: 'detected', kind: 'protocol_deadlock', severity: 'critical', at: 120_000, members: ['a', 'b'], detail: 'circular wait a → b → a since 0 (≥ 120000 ms)' },
        ]);
      });
    });

    it('takes every threshold from the options', () => {
      const h = harness({
        detector: { kind: 'deadline', timeoutMs: 1000 },
        communication: { limit: 2 },
        degradation: { factor: 3, baselineSamples: 1, windowSize: 1, baselineAlpha: 0 },
        resources: { threshold: 0.5 },
        deadlock: { minDurationMs: 10 },
      });
      h.heartbeats.next({ agentId: 'a' });
      h.deliveries.next({ link: 'a->b', ok: false });
      h.deliveries.next({ link: 'a->b', ok: false });
      h.latencies.next({ agentId: 'a', latencyMs: 10 });
      h.latencies.next({ agentId: 'a', latencyMs: 29 });
      h.latencies.next({ agentId: 'a', latencyMs: 30 });
      h.usage.next({ agentId: 'a', usage: 0.5 });
      h.waits.next({ type: 'wait', from: 'a', to: 'a' });
      h.scheduler.advanceTo(1000);
      expect(h.seen.map(f => `${label(f)}@${f.at}`)).toEqual([
        '+communication_failure:a->b@0',
        '+performance_degradation:a@0',
        '+resource_exhaustion:a@0',
        '+protocol_deadlock:a@10',
        '+agent_timeout:a@1000',
      ]);
    });

    it('drives every operator with the one scheduler', () => {
      const h = harness({ communication: { limit: 1 }, degradation: { baselineSamples: 1, windowSize: 1 }, deadlock: { minDurationMs: 0 } }, 7000);
      h.scheduler.advanceTo(8000);
      h.heartbeats.next({ agentId: 'a' });
      h.deliveries.next({ link: 'a->b', ok: false });
      h.latencies.next({ agentId: 'a', latencyMs: 10 });
      h.latencies.next({ agentId: 'a', latencyMs: 50 });
      h.usage.next({ agentId: 'a', usage: 1 });
      h.waits.next({ type: 'wait', from: 'a', to: 'a' });
      h.scheduler.advanceTo(68_000);
      expect(h.seen.map(f => f.at)).toEqual([8000, 8000, 8000, 8000, 68_000]);
      expect(new Set(h.seen.map(f => f.kind))).toEqual(new Set(FAULT_KINDS));
    });
  });

  describe('contract', () => {
    it.each([
      ['detector.timeoutMs', { detector: { kind: 'deadline', timeoutMs: 0 } }],
      ['detector.timeoutMs', { detector: { kind: 'deadline', timeoutMs: Number.NaN } }],
      ['detector.kind', { detector: { kind: 'gossip' } }],
      ['detector.threshold', { detector: { kind: 'phi', threshold: -1 } }],
      ['detector.minStdDeviationMs', { detector: { kind: 'phi', minStdDeviationMs: 0 } }],
      ['detector', { detector: 'deadline' }],
      ['communication.limit', { communication: { limit: 0 } }],
      ['communication.limit', { communication: { limit: 2.5 } }],
      ['communication', { communication: 5 }],
      ['degradation.factor', { degradation: { factor: 1 } }],
      ['degradation.windowSize', { degradation: { windowSize: 0 } }],
      ['resources.threshold', { resources: { threshold: 1.5 } }],
      ['resources.releaseBelow', { resources: { threshold: 0.5, releaseBelow: 0.6 } }],
      ['deadlock.minDurationMs', { deadlock: { minDurationMs: -1 } }],
      ['deadlock.maxCycles', { deadlock: { maxCycles: 0 } }],
      ['scheduler', { scheduler: {} as SchedulerLike }],
    ])('rejects a bad %s when built, with a RangeError naming it', (name, options) => {
      const build = () => detectFaults({ heartbeats: NEVER }, options as DetectFaultsOptions);
      expect(build).toThrow(RangeError);
      expect(build).toThrow(new RegExp(`^${name.replace('.', '\\.')}\\b`));
    });

    it('rejects missing or non-Observable inputs', () => {
      expect(() => detectFaults({} as FaultDetectorInputs)).toThrow(/inputs\.heartbeats/);
      expect(() => detectFaults({ heartbeats: NEVER, usage: [] as unknown as Observable<UsageInput> })).toThrow(/inputs\.usage/);
    });

    it(
      'passes an error of any input through',
      marbles(m => {
        const heartbeats = m.hot('a----', beats);
        const usage = m.hot('     --#', usages, new Error('probe broke'));
        m.expect(detectFaults({ heartbeats, usage }, { scheduler: m.scheduler })).toBeObservable('--#', {}, new Error('probe broke'));
      }),
    );

    it(
      'completes when every input has',
      marbles(m => {
        const heartbeats = m.cold('a--|', beats);
        const deliveries$ = m.cold('xxxxx|', deliveries);
        m.expect(detectFaults({ heartbeats, deliveries: deliveries$ }, { scheduler: m.scheduler }).pipe(map(label))).toBeObservable('----C|', labels);
      }),
    );

    it('unsubscribing releases every timer and per-agent entry (deadline detector)', () => {
      const h = harness({ deadlock: { minDurationMs: 10 } });
      h.heartbeats.next({ agentId: 'a' });
      h.heartbeats.next({ agentId: 'b' });
      h.waits.next({ type: 'wait', from: 'a', to: 'b' });
      h.waits.next({ type: 'wait', from: 'b', to: 'a' });
      expect(h.scheduler.pending).toBeGreaterThan(0);
      h.subscription.unsubscribe();
      expect(h.scheduler.pending).toBe(0);
      expect(h.heartbeats.observed).toBe(false);
      expect(h.waits.observed).toBe(false);
      expect(h.deliveries.observed).toBe(false);
      h.scheduler.advanceTo(120_000);
      expect(h.seen).toEqual([]);
    });

    it('unsubscribing releases the phi detector’s timer', () => {
      const h = harness({ detector: { kind: 'phi' } });
      h.heartbeats.next({ agentId: 'a' });
      h.scheduler.advanceTo(1000);
      h.heartbeats.next({ agentId: 'a' });
      expect(h.scheduler.pending).toBe(1);
      h.subscription.unsubscribe();
      expect(h.scheduler.pending).toBe(0);
    });

    it('keeps state per subscription', () => {
      const scheduler = new VirtualScheduler();
      const deliveries$ = new Subject<DeliveryInput>();
      const faults = detectFaults({ heartbeats: NEVER, deliveries: deliveries$ }, { communication: { limit: 2 }, scheduler });
      const first: FaultEvent[] = [];
      const s1 = faults.subscribe(f => first.push(f));
      deliveries$.next({ link: 'a->b', ok: false });
      const second: FaultEvent[] = [];
      faults.subscribe(f => second.push(f));
      deliveries$.next({ link: 'a->b', ok: false });
      expect(first.map(label)).toEqual(['+communication_failure:a->b']);
      expect(second).toEqual([]);
      s1.unsubscribe();
    });

    it('stops a synchronous source when unsubscribed', () => {
      let sent = 0;
      function* failures(): Generator<DeliveryInput> {
        for (;;) {
          sent++;
          yield { link: `l${sent % 3}`, ok: false };
        }
      }
      const seen: FaultEvent[] = [];
      detectFaults({ heartbeats: NEVER, deliveries: from(failures()) }, { scheduler: new VirtualScheduler() })
        .pipe(take(2))
        .subscribe(f => seen.push(f));
      expect(seen.map(label)).toEqual(['+communication_failure:l1', '+communication_failure:l2']);
      expect(sent).toBe(14); // l1 reaches 5 at the 13th, l2 at the 14th
    });
  });

  describe('properties', () => {
    type Step =
      | { dt: number; input: 'heartbeat'; agent: string }
      | { dt: number; input: 'delivery'; agent: string; ok: boolean }
      | { dt: number; input: 'latency'; agent: string; latencyMs: number }
      | { dt: number; input: 'usage'; agent: string; usage: number }
      | { dt: number; input: 'wait'; agent: string; to: string; release: boolean };
    const agent = fc.constantFrom('a', 'b', 'c');
    const dt = fc.integer({ min: 0, max: 40 });
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ dt, input: fc.constant('heartbeat' as const), agent }),
      fc.record({ dt, input: fc.constant('delivery' as const), agent, ok: fc.boolean() }),
      fc.record({ dt, input: fc.constant('latency' as const), agent, latencyMs: fc.integer({ min: 1, max: 40 }) }),
      fc.record({ dt, input: fc.constant('usage' as const), agent, usage: fc.double({ min: 0, max: 1.2, noNaN: true }) }),
      fc.record({ dt, input: fc.constant('wait' as const), agent, to: agent, release: fc.boolean() }),
    );

    it('per subject, faults alternate detected → resolved; timeouts come exactly at last beat + timeout; nothing is left behind', () => {
      fc.assert(
        fc.property(fc.array(step, { maxLength: 120 }), steps => {
          const timeoutMs = 50;
          const h = harness({
            detector: { kind: 'deadline', timeoutMs },
            communication: { limit: 3 },
            degradation: { baselineSamples: 2, windowSize: 2 },
            deadlock: { minDurationMs: 30 },
          });
          const lastBeat = new Map<string, number>();
          for (const s of steps) {
            h.scheduler.advanceBy(s.dt);
            if (s.input === 'heartbeat') {
              lastBeat.set(s.agent, h.scheduler.now());
              h.heartbeats.next({ agentId: s.agent });
            } else if (s.input === 'delivery') h.deliveries.next({ link: s.agent, ok: s.ok });
            else if (s.input === 'latency') h.latencies.next({ agentId: s.agent, latencyMs: s.latencyMs });
            else if (s.input === 'usage') h.usage.next({ agentId: s.agent, usage: s.usage });
            else h.waits.next({ type: s.release ? 'release' : 'wait', from: s.agent, to: s.to });
          }
          h.scheduler.advanceBy(200);
          const open = new Map<string, boolean>();
          for (const f of h.seen) {
            const key = faultKey(f);
            expect(open.get(key) ?? false).toBe(f.type === 'resolved');
            open.set(key, f.type === 'detected');
            expect(f.severity).toBe(FAULT_TABLE[f.kind].severity);
          }
          // Every agent that beat is timed out at the end, at its last beat + timeoutMs.
          for (const [id, at] of lastBeat) {
            const last = h.seen.filter(f => f.kind === 'agent_timeout' && f.agentId === id).at(-1);
            expect(last).toMatchObject({ type: 'detected', at: at + timeoutMs });
          }
          h.subscription.unsubscribe();
          expect(h.scheduler.pending).toBe(0);
          expect(h.errors).toEqual([]);
        }),
        { numRuns: 150 },
      );
    });
  });
});
