import { Observable } from 'rxjs';
import { createCoordinator, type AgentSlot } from '../../src/coordinator.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import { createRandom } from '../../streams/random.js';
import type { InProcessAgent, Subtask, Task } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

// Attempts as DESIGN.md has them, in virtual time: an attempt that keeps silent past its progress
// deadline is hedged (a backup attempt elsewhere, the first valid result wins, the other is
// cancelled), not revoked; the deadline is learned from the task's finished work.

/** Whole seconds: the network's few ms of latency are beside the point here. */
const seconds = (ms: number): string => `${Math.round(ms / 1000)}s`;

/** Work of `workMs(subtask, agent)` (∞: it hangs) with no progress reports; logs every run and every cancellation. */
function silentWorker(id: string, scheduler: VirtualScheduler, workMs: (s: Subtask, agentId: string) => number, log: string[]): InProcessAgent {
  return {
    id,
    capabilities: [],
    handle: (subtask, context) =>
      new Observable<unknown>(subscriber => {
        log.push(`${seconds(scheduler.now())} ${id} runs ${subtask.id}#${context.attempt}`);
        const ms = workMs(subtask, id);
        let ended = false;
        const done = Number.isFinite(ms)
          ? scheduler.schedule(() => {
              ended = true;
              subscriber.next({ by: id });
              subscriber.complete();
            }, ms)
          : undefined;
        return () => {
          if (!ended) log.push(`${seconds(scheduler.now())} ${id} cancelled ${subtask.id}#${context.attempt}`);
          done?.unsubscribe();
        };
      }),
  };
}

function run(scheduler: VirtualScheduler, slots: AgentSlot[], task: Task, options: { progressTimeoutMs: number; maxSubtaskAttempts?: number }) {
  const coordinator = createCoordinator({ agents: slots, topology: 'star', scheduler, seed: 1, heartbeat: { intervalMs: 1000, jitterMs: 50 }, ...options });
  const events: CoordinationEvent[] = [];
  let result: CoordinationResult | undefined;
  coordinator.run$(task).subscribe(e => {
    events.push(e);
    if (e.type === 'task.completed') result = e.result;
  });
  for (let t = 0; result === undefined && t < 24 * 3_600_000; t += 500) scheduler.advanceTo(t);
  if (result === undefined) throw new Error('the task did not finish within a virtual day');
  return { result, events, of: <T extends CoordinationEvent['type']>(type: T) => events.filter((e): e is Extract<CoordinationEvent, { type: T }> => e.type === type) };
}

describe('hedging a silent attempt', () => {
  it('a silent attempt whose backup falls silent too (both agents hung): the older is taken for hung, the backup gets a backup of its own, and a healthy agent finishes it', () => {
    const scheduler = new VirtualScheduler();
    const log: string[] = [];
    const hangs = new Set(['a', 'b']);
    const slots = ['a', 'b', 'c'].map(id => ({ agent: silentWorker(id, scheduler, (_, agentId) => (hangs.has(agentId) ? Infinity : 20_000), log) }));
    const { result, of } = run(scheduler, slots, { id: 't', subtasks: [{ id: 's' }] }, { progressTimeoutMs: 30_000 });
    expect(result.success).toBe(true);
    expect(result.results['s']).toEqual({ by: 'c' });
    // Minutes, not the half hour of the attempts' start-to-close limit.
    expect(log).toEqual(['0s a runs s#1', '30s b runs s#2', '90s a cancelled s#1', '90s c runs s#3', '110s b cancelled s#2']);
    // Each hung agent's attempt ended as a fault of its agent, not at the task's deadline.
    expect(of('fault.detected').filter(f => f.kind === 'agent_timeout').map(f => f.agentId).sort()).toEqual(['a', 'b']);
  });

  it('a 35 s call with no progress and a 30 s floor: hedged at 30 s, its own result at 35 s wins, the backup is cancelled, nothing is retried', () => {
    const scheduler = new VirtualScheduler();
    const log: string[] = [];
    const slots = ['a', 'b'].map(id => ({ agent: silentWorker(id, scheduler, () => 35_000, log) }));
    const { result, of } = run(scheduler, slots, { id: 't', subtasks: [{ id: 's' }] }, { progressTimeoutMs: 30_000 });
    expect(result.success).toBe(true);
    expect(result.results['s']).toEqual({ by: 'a' });
    expect(of('subtask.silent').map(e => [seconds(e.at), e.agentId, e.silentMs, e.learned])).toEqual([['30s', 'a', 30_000, false]]);
    expect(of('subtask.hedged').map(e => [seconds(e.at), e.agentId, e.of.agentId])).toEqual([['30s', 'b', 'a']]);
    expect(log).toEqual(['0s a runs s#1', '30s b runs s#2', '35s b cancelled s#2']);
    expect(of('subtask.completed')).toHaveLength(1);
    expect(of('fault.detected')).toEqual([]); // the silent one won: nobody hung
    expect(result.healing).toEqual([]);
  });

  it('a hung attempt: the backup wins, the hung one is cancelled and its agent taken for hung (agent_timeout, healed)', () => {
    const scheduler = new VirtualScheduler();
    const log: string[] = [];
    const slots = [
      { agent: silentWorker('a', scheduler, () => Infinity, log), factory: () => silentWorker('a', scheduler, () => 100, log) },
      { agent: silentWorker('b', scheduler, () => 1_000, log) },
    ];
    const { result, of } = run(scheduler, slots, { id: 't', subtasks: [{ id: 's' }] }, { progressTimeoutMs: 5_000 });
    expect(result.results['s']).toEqual({ by: 'b' });
    expect(of('subtask.hedged').map(e => [seconds(e.at), e.agentId])).toEqual([['5s', 'b']]);
    expect(log.slice(0, 3)).toEqual(['0s a runs s#1', '5s b runs s#2', '6s a cancelled s#1']);
    const [fault] = of('fault.detected');
    expect(fault).toMatchObject({ kind: 'agent_timeout', agentId: 'a' });
    expect(fault?.detail).toMatch(/no progress on s of task t while b ran it to the end/);
    expect(result.healing.map(h => h.strategy)[0]).toBe('restartAgent');
    expect(of('subtask.completed')).toHaveLength(1);
  });

  it('takes no backup beyond the subtask\'s attempts, and none on the silent agent itself', () => {
    const scheduler = new VirtualScheduler();
    const log: string[] = [];
    // Only one agent: no one else to run a backup; the attempt (silent 15 s, under twice the 10 s deadline) finishes on its own.
    const { result, of } = run(scheduler, [{ agent: silentWorker('a', scheduler, () => 15_000, log) }], { id: 't', subtasks: [{ id: 's' }] }, { progressTimeoutMs: 10_000 });
    expect(result.success).toBe(true);
    expect(of('subtask.silent')).toHaveLength(1);
    expect(of('subtask.hedged')).toEqual([]);
    expect(log).toEqual(['0s a runs s#1']);
    // maxSubtaskAttempts 1: a subtask may not start a second attempt, hedged or not.
    const again = new VirtualScheduler();
    const slots = ['a', 'b'].map(id => ({ agent: silentWorker(id, again, () => 15_000, []) }));
    expect(run(again, slots, { id: 't', subtasks: [{ id: 's' }] }, { progressTimeoutMs: 10_000, maxSubtaskAttempts: 1 }).of('subtask.hedged')).toEqual([]);
  });

  it('an attempt still silent at twice its deadline with no backup to beat it: its agent is taken for hung, the attempt fails, and the subtask fails after its attempts (no loop)', () => {
    const scheduler = new VirtualScheduler();
    const log: string[] = [];
    const slot = { agent: silentWorker('a', scheduler, () => Infinity, log), factory: () => silentWorker('a', scheduler, () => Infinity, log) };
    const { result, of } = run(scheduler, [slot], { id: 't', subtasks: [{ id: 's' }] }, { progressTimeoutMs: 10_000, maxSubtaskAttempts: 2 });
    expect(result.failed['s']).toMatch(/^made no progress 2 time\(s\): no progress on s of task t for \d+ ms \(its deadline 10000 ms\)$/);
    expect(of('fault.detected').map(f => [seconds(f.at), f.kind, f.agentId])).toEqual([
      ['20s', 'agent_timeout', 'a'],
      ['40s', 'agent_timeout', 'a'],
    ]);
    // Two attempts failed; the restart that healing made also handed back one just given (not a failure).
    expect(log.filter(l => l.includes(' runs ')).length).toBeLessThanOrEqual(3);
  });

  it('an attempt that shows progress is never hedged, however long it runs', () => {
    const scheduler = new VirtualScheduler();
    const beating: InProcessAgent = {
      id: 'a',
      capabilities: [],
      handle: (_, context) =>
        new Observable<unknown>(subscriber => {
          const beat = scheduler.schedule(function () {
            context.heartbeat();
            this.schedule(undefined, 4_000);
          }, 4_000);
          const done = scheduler.schedule(() => {
            beat.unsubscribe();
            subscriber.next('done');
            subscriber.complete();
          }, 120_000);
          return () => {
            beat.unsubscribe();
            done.unsubscribe();
          };
        }),
    };
    const { of } = run(scheduler, [{ agent: beating }, { agent: silentWorker('b', scheduler, () => 10, []) }], { id: 't', subtasks: [{ id: 's' }] }, { progressTimeoutMs: 5_000 });
    expect(of('subtask.silent')).toEqual([]);
    expect(of('subtask.hedged')).toEqual([]);
  });
});

describe('the progress deadline learned from finished work', () => {
  it('minute-long silent work on 50 agents: no hedge after the first ten completions, no false suspicion, every subtask once; a real hang is hedged within 2× the learned p99', () => {
    const scheduler = new VirtualScheduler();
    const random = createRandom(7);
    const log: string[] = [];
    const durations = new Map<string, number>();
    // agent-7 hangs on the fourth subtask it is given (well after the first ten completions).
    let runsOf7 = 0;
    let hung: string | undefined;
    const workMs = (s: Subtask, agentId: string): number => {
      if (agentId === 'agent-7' && ++runsOf7 === 4) {
        hung = s.id;
        return Infinity;
      }
      let ms = durations.get(s.id);
      if (ms === undefined) durations.set(s.id, (ms = Math.round(60_000 + (random.next() * 2 - 1) * 30_000))); // 60 s ± 30 s, each subtask its own length
      return ms;
    };
    const slots = Array.from({ length: 50 }, (_, i) => ({ agent: silentWorker(`agent-${i}`, scheduler, workMs, log) }));
    const subtasks = Array.from({ length: 250 }, (_, i) => ({ id: `s-${i}` }));
    const { result, events, of } = run(scheduler, slots, { id: 't', subtasks }, { progressTimeoutMs: 30_000 });
    expect(result.failed).toEqual({});
    expect(of('subtask.completed')).toHaveLength(250);
    expect(of('agent.suspected')).toEqual([]);
    const tenth = of('subtask.completed')[9]?.at as number;
    const late = of('subtask.hedged').filter(e => e.at > tenth);
    expect(hung).toBeDefined();
    expect(late.map(e => [e.subtaskId, e.of.agentId])).toEqual([[hung, 'agent-7']]);
    // The hung one is hedged within 2× the learned p99 of the work (at most 90 s) from its start.
    const started = of('subtask.assigned').find(e => e.subtaskId === hung)?.at as number;
    const [silence] = of('subtask.silent').filter(e => e.subtaskId === hung);
    expect(silence?.learned).toBe(true);
    expect((late[0]?.at as number) - started).toBeLessThanOrEqual(2 * 90_000);
    expect(events.filter(e => e.type === 'subtask.rejected')).toEqual([]);
  });
});
