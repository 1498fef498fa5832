import fc from 'fast-check';
import { IntervalWindow, PhiAccrualDetector, PhiAccrualTable, PhiSettings, type PhiAccrualDetectorOptions } from '../../operators/phiAccrualDetector.js';
import { phi } from '../../operators/phi.js';

// Akka's spec builds its detector with no acceptable pause; so do these reference scenarios.
const akka = (options: PhiAccrualDetectorOptions = {}): PhiAccrualDetector =>
  new PhiAccrualDetector({ acceptableHeartbeatPauseMs: 0, ...options });

/** Beats at the running sums of `intervals`, like Akka's fakeTimeGenerator. */
function times(intervals: number[]): number[] {
  let t = 0;
  return intervals.map((d, i) => (i === 0 ? (t = d) : (t += d)));
}

describe('PhiAccrualDetector — Akka reference scenarios', () => {
  it('returns phi 0 and is not monitoring before any heartbeat', () => {
    const fd = akka();
    expect(fd.phi(0)).toBe(0);
    expect(fd.phi(10_000)).toBe(0);
    expect(fd.isMonitoring).toBe(false);
    expect(fd.isAvailable(1e9)).toBe(true);
    expect(fd.suspicionAt()).toBeUndefined();
  });

  it('returns phi based on the first-heartbeat estimate after one heartbeat', () => {
    const fd = akka({ firstHeartbeatEstimateMs: 1000 });
    fd.heartbeat(0);
    expect(Math.abs(fd.phi(1000) - 0.3)).toBeLessThanOrEqual(0.2);
    expect(Math.abs(fd.phi(2000) - 4.5)).toBeLessThanOrEqual(0.3);
    expect(fd.phi(3000)).toBeGreaterThan(15);
  });

  it('uses the first interval after the second heartbeat', () => {
    const fd = akka();
    fd.heartbeat(0);
    expect(fd.phi(100)).toBeGreaterThan(0);
    fd.heartbeat(200);
    expect(fd.phi(300)).toBeGreaterThan(0);
  });

  it('is monitoring and available after a series of heartbeats', () => {
    const fd = akka();
    const [a, b, c] = times([0, 1000, 100, 100]);
    fd.heartbeat(a!);
    fd.heartbeat(b!);
    fd.heartbeat(c!);
    expect(fd.isMonitoring).toBe(true);
    expect(fd.isAvailable(1200)).toBe(true);
  });

  it('marks the node dead when heartbeats are missed', () => {
    const fd = akka({ threshold: 3 });
    fd.heartbeat(0);
    fd.heartbeat(1000);
    fd.heartbeat(1100);
    expect(fd.isAvailable(1200)).toBe(true);
    expect(fd.isAvailable(8200)).toBe(false);
  });

  it('is available again when heartbeats resume after a failure, without sampling the outage', () => {
    const fd = new PhiAccrualDetector({ threshold: 8, acceptableHeartbeatPauseMs: 3000 });
    const t = times([0, ...Array<number>(999).fill(1000), 300_000, 100, 900, 100, 7000, 100, 900, 100, 900]);
    for (let i = 0; i < 1000; i++) fd.heartbeat(t[i]!);
    expect(fd.isAvailable(t[1000]!)).toBe(false); // after the five-minute pause
    fd.heartbeat(t[1001]!);
    expect(fd.isAvailable(t[1002]!)).toBe(true);
    fd.heartbeat(t[1003]!);
    expect(fd.isAvailable(t[1004]!)).toBe(false); // after the seven-second pause
    fd.heartbeat(t[1005]!);
    expect(fd.isAvailable(t[1006]!)).toBe(true);
    fd.heartbeat(t[1007]!);
    expect(fd.isAvailable(t[1008]!)).toBe(true);
  });

  it('accepts the configured missing heartbeats', () => {
    const fd = akka({ acceptableHeartbeatPauseMs: 3000 });
    const t = times([0, 1000, 1000, 1000, 4000, 1000, 1000]);
    for (let i = 0; i < 4; i++) fd.heartbeat(t[i]!);
    expect(fd.isAvailable(t[4]!)).toBe(true);
    fd.heartbeat(t[5]!);
    expect(fd.isAvailable(t[6]!)).toBe(true);
  });

  it('fails after the configured acceptable missing heartbeats', () => {
    const fd = akka({ acceptableHeartbeatPauseMs: 3000 });
    const t = times([0, 1000, 1000, 1000, 1000, 1000, 500, 500, 5000]);
    for (let i = 0; i < 6; i++) fd.heartbeat(t[i]!);
    expect(fd.isAvailable(t[6]!)).toBe(true);
    fd.heartbeat(t[7]!);
    expect(fd.isAvailable(t[8]!)).toBe(false);
  });

  it('uses only maxSampleSize heartbeats', () => {
    const fd = akka({ maxSampleSize: 3 });
    const t = times([0, 100, 100, 100, 100, 600, 500, 500, 500, 500, 500]);
    for (let i = 0; i < 4; i++) fd.heartbeat(t[i]!);
    const phi1 = fd.phi(t[4]!);
    for (let i = 5; i < 9; i++) fd.heartbeat(t[i]!);
    const phi2 = fd.phi(t[9]!);
    expect(Math.abs(phi2 - phi1)).toBeLessThanOrEqual(0.001);
  });
});

describe('IntervalWindow — Akka HeartbeatHistory statistics', () => {
  const filled = (max: number, samples: number[]): IntervalWindow => {
    const w = new IntervalWindow({ maxSampleSize: max });
    for (const s of samples) w.add(s);
    return w;
  };

  it('computes mean and population variance', () => {
    const w = filled(20, [100, 200, 125, 340, 130]);
    expect(w.mean).toBeCloseTo(179, 5);
    expect(w.variance).toBeCloseTo(7584, 5);
  });

  it('has zero variance for one sample', () => {
    expect(filled(600, [1000]).variance).toBe(0);
  });

  it('is capped by maxSampleSize', () => {
    const w = filled(3, [100, 110, 90]);
    expect(w.mean).toBeCloseTo(100, 5);
    expect(w.variance).toBeCloseTo(66.6666667, 5);
    w.add(140);
    expect(w.mean).toBeCloseTo(113.333333, 5);
    expect(w.variance).toBeCloseTo(422.222222, 5);
    w.add(80);
    expect(w.mean).toBeCloseTo(103.333333, 5);
    expect(w.variance).toBeCloseTo(688.88888889, 5);
    expect(w.size).toBe(3);
  });

  it('matches a full recomputation over the last maxSampleSize samples', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 200 }), (max, samples) => {
        const w = filled(max, samples);
        const kept = samples.slice(-max);
        const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
        const variance = kept.reduce((a, b) => a + (b - mean) ** 2, 0) / kept.length;
        return Math.abs(w.mean - mean) < 1e-6 * mean && Math.abs(w.variance - variance) < 1e-6 * Math.max(1, variance) + 1e-3;
      }),
    );
  });
});

describe('PhiAccrualDetector — bootstrap and suspicionAt', () => {
  it('seeds the window with estimate ± floor(estimate / 4)', () => {
    const fd = new PhiAccrualDetector({ firstHeartbeatEstimateMs: 1001 });
    fd.heartbeat(0);
    expect(fd.size).toBe(2);
    expect(fd.mean).toBe(1001); // (751 + 1251) / 2
    expect(fd.variance).toBe(250 * 250);
  });

  it('puts suspicionAt on the first whole ms at which phi reaches the threshold', () => {
    fc.assert(
      fc.property(
        fc.record({
          threshold: fc.double({ min: 0.5, max: 20, noNaN: true }),
          acceptableHeartbeatPauseMs: fc.integer({ min: 0, max: 5000 }),
          minStdDeviationMs: fc.integer({ min: 1, max: 500 }),
          firstHeartbeatEstimateMs: fc.integer({ min: 1, max: 5000 }),
        }),
        fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 30 }),
        (options, gaps) => {
          const fd = new PhiAccrualDetector(options);
          let t = 1_000_000;
          fd.heartbeat(t);
          for (const g of gaps) fd.heartbeat((t += g));
          const at = fd.suspicionAt()!;
          return Number.isInteger(at) && fd.phi(at) >= options.threshold && fd.phi(at - 1) < options.threshold && !fd.isAvailable(at) && fd.isAvailable(at - 1);
        },
      ),
    );
  });

  it('agrees with phi over mean + pause and the floored deviation', () => {
    const fd = new PhiAccrualDetector({ acceptableHeartbeatPauseMs: 500, minStdDeviationMs: 50 });
    for (let t = 0; t <= 10_000; t += 1000) fd.heartbeat(t);
    expect(fd.phi(12_000)).toBe(phi(2000, fd.mean + 500, Math.max(Math.sqrt(fd.variance), 50)));
  });

  it.each([
    ['threshold', { threshold: 0 }],
    ['threshold', { threshold: Number.NaN }],
    ['maxSampleSize', { maxSampleSize: 0 }],
    ['maxSampleSize', { maxSampleSize: 1.5 }],
    ['minStdDeviationMs', { minStdDeviationMs: 0 }],
    ['acceptableHeartbeatPauseMs', { acceptableHeartbeatPauseMs: -1 }],
    ['firstHeartbeatEstimateMs', { firstHeartbeatEstimateMs: 0 }],
  ])('rejects a bad %s with a RangeError naming it', (name, options) => {
    expect(() => new PhiAccrualDetector(options)).toThrow(RangeError);
    expect(() => new PhiAccrualDetector(options)).toThrow(name);
  });
});

describe('PhiAccrualTable — many detectors, the same answers', () => {
  it('matches PhiAccrualDetector exactly, beat by beat, across window growth, wrap-arounds, outages, reused slots and compactions', () => {
    // Mostly beats within the learned rhythm, so windows fill, wrap and move in the pool; some
    // outages (not sampled) and departures (slots reused, pool regions left to compaction).
    const step = fc.oneof(
      { weight: 12, arbitrary: fc.record({ kind: fc.constant('beat' as const), agent: fc.nat(2), gap: fc.oneof(fc.integer({ min: 0, max: 400 }), fc.double({ min: 0, max: 400, noNaN: true })) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('beat' as const), agent: fc.nat(2), gap: fc.integer({ min: 0, max: 20_000 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('leave' as const), agent: fc.nat(3), gap: fc.constant(0) }) },
    );
    const options = fc.record({
      maxSampleSize: fc.integer({ min: 1, max: 50 }),
      threshold: fc.oneof(fc.double({ min: 0.5, max: 12, noNaN: true }), fc.constant(8)),
      minStdDeviationMs: fc.integer({ min: 1, max: 200 }),
      acceptableHeartbeatPauseMs: fc.integer({ min: 0, max: 2000 }),
      firstHeartbeatEstimateMs: fc.integer({ min: 1, max: 400 }),
    });
    fc.assert(
      fc.property(options, fc.array(step, { minLength: 50, maxLength: 600, size: 'max' }), (opts, steps) => {
        const settings = new PhiSettings(opts);
        const table = new PhiAccrualTable(settings);
        const agents = new Map<number, { slot: number; reference: PhiAccrualDetector }>();
        // Collected and compared once: an expect per beat would dominate the run time.
        const got: unknown[] = [];
        const want: unknown[] = [];
        let now = 0;
        for (const s of steps) {
          now += s.gap;
          let agent = agents.get(s.agent);
          if (s.kind === 'leave') {
            if (agent !== undefined) table.release(agent.slot);
            agents.delete(s.agent);
            continue;
          }
          if (agent === undefined) {
            const reference = new PhiAccrualDetector(settings);
            reference.heartbeat(now);
            agent = { slot: table.add(now), reference };
            agents.set(s.agent, agent);
          } else {
            got.push(table.isAvailable(agent.slot, now));
            want.push(agent.reference.isAvailable(now));
            agent.reference.heartbeat(now);
            table.heartbeat(agent.slot, now);
          }
          const { slot, reference } = agent;
          got.push(table.suspicionLowerBound(slot), table.suspicionAt(slot), table.phi(slot, now + 100));
          want.push(reference.suspicionLowerBound, reference.suspicionAt(), reference.phi(now + 100));
        }
        for (const { slot, reference } of agents.values()) {
          got.push(table.suspicionAt(slot), table.phi(slot, now + 1000));
          want.push(reference.suspicionAt(), reference.phi(now + 1000));
        }
        expect(got).toEqual(want);
        expect(table.size).toBe(agents.size);
      }),
      { numRuns: 100 },
    );
  });

  it('keeps every window intact while agents of different ages grow, move and leave in the shared pool', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 120 }),
        fc.array(fc.record({ joinRound: fc.nat(60), skip: fc.nat(4), leaveRound: fc.option(fc.nat(150)) }), { minLength: 5, maxLength: 30 }),
        (maxSampleSize, plans) => {
          const settings = new PhiSettings({ maxSampleSize });
          const table = new PhiAccrualTable(settings);
          const agents = new Map<number, { slot: number; reference: PhiAccrualDetector }>();
          const got: unknown[] = [];
          const want: unknown[] = [];
          for (let round = 0; round < 150; round++) {
            plans.forEach((plan, i) => {
              const now = round * 1000 + i;
              const agent = agents.get(i);
              if (plan.leaveRound === round && agent !== undefined) {
                table.release(agent.slot);
                agents.delete(i);
                return;
              }
              if (round < plan.joinRound || (plan.skip > 0 && round % (plan.skip + 3) === 0)) return;
              if (agent === undefined) {
                if (plan.leaveRound !== null && round >= plan.leaveRound) return;
                const reference = new PhiAccrualDetector(settings);
                reference.heartbeat(now);
                agents.set(i, { slot: table.add(now), reference });
                return;
              }
              agent.reference.heartbeat(now);
              table.heartbeat(agent.slot, now);
              got.push(table.suspicionLowerBound(agent.slot));
              want.push(agent.reference.suspicionLowerBound);
            });
          }
          for (const { slot, reference } of agents.values()) {
            got.push(table.suspicionAt(slot), table.phi(slot, 151_000));
            want.push(reference.suspicionAt(), reference.phi(151_000));
          }
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 40 },
    );
  });
});
