import type { Decision, DecisionOutcome, Vote } from '../consensus.js';
import { majorityOutcome } from '../voteResult.js';
import { IndexedHeap, type HeapNode } from './heap.js';

const OPEN = 0;
/** Window elapsed while membership was unknown: takes no more votes, decided once membership is known. */
const OVERDUE = 1;
/** Decided; kept without its votes until `at`, so that late votes are ignored. */
const DECIDED = 2;

interface Proposal extends HeapNode {
  readonly id: string;
  readonly openedAt: number;
  /** Tie-break for equal deadlines: windows close in opening order. */
  readonly seq: number;
  state: typeof OPEN | typeof OVERDUE | typeof DECIDED;
  /** Window deadline while open; the time to forget the id once decided. */
  at: number;
  /** First vote of each voter, members or not; dropped at the decision. */
  votes: Map<string, boolean> | undefined;
  /** Counted votes: those of current members. */
  yes: number;
  no: number;
}

/**
 * The state behind `consensusWindow`, without subscriptions or timers: proposals by id, their votes
 * and counts, and one queue of deadlines (window ends and forget times) ordered by time. The caller
 * passes the time in, arms one timer at `nextAt()` and calls `expire(now)` when it fires.
 *
 * Decisions go to `emit` synchronously, always after the table's state is updated, so `emit` may
 * re-enter (`vote`, `setMembers`) or `clear()` the table (downstream unsubscribing): loops then stop.
 */
export class ProposalTable {
  private readonly proposals = new Map<string, Proposal>();
  private readonly queue = new IndexedHeap<Proposal>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
  private members: ReadonlySet<string> | undefined;
  private remember = true;
  private nextSeq = 0;
  /** Open or overdue proposals: those still owed a decision. */
  openCount = 0;

  constructor(
    private readonly windowMs: number,
    members: readonly string[] | undefined,
    private readonly emit: (decision: Decision) => void,
  ) {
    this.members = members === undefined ? undefined : new Set(members);
  }

  /** The earliest deadline (a window end or a forget time), if any. */
  nextAt(): number | undefined {
    return this.queue.peek()?.at;
  }

  /** Closes windows and forgets decided ids due at or before `now`. Safe to call at any time. */
  expire(now: number): void {
    const queue = this.queue;
    for (let p = queue.peek(); p !== undefined && p.at <= now; p = queue.peek()) {
      queue.pop();
      if (p.state === DECIDED) this.proposals.delete(p.id);
      else if (this.members === undefined) p.state = OVERDUE;
      else this.decide(p, 'timeout', p.at);
    }
  }

  /** O(1) amortised: map look-ups and two counters. Call `expire(now)` first. */
  vote({ proposalId, voterId, accept }: Vote, now: number): void {
    let p = this.proposals.get(proposalId);
    if (p === undefined) {
      p = { heapIndex: -1, id: proposalId, openedAt: now, seq: this.nextSeq++, state: OPEN, at: now + this.windowMs, votes: new Map(), yes: 0, no: 0 };
      this.proposals.set(proposalId, p);
      this.queue.push(p);
      this.openCount++;
    } else if (p.state !== OPEN) {
      return; // a late vote, or the window is over while membership is unknown
    }
    const votes = p.votes as Map<string, boolean>;
    if (votes.has(voterId)) return;
    votes.set(voterId, accept);
    const members = this.members;
    if (members === undefined) return;
    if (members.has(voterId)) {
      if (accept) p.yes++;
      else p.no++;
    }
    this.settle(p, now, false);
  }

  /** Replaces the membership and re-evaluates every open proposal: O(proposals × their votes). */
  setMembers(list: readonly string[], now: number): void {
    const members = new Set(list);
    this.members = members;
    for (const p of this.proposals.values()) {
      if (p.state === DECIDED) continue;
      let yes = 0;
      let no = 0;
      for (const [voter, accept] of p.votes as Map<string, boolean>) {
        if (!members.has(voter)) continue;
        if (accept) yes++;
        else no++;
      }
      p.yes = yes;
      p.no = no;
      this.settle(p, now, p.state === OVERDUE);
      if (this.members !== members) return; // `emit` set a newer membership, which re-evaluated all
    }
  }

  /** No more votes will come: forget decided ids now and from now on. */
  stopRemembering(): void {
    this.remember = false;
    for (const p of this.proposals.values()) {
      if (p.state !== DECIDED) continue;
      this.proposals.delete(p.id);
      this.queue.remove(p);
    }
  }

  clear(): void {
    this.queue.clear();
    this.proposals.clear();
    this.openCount = 0;
  }

  /** Decides `p` if its counted votes settle it; an `overdue` one that is still pending times out. */
  private settle(p: Proposal, now: number, overdue: boolean): void {
    const outcome = majorityOutcome((this.members as ReadonlySet<string>).size, p.yes, p.no);
    if (outcome === 'won') this.decide(p, 'accepted', now);
    else if (outcome === 'lost') this.decide(p, 'rejected', now);
    else if (overdue) this.decide(p, 'timeout', now);
  }

  private decide(p: Proposal, outcome: DecisionOutcome, decidedAt: number): void {
    const votes = p.votes as Map<string, boolean>;
    const yes: string[] = [];
    const no: string[] = [];
    const missing: string[] = [];
    for (const voter of this.members as ReadonlySet<string>) {
      const vote = votes.get(voter);
      (vote === undefined ? missing : vote ? yes : no).push(voter);
    }
    p.state = DECIDED;
    p.votes = undefined;
    this.openCount--;
    if (this.remember) {
      p.at = decidedAt + this.windowMs;
      if (p.heapIndex >= 0) this.queue.update(p);
      else this.queue.push(p);
    } else {
      this.proposals.delete(p.id);
      this.queue.remove(p);
    }
    this.emit({ proposalId: p.id, outcome, yes, no, missing, openedAt: p.openedAt, decidedAt });
  }
}
