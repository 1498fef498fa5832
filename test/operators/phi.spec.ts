import fc from 'fast-check';
import { phi, phiThresholdOffset } from '../../operators/phi.js';

// Reference values of Akka's AccrualFailureDetectorSpec; cdf(phi) = 1 − 10^−phi.
const cdf = (p: number): number => 1 - Math.pow(10, -p);

describe('phi', () => {
  it.each([
    [0, 0, 10, 0.5, 0.001],
    [6, 0, 10, 0.7257, 0.001],
    [15, 0, 10, 0.9332, 0.001],
    [20, 0, 10, 0.97725, 0.001],
    [25, 0, 10, 0.99379, 0.001],
    [35, 0, 10, 0.99977, 0.001],
    [40, 0, 10, 0.99997, 0.0001],
    [22, 20, 3, 0.7475, 0.001],
  ])('is a good enough normal CDF: cdf(phi(%d, %d, %d)) ≈ %d', (delta, mean, std, expected, tolerance) => {
    expect(Math.abs(cdf(phi(delta, mean, std)) - expected)).toBeLessThanOrEqual(tolerance);
  });

  it('increases strictly over 0..40 ms with mean 0, std 10', () => {
    for (let x = 0; x < 40; x++) expect(phi(x, 0, 10)).toBeLessThan(phi(x + 1, 0, 10));
  });

  it.each([
    [0, 0.0],
    [500, 0.1],
    [1000, 0.3],
    [1200, 1.6],
    [1400, 4.7],
    [1600, 10.8],
    [1700, 15.3],
  ])('returns realistic values: phi(%d, 1000, 100) ≈ %d', (delta, expected) => {
    expect(Math.abs(phi(delta, 1000, 100) - expected)).toBeLessThanOrEqual(0.1);
  });

  it('is lower for a larger standard deviation', () => {
    expect(phi(1100, 1000, 500)).toBeLessThan(phi(1100, 1000, 100));
  });

  it('handles outliers without losing precision', () => {
    expect(Math.abs(phi(10, 0, 1) - 38)).toBeLessThanOrEqual(1);
    expect(Object.is(phi(-25, 0, 1), 0)).toBe(true);
  });

  it('is never NaN nor −0, +∞ allowed', () => {
    expect(phi(1e9, 0, 1)).toBe(Infinity);
    expect(Object.is(phi(-1e9, 0, 1), 0)).toBe(true);
    expect(phi(5, 5, 0)).toBeCloseTo(-Math.log10(0.5), 12);
    expect(phi(6, 5, 0)).toBe(Infinity);
    expect(Object.is(phi(4, 5, 0), 0)).toBe(true);
    expect(() => phi(Number.NaN, 0, 1)).toThrow(RangeError);
    // A distance that overflows to −∞ over an infinite deviation (fast-check seed −1654024022).
    expect(phi(-2.4948003869183998e293, 1.7976931348623133e308, Infinity)).toBeCloseTo(-Math.log10(0.5), 12);
    fc.assert(
      fc.property(fc.double({ noNaN: true }), fc.double({ noNaN: true }), fc.double({ noNaN: true, min: 0 }), (d, m, s) => {
        const value = phi(d, m, s);
        return !Number.isNaN(value) && !Object.is(value, -0) && value >= 0;
      }),
    );
  });
});

describe('phiThresholdOffset', () => {
  it.each([0.5, 1, 3, 8, 16, 50])('puts phi exactly on threshold %d', threshold => {
    const y = phiThresholdOffset(threshold);
    expect(phi(1000 + y * 100, 1000, 100)).toBeCloseTo(threshold, 6);
  });

  it('inverts phi for any threshold', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 100, noNaN: true }), threshold => {
        const y = phiThresholdOffset(threshold);
        return Math.abs(phi(y, 0, 1) - threshold) < 1e-6 * Math.max(1, threshold);
      }),
    );
  });
});
