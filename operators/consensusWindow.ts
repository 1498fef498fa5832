import {
  Observable,
  asyncScheduler,
  type Subscription,
  isObservable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import type { Decision, Vote } from './consensus.js';
import { follow } from './internal/operate.js';
import { ProposalTable } from './internal/proposalTable.js';
import { requireNumber, requireScheduler } from './internal/validate.js';

export type { Decision, DecisionOutcome, Vote } from './consensus.js';

/** Who votes: a fixed list, or live membership (each emission replaces the whole list). */
export type Voters = readonly string[] | Observable<readonly string[]>;

export interface ConsensusWindowOptions {
  /**
   * How long a proposal collects votes, from its first vote. Longer: slow voters still count, but an
   * undecidable proposal holds its state (and its callers) longer. Also how long a decided proposal's
   * id is remembered so that late votes do not reopen it.
   */
  readonly windowMs: number;
  readonly voters: Voters;
  readonly scheduler?: SchedulerLike;
}

/**
 * Collects votes per proposal inside a time window and emits one majority decision per proposal.
 *
 * ```
 * voters:  [a, b, c]            windowMs: 5
 * votes:   -A-B------C--------       A = p1/a yes, B = p1/b yes, C = p2/c no
 * output:  ---Y-----------T---       Y = p1 accepted at 3, T = p2 timeout at 10 + 5
 * ```
 *
 * A window opens at a proposal's first vote. The decision is emitted the moment `voteResult`
 * over the current voters is won (`'accepted'`) or lost (`'rejected'`), or at `openedAt + windowMs`
 * as `'timeout'`; a vote arriving exactly at `openedAt + windowMs` is too late. Each voter's first
 * vote counts, repeats are ignored. Votes from non-members are kept and count as soon as their
 * voter joins; when membership changes every open proposal is re-evaluated at once.
 *
 * Until an Observable `voters` has emitted, nothing is decided. A proposal whose window elapses in
 * that time takes no more votes and is decided on the first membership, at that instant, from the
 * votes of its window ('timeout' if still pending): the only case where `decidedAt` is later than
 * `openedAt + windowMs`. `voters` completing before its first emission is an error.
 *
 * A decided proposal's id is remembered (without its votes) for `windowMs` after the decision; votes
 * for it in that time are ignored, a vote after that opens a new window. So the operator holds the
 * proposals opened or decided within the last `windowMs`, plus, while membership is unknown, those
 * whose windows have elapsed.
 *
 * When the votes complete, the output completes as soon as every open proposal is decided. Errors of
 * votes or of `voters` error the output. Timers: one scheduled action per subscription, re-armed to
 * the earliest deadline. Per vote O(1) (amortised); a membership change costs O(proposals × votes).
 *
 * Options:
 * - `windowMs` (> 0): longer lets slow voters count, but undecidable proposals wait longer for their
 *   timeout and decided ids are held longer.
 * - `voters`: an array (fixed), or an Observable of arrays (live; nothing is decided before it emits).
 * - `scheduler`: `asyncScheduler` by default; a virtual one for marble tests and simulation.
 *
 * @example
 * votes$.pipe(consensusWindow({ windowMs: 5_000, voters: livePeers$ }))
 *   .subscribe(d => console.log(d.proposalId, d.outcome, d.yes));
 */
export function consensusWindow(options: ConsensusWindowOptions): OperatorFunction<Vote, Decision> {
  const { windowMs, voters, scheduler = asyncScheduler } = options;
  requireNumber('windowMs', windowMs, 0, true);
  requireScheduler(scheduler);
  let fixed: readonly string[] | undefined;
  if (!isObservable(voters)) {
    const problem = votersProblem(voters);
    if (problem !== undefined) throw new RangeError(`voters must be an array of voter ids or an Observable of them, ${problem}`);
    fixed = voters;
  }

  return source =>
    new Observable<Decision>(subscriber => {
      let votesDone = false;
      const table = new ProposalTable(windowMs, fixed, decision => {
        subscriber.next(decision);
        if (votesDone && table.openCount === 0) subscriber.complete();
      });
      let timer: Subscription | undefined;
      let timerAt = Infinity;

      // One timer for the whole table, at its earliest deadline. Deadlines are `now + windowMs`, so they
      // only grow and re-arming is rare; a timer whose entry went away fires, finds nothing, re-arms.
      const arm = (): void => {
        if (subscriber.closed) return;
        const at = table.nextAt();
        if (at === undefined) {
          timer?.unsubscribe();
          timer = undefined;
          timerAt = Infinity;
        } else if (at < timerAt) {
          timer?.unsubscribe();
          timerAt = at;
          timer = scheduler.schedule(onTimer, Math.max(0, at - scheduler.now()));
        }
      };
      function onTimer(): void {
        timer = undefined;
        timerAt = Infinity;
        table.expire(scheduler.now());
        arm();
      }

      // Every input first closes what is due by now, so a late timer never lets a late vote count.
      const onVote = (vote: Vote): void => {
        const now = scheduler.now();
        table.expire(now);
        if (subscriber.closed) return;
        table.vote(vote, now);
        arm();
      };
      const onMembers = (list: readonly string[]): void => {
        const now = scheduler.now();
        table.expire(now);
        if (subscriber.closed) return;
        const problem = votersProblem(list);
        if (problem !== undefined) {
          subscriber.error(new RangeError(`voters must emit arrays of voter ids, ${problem}`));
          return;
        }
        table.setMembers(list, now);
        arm();
      };

      if (isObservable(voters)) {
        let known = false;
        follow(voters, subscriber, {
          next: list => {
            known = true;
            onMembers(list);
          },
          error: err => subscriber.error(err),
          complete: () => {
            if (!known) subscriber.error(new Error('consensusWindow: voters completed before emitting a membership'));
          },
        });
      }
      if (!subscriber.closed) {
        follow(source, subscriber, {
          next: onVote,
          error: err => subscriber.error(err),
          complete: () => {
            table.expire(scheduler.now());
            if (subscriber.closed) return;
            votesDone = true;
            table.stopRemembering(); // no vote can come any more
            if (table.openCount === 0) subscriber.complete();
            else arm();
          },
        });
      }

      return () => {
        timer?.unsubscribe();
        timer = undefined;
        table.clear();
      };
    });
}

/** What is wrong with a voter list, if anything. */
function votersProblem(value: unknown): string | undefined {
  if (!Array.isArray(value)) return `got ${describe(value)}`;
  for (const id of value as unknown[]) if (typeof id !== 'string') return `got the id ${describe(id)}`;
  return undefined;
}

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}
