import { LatencyBaseline, type LatencyBaselineOptions } from '../../operators/latencyBaseline.js';

function verdicts(options: LatencyBaselineOptions, samples: number[]): string {
  const tracker = new LatencyBaseline(options);
  const mark = { degraded: 'D', recovered: 'R' } as const;
  return samples
    .map(s => {
      const verdict = tracker.add(s);
      return verdict === undefined ? '.' : mark[verdict];
    })
    .join('');
}

describe('LatencyBaseline', () => {
  it('rejects bad options when built', () => {
    expect(() => new LatencyBaseline({ windowSize: 0 })).toThrow(/windowSize/);
    expect(() => new LatencyBaseline({ factor: 3, recoveryFactor: 4 })).toThrow(/recoveryFactor/);
  });

  const small = { baselineSamples: 2, windowSize: 2, baselineAlpha: 0 };
  it.each([
    // options, samples, verdict per sample (. none, D degraded, R recovered)
    [small, [1, 1, 1, 1, 5, 5, 5, 1, 1, 1], '....D...R.'], // (5 + 1) / 2 = 3 is not yet below 1.5
    [small, [10, 10, 30, 30, 30], '..D..'], // (10 + 30) / 2 = 20 = 2 × 10: at the factor counts
    [small, [10, 10, 29, 10, 29], '.....'], // one slow answer in a window of two is not enough
    [{ ...small, windowSize: 1 }, [10, 10, 20, 16, 15, 14, 20], '..D..RD'], // default recoveryFactor 1.5: below 15
    [{ ...small, windowSize: 1, recoveryFactor: 2 }, [10, 10, 20, 19, 20], '..DRD'], // no hysteresis
    [{ ...small, factor: 3 }, [10, 10, 40, 50], '...D'], // (40+50)/2 = 45 ≥ 30 only at the second
    [{ baselineSamples: 3, windowSize: 1 }, [90, 90, 90], '...'], // no verdict while warming up
    [{ ...small, windowSize: 1 }, [0, 0, 0, 1, 2, 1], '....DR'], // baseline 0 floored at minBaselineMs 1
    [{ ...small, windowSize: 1, minBaselineMs: 0.001 }, [0, 0, 0, 0.002], '...D'],
  ])('%o on %j → %s', (options, samples, expected) => {
    expect(verdicts(options, samples)).toBe(expected);
  });

  it('reports its levels', () => {
    const t = new LatencyBaseline({ baselineSamples: 2, windowSize: 2, baselineAlpha: 0.5 });
    expect(t.isWarm).toBe(false);
    expect(t.baselineMs).toBe(1); // the floor until warm
    t.add(10);
    t.add(20);
    expect(t.isWarm).toBe(true);
    expect(t.baselineMs).toBe(15);
    t.add(20); // healthy: learned, baseline 15 + 0.5 × 5
    expect(t.baselineMs).toBe(17.5);
    expect(t.recentMs).toBe(20);
    expect(t.add(60)).toBe('degraded'); // recent 40 ≥ 35
    expect(t.ratio).toBeCloseTo(40 / 17.5);
    t.add(20); // degraded: not learned
    expect(t.baselineMs).toBe(17.5);
    expect(t.isDegraded).toBe(true);
  });

  it('never learns a sample at or above factor × baseline', () => {
    const t = new LatencyBaseline({ baselineSamples: 1, windowSize: 5, baselineAlpha: 1 });
    t.add(10);
    t.add(25); // ≥ 20: not learned (recent 17.5, no verdict)
    expect(t.baselineMs).toBe(10);
    t.add(12); // learned with alpha 1
    expect(t.baselineMs).toBe(12);
  });

  it('keeps the running mean exact over many laps of its ring', () => {
    const t = new LatencyBaseline({ baselineSamples: 1, windowSize: 3 });
    for (let i = 0; i < 10_000; i++) t.add(i % 2 === 0 ? 1e12 : 0.1);
    for (const s of [1, 2, 3]) t.add(s);
    expect(t.recentMs).toBe(2);
  });
});
