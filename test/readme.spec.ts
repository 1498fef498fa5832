import { Subject, filter, map } from 'rxjs';
import { marbles } from 'rxjs-marbles/jest';
import { consensusWindow, heartbeatDeadline, phiAccrual, type Decision, type Heartbeat, type Vote } from '../operators/index.js';
import { VirtualScheduler } from '../streams/virtualScheduler.js';

// The README's examples, kept honest.
describe('README', () => {
  it('suspects an agent 5 ms after its last beat', marbles(m => {
    const beats = m.hot('  a 2ms a 9ms a', { a: { agentId: 'a' } });
    const expected = '     A 7ms S 4ms A 4ms S';
    const verdicts = beats.pipe(heartbeatDeadline({ timeoutMs: 5, scheduler: m.scheduler }), map(e => e.type));
    m.expect(verdicts).toBeObservable(expected, { A: 'alive', S: 'suspected' });
  }));

  it('composes phiAccrual with consensusWindow', () => {
    const scheduler = new VirtualScheduler();
    const heartbeats = new Subject<Heartbeat>();
    const votes = new Subject<Vote>();
    const suspicions = heartbeats.pipe(phiAccrual({ threshold: 8, acceptableHeartbeatPauseMs: 3000, scheduler }), filter(v => v.type === 'suspected'));
    const verdicts = votes.pipe(consensusWindow({ windowMs: 2000, voters: ['a', 'b', 'c'], scheduler }));
    const decisions: Decision[] = [];
    suspicions.subscribe(({ agentId }) => {
      for (const voterId of ['a', 'b', 'c']) votes.next({ proposalId: `down:${agentId}`, voterId, accept: true });
    });
    verdicts.subscribe(d => decisions.push(d));
    heartbeats.next({ agentId: 'x' });
    scheduler.advanceTo(60_000);
    expect(decisions.map(d => [d.proposalId, d.outcome])).toEqual([['down:x', 'accepted']]);
  });
});
