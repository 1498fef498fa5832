import { backoffDwellMs, confirmsGain, probationDue, revertReason } from '../../../operators/internal/probation.js';

describe('backoffDwellMs', () => {
  it.each([
    // minDwellMs, evaluateEveryMs, reverts, maxBackoff → dwell
    [60_000, 30_000, 0, 16, 60_000],
    [60_000, 30_000, 1, 16, 120_000],
    [60_000, 30_000, 3, 16, 480_000],
    [60_000, 30_000, 4, 16, 960_000],
    [60_000, 30_000, 9, 16, 960_000], // capped
    [0, 10, 0, 16, 0],
    [0, 10, 1, 16, 20], // doubling from the period when there is no dwell to double
    [0, 10, 2, 3, 30], // a cap that is not a power of two
    [20, 10, 1, 1, 20], // maxBackoff 1: no back-off
    [20, 10, 2000, 16, 320], // no overflow to Infinity
  ])('dwell %d, period %d, %d switches back, cap %d → %d', (minDwellMs, evaluateEveryMs, reverts, maxBackoff, expected) => {
    expect(backoffDwellMs(minDwellMs, evaluateEveryMs, reverts, maxBackoff)).toBe(expected);
  });
});

describe('probationDue', () => {
  it.each([
    // now, switchedAt, runs, minDwellMs, windowMs, minRecords → due
    [100, 80, 5, 20, 300, 5, true],
    [99, 80, 5, 20, 300, 5, false], // dwell not over
    [100, 80, 4, 20, 300, 5, false], // too few runs
    [379, 80, 0, 20, 300, 5, false],
    [380, 80, 0, 20, 300, 5, true], // deadline: a window after the switch
    [380, 80, 4, 400, 300, 5, false], // the deadline is never before the dwell
    [480, 80, 0, 400, 300, 5, true],
  ])('at %d after a switch at %d with %d runs (dwell %d, window %d, %d needed) → %s', (now, at, runs, dwell, window, min, expected) => {
    expect(probationDue(now, at, runs, dwell, window, min)).toBe(expected);
  });
});

describe('confirmsGain', () => {
  it.each([
    [5, 0.6, 0.5, true],
    [5, 0.5, 0.5, false], // equal is no gain
    [5, 0.4, 0.5, false],
    [0, 1, 0.5, false], // nothing finished confirms nothing
    [1, -0.5, -1, true],
  ])('%d runs measuring %d against %d → %s', (runs, measured, before, expected) => {
    expect(confirmsGain(runs, measured, before)).toBe(expected);
  });
});

describe('revertReason', () => {
  it('says what was measured, against what, and the next dwell', () => {
    expect(revertReason('mesh', 'star', 12, 0.41234, 0.52, 60_000, 120_000)).toBe(
      'switch back: mesh measured 0.412 (12 runs since the switch), star had 0.52; next dwell 120000 ms',
    );
    expect(revertReason('ring', 'star', 1, 0, 0.5, 60_000, 120_000)).toBe('switch back: ring measured 0 (1 run since the switch), star had 0.5; next dwell 120000 ms');
    expect(revertReason('ring', 'star', 0, 0, 0.5, 300_000, 120_000)).toBe('switch back: ring finished nothing in 300000 ms after the switch, star had 0.5; next dwell 120000 ms');
  });
});
