import { AckTracker } from '../../src/ackTracker.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

function setup(options: { ackTimeoutMs?: number; maxRetransmissions?: number } = {}) {
  const scheduler = new VirtualScheduler();
  const overdue: Array<[string, number]> = [];
  const acks = new AckTracker({ scheduler, ackTimeoutMs: options.ackTimeoutMs ?? 3000, ...(options.maxRetransmissions === undefined ? {} : { maxRetransmissions: options.maxRetransmissions }), overdue: k => overdue.push([k, scheduler.now()]) });
  /** Retransmits every time it is overdue, until it is given up; the instants it was overdue. */
  const retransmitAll = (k: string): number[] => {
    const at: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const before = overdue.length;
      scheduler.advanceBy(1);
      if (overdue.length === before) continue;
      at.push(scheduler.now());
      if (!acks.retransmit(k)) return at;
    }
    return at;
  };
  return { scheduler, acks, overdue, retransmitAll };
}

describe('AckTracker', () => {
  it('waits a third of ackTimeoutMs before anything was measured, then the agent’s own estimate, else the team’s', () => {
    const { scheduler, acks } = setup();
    expect(acks.rtoOf('a')).toBe(1000);
    acks.sent('k1', 'a');
    scheduler.advanceBy(100);
    acks.answered('k1'); // srtt 100, rttvar 50
    expect([acks.rtoOf('a'), acks.rtoOf('b'), acks.samplesOf('a'), acks.samplesOf('b')]).toEqual([300, 300, 1, 0]);
    acks.sent('k2', 'b');
    scheduler.advanceBy(10);
    acks.answered('k2');
    expect(acks.rtoOf('b')).toBe(30); // its own: srtt 10, rttvar 5
    expect(acks.rtoOf('a')).toBe(300);
    expect(acks.waiting).toBe(0);
  });

  it('gives an agent not yet measured the team’s estimate per message times the legs of its round trip', () => {
    const { scheduler, acks } = setup();
    // Before any sample: a third of ackTimeoutMs straight there and back, in proportion for more legs.
    expect([acks.rtoOf('far'), acks.rtoOf('far', 2), acks.rtoOf('far', 6)]).toEqual([1000, 1000, 3000]);
    acks.sent('k1', 'near'); // straight: 2 legs
    scheduler.advanceBy(10);
    acks.answered('k1'); // 5 ms a message: srtt 5, rttvar 2.5 per message
    expect(acks.rtoOf('near')).toBe(30); // its own: srtt 10, rttvar 5
    expect([acks.rtoOf('far'), acks.rtoOf('far', 6), acks.rtoOf('far', 1001)]).toEqual([30, 90, 15_015]);
    // A far agent's own sample is its own, whatever its length.
    acks.sent('k2', 'far', 6);
    scheduler.advanceBy(30);
    acks.answered('k2');
    expect(acks.rtoOf('far', 6)).toBe(90); // srtt 30, rttvar 15
    expect(() => acks.sent('k3', 'far', 1)).toThrow(/legs must be an integer >= 2, got 1/);
  });

  it('stretches the wait and the give-up budget with the legs: a round trip longer than ackTimeoutMs through a long route is waited for, not given up', () => {
    const { scheduler, acks, overdue } = setup({ ackTimeoutMs: 3000 });
    // 4,000 hops of 2 ms out and one back: 8 s a round trip, measured once by a near agent at 2 ms a message.
    acks.sent('near', 'near');
    scheduler.advanceBy(4);
    acks.answered('near');
    acks.sent('k', 'far', 4001);
    expect(acks.rtoOf('far', 4001)).toBe(4001 * 6); // per message: srtt 2, rttvar 1 → 6; the budget 3 × 2 × 4,001 ms
    scheduler.advanceBy(8002);
    expect(overdue).toEqual([]); // not sent again before it could have arrived
    acks.answered('k');
    expect(acks.samplesOf('far')).toBe(1);
    // Straight to an agent the bounds are ackTimeoutMs's, as ever: given up after 3 s and two retransmissions.
    const { acks: direct, retransmitAll } = setup({ ackTimeoutMs: 3000 });
    direct.sent('d', 'x');
    expect(retransmitAll('d')).toEqual([1000, 2000, 3000]);
  });

  it('an answer that says the agent held the assignment heldMs measures the trip less the hold, for that agent alone; a hold longer than the trip measures nothing', () => {
    const { scheduler, acks } = setup();
    acks.sent('k1', 'a');
    scheduler.advanceBy(110); // 100 ms of work, 10 of round trip
    acks.answered('k1', undefined, 100);
    expect([acks.rtoOf('a'), acks.samplesOf('a')]).toEqual([30, 1]); // srtt 10, rttvar 5
    expect(acks.rtoOf('b')).toBe(1000); // the team's estimate: nothing yet (an agent's word reaches its own estimate only)
    acks.sent('k2', 'c');
    scheduler.advanceBy(50);
    acks.answered('k2', undefined, 60);
    expect([acks.samplesOf('c'), acks.waiting]).toEqual([0, 0]);
  });

  it('takes no sample from a retransmitted assignment (Karn) nor from one forgotten', () => {
    const { scheduler, acks } = setup();
    acks.sent('k', 'a');
    scheduler.advanceBy(1000);
    expect(acks.retransmit('k')).toBe(true);
    scheduler.advanceBy(5);
    acks.answered('k');
    acks.sent('j', 'a');
    scheduler.advanceBy(7);
    acks.forget('j');
    expect(acks.samplesOf('a')).toBe(0);
  });

  it('measures the copy an answer names, retransmitted or not: a round trip that jumped past the timeout is learned', () => {
    const { scheduler, acks } = setup();
    acks.sent('k0', 'a');
    scheduler.advanceBy(20);
    acks.answered('k0'); // srtt 20, rttvar 10: rto 60
    expect(acks.rtoOf('a')).toBe(60);
    // The route now takes 500 ms a round trip: the assignment is sent again at 60, 120, …
    acks.sent('k1', 'a');
    scheduler.advanceBy(60);
    expect(acks.retransmit('k1')).toBe(true); // copy 1 at 60
    scheduler.advanceBy(60);
    expect(acks.retransmit('k1')).toBe(true); // copy 2 at 120
    scheduler.advanceBy(500 - 120);
    acks.answered('k1', 0); // the first copy's answer, 500 ms after it went
    expect(acks.samplesOf('a')).toBe(2);
    expect(acks.rtoOf('a')).toBe(Math.round(0.875 * 20 + 0.125 * 500 + 4 * (0.75 * 10 + 0.25 * 480)));
    // Without a copy named, a retransmitted one's answer is ambiguous: no sample (Karn).
    acks.sent('k2', 'a');
    scheduler.advanceBy(acks.rtoOf('a'));
    expect(acks.retransmit('k2')).toBe(true);
    acks.answered('k2');
    expect(acks.samplesOf('a')).toBe(2);
  });

  it('retransmits at the rto, six times, then backs off to 8 rto, and gives up once ackTimeoutMs has passed', () => {
    const { scheduler, acks, retransmitAll } = setup();
    acks.sent('m', 'a');
    scheduler.advanceBy(20);
    acks.answered('m'); // rto 60
    acks.sent('k', 'a');
    const sentAt = scheduler.now();
    const at = retransmitAll('k').map(t => t - sentAt);
    expect(at.slice(0, 11)).toEqual([60, 120, 180, 240, 300, 360, 420, 540, 780, 1260, 1740]);
    expect(at[at.length - 1]).toBeGreaterThanOrEqual(3000); // given up at the first timeout past the budget
    expect(at[at.length - 2]).toBeLessThan(3000);
    expect(acks.retransmissionsOf('k')).toBeUndefined();
  });

  it('gives up after maxRetransmissions whatever the time, and always allows two retransmissions', () => {
    const few = setup({ maxRetransmissions: 1 });
    few.acks.sent('k', 'a');
    expect(few.retransmitAll('k')).toEqual([1000, 2000]);
    const slow = setup({ ackTimeoutMs: 300 }); // one wait (100) is a third of the budget
    slow.acks.sent('k', 'a');
    expect(slow.retransmitAll('k')).toEqual([100, 200, 300]);
  });

  it('ends every wait on clear, keeping the estimates; sending an attempt again restarts its wait', () => {
    const { scheduler, acks, overdue } = setup();
    acks.sent('k', 'a');
    scheduler.advanceBy(500);
    acks.sent('k', 'a'); // a new wait: due at 1500
    scheduler.advanceBy(600);
    expect(overdue).toEqual([]);
    scheduler.advanceBy(400);
    expect(overdue).toEqual([['k', 1500]]);
    acks.sent('x', 'a');
    acks.clear();
    scheduler.advanceBy(10_000);
    expect(overdue).toHaveLength(1);
  });

  it('rejects a bad ackTimeoutMs or maxRetransmissions', () => {
    const scheduler = new VirtualScheduler();
    expect(() => new AckTracker({ scheduler, ackTimeoutMs: 0, overdue: () => undefined })).toThrow(new RangeError('ackTimeoutMs must be a finite number > 0, got 0'));
    expect(() => new AckTracker({ scheduler, ackTimeoutMs: 10, maxRetransmissions: -1, overdue: () => undefined })).toThrow(new RangeError('maxRetransmissions must be an integer >= 0, got -1'));
  });
});
