/** Where a majority vote stands: `'won'` and `'lost'` are final, `'pending'` can still go either way. */
export type VoteOutcome = 'won' | 'pending' | 'lost';

/**
 * The outcome of a majority vote from counts alone: `voterCount` voters, of whom `yes` accepted and
 * `no` rejected (the rest have not voted). Quorum is `floor(voterCount / 2) + 1`; won once `yes`
 * reaches it, lost once the yes votes plus the missing ones cannot reach it any more, otherwise
 * pending. No voters at all is a won vote (nobody can object), as in etcd's `MajorityConfig`.
 * O(1): `consensusWindow` keeps the counts per proposal and calls this on every counted vote.
 *
 * @example
 * majorityOutcome(3, 2, 0); // 'won'
 * majorityOutcome(3, 1, 1); // 'pending'
 * majorityOutcome(2, 0, 1); // 'lost': with two voters one rejection is enough
 */
export function majorityOutcome(voterCount: number, yes: number, no: number): VoteOutcome {
  if (voterCount === 0) return 'won';
  const quorum = (voterCount >> 1) + 1;
  if (yes >= quorum) return 'won';
  // yes + missing = voterCount − no: what the yes side could still reach.
  return voterCount - no >= quorum ? 'pending' : 'lost';
}

/**
 * The outcome of a majority vote among `voters`, given the votes cast so far (`true` = yes).
 *
 * Quorum `q = floor(n/2) + 1` over the distinct voters: won if yes ≥ q, pending if yes + missing ≥ q,
 * else lost; an empty voter set is won. Votes of ids outside `voters` are ignored, and an id listed
 * twice in `voters` is one voter.
 *
 * @example
 * voteResult(['a', 'b', 'c'], new Map([['a', true], ['b', true]])); // 'won'
 * voteResult(['a', 'b', 'c'], new Map([['a', true], ['z', true]])); // 'pending': z is not a voter
 */
export function voteResult(voters: readonly string[], votes: ReadonlyMap<string, boolean>): VoteOutcome {
  const distinct = new Set(voters);
  let yes = 0;
  let no = 0;
  for (const voter of distinct) {
    const vote = votes.get(voter);
    if (vote === true) yes++;
    else if (vote === false) no++;
  }
  return majorityOutcome(distinct.size, yes, no);
}
