import type { SchedulerLike, Subscription } from 'rxjs';
import { RttEstimator, retransmitDelay } from '../operators/internal/rttEstimator.js';

export interface AckTrackerOptions {
  readonly scheduler: SchedulerLike;
  /**
   * How long an assignment may go unacknowledged, its retransmissions included, before it is
   * taken as undeliverable (the agent takes nothing in, a relay keeps it back): the coordinator's
   * `ackTimeoutMs`. It is also the cap of every single wait, and a third of it is the timeout
   * before any round trip was measured (RFC 6298's 1 s for the default 3 s).
   */
  readonly ackTimeoutMs: number;
  /** Floor of the learned timeout (see `RttEstimator`'s `minRtoMs`). Default 20 ms. */
  readonly minRtoMs?: number;
  /**
   * Retransmissions of one assignment after which it is given up whatever the time (a bound on
   * what one assignment may cost). Default 64. The time budget, `ackTimeoutMs`, is what ends the
   * retransmissions in practice: with a 20 ms rto it allows 26 sends, all of which a round trip
   * at 30 % loss over three hops and the answer's one (lost with probability 0.76) loses 0.08 %
   * of the time.
   */
  readonly maxRetransmissions?: number;
  /** An acknowledgement is overdue: retransmit (`retransmit`) or give up. Called on the scheduler. */
  readonly overdue: (attemptKey: string) => void;
}

interface Pending {
  readonly agentId: string;
  /** Messages its round trip crosses: the assignment's hops and the answer's one. */
  readonly legs: number;
  /** When it was first sent: the give-up budget counts from here. */
  readonly firstSentAt: number;
  /** When it was last sent. */
  sentAt: number;
  /** When each copy went (0: the first), for an answer that names the copy it answers. */
  readonly sends: number[];
  retransmissions: number;
  timer: Subscription | undefined;
}

/** Retransmissions always allowed before the time budget may end them: a slow agent gets a second chance. */
const MIN_RETRANSMISSIONS = 2;

/** The legs of a round trip straight to an agent and back: what `ackTimeoutMs` is set for. */
export const DIRECT_LEGS = 2;

/** The cap of an agent's own estimate as kept (an hour); where it is used, the route's budget caps it. */
const MAX_OWN_RTO_MS = 3_600_000;

/** How much longer than a direct round trip one of `legs` messages is taken to be while nothing was measured. */
const stretch = (legs: number): number => Math.max(1, legs / DIRECT_LEGS);

/** Round trips a route's estimate may take before its assignment is given up, when that is longer than `ackTimeoutMs`. */
const BUDGET_RTTS = 3;

/**
 * The assignments waiting for their acknowledgement, and what the waits are learned from: a
 * round-trip estimate per agent (assignment sent → its first answer, acknowledgement or result),
 * as TCP learns its retransmission timeout from its smoothed round trip (RFC 6298). A lost
 * assignment or a lost acknowledgement then costs about one round trip, not a fixed 3 s.
 *
 *   sent ──rto──▶ overdue → retransmit ──rto──▶ overdue → … (after 6: 2·rto, 4·rto, 8·rto, 8·rto…) … → give up
 *         answered: a sample of the copy it names (else, Karn, only of an assignment sent once), the wait ends
 *
 * An agent nothing was measured of yet takes the team's estimate. The team's estimate is per
 * message (every agent's samples divided by the legs of their round trips: the same network,
 * other distances), times the legs of the agent's own round trip: relays on the way (a ring's
 * members are up to n hops away) lengthen the wait instead of making every first assignment look
 * lost and sent again round the ring. Before any sample at all the wait is a third of
 * `ackTimeoutMs` for a round trip straight to the agent, in proportion for more legs.
 * Each wait is `retransmitDelay(rto, n)`, capped at the budget; an assignment is given up
 * (`retransmit` answers false) after `maxRetransmissions`, or once the budget has passed since its
 * first send with at least two retransmissions made. The budget is `ackTimeoutMs`, or three
 * estimated round trips of the route (the team's smoothed time per message times its legs) when
 * that is longer (before any sample, `ackTimeoutMs` in proportion to the legs): a relay or two
 * change nothing, a ring of thousands is waited for as long as it takes to go round.
 * O(1) per send and answer; one timer per waiting assignment, released when answered, forgotten
 * or given up.
 *
 * @example
 * const acks = new AckTracker({ scheduler, ackTimeoutMs: 3000, overdue: key => … });
 * acks.sent('t\u0000s-1#7', 'agent-2'); // waits acks.rtoOf('agent-2') (straight to it: 2 legs)
 * acks.sent('t\u0000s-2#8', 'agent-9', 5); // through 3 relays, the answer straight back
 * acks.answered('t\u0000s-1#7');        // a round-trip sample of agent-2
 */
export class AckTracker {
  private readonly pending = new Map<string, Pending>();
  private readonly perAgent = new Map<string, RttEstimator>();
  private readonly team: RttEstimator;
  private readonly scheduler: SchedulerLike;
  private readonly ackTimeoutMs: number;
  private readonly minRtoMs: number;
  private readonly maxRetransmissions: number;
  private readonly overdue: (attemptKey: string) => void;

  constructor(options: AckTrackerOptions) {
    const { scheduler, ackTimeoutMs, minRtoMs = 20, maxRetransmissions = 64, overdue } = options;
    if (!(ackTimeoutMs > 0) || !Number.isFinite(ackTimeoutMs)) throw new RangeError(`ackTimeoutMs must be a finite number > 0, got ${String(ackTimeoutMs)}`);
    if (!Number.isInteger(maxRetransmissions) || maxRetransmissions < 0) throw new RangeError(`maxRetransmissions must be an integer >= 0, got ${String(maxRetransmissions)}`);
    this.scheduler = scheduler;
    this.ackTimeoutMs = ackTimeoutMs;
    this.minRtoMs = Math.min(minRtoMs, ackTimeoutMs);
    this.maxRetransmissions = maxRetransmissions;
    this.overdue = overdue;
    // Per message: a direct round trip's figures halved (scaling by 2 is exact in floating point,
    // so a direct agent's estimate is what one estimator of whole round trips would give).
    // The floor is the whole wait's (a stalled answerer is one agent, however far), applied once scaled.
    this.team = new RttEstimator({ initialRtoMs: this.ackTimeoutMs / 3 / DIRECT_LEGS, minRtoMs: Number.MIN_VALUE, maxRtoMs: this.ackTimeoutMs / DIRECT_LEGS, granularityMs: 1 / DIRECT_LEGS });
  }

  /** An agent's own estimate (capped where it is used, by the budget of the route it is used for). */
  private estimator(): RttEstimator {
    return new RttEstimator({ initialRtoMs: this.ackTimeoutMs / 3, minRtoMs: this.minRtoMs, maxRtoMs: MAX_OWN_RTO_MS });
  }

  /**
   * The agent's retransmission timeout now: its own estimate, else the team's per message times
   * `legs`, the messages of its round trip (default: straight to it and back), else (nothing
   * measured yet) a third of `ackTimeoutMs` for a direct round trip, in proportion for a longer one.
   */
  rtoOf(agentId: string, legs = DIRECT_LEGS): number {
    const own = this.perAgent.get(agentId);
    if (own !== undefined && own.count > 0) return Math.min(this.budgetOf(legs), own.rto);
    if (this.team.count === 0) return (this.ackTimeoutMs / 3) * stretch(legs);
    return Math.min(this.budgetOf(legs), Math.max(this.minRtoMs, this.team.rto * legs));
  }

  /** How long an assignment over `legs` messages is waited for, retransmissions included (and the cap of each wait). */
  private budgetOf(legs: number): number {
    const perMessage = this.team.srtt;
    return perMessage === undefined ? this.ackTimeoutMs * stretch(legs) : Math.max(this.ackTimeoutMs, BUDGET_RTTS * perMessage * legs);
  }

  /** Round trips measured of the agent (Karn's rule: of assignments sent once). */
  samplesOf(agentId: string): number {
    return this.perAgent.get(agentId)?.count ?? 0;
  }

  /** Assignments waiting for their acknowledgement. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Retransmissions of the waiting assignment so far (0: sent once; undefined: not waiting). */
  retransmissionsOf(attemptKey: string): number | undefined {
    return this.pending.get(attemptKey)?.retransmissions;
  }

  /**
   * The assignment `attemptKey` went to `agentId`, its round trip `legs` messages long (its hops
   * there and the answer's one; default straight there and back): its wait starts (a wait it had
   * ends).
   */
  sent(attemptKey: string, agentId: string, legs = DIRECT_LEGS): void {
    if (!(Number.isInteger(legs) && legs >= DIRECT_LEGS)) throw new RangeError(`legs must be an integer >= ${DIRECT_LEGS}, got ${String(legs)}`);
    this.forget(attemptKey);
    const now = this.scheduler.now();
    const entry: Pending = { agentId, legs, firstSentAt: now, sentAt: now, sends: [now], retransmissions: 0, timer: undefined };
    this.pending.set(attemptKey, entry);
    this.arm(attemptKey, entry);
  }

  /**
   * Its wait ran out: true when it may be sent again (the caller does, now; the next wait, backed
   * off, starts), false when it is given up (forgotten: the caller charges whoever lost it).
   */
  retransmit(attemptKey: string): boolean {
    const entry = this.pending.get(attemptKey);
    if (entry === undefined) return false;
    const now = this.scheduler.now();
    const n = entry.retransmissions;
    if (n >= this.maxRetransmissions || (n >= MIN_RETRANSMISSIONS && now - entry.firstSentAt >= this.budgetOf(entry.legs))) {
      this.forget(attemptKey);
      return false;
    }
    entry.retransmissions = n + 1;
    entry.sentAt = now;
    entry.sends.push(now);
    this.arm(attemptKey, entry);
    return true;
  }

  /**
   * Its acknowledgement (or result) came: a round-trip sample of the copy it names (`copy`, the
   * send it answers), or, naming none, of an assignment sent once (Karn's rule: which copy an
   * answer of a retransmitted one answers is unknown); the wait ends. `heldMs`: the agent says it
   * held the assignment that long before this answer (its result or `done`, in place of an
   * acknowledgement): the sample is the trip less the hold, for that agent's estimate alone.
   */
  answered(attemptKey: string, copy?: number, heldMs?: number): void {
    const entry = this.pending.get(attemptKey);
    if (entry === undefined) return;
    const sentAt = copy === undefined ? (entry.retransmissions === 0 ? entry.sentAt : undefined) : entry.sends[copy];
    const elapsed = sentAt === undefined ? undefined : this.scheduler.now() - sentAt;
    // A hold longer than the whole trip is a false word: nothing is measured.
    if (elapsed !== undefined && (heldMs === undefined || heldMs <= elapsed)) {
      const rtt = elapsed - (heldMs ?? 0);
      let own = this.perAgent.get(entry.agentId);
      if (own === undefined) this.perAgent.set(entry.agentId, (own = this.estimator()));
      own.sample(rtt);
      // The agent's own word on its hold reaches its own estimate only: a false one misleads no one else.
      // Its word on the copy it answers reaches the team's, capped at the team's longest wait per
      // message: uncapped, an agent that answers its first copy just before the budget runs out
      // raised the budget, and with it its next answers, without bound (×3 a round), and every
      // agent's lost assignments went unnoticed for as long.
      if (heldMs === undefined) this.team.sample(Math.min(rtt / entry.legs, this.ackTimeoutMs / DIRECT_LEGS));
    }
    this.forget(attemptKey);
  }

  /** It no longer matters (revoked, requeued, ended): the wait ends, nothing is measured. */
  forget(attemptKey: string): void {
    const entry = this.pending.get(attemptKey);
    if (entry === undefined) return;
    entry.timer?.unsubscribe();
    this.pending.delete(attemptKey);
  }

  /** Every wait ends (the engine stops); the estimates are kept. */
  clear(): void {
    for (const entry of this.pending.values()) entry.timer?.unsubscribe();
    this.pending.clear();
  }

  private arm(attemptKey: string, entry: Pending): void {
    entry.timer?.unsubscribe();
    const delay = retransmitDelay(this.rtoOf(entry.agentId, entry.legs), entry.retransmissions, this.budgetOf(entry.legs));
    entry.timer = this.scheduler.schedule(() => {
      entry.timer = undefined;
      if (this.pending.get(attemptKey) === entry) this.overdue(attemptKey);
    }, delay);
  }
}
