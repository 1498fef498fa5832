import {
  Observable, asyncScheduler, ignoreElements, isObservable, tap,
  type OperatorFunction, type SchedulerAction, type SchedulerLike,
} from 'rxjs';
import { PRIOR_OTHER, type PriorScore } from './internal/decisionMatrix.js';
import { RollingWindow, type ExecutionRecord, type PerformanceSnapshot } from './internal/rollingWindow.js';
import { backoffDwellMs, confirmsGain, probationDue, revertReason } from './internal/probation.js';
import { requireFunction, requireInteger, requireNumber, requireScheduler } from './internal/validate.js';

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
  /**
   * The score of every protocol at that tick (`candidates` ∪ `initial`): measured, remembered or
   * prior. In a switch back, the two protocols compared carry the scores compared: the one left
   * its probation score, the one returned to its score when it was left.
   */
  readonly scores: Readonly<Record<string, number>>;
  /** Present on a switch back: the previous switch (`to` → `from`) was not confirmed on probation. */
  readonly revert?: true;
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
  /**
   * Records a protocol needs inside the window to count as measured, and records a switch's
   * target must finish after the switch before its probation is judged. A protocol with fewer is
   * scored by its last score that rested on this many, or by its prior if it never had them.
   * Higher: steadier scores and verdicts, slower to react (and to notice a protocol that finishes
   * nothing: see the probation deadline). Lower: quicker, but a handful of lucky or unlucky runs
   * can trigger a switch or a switch back. Default 5.
   */
  readonly minRecords?: number;
  /**
   * Cap of the back-off: each switch back doubles the dwell before the next switch (from
   * `max(minDwellMs, evaluateEveryMs)`), up to this many times that base; a confirmed switch
   * resets it. Higher: fewer trials under conditions that no protocol can fix, slower to try
   * again once they change. Default 16.
   */
  readonly maxBackoff?: number;
  /** Score of a measured protocol. Default {@link defaultScore}. */
  readonly score?: ProtocolScore;
  /** Score of a protocol with no records in the window, e.g. `matrixPrior(context)`. Default: every protocol `PRIOR_OTHER` (0.25). */
  readonly prior?: PriorScore;
  /**
   * Protocols put in force by something else (a healing fallback, an operator's request). The
   * operator follows without deciding anything: the protocol left is held at what it measured, a
   * switch on probation is dropped (it was overruled, not judged) and the dwell starts again.
   * Names outside `candidates` ∪ `initial` are ignored. Without it, the operator's idea of the
   * protocol in force drifts from the truth at the first outside switch. Default: none.
   */
  readonly inForce?: Observable<string>;
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
 * out whenever a candidate clearly outperforms the protocol in force, and a switch back when the
 * measurements after a switch do not confirm the gain.
 *
 * ```
 * records:  -ff-oo-----oo-----------|   f: star failed, o: mesh ok; minRecords: 2
 * switches: ----------s---------b---|   evaluateEveryMs: 10, minDwellMs: 0: s = star → mesh at 10,
 *                                       kept (mesh's oo after it: 1 > star's 0). Had they been ff,
 *                                       b = the switch back to star at 20.
 * ```
 *
 * Every `evaluateEveryMs` after subscription, each protocol of `candidates` ∪ `initial` is scored:
 * - a protocol left by a switch, until it is in force again: by what it measured when left (its
 *   probation score after a switch back) — what remains of its records as they expire is a
 *   shrinking, noisy tail of the same runs, not new evidence;
 * - otherwise, by `score(snapshot, protocol)` from its own records in the window
 *   `(now − windowMs, now]` when there are at least `minRecords` of them, else by its last score
 *   that rested on that many;
 * - a protocol never measured so: by `prior(protocol)`, scaled by what priors have proved worth
 *   here (below).
 * The best challenger (ties: first in `candidates`) replaces the current protocol when its score
 * beats the current one by more than `switchThreshold` relative to `|current|` (see
 * {@link beatsBy}) and the dwell has passed since the last switch (or subscription): `minDwellMs`,
 * longer after switches back (see `maxBackoff`). Records of other protocols are ignored.
 * Evaluations are the only switch points; a record arriving at the same instant as a tick may land
 * on either side of it.
 *
 * Probation: a switch from A to B is judged at the first tick at least `minDwellMs` after it at
 * which B has finished `minRecords` runs since the switch, or at the latest `max(minDwellMs,
 * windowMs)` after it, on its score over its runs since the switch alone against A's score at
 * the switch (`scores[A]`). When A's beats B's by more than `switchThreshold` (a clear loss, the
 * margin a switch needs), the operator switches back to A at once; anything closer is judged
 * only once B has finished as many runs as A's score rested on (A's runs in the window, at least
 * `minRecords`), or at the deadline — a handful of runs is too noisy to settle a close call, and
 * a protocol left is held at its probation score. B is confirmed if its score is above A's (the
 * back-off is reset); otherwise the operator switches back to A (`revert: true`, a reason saying
 * what was measured) and the dwell before the next switch doubles. A switch back is not itself on probation, and no switch is taken while one is pending:
 * at most one switch back per switch. When B was chosen on its prior, the verdict also scales
 * every prior by `min(1, B's probation score / B's prior)` (never back up).
 *
 * Why this does not thrash under stationary conditions. What made it switch 88 times in 5 h: loss
 * and slow agents pull every protocol's measured score down alike (say to 0.1), below the prior
 * of any protocol without records (0.25, 0.5 for the matrix's choice). Records expire, so each
 * protocol left behind went back to its prior, looked better than the measured one in force, and
 * was switched to: a cycle through all protocols, one switch per dwell, for ever. Now
 * (1) a prior stands in only for a protocol never measured, and it is compared like with like: a
 * prior says how protocols compare, not what the conditions leave of any of them, so once a
 * protocol chosen on its prior has measured a fraction of it, the other priors count at that
 * fraction — under loss that hits all alike, one exploration (one switch and one switch back),
 * not one per protocol per window; (2) a protocol left is held at what it measured then, never
 * at a better-looking tail, and one that failed probation at its probation score, at most the
 * score it failed against: to switch to it again, the protocol in force must fall a further
 * `switchThreshold` below that — each such switch needs a deeper dip than the last (a ratchet),
 * so noise alone switches ever more rarely; (3) each switch back doubles the dwell.
 * Trade-off: knowledge of protocols not in force ages with the conditions it was measured under;
 * when the conditions change, only the protocol in force is measured afresh.
 *
 * A throwing `score` / `prior`, a non-finite score or a malformed record errors downstream.
 * Source completion completes the output and stops the timer.
 *
 * @example
 * executions$.pipe(adaptiveSwitch({
 *   initial: 'ring', candidates: ['hierarchical', 'mesh', 'ring', 'star'],
 *   prior: matrixPrior({ agentCount: 6, complexity: 'high', coordinationIntensity: 'high' }),
 * })).subscribe(s => console.log(s.revert ? `undone: ${s.reason}` : s.reason));
 */
export function adaptiveSwitch(options: AdaptiveSwitchOptions): OperatorFunction<ExecutionRecord, ProtocolSwitch> {
  const {
    initial,
    candidates,
    switchThreshold = 0.3,
    windowMs = 300_000,
    evaluateEveryMs = 30_000,
    minDwellMs = 2 * evaluateEveryMs,
    minRecords = 5,
    maxBackoff = 16,
    score = defaultScore,
    prior = uniformPrior,
    scheduler = asyncScheduler,
    inForce,
  } = options ?? ({} as AdaptiveSwitchOptions);
  if (typeof initial !== 'string') throw new RangeError(`initial must be a string, got ${String(initial)}`);
  if (!Array.isArray(candidates) || candidates.length === 0 || !candidates.every(c => typeof c === 'string')) {
    throw new RangeError(`candidates must be a non-empty array of strings, got ${String(candidates)}`);
  }
  requireNumber('switchThreshold', switchThreshold, 0);
  requireNumber('windowMs', windowMs, 0, true);
  requireNumber('evaluateEveryMs', evaluateEveryMs, 0, true);
  requireNumber('minDwellMs', minDwellMs, 0);
  requireInteger('minRecords', minRecords, 1);
  requireNumber('maxBackoff', maxBackoff, 1);
  requireFunction('score', score);
  requireFunction('prior', prior);
  requireScheduler(scheduler);
  if (inForce !== undefined && !isObservable(inForce)) throw new RangeError(`inForce must be an Observable, got ${String(inForce)}`);
  const protocols = [...new Set([...candidates, initial])];

  return source =>
    new Observable<ProtocolSwitch>(subscriber => {
      const subscribedAt = scheduler.now();
      const windows = new Map(protocols.map(p => [p, new RollingWindow(windowMs, subscribedAt)]));
      /** Last score of each protocol that rested on `minRecords` records: it replaces the prior for good. */
      const remembered = new Map<string, number>();
      /**
       * Protocols left by a switch: scored by what they measured when left (their probation score
       * after a switch back), not by what remains of their records as these expire — a shrinking
       * tail of old runs says nothing new and is noisy — until they are in force again.
       */
      const left = new Set<string>();
      let current = initial;
      let chosenAt = subscribedAt;
      /** Switches back in a row since the last confirmed switch: the back-off exponent. */
      let reverts = 0;
      /** The switch on probation: its target's runs since the switch, in a window of their own. */
      let trial: {
        readonly from: string; readonly to: string; readonly at: number; readonly before: number;
        /** Runs `before` rested on: a gain is confirmed on as many of the target's (or at the deadline). */
        readonly evidence: number;
        /** The target's own prior when it was chosen on it (unmeasured), to calibrate the others. */
        readonly prior: number | undefined;
        readonly runs: RollingWindow;
      } | undefined;
      /**
       * What priors are worth here: `min(1, measured / prior)` over the trials of unmeasured
       * protocols. A prior says how protocols compare, not what conditions (loss, slow agents)
       * leave of them: once one protocol chosen on its prior measured a fraction of it, the
       * others' priors are taken at that fraction too.
       */
      let priorScale = 1;
      /** The protocols scored from their prior at the last evaluation. */
      const fromPrior = new Set<string>();

      const checked = (value: unknown, what: string, protocol: string): number => {
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          throw new RangeError(`${what} must return a finite number, got ${String(value)} for ${protocol}`);
        }
        return value;
      };

      /** Measured, remembered or prior score of every protocol at `now`; remembers what is measured. */
      const scoreAll = (now: number): Map<string, number> => {
        const scores = new Map<string, number>();
        fromPrior.clear();
        for (const [protocol, window] of windows) {
          window.expire(now);
          if (window.count >= minRecords && !left.has(protocol)) remembered.set(protocol, checked(score(window.snapshot(now), protocol), 'score', protocol));
          const known = remembered.get(protocol);
          if (known !== undefined) {
            scores.set(protocol, known);
          } else {
            const guess = checked(prior(protocol), 'prior', protocol);
            // A negative prior is not scaled down: that would raise it.
            scores.set(protocol, guess > 0 ? guess * priorScale : guess);
            fromPrior.add(protocol);
          }
        }
        return scores;
      };

      const runs = (p: string): string => {
        const n = (windows.get(p) as RollingWindow).count;
        if (fromPrior.has(p)) return priorScale === 1 ? 'prior' : `prior × ${show(priorScale)}`;
        if (left.has(p)) return 'when left';
        if (n >= minRecords) return `${n} run${n === 1 ? '' : 's'}`;
        return 'remembered';
      };

      /** The switch back due at `now` if the trial is judged and not confirmed. Throws what `score` throws. */
      const judge = (now: number): ProtocolSwitch | undefined => {
        if (trial === undefined) return undefined;
        trial.runs.expire(now);
        const n = trial.runs.count;
        if (!probationDue(now, trial.at, n, minDwellMs, windowMs, minRecords)) return undefined;
        const { from, to, at, before, evidence, prior: guessed } = trial;
        const measured = checked(score(trial.runs.snapshot(now), to), 'score', to);
        // A clear loss (by the switch's own margin) is undone at once; anything closer is settled
        // on as many runs as the score it was compared with rested on.
        const needed = beatsBy(before, measured, switchThreshold) ? minRecords : evidence;
        if (!probationDue(now, at, n, minDwellMs, windowMs, needed)) return undefined;
        trial = undefined;
        if (guessed !== undefined && guessed > 0 && n > 0) priorScale = Math.min(priorScale, Math.max(0, measured) / guessed);
        if (confirmsGain(n, measured, before)) {
          reverts = 0;
          return undefined;
        }
        reverts++;
        // Scored again: the verdict may have recalibrated the priors.
        const scores = scoreAll(now);
        scores.set(to, measured);
        scores.set(from, before);
        return {
          from: to,
          to: from,
          at: now,
          reason: revertReason(to, from, n, measured, before, now - at, backoffDwellMs(minDwellMs, evaluateEveryMs, reverts, maxBackoff)),
          scores: Object.fromEntries(scores),
          revert: true,
        };
      };
      /** The switch due at `now`, if any. Throws what `score` / `prior` throw. */
      const evaluate = (now: number): ProtocolSwitch | undefined => {
        let scores = scoreAll(now);
        const judged = trial !== undefined;
        const back = judge(now);
        if (back !== undefined || trial !== undefined) return back;
        // A verdict may have recalibrated the priors: score again for the decision it frees.
        if (judged) scores = scoreAll(now);
        if (now - chosenAt < backoffDwellMs(minDwellMs, evaluateEveryMs, reverts, maxBackoff)) return undefined;
        let best: string | undefined;
        let bestScore = -Infinity;
        const currentScore = scores.get(current) as number;
        for (const [protocol, value] of scores) {
          if (protocol !== current && value > bestScore) {
            best = protocol;
            bestScore = value;
          }
        }
        if (best === undefined || !beatsBy(bestScore, currentScore, switchThreshold)) return undefined;
        const gain = currentScore === 0 ? '' : `: +${Math.round((100 * (bestScore - currentScore)) / Math.abs(currentScore))}%`;
        const guessed = fromPrior.has(best) ? checked(prior(best), 'prior', best) : undefined;
        const evidence = Math.max(minRecords, (windows.get(current) as RollingWindow).count);
        trial = { from: current, to: best, at: now, before: currentScore, evidence, prior: guessed, runs: new RollingWindow(windowMs, now) };
        return {
          from: current,
          to: best,
          at: now,
          reason: `${best} scored ${show(bestScore)} (${runs(best)}) vs ${current} ${show(currentScore)} (${runs(current)})${gain}`,
          // fromEntries defines own properties, so a protocol named "__proto__" is just a key.
          scores: Object.fromEntries(scores),
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
            // A protocol left is judged by what it measured, or by its probation score after a
            // switch back; one left unmeasured keeps its (scaled) prior.
            if (decision.revert === true || !fromPrior.has(decision.from)) remembered.set(decision.from, decision.scores[decision.from] as number);
            left.add(decision.from);
            left.delete(decision.to);
            current = decision.to;
            chosenAt = decision.at;
            subscriber.next(decision);
          }
        }, evaluateEveryMs),
      );
      subscriber.add(() => {
        windows.clear();
        remembered.clear();
        left.clear();
        trial = undefined;
      });

      if (inForce !== undefined) {
        subscriber.add(
          inForce.subscribe({
            next: protocol => {
              if (protocol === current || !windows.has(protocol)) return;
              left.add(current);
              left.delete(protocol);
              current = protocol;
              chosenAt = scheduler.now();
              trial = undefined;
            },
            error: (err: unknown) => subscriber.error(err),
          }),
        );
      }

      // Subscribing with `subscriber` itself chains the source to it, so unsubscribing downstream
      // also stops a synchronous source mid-loop.
      source
        .pipe(
          tap(record => {
            const now = scheduler.now();
            windows.get(record.protocol)?.add(record, now);
            // Runs finished after the switch count for its probation (a straggler of an earlier stint does not).
            if (trial !== undefined && record.protocol === trial.to && (record.at ?? now) > trial.at) trial.runs.add(record, now);
          }),
          ignoreElements(),
        )
        .subscribe(subscriber);
    });
}
