import fc from 'fast-check';
import { majorityOutcome, voteResult, type VoteOutcome } from '../../operators/voteResult.js';

/** Builds `voteResult`'s arguments from etcd's notation: voter ids and one of y / n / _ per voter. */
function etcdCase(cfg: readonly number[], votes: string): [string[], Map<string, boolean>] {
  const voters = cfg.map(String);
  const cast = new Map<string, boolean>();
  votes.split(',').forEach((v, i) => {
    if (v === 'y') cast.set(voters[i] as string, true);
    else if (v === 'n') cast.set(voters[i] as string, false);
  });
  return [voters, cast];
}

describe('voteResult', () => {
  // Reference data: etcd raft/quorum/testdata/majority_vote.txt (etcd-io/etcd at a854850c),
  // VoteWon / VotePending / VoteLost → 'won' / 'pending' / 'lost'.
  const etcd: [cfg: number[], votes: string, expected: VoteOutcome][] = [
    [[], '', 'won'],
    [[1], '_', 'pending'],
    [[1], 'n', 'lost'],
    [[123], 'y', 'won'],
    [[4, 8], '_,_', 'pending'],
    [[4, 8], 'n,_', 'lost'],
    [[4, 8], 'y,_', 'pending'],
    [[4, 8], 'n,y', 'lost'],
    [[4, 8], 'y,y', 'won'],
    [[2, 4, 7], '_,_,_', 'pending'],
    [[2, 4, 7], 'n,_,_', 'pending'],
    [[2, 4, 7], 'y,_,_', 'pending'],
    [[2, 4, 7], 'n,n,_', 'lost'],
    [[2, 4, 7], 'y,n,_', 'pending'],
    [[2, 4, 7], 'y,y,_', 'won'],
    [[2, 4, 7], 'y,y,n', 'won'],
    [[2, 4, 7], 'n,y,n', 'lost'],
    [[1, 2, 3, 4, 5, 6, 7], 'y,y,n,y,_,_,_', 'pending'],
    [[1, 2, 3, 4, 5, 6, 7], '_,y,y,_,n,y,n', 'pending'],
    [[1, 2, 3, 4, 5, 6, 7], 'y,y,n,y,_,n,y', 'won'],
    [[1, 2, 3, 4, 5, 6, 7], 'y,y,_,n,y,n,n', 'pending'],
    [[1, 2, 3, 4, 5, 6, 7], 'y,y,n,y,n,n,n', 'lost'],
  ];

  it.each(etcd)('etcd majority_vote: cfg=(%j) votes=(%s) → %s', (cfg, votes, expected) => {
    expect(voteResult(...etcdCase(cfg, votes))).toBe(expected);
  });

  const own: [name: string, voters: string[], votes: [string, boolean][], expected: VoteOutcome][] = [
    ['empty voter set is won, even with votes from others', [], [['x', false]], 'won'],
    ['non-voters’ yes votes are ignored', ['a', 'b', 'c'], [['a', true], ['x', true], ['y', true]], 'pending'],
    ['non-voters’ no votes are ignored', ['a', 'b', 'c'], [['a', true], ['b', true], ['x', false]], 'won'],
    ['only non-voters voted: nothing counted', ['a'], [['x', true]], 'pending'],
    ['a voter listed twice is one voter (2 voters, q = 2)', ['a', 'a', 'b'], [['a', true]], 'pending'],
    ['duplicates do not lower the quorum of losers either', ['a', 'b', 'b'], [['b', false]], 'lost'],
    ['four voters need three yes', ['a', 'b', 'c', 'd'], [['a', true], ['b', true]], 'pending'],
    ['four voters: two no lose', ['a', 'b', 'c', 'd'], [['a', false], ['b', false]], 'lost'],
    ['four voters: three yes win', ['a', 'b', 'c', 'd'], [['a', true], ['b', true], ['d', true]], 'won'],
  ];

  it.each(own)('%s', (_name, voters, votes, expected) => {
    expect(voteResult(voters, new Map(votes))).toBe(expected);
  });

  it('agrees with a direct count of the definition', () => {
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...ids), { maxLength: 9 }),
        fc.dictionary(fc.constantFrom(...ids, 'x', 'y'), fc.boolean()),
        (voters, record) => {
          const votes = new Map(Object.entries(record));
          const distinct = [...new Set(voters)];
          const n = distinct.length;
          const q = Math.floor(n / 2) + 1;
          const yes = distinct.filter(v => votes.get(v) === true).length;
          const missing = distinct.filter(v => !votes.has(v)).length;
          const expected = n === 0 || yes >= q ? 'won' : yes + missing >= q ? 'pending' : 'lost';
          expect(voteResult(voters, votes)).toBe(expected);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('majorityOutcome', () => {
  it.each([
    [0, 0, 0, 'won'],
    [1, 0, 0, 'pending'],
    [1, 1, 0, 'won'],
    [1, 0, 1, 'lost'],
    [2, 1, 0, 'pending'],
    [2, 0, 1, 'lost'],
    [3, 1, 1, 'pending'],
    [3, 2, 1, 'won'],
    [3, 0, 2, 'lost'],
    [5, 2, 2, 'pending'],
    [5, 3, 0, 'won'],
    [5, 2, 3, 'lost'],
    [6, 3, 3, 'lost'],
  ] as const)('%i voters, %i yes, %i no → %s', (n, yes, no, expected) => {
    expect(majorityOutcome(n, yes, no)).toBe(expected);
  });

  it('never goes back: more votes only settle, never unsettle', () => {
    fc.assert(
      fc.property(fc.nat(20), fc.nat(20), fc.nat(20), fc.boolean(), (n, y, k, accept) => {
        const yes = Math.min(y, n);
        const no = Math.min(k, n - yes);
        fc.pre(yes + no < n);
        const before = majorityOutcome(n, yes, no);
        const after = majorityOutcome(n, yes + (accept ? 1 : 0), no + (accept ? 0 : 1));
        if (before !== 'pending') expect(after).toBe(before);
      }),
      { numRuns: 200 },
    );
  });
});
