/**
 * Keeps one kind of log line (refused connections, rejected results) to `perSecond` a second: a
 * flood of them, which anyone who can open a connection can make, must not flood the log. The
 * clock and the timer are the caller's (a transport's or the CLI's wall clock, a test's virtual one).
 */

export interface LineLimitOptions {
  /** Lines a second at most; the rest are counted. */
  readonly perSecond: number;
  /** Writes the count of the lines not written, at the end of their second. */
  readonly summary: (hidden: number) => void;
  /** Now, ms. */
  readonly now: () => number;
  /** Runs `work` after `ms` (a timer that keeps no process alive). */
  readonly later: (work: () => void, ms: number) => void;
}

/**
 * A gate for one kind of line: `limit(write)` writes the line while the second has room, and
 * counts it otherwise; `summary` says how many were not written at the end of their second.
 *
 * @example
 * const refusals = lineLimit({ perSecond: 10, summary: n => log.warn(`… ${n} more not shown`), now: Date.now, later: unrefTimer });
 * refusals(() => log.warn('refused 10.0.0.9:5123: invalid token'));
 */
export function lineLimit({ perSecond, summary, now, later }: LineLimitOptions): (write: () => void) => void {
  if (!(Number.isInteger(perSecond) && perSecond >= 1)) throw new RangeError(`perSecond must be an integer >= 1, got ${String(perSecond)}`);
  let windowStart = -Infinity;
  let shown = 0;
  let hidden = 0;
  let flushing = false;
  const flush = (): void => {
    flushing = false;
    const count = hidden;
    hidden = 0;
    if (count > 0) summary(count);
  };
  return write => {
    const t = now();
    if (t - windowStart >= 1000) {
      windowStart = t;
      shown = 0;
    }
    if (shown < perSecond) {
      shown++;
      return write();
    }
    hidden++;
    if (flushing) return;
    flushing = true;
    later(flush, Math.max(1, windowStart + 1000 - t));
  };
}
