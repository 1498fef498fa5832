/** One voter's answer to one proposal. */
export interface Vote {
  readonly proposalId: string;
  readonly voterId: string;
  readonly accept: boolean;
}

/** How a proposal's window ended: won, lost, or still pending when the window closed. */
export type DecisionOutcome = 'accepted' | 'rejected' | 'timeout';

/** The one decision taken on a proposal. Voter lists are in membership order. */
export interface Decision {
  readonly proposalId: string;
  readonly outcome: DecisionOutcome;
  /** Current voters whose counted vote was yes. */
  readonly yes: string[];
  /** Current voters whose counted vote was no. */
  readonly no: string[];
  /** Current voters who had not voted. */
  readonly missing: string[];
  /** Scheduler time of the proposal's first vote. */
  readonly openedAt: number;
  /** Scheduler time of the decision; `openedAt + windowMs` for a timeout. */
  readonly decidedAt: number;
}
