import { runDemo } from '../../src/demo.js';
import type { CoordinationEvent } from '../../src/events.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

describe('runDemo', () => {
  function run(seed: number) {
    const scheduler = new VirtualScheduler();
    const events: CoordinationEvent[] = [];
    const promise = runDemo({ agents: 12, subtasks: 300, seed, scheduler, onEvent: e => events.push(e) });
    for (let t = 0; t <= 60_000; t += 50) scheduler.advanceTo(t);
    return { promise, events };
  }

  it('finishes every subtask once while a crash, a hang, a slowdown and a partition hit it', async () => {
    const { promise, events } = run(1);
    const { result, faults } = await promise;
    expect(result.success).toBe(true);
    expect(result.metrics.completed).toBe(300);
    const completions = events.filter(e => e.type === 'subtask.completed').map(e => (e as { subtaskId: string }).subtaskId);
    expect(new Set(completions).size).toBe(completions.length);
    const crashed = faults.find(f => f.kind === 'crash')!.agent;
    expect(events.some(e => e.type === 'agent.down' && e.agentId === crashed)).toBe(true);
    const hung = faults.find(f => f.kind === 'hang')!.agent;
    expect(events.some(e => e.type === 'fault.detected' && e.agentId === hung)).toBe(true);
    expect(result.healing.length).toBeGreaterThan(0);
  });

  it('is the same run for the same seed', async () => {
    const a = run(7);
    const b = run(7);
    expect(JSON.stringify((await a.promise).result)).toBe(JSON.stringify((await b.promise).result));
    expect(a.events).toEqual(b.events);
  });

  it('rejects too few agents', async () => {
    await expect(runDemo({ agents: 2, subtasks: 10, seed: 1 })).rejects.toThrow(/agents must be an integer >= 4/);
  });
});
