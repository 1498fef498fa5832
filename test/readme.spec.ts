import { Observable, Subject, filter, map, type SchedulerAction, type Subscriber } from 'rxjs';
import { marbles } from 'rxjs-marbles/jest';
import { consensusWindow, heartbeatDeadline, phiAccrual, type Decision, type Heartbeat, type Vote } from '../operators/index.js';
import fc from 'fast-check';
import { VirtualScheduler } from '../streams/virtualScheduler.js';
import { createCoordinator, star, type CoordinationEvent, type InProcessAgent } from '../src/index.js';
import { faultPlan, simulate } from '../src/testing.js';

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

  it('drives many agents as self-rescheduling actions (shortened: 1,000 agents, one virtual minute)', () => {
    const scheduler = new VirtualScheduler();
    const seen: string[] = [];
    let emit!: Subscriber<Heartbeat>;
    new Observable<Heartbeat>(subscriber => void (emit = subscriber))
      .pipe(phiAccrual({ scheduler }))
      .subscribe(e => seen.push(e.type));
    const beat = function (this: SchedulerAction<Heartbeat>, heartbeat?: Heartbeat) {
      emit.next(heartbeat!);
      this.schedule(heartbeat, 1000);
    };
    for (let i = 0; i < 1000; i++) scheduler.schedule(beat, i % 1000, { agentId: `agent-${i}` });
    scheduler.advanceTo(60_000);
    expect(seen).toEqual(Array(1000).fill('alive'));
    expect(scheduler.pending).toBe(1000 + 1); // every agent's next beat, and phiAccrual's one timer
  });

  it('coordinates in-process agents (the engine example, in real time)', async () => {
    const agents: InProcessAgent[] = ['a', 'b', 'c'].map(id => ({
      id,
      capabilities: ['summarise'],
      handle: async (subtask, ctx) => {
        ctx.heartbeat(0.5);
        return `summary of ${String(subtask.payload)}`;
      },
    }));
    const coordinator = createCoordinator({ agents, topology: star });
    const types: string[] = [];
    coordinator.events$.subscribe((e: CoordinationEvent) => types.push(e.type));
    const result = await coordinator.run({ id: 'report', subtasks: [{ id: 's-1', payload: 'chapter 1' }] });
    expect(result).toMatchObject({ taskId: 'report', success: true, results: { 's-1': 'summary of chapter 1' }, protocol: 'star' });
    expect(types).toContain('subtask.completed');
  });

  it('delegates: a writer awaits the children only a searcher can run (context.delegate, in real time)', async () => {
    const write = async (sources: unknown[]): Promise<string> => `draft from ${sources.length} sources`;
    const writer: InProcessAgent = {
      id: 'writer',
      capabilities: ['text'],
      handle: async (subtask, context) => {
        const sources = await Promise.all(
          (subtask.payload as { topics: string[] }).topics.map(topic => context.delegate({ id: topic, capabilities: ['web'], payload: { q: topic } })),
        );
        return { draft: await write(sources), by: context.agentId };
      },
    };
    const searcher: InProcessAgent = { id: 'searcher', capabilities: ['web'], concurrency: 2, handle: async subtask => `found ${(subtask.payload as { q: string }).q}` };
    const coordinator = createCoordinator({ agents: [writer, searcher], topology: star });
    const result = await coordinator.run({ id: 'report', subtasks: [{ id: 'write', capabilities: ['text'], payload: { topics: ['rxjs', 'nats'] } }] });
    expect(result.success).toBe(true);
    expect(result.results).toEqual({ write: { draft: 'draft from 2 sources', by: 'writer' }, 'write/rxjs': 'found rxjs', 'write/nats': 'found nats' });
  });

  it('tests a coordination with simulate and faultPlan', () => {
    const agents = ['agent-0', 'agent-1', 'agent-2', 'agent-3'];
    fc.assert(
      fc.property(faultPlan({ agents: agents.slice(0, 3), spanMs: 15_000 }), faults => {
        const report = simulate({ seed: 1, topology: 'ring', agents: agents.length, subtasks: 40, faults });
        return report.lost === 0 && report.duplicatesAccepted === 0 && report.failed === 0;
      }),
      { numRuns: 30 },
    );
  });

  it('tests a coordination through coordinator crashes with faultPlan({ coordinatorCrashes })', () => {
    const agents = ['agent-0', 'agent-1', 'agent-2', 'agent-3'];
    fc.assert(
      fc.property(faultPlan({ agents: agents.slice(0, 3), spanMs: 15_000, coordinatorCrashes: 2 }), faults => {
        const report = simulate({ seed: 1, topology: 'mesh', agents: agents.length, subtasks: 40, faults });
        return report.lost === 0 && report.duplicatesAccepted === 0 && report.failed === 0;
      }),
      { numRuns: 20 },
    );
  });
});
