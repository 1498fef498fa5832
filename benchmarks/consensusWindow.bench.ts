import { Subject, filter, first, groupBy, map, mergeMap, scan, takeUntil, timer, type Observable, type Subscription } from 'rxjs';
import { consensusWindow } from '../operators/consensusWindow.js';
import type { Vote } from '../operators/consensus.js';
import { VirtualScheduler } from '../streams/virtualScheduler.js';
import { rate, ratioRow, type BenchRow } from './harness.js';

const OPEN = 1000;
const VOTERS = Array.from({ length: 9 }, (_, i) => `voter-${i}`);
const GENERATIONS = 20;
const WINDOW_MS = 60_000;
const SUITE = 'consensusWindow, 1,000 open';

/**
 * 1,000 proposals always open: each slot receives one vote per round from the next voter; the
 * fifth yes (at the seventh vote) decides it, the two votes after are late, then the slot opens a
 * new proposal. Votes are built once, so the driver allocates nothing.
 */
const votes: Vote[] = [];
for (let g = 0; g < GENERATIONS; g++) {
  for (let v = 0; v < VOTERS.length; v++) {
    for (let slot = 0; slot < OPEN; slot++) {
      votes.push({ proposalId: `p-${g}-${slot}`, voterId: VOTERS[v] as string, accept: v % 3 !== 2 });
    }
  }
}

type Decider = (votes: Observable<Vote>, scheduler: VirtualScheduler) => Subscription;

const ours: Decider = (source, scheduler) => source.pipe(consensusWindow({ windowMs: WINDOW_MS, voters: VOTERS, scheduler })).subscribe();

/** The obvious RxJS version: a group per proposal counting distinct voters, closed by a timer. */
const naive: Decider = (source, scheduler) => {
  const quorum = Math.floor(VOTERS.length / 2) + 1;
  return source
    .pipe(
      groupBy(vote => vote.proposalId),
      mergeMap(group =>
        group.pipe(
          scan(
            (acc, vote) => {
              if (!acc.voted.has(vote.voterId)) {
                acc.voted.add(vote.voterId);
                if (vote.accept) acc.yes++;
                else acc.no++;
              }
              return acc;
            },
            { voted: new Set<string>(), yes: 0, no: 0 },
          ),
          filter(acc => acc.yes >= quorum || acc.no > VOTERS.length - quorum),
          first(),
          map(acc => (acc.yes >= quorum ? 'accepted' : 'rejected')),
          takeUntil(timer(WINDOW_MS, scheduler)),
        ),
      ),
    )
    .subscribe();
};

/** The least a decider must do: count each voter's first vote per proposal, decide at quorum. No window, no timers. */
const lean: Decider = source => {
  const quorum = Math.floor(VOTERS.length / 2) + 1;
  const open = new Map<string, { voted: Set<string>; yes: number; no: number; decided: boolean }>();
  return source.subscribe(vote => {
    let p = open.get(vote.proposalId);
    if (p === undefined) open.set(vote.proposalId, (p = { voted: new Set(), yes: 0, no: 0, decided: false }));
    if (p.decided || p.voted.has(vote.voterId)) return;
    p.voted.add(vote.voterId);
    if (vote.accept) p.yes++;
    else p.no++;
    if (p.yes >= quorum || p.no > VOTERS.length - quorum) p.decided = true;
  });
};

function throughput(decider: Decider): number {
  return rate(() => {
    const scheduler = new VirtualScheduler();
    const source = new Subject<Vote>();
    const subscription = decider(source, scheduler);
    for (let i = 0; i < votes.length; i++) {
      if (i % 100 === 0) scheduler.advanceBy(1);
      source.next(votes[i] as Vote);
    }
    subscription.unsubscribe();
    return votes.length;
  });
}

export default function bench(): BenchRow[] {
  const leanRate = throughput(lean);
  const naiveRate = throughput(naive);
  const oursRate = throughput(ours);
  return [
    { suite: SUITE, case: 'lean Map count (baseline)', value: leanRate, unit: 'votes/s' },
    { suite: SUITE, case: 'naive groupBy + scan + timer (baseline)', value: naiveRate, unit: 'votes/s' },
    ratioRow(SUITE, 'consensusWindow vs naive', oursRate, 'votes/s', 'naive', naiveRate),
    ratioRow(SUITE, 'consensusWindow vs lean', oursRate, 'votes/s', 'lean', leanRate),
  ];
}
