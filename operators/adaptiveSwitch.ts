import {
  Observable, asyncScheduler, ignoreElements, tap,
  type OperatorFunction, type SchedulerAction, type SchedulerLike,
} from 'rxjs';
import { PRIOR_OTHER, type PriorScore } from './internal/decisionMatrix.js';
import { RollingWindow, type ExecutionRecord, type PerformanceSnapshot } from './internal/rollingWindow.js';
import { requireFunction, requireNumber, requireScheduler } from './internal/validate.js';

export { PRIOR_OTHER, PRIOR_PREFERRED, decideProtocol, matrixPrior } from './internal/decisionMatrix.js';
export type { Level, MatrixProtocol, PriorScore, ProtocolContext } from './internal/decisionMatrix.js';

/** Scores one protocol from its own records in the window. Higher is better; must be finite. */
export type ProtocolScore = (snapshot: PerformanceSnapshot, protocol: string) => number;

/** A decision to change protocol, taken at an evaluation tick. */
export interface ProtocolSwitch {
  readonly from: string;
  readonly to: string;
  /** Scheduler time of the evaluation tick. */
  readonly at: number;
  /** Readable account, e.g. `mesh scored 0.8 (12 runs) vs star 0.5 (40 runs): +60%`. */
  readonly reason: string;
  /** The score of every protocol at that tick (`candidates` ∪ `initial`), measured or prior. */
  readonly scores: Readonly<Record<string, number>>;
}

export interface AdaptiveSwitchOptions {
  /** Protocol in force at subscription. */
  readonly initial: string;
  /** Protocols to choose among (non-empty); `initial` may be switched back to as well. First listed wins ties. */
  readonly candidates: readonly string[];
  /** Relative margin a challenger must beat the current score by. Higher: fewer, surer switches. Default 0.3. */
  readonly switchThreshold?: number;
  /** Records older than this are forgotten. Longer: steadier scores, slower to notice a change. Default 300 000. */
  readonly windowMs?: number;
  /** Period of the evaluation; the first comes this long after subscription. Default 30 000. */
  readonly evaluateEveryMs?: number;
  /**
   * Least time between switches, measured from the last switch (subscription counts as the choice
   * of `initial`). Longer: no flapping, slower recovery. Default `2 × evaluateEveryMs`.
   */
  readonly minDwellMs?: number;
  /** Score of a measured protocol. Default {@link defaultScore}. */
  readonly score?: ProtocolScore;
  /** Score of a protocol with no records in the window, e.g. `matrixPrior(context)`. Default: every protocol `PRIOR_OTHER` (0.25). */
  readonly prior?: PriorScore;
  /** Clock and evaluation timer; unstamped records are stamped `scheduler.now()`. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
}

/**
 * The default score, in [0, 1]: `successRate / (1 + p95LatencyMs / 1000) / (1 + messagesPerExecution / 10)`.
 * Rises with the success rate, falls with tail latency (a p95 of 1 s halves it) and with the
 * messages an execution costs (10 per execution halve it).
 */
export function defaultScore(snapshot: PerformanceSnapshot): number {
  return snapshot.successRate / (1 + snapshot.p95LatencyMs / 1000) / (1 + snapshot.messagesPerExecution / 10);
}

const uniformPrior: PriorScore = () => PRIOR_OTHER;

/**
 * `challenger > current + threshold · |current|`: better by more than `threshold` relative to the
 * current score's size. From a current score of 0 any positive score wins; below 0 the margin is
 * still measured against `|current|` (−1 is beaten by anything above −0.7 at 0.3).
 */
export function beatsBy(challenger: number, current: number, threshold: number): boolean {
  return challenger > current + threshold * Math.abs(current);
}

function show(x: number): string {
  return String(Number(x.toPrecision(3)));
}

/**
 * Chooses the coordination protocol from measurements: execution records in, a `ProtocolSwitch`
 * out whenever a candidate clearly outperforms the protocol in force.
 *
 * ```
 * records:  -f-o-------------o---|   f: star failed, o: mesh ok
 * switches: ----------s----------|   evaluateEveryMs: 10, minDwellMs: 0 → s = star → mesh at 10
 * ```
 *
 * Every `evaluateEveryMs` after subscription, each protocol of `candidates` ∪ `initial` is scored:
 * by `score(snapshot, protocol)` from its own records in the window `(now − windowMs, now]`, or by
 * `prior(protocol)` when it has none. The best challenger (ties: first in `candidates`) replaces
 * the current protocol when its score beats the current one by more than `switchThreshold`
 * relative to `|current|` (see {@link beatsBy}) and at least `minDwellMs` has passed since the last
 * switch (or subscription); ticks inside that dwell call neither `score` nor `prior`. Records of
 * other protocols are ignored. Evaluations are the only switch points; a record arriving at the
 * same instant as a tick may land on either side of it.
 * A throwing `score` / `prior`, a non-finite score or a malformed record errors downstream.
 * Source completion completes the output and stops the timer.
 *
 * @example
 * executions$.pipe(adaptiveSwitch({
 *   initial: 'ring', candidates: ['hierarchical', 'mesh', 'ring', 'star'],
 *   prior: matrixPrior({ agentCount: 6, complexity: 'high', coordinationIntensity: 'high' }),
 * })).subscribe(s => console.log(s.reason));
 */
export function adaptiveSwitch(options: AdaptiveSwitchOptions): OperatorFunction<ExecutionRecord, ProtocolSwitch> {
  const {
    initial,
    candidates,
    switchThreshold = 0.3,
    windowMs = 300_000,
    evaluateEveryMs = 30_000,
    minDwellMs = 2 * evaluateEveryMs,
    score = defaultScore,
    prior = uniformPrior,
    scheduler = asyncScheduler,
  } = options ?? ({} as AdaptiveSwitchOptions);
  if (typeof initial !== 'string') throw new RangeError(`initial must be a string, got ${String(initial)}`);
  if (!Array.isArray(candidates) || candidates.length === 0 || !candidates.every(c => typeof c === 'string')) {
    throw new RangeError(`candidates must be a non-empty array of strings, got ${String(candidates)}`);
  }
  requireNumber('switchThreshold', switchThreshold, 0);
  requireNumber('windowMs', windowMs, 0, true);
  requireNumber('evaluateEveryMs', evaluateEveryMs, 0, true);
  requireNumber('minDwellMs', minDwellMs, 0);
  requireFunction('score', score);
  requireFunction('prior', prior);
  requireScheduler(scheduler);
  const protocols = [...new Set([...candidates, initial])];

  return source =>
    new Observable<ProtocolSwitch>(subscriber => {
      const subscribedAt = scheduler.now();
      const windows = new Map(protocols.map(p => [p, new RollingWindow(windowMs, subscribedAt)]));
      let current = initial;
      let chosenAt = subscribedAt;

      const scoreOf = (protocol: string, window: RollingWindow, now: number): number => {
        const value = window.count > 0 ? score(window.snapshot(now), protocol) : prior(protocol);
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          throw new RangeError(`${window.count > 0 ? 'score' : 'prior'} must return a finite number, got ${String(value)} for ${protocol}`);
        }
        return value;
      };

      /** The switch due at `now`, if any. Throws what `score` / `prior` throw. */
      const evaluate = (now: number): ProtocolSwitch | undefined => {
        for (const window of windows.values()) window.expire(now);
        if (now - chosenAt < minDwellMs) return undefined;
        const entries: Array<[string, number]> = [];
        let best: string | undefined;
        let bestScore = -Infinity;
        let currentScore = 0;
        for (const [protocol, window] of windows) {
          const value = scoreOf(protocol, window, now);
          entries.push([protocol, value]);
          if (protocol === current) currentScore = value;
          else if (value > bestScore) {
            best = protocol;
            bestScore = value;
          }
        }
        if (best === undefined || !beatsBy(bestScore, currentScore, switchThreshold)) return undefined;
        const runs = (p: string): string => {
          const n = (windows.get(p) as RollingWindow).count;
          return n === 0 ? 'prior' : `${n} run${n === 1 ? '' : 's'}`;
        };
        const gain = currentScore === 0 ? '' : `: +${Math.round((100 * (bestScore - currentScore)) / Math.abs(currentScore))}%`;
        return {
          from: current,
          to: best,
          at: now,
          reason: `${best} scored ${show(bestScore)} (${runs(best)}) vs ${current} ${show(currentScore)} (${runs(current)})${gain}`,
          // fromEntries defines own properties, so a protocol named "__proto__" is just a key.
          scores: Object.fromEntries(entries),
        };
      };

      // One action, re-armed each period, released with the subscription.
      subscriber.add(
        scheduler.schedule(function (this: SchedulerAction<undefined>) {
          this.schedule(undefined, evaluateEveryMs);
          let decision: ProtocolSwitch | undefined;
          try {
            decision = evaluate(scheduler.now());
          } catch (err) {
            subscriber.error(err);
            return;
          }
          if (decision !== undefined) {
            // State first: a re-entrant record or unsubscription sees the new protocol.
            current = decision.to;
            chosenAt = decision.at;
            subscriber.next(decision);
          }
        }, evaluateEveryMs),
      );
      subscriber.add(() => windows.clear());

      // Subscribing with `subscriber` itself chains the source to it, so unsubscribing downstream
      // also stops a synchronous source mid-loop.
      source
        .pipe(
          tap(record => {
            windows.get(record.protocol)?.add(record, scheduler.now());
          }),
          ignoreElements(),
        )
        .subscribe(subscriber);
    });
}
