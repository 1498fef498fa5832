/**
 * The pure rules behind `adaptiveSwitch`'s probation: when a switch is judged, whether its target
 * confirmed the gain, how long the back-off makes the next dwell, and how a switch back reads.
 */

/**
 * The dwell before the next switch after `reverts` switches back in a row: `minDwellMs` with none,
 * then `base · 2^reverts` capped at `base · maxBackoff`, where `base = max(minDwellMs,
 * evaluateEveryMs)` (doubling a dwell of 0 would be no back-off at all).
 *
 * @example backoffDwellMs(60_000, 30_000, 2, 16) // 240_000
 */
export function backoffDwellMs(minDwellMs: number, evaluateEveryMs: number, reverts: number, maxBackoff: number): number {
  if (reverts <= 0) return minDwellMs;
  const base = Math.max(minDwellMs, evaluateEveryMs);
  return base * Math.min(2 ** Math.min(reverts, 52), maxBackoff);
}

/**
 * Whether a switch made at `switchedAt` is judged at `now`: once `minDwellMs` has passed and its
 * target has finished `minRecords` runs since, or in any case once `max(minDwellMs, windowMs)` has
 * passed (the deadline: a protocol that finishes too little in a whole window is judged on what it
 * did, and one that finished nothing is not confirmed).
 */
export function probationDue(now: number, switchedAt: number, runs: number, minDwellMs: number, windowMs: number, minRecords: number): boolean {
  const elapsed = now - switchedAt;
  return (elapsed >= minDwellMs && runs >= minRecords) || elapsed >= Math.max(minDwellMs, windowMs);
}

/**
 * The gain is confirmed when the target, on its own runs since the switch, scored strictly more
 * than the protocol it replaced scored at the switch. Equal is not a gain: under conditions that
 * hit every protocol alike (loss, a slow agent), a switch buys nothing and is undone.
 */
export function confirmsGain(runs: number, measured: number, before: number): boolean {
  return runs > 0 && measured > before;
}

function show(x: number): string {
  return String(Number(x.toPrecision(3)));
}

/**
 * The reason of a switch back, e.g.
 * `switch back: mesh measured 0.41 (12 runs since the switch), star had 0.52; next dwell 120000 ms`.
 */
export function revertReason(to: string, from: string, runs: number, measured: number, before: number, elapsedMs: number, nextDwellMs: number): string {
  const what = runs === 0
    ? `${to} finished nothing in ${elapsedMs} ms after the switch`
    : `${to} measured ${show(measured)} (${runs} run${runs === 1 ? '' : 's'} since the switch)`;
  return `switch back: ${what}, ${from} had ${show(before)}; next dwell ${nextDwellMs} ms`;
}
