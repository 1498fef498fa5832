import fc from 'fast-check';
import { LINEAR_RETRANSMISSIONS, MAX_DOUBLINGS, RttEstimator, retransmitDelay } from '../../../operators/internal/rttEstimator.js';

/** Feeds the samples to a fresh estimator (options as given) and reads it. */
function after(samples: readonly number[], options: ConstructorParameters<typeof RttEstimator>[0] = {}): RttEstimator {
  const rtt = new RttEstimator(options);
  for (const s of samples) rtt.sample(s);
  return rtt;
}

describe('RttEstimator', () => {
  // Reference values worked by hand from RFC 6298 §2 (α = 1/8, β = 1/4, K = 4).
  it.each([
    { samples: [], srtt: undefined, rttvar: undefined, rto: 1000 },
    { samples: [100], srtt: 100, rttvar: 50, rto: 300 },
    { samples: [100, 120], srtt: 102.5, rttvar: 42.5, rto: 272.5 },
    { samples: [100, 120, 80], srtt: 99.6875, rttvar: 37.5, rto: 249.6875 },
    { samples: [10, 10, 10], srtt: 10, rttvar: 2.8125, rto: 21.25 },
    { samples: [4, 4, 4, 4, 4, 4], srtt: 4, rttvar: 2 * 0.75 ** 5, rto: 20 }, // below the floor
    { samples: [40_000], srtt: 40_000, rttvar: 20_000, rto: 60_000 }, // above the cap
  ])('after $samples: srtt $srtt, rttvar $rttvar, rto $rto', ({ samples, srtt, rttvar, rto }) => {
    const rtt = after(samples);
    expect(rtt.count).toBe(samples.length);
    if (srtt === undefined) expect(rtt.srtt).toBeUndefined();
    else expect(rtt.srtt).toBeCloseTo(srtt, 9);
    if (rttvar === undefined) expect(rtt.rttvar).toBeUndefined();
    else expect(rtt.rttvar).toBeCloseTo(rttvar, 9);
    expect(rtt.rto).toBeCloseTo(rto, 9);
  });

  it.each([
    // The deviation term is at least the clock granularity G.
    { samples: [0], options: { minRtoMs: 0.5 }, rto: 1 },
    { samples: [0], options: { minRtoMs: 0.5, granularityMs: 3 }, rto: 3 },
    { samples: [], options: { initialRtoMs: 3000 }, rto: 3000 },
    { samples: [], options: { initialRtoMs: 3000, maxRtoMs: 2000 }, rto: 2000 },
    { samples: [1], options: { minRtoMs: 50 }, rto: 50 },
  ])('with $options after $samples: rto $rto', ({ samples, options, rto }) => {
    expect(after(samples, options).rto).toBeCloseTo(rto, 9);
  });

  it('ignores samples that measure nothing (negative, NaN, infinite)', () => {
    const rtt = after([100, -5, Number.NaN, Number.POSITIVE_INFINITY]);
    expect(rtt.count).toBe(1);
    expect(rtt.srtt).toBe(100);
  });

  it.each([
    [{ minRtoMs: 0 }, 'minRtoMs must be a finite number > 0, got 0'],
    [{ minRtoMs: 100, maxRtoMs: 50 }, 'maxRtoMs must be a finite number >= 100, got 50'],
    [{ initialRtoMs: -1 }, 'initialRtoMs must be a finite number > 0, got -1'],
    [{ granularityMs: Number.NaN }, 'granularityMs must be a finite number >= 0, got NaN'],
  ])('rejects %o', (options, message) => {
    expect(() => new RttEstimator(options)).toThrow(new RangeError(message));
  });

  it('keeps rto within [min, max] and above srtt whatever the samples', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 }), samples => {
        const rtt = after(samples);
        expect(rtt.rto).toBeGreaterThanOrEqual(20);
        expect(rtt.rto).toBeLessThanOrEqual(60_000);
        expect(rtt.rto).toBeGreaterThanOrEqual(Math.min(60_000, rtt.srtt as number));
      }),
    );
  });

  it('settles on a steady round trip: srtt converges to it', () => {
    const rtt = after([500, ...Array.from({ length: 100 }, () => 40)]);
    expect(rtt.srtt).toBeCloseTo(40, 2);
    expect(rtt.rto).toBeCloseTo(41, 1); // srtt + G once the deviation has decayed
  });
});

describe('retransmitDelay', () => {
  it.each([
    [20, 0, 20],
    [20, 1, 20],
    [20, LINEAR_RETRANSMISSIONS, 20],
    [20, LINEAR_RETRANSMISSIONS + 1, 40],
    [20, LINEAR_RETRANSMISSIONS + 3, 160],
    [20, LINEAR_RETRANSMISSIONS + MAX_DOUBLINGS + 1, 160], // 8 rto at most
    [20, 100, 160],
    [5000, 7, 10_000],
    [5000, 8, 20_000],
    [5000, 100, 40_000],
    [10_000, 100, 60_000], // capped at maxMs
  ])('retransmitDelay(%d, %d) = %d', (rto, n, expected) => {
    expect(retransmitDelay(rto, n)).toBe(expected);
  });

  it('caps at maxMs, but never below the rto itself', () => {
    expect(retransmitDelay(100, 20, 500)).toBe(500);
    expect(retransmitDelay(100, 0, 50)).toBe(100);
  });

  it('rejects a negative rto and a fractional count', () => {
    expect(() => retransmitDelay(-1, 0)).toThrow(RangeError);
    expect(() => retransmitDelay(10, 1.5)).toThrow(new RangeError('n must be an integer >= 0, got 1.5'));
  });
});
