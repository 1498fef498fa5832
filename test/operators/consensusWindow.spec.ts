import fc from 'fast-check';
import { marbles } from 'rxjs-marbles/jest';
import { Observable, Subject, of, take, type SchedulerLike } from 'rxjs';
import {
  consensusWindow,
  type Decision,
  type DecisionOutcome,
  type Vote,
} from '../../operators/consensusWindow.js';
import { voteResult } from '../../operators/voteResult.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const vote = (proposalId: string, voterId: string, accept: boolean): Vote => ({ proposalId, voterId, accept });

function decision(
  proposalId: string,
  outcome: DecisionOutcome,
  [yes, no, missing]: [string[], string[], string[]],
  openedAt: number,
  decidedAt: number,
): Decision {
  return { proposalId, outcome, yes, no, missing, openedAt, decidedAt };
}

const abc = ['a', 'b', 'c'];

describe('consensusWindow', () => {
  describe('decisions', () => {
    it('accepts the moment a majority of voters said yes', marbles(m => {
      const votes = m.hot('    -A-B-C-|', { A: vote('p1', 'a', true), B: vote('p1', 'b', true), C: vote('p1', 'c', false) });
      const expected = '       ---Y---|';
      const windowMs = m.time('----------|');
      m.expect(votes.pipe(consensusWindow({ windowMs, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'b'], [], ['c']], 1, 3),
      });
    }));

    it('rejects the moment a majority can no longer be reached', marbles(m => {
      const votes = m.hot('    -A-B-|', { A: vote('p1', 'a', false), B: vote('p1', 'c', false) });
      const expected = '       ---R-|';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        R: decision('p1', 'rejected', [[], ['a', 'c'], ['b']], 1, 3),
      });
    }));

    it('with two voters one rejection is enough', marbles(m => {
      const votes = m.hot('    -A-', { A: vote('p1', 'b', false) });
      const expected = '       -R-';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters: ['a', 'b'], scheduler: m.scheduler }))).toBeObservable(expected, {
        R: decision('p1', 'rejected', [[], ['b'], ['a']], 1, 1),
      });
    }));

    it('times out at openedAt + windowMs when still pending', marbles(m => {
      const votes = m.hot('    -A-B------', { A: vote('p1', 'a', true), B: vote('p1', 'b', false) });
      const windowMs = m.time('-----|');
      const expected = '       ------T---';
      m.expect(votes.pipe(consensusWindow({ windowMs, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        T: decision('p1', 'timeout', [['a'], ['b'], ['c']], 1, 6),
      });
    }));

    it('a vote exactly at openedAt + windowMs is too late', marbles(m => {
      const votes = m.hot('    -A----B---', { A: vote('p1', 'a', true), B: vote('p1', 'b', true) });
      const windowMs = m.time('-----|');
      const expected = '       ------T---';
      m.expect(votes.pipe(consensusWindow({ windowMs, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        T: decision('p1', 'timeout', [['a'], [], ['b', 'c']], 1, 6),
      });
    }));

    it('counts a voter’s first vote and ignores repeats', marbles(m => {
      const votes = m.hot('    -ABC-', { A: vote('p1', 'a', true), B: vote('p1', 'a', false), C: vote('p1', 'b', true) });
      const expected = '       ---Y-';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'b'], [], ['c']], 1, 3),
      });
    }));

    it('ignores votes after the decision; a vote after windowMs more opens a new window', marbles(m => {
      const votes = m.hot('    -ABC-D-----', {
        A: vote('p1', 'a', true),
        B: vote('p1', 'b', true),
        C: vote('p1', 'c', false), // decided at 2: ignored
        D: vote('p1', 'c', true), //  2 + windowMs: the id is forgotten, a new window opens
      });
      const windowMs = m.time('---|');
      const expected = '       --Y-----T--';
      m.expect(votes.pipe(consensusWindow({ windowMs, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'b'], [], ['c']], 1, 2),
        T: decision('p1', 'timeout', [['c'], [], ['a', 'b']], 5, 8),
      });
    }));

    it('keeps proposals apart and times them out in opening order', marbles(m => {
      const votes = m.hot('    -AB-C---------', {
        A: vote('p1', 'a', true),
        B: vote('p2', 'a', false),
        C: vote('p3', 'b', true),
      });
      const windowMs = m.time('-----|');
      const expected = '       ------TU-V----';
      m.expect(votes.pipe(consensusWindow({ windowMs, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        T: decision('p1', 'timeout', [['a'], [], ['b', 'c']], 1, 6),
        U: decision('p2', 'timeout', [[], ['a'], ['b', 'c']], 2, 7),
        V: decision('p3', 'timeout', [['b'], [], ['a', 'c']], 4, 9),
      });
    }));

    it('an empty voter set accepts at the first vote', marbles(m => {
      const votes = m.hot('    -A-B-', { A: vote('p1', 'x', false), B: vote('p1', 'y', false) });
      const expected = '       -Y---';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters: [], scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [[], [], []], 1, 1),
      });
    }));

    it('a voter listed twice is one voter', marbles(m => {
      const votes = m.hot('    -A-B-', { A: vote('p1', 'a', true), B: vote('p1', 'b', true) });
      const expected = '       ---Y-';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters: ['a', 'a', 'b', 'c'], scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'b'], [], ['c']], 1, 3),
      });
    }));
  });

  describe('live membership', () => {
    it('keeps non-voters’ votes and counts them once the voter joins', marbles(m => {
      const voters = m.cold('  m----n----', { m: abc, n: ['a', 'c', 'd'] });
      const votes = m.hot('    -AD-------', { A: vote('p1', 'a', true), D: vote('p1', 'd', true) });
      const expected = '       -----Y----';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'd'], [], ['c']], 1, 5),
      });
    }));

    it('re-evaluates every open proposal when membership changes', marbles(m => {
      const voters = m.cold('  m---n----', { m: ['a', 'b', 'c', 'd', 'e'], n: ['a', 'b'] });
      const votes = m.hot('    -ABC-----', {
        A: vote('p1', 'a', true),
        B: vote('p1', 'b', true),
        C: vote('p2', 'a', false),
      });
      const expected = '       ----(YR)-';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'b'], [], []], 1, 4),
        R: decision('p2', 'rejected', [[], ['a'], ['b']], 3, 4),
      });
    }));

    it('until membership is known nothing is decided; elapsed windows are decided when it arrives', marbles(m => {
      const voters = m.cold('  --------m----', { m: abc });
      const votes = m.hot('    -AX--P-L-----', {
        A: vote('p1', 'a', true),
        X: vote('p1', 'b', true), // a majority, but of an unknown membership
        P: vote('p2', 'c', true),
        L: vote('p1', 'c', false), // after p1's window: not counted
      });
      const windowMs = m.time('-----|');
      const expected = '       --------Y-T--';
      m.expect(votes.pipe(consensusWindow({ windowMs, voters, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'b'], [], ['c']], 1, 8),
        T: decision('p2', 'timeout', [['c'], [], ['a', 'b']], 5, 10),
      });
    }));

    it('a window that elapsed with unknown membership and is still pending times out on arrival', marbles(m => {
      const voters = m.cold('  -------m-', { m: abc });
      const votes = m.hot('    -A-------', { A: vote('p1', 'a', true) });
      const expected = '       -------T-';
      m.expect(votes.pipe(consensusWindow({ windowMs: 3, voters, scheduler: m.scheduler }))).toBeObservable(expected, {
        T: decision('p1', 'timeout', [['a'], [], ['b', 'c']], 1, 7),
      });
    }));

    it('keeps the last membership when voters completes', marbles(m => {
      const voters = m.cold('  m|', { m: ['a'] });
      const votes = m.hot('    ---A-', { A: vote('p1', 'a', true) });
      const expected = '       ---Y-';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a'], [], []], 3, 3),
      });
      m.expect(voters).toHaveSubscriptions('^!');
    }));

    it('voters completing before any membership is an error', marbles(m => {
      const voters = m.cold('  --|');
      const votes = m.hot('    -A---', { A: vote('p1', 'a', true) });
      const expected = '       --#';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters, scheduler: m.scheduler }))).toBeObservable(
        expected,
        undefined,
        new Error('consensusWindow: voters completed before emitting a membership'),
      );
    }));

    it('a membership that is not a list of ids is an error', () => {
      const scheduler = new VirtualScheduler();
      const voters = new Subject<readonly string[]>();
      const errors: unknown[] = [];
      new Subject<Vote>().pipe(consensusWindow({ windowMs: 10, voters, scheduler })).subscribe({ error: e => errors.push(e) });
      voters.next([1, 2] as unknown as string[]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(RangeError);
      expect(String(errors[0])).toMatch(/voters/);
      expect(voters.observed).toBe(false);
    });

    it('a membership error errors the output and releases the votes', marbles(m => {
      const voters = m.cold('  m--#', { m: abc }, new Error('membership down'));
      const votes = m.hot('    -A----', { A: vote('p1', 'a', true) });
      const expected = '       ---#';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters, scheduler: m.scheduler }))).toBeObservable(expected, undefined, new Error('membership down'));
      m.expect(votes).toHaveSubscriptions('^--!');
    }));

    it('releases the membership subscription on unsubscribe', marbles(m => {
      const voters = m.cold('  m--------', { m: abc });
      const votes = m.hot('    -A-------', { A: vote('p1', 'a', true) });
      const unsub = '          ^---!';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters, scheduler: m.scheduler })), unsub).toBeObservable('-----');
      m.expect(voters).toHaveSubscriptions('^---!');
    }));
  });

  describe('completion and errors', () => {
    it('completes when the votes complete and every open proposal is decided', marbles(m => {
      const votes = m.hot('    -A-|---', { A: vote('p1', 'a', true) });
      const windowMs = m.time('-----|');
      const expected = '       ------(T|)';
      m.expect(votes.pipe(consensusWindow({ windowMs, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        T: decision('p1', 'timeout', [['a'], [], ['b', 'c']], 1, 6),
      });
    }));

    it('completes at once when nothing is open', marbles(m => {
      const votes = m.hot('    -AB|', { A: vote('p1', 'a', true), B: vote('p1', 'b', true) });
      const expected = '       --Y|';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a', 'b'], [], ['c']], 1, 2),
      });
    }));

    it('a membership change after the votes completed still decides', marbles(m => {
      const voters = m.cold('  m---n---', { m: abc, n: ['a'] });
      const votes = m.hot('    -A|-----', { A: vote('p1', 'a', true) });
      const expected = '       ----(Y|)';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters, scheduler: m.scheduler }))).toBeObservable(expected, {
        Y: decision('p1', 'accepted', [['a'], [], []], 1, 4),
      });
      m.expect(voters).toHaveSubscriptions('^---!');
    }));

    it('passes a source error through', marbles(m => {
      const votes = m.hot('    -A#', { A: vote('p1', 'a', true) }, new Error('transport'));
      const expected = '       --#';
      m.expect(votes.pipe(consensusWindow({ windowMs: 10, voters: abc, scheduler: m.scheduler }))).toBeObservable(expected, undefined, new Error('transport'));
    }));

    // consensusWindow takes no user callback, so there is no throwing-callback case.
  });

  describe('resources', () => {
    it('runs one timer for many open proposals and releases it on unsubscribe', () => {
      const scheduler = new VirtualScheduler();
      const votes = new Subject<Vote>();
      const out: Decision[] = [];
      const sub = votes.pipe(consensusWindow({ windowMs: 1000, voters: abc, scheduler })).subscribe(d => out.push(d));
      for (let i = 0; i < 1000; i++) {
        votes.next(vote(`p${i}`, 'a', true));
        if (i % 100 === 0) scheduler.advanceBy(1);
      }
      expect(scheduler.pending).toBe(1);
      sub.unsubscribe();
      expect(scheduler.pending).toBe(0);
      expect(votes.observed).toBe(false);
      expect(out).toEqual([]);
    });

    it('drops its timer once every decision is made and forgotten', () => {
      const scheduler = new VirtualScheduler();
      const votes = new Subject<Vote>();
      const out: Decision[] = [];
      votes.pipe(consensusWindow({ windowMs: 10, voters: ['a'], scheduler })).subscribe(d => out.push(d));
      votes.next(vote('p1', 'a', true));
      votes.next(vote('p2', 'b', true));
      expect(out.map(d => d.outcome)).toEqual(['accepted']);
      scheduler.advanceBy(10);
      expect(out.map(d => d.outcome)).toEqual(['accepted', 'timeout']);
      expect(scheduler.pending).toBe(1); // remembers p2 until 20
      scheduler.advanceBy(10);
      expect(scheduler.pending).toBe(0);
      votes.next(vote('p1', 'a', true)); // forgotten: a new window, decided at once
      expect(out.map(d => [d.proposalId, d.outcome, d.openedAt])).toEqual([
        ['p1', 'accepted', 0],
        ['p2', 'timeout', 0],
        ['p1', 'accepted', 20],
      ]);
    });

    it('stops a synchronous source when unsubscribed downstream', () => {
      let sent = 0;
      const endless = new Observable<Vote>(subscriber => {
        for (let i = 0; !subscriber.closed && i < 1e6; i++) {
          sent++;
          subscriber.next(vote(`p${i}`, 'a', true));
        }
      });
      const out: Decision[] = [];
      endless.pipe(consensusWindow({ windowMs: 10, voters: ['a'], scheduler: new VirtualScheduler() }), take(3)).subscribe(d => out.push(d));
      expect(out).toHaveLength(3);
      expect(sent).toBe(3);
    });

    it('ignores a vote for the just-decided proposal sent from the subscriber', () => {
      const scheduler = new VirtualScheduler();
      const votes = new Subject<Vote>();
      const out: Decision[] = [];
      votes.pipe(consensusWindow({ windowMs: 10, voters: abc, scheduler })).subscribe(d => {
        out.push(d);
        votes.next(vote(d.proposalId, 'c', false));
      });
      votes.next(vote('p1', 'a', true));
      votes.next(vote('p1', 'b', true));
      scheduler.flush();
      expect(out).toEqual([decision('p1', 'accepted', [['a', 'b'], [], ['c']], 0, 0)]);
    });
  });

  describe('options', () => {
    it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY, '5'])('rejects windowMs %s', windowMs => {
      expect(() => consensusWindow({ windowMs: windowMs as number, voters: abc })).toThrow(RangeError);
      expect(() => consensusWindow({ windowMs: windowMs as number, voters: abc })).toThrow(/windowMs/);
    });

    it.each([['not a list'], [[1, 2]], [undefined], [null]])('rejects voters %j', voters => {
      expect(() => consensusWindow({ windowMs: 10, voters: voters as unknown as string[] })).toThrow(RangeError);
      expect(() => consensusWindow({ windowMs: 10, voters: voters as unknown as string[] })).toThrow(/voters/);
    });

    it('rejects a scheduler that is not one', () => {
      expect(() => consensusWindow({ windowMs: 10, voters: abc, scheduler: {} as SchedulerLike })).toThrow(/scheduler/);
    });

    it('is typed through pipe', () => {
      const out = of(vote('p', 'a', true)).pipe(consensusWindow({ windowMs: 10, voters: of(abc) }));
      expectTypeOf(out).toEqualTypeOf<Observable<Decision>>();
      // Compiled, not run.
      const rejected = () => {
        // @ts-expect-error windowMs is required
        consensusWindow({ voters: abc });
        // @ts-expect-error voters are ids
        consensusWindow({ windowMs: 10, voters: [1] });
        // @ts-expect-error only votes go in
        of(1).pipe(consensusWindow({ windowMs: 10, voters: abc }));
      };
      expect(rejected).toBeTypeOf('function');
    });
  });

  describe('property', () => {
    type Mode = 'static' | 'live' | 'late';
    type Entry =
      | { kind: 'members'; at: number; voters: readonly string[] }
      | { kind: 'vote'; at: number; vote: Vote }
      | { kind: 'decision'; at: number; decision: Decision };

    const pool = ['a', 'b', 'c', 'd', 'e'];
    const even = (max: number) => fc.integer({ min: 0, max: max / 2 }).map(k => 2 * k);
    const voterList = fc.array(fc.constantFrom(...pool), { maxLength: 6 });

    // Vote and membership times are even and windowMs odd, so a window never ends at the instant of an
    // input: the tie (vote at the deadline) is covered by a marble test above.
    it('one decision per window, at the moment of quorum, never late, agreeing with voteResult', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 7 }).map(k => 2 * k + 1),
          fc.constantFrom<Mode>('static', 'live', 'late'),
          voterList,
          even(40).map(t => t + 2),
          fc.array(fc.record({ at: even(60), voters: voterList }), { maxLength: 4 }),
          fc.array(
            fc.record({
              at: even(60),
              proposalId: fc.constantFrom('p1', 'p2', 'p3', 'p4'),
              voterId: fc.constantFrom(...pool, 'x'),
              accept: fc.boolean(),
            }),
            { maxLength: 40 },
          ),
          (windowMs, mode, initial, lateAt, changes, plannedVotes) => {
            const scheduler = new VirtualScheduler();
            const votes$ = new Subject<Vote>();
            const members$ = new Subject<readonly string[]>();
            const log: Entry[] = [];
            const emit = (voters: readonly string[]) => {
              log.push({ kind: 'members', at: scheduler.now(), voters: [...new Set(voters)] });
              members$.next(voters);
            };
            if (mode !== 'static') {
              const firstAt = mode === 'live' ? 0 : lateAt;
              scheduler.schedule(() => emit(initial), firstAt);
              for (const c of changes) if (c.at > firstAt) scheduler.schedule(() => emit(c.voters), c.at);
            }
            for (const v of [...plannedVotes].sort((x, y) => x.at - y.at)) {
              const { at, ...cast } = v;
              scheduler.schedule(() => {
                log.push({ kind: 'vote', at, vote: cast });
                votes$.next(cast);
              }, at);
            }
            scheduler.schedule(() => votes$.complete(), 62);

            let completed = false;
            votes$
              .pipe(consensusWindow({ windowMs, voters: mode === 'static' ? initial : members$, scheduler }))
              .subscribe({
                next: decision => log.push({ kind: 'decision', at: scheduler.now(), decision }),
                complete: () => (completed = true),
              });
            scheduler.flush();
            expect(completed).toBe(true);
            expect(scheduler.pending).toBe(0);

            replay(log, windowMs, mode === 'static' ? [...new Set(initial)] : undefined);
          },
        ),
        { numRuns: 200 },
      );
    });

    type Incarnation =
      | { phase: 'open'; openedAt: number; counted: Map<string, boolean>; overdue: boolean }
      | { phase: 'remembered'; until: number };

    /** Checks a run's log against the contract, event by event. */
    function replay(log: readonly Entry[], windowMs: number, staticVoters: readonly string[] | undefined): void {
      let members = staticVoters;
      let firstMembersAt = staticVoters === undefined ? undefined : -Infinity;
      const state = new Map<string, Incarnation>();
      const mustDecide = new Set<string>();
      const settled = (p: Incarnation & { phase: 'open' }) =>
        members !== undefined && (p.overdue || voteResult(members, p.counted) !== 'pending');

      const closeWindows = (now: number) => {
        for (const p of state.values()) {
          if (p.phase !== 'open' || p.openedAt + windowMs > now) continue;
          // With known membership the timeout must already have been emitted.
          expect(members).toBeUndefined();
          p.overdue = true;
        }
      };

      for (const entry of log) {
        if (entry.kind !== 'decision') {
          expect([...mustDecide]).toEqual([]); // decided the moment it settled
          closeWindows(entry.at);
        }
        if (entry.kind === 'members') {
          if (members === undefined) firstMembersAt = entry.at;
          members = entry.voters;
          for (const [id, p] of state) if (p.phase === 'open' && settled(p)) mustDecide.add(id);
        } else if (entry.kind === 'vote') {
          const { proposalId, voterId, accept } = entry.vote;
          let p = state.get(proposalId);
          if (p === undefined || (p.phase === 'remembered' && entry.at >= p.until)) {
            p = { phase: 'open', openedAt: entry.at, counted: new Map(), overdue: false };
            state.set(proposalId, p);
          }
          if (p.phase === 'open' && !p.overdue && !p.counted.has(voterId)) p.counted.set(voterId, accept);
          if (p.phase === 'open' && settled(p)) mustDecide.add(proposalId);
        } else {
          const d = entry.decision;
          const p = state.get(d.proposalId);
          expect(p?.phase).toBe('open');
          if (p?.phase !== 'open' || members === undefined) throw new Error('decision without an open window or membership');
          expect(d.openedAt).toBe(p.openedAt);
          expect(d.decidedAt).toBe(entry.at);
          const voters = members;
          expect(d.yes).toEqual(voters.filter(v => p.counted.get(v) === true));
          expect(d.no).toEqual(voters.filter(v => p.counted.get(v) === false));
          expect(d.missing).toEqual(voters.filter(v => !p.counted.has(v)));
          const result = voteResult(voters, p.counted);
          expect(d.outcome).toBe(result === 'won' ? 'accepted' : result === 'lost' ? 'rejected' : 'timeout');
          if (d.outcome === 'accepted' && voters.length > 0) {
            expect(d.yes.length).toBeGreaterThanOrEqual(Math.floor(voters.length / 2) + 1);
          }
          if (p.overdue) {
            // The only late decision: the window elapsed before any membership was known.
            expect(d.decidedAt).toBe(firstMembersAt);
            expect(d.decidedAt).toBeGreaterThan(p.openedAt + windowMs);
          } else if (d.outcome === 'timeout') {
            expect(d.decidedAt).toBe(p.openedAt + windowMs);
          } else {
            expect(d.decidedAt).toBeLessThan(p.openedAt + windowMs);
          }
          expect(mustDecide.has(d.proposalId)).toBe(d.outcome !== 'timeout' || p.overdue);
          mustDecide.delete(d.proposalId);
          state.set(d.proposalId, { phase: 'remembered', until: d.decidedAt + windowMs });
        }
      }
      expect([...mustDecide]).toEqual([]);
      expect([...state.values()].filter(p => p.phase === 'open')).toEqual([]);
    }
  });
});
