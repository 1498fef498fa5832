import { expectedDemoMs, runDemo } from '../../src/demo.js';
import type { CoordinationEvent } from '../../src/events.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

describe('runDemo', () => {
  function run(seed: number, agents = 12, subtasks = 300) {
    const scheduler = new VirtualScheduler();
    const events: CoordinationEvent[] = [];
    const promise = runDemo({ agents, subtasks, seed, scheduler, onEvent: e => events.push(e) });
    for (let t = 0; t <= 60_000; t += 50) scheduler.advanceTo(t);
    return { promise, events };
  }

  it.each([
    [12, 300, 1300],
    [100, 300, 200],
    [12, 100, 500],
    [4, 20_000, 250_000],
  ])('expects %d agents to take %d subtasks in %d ms (waves of two per agent, 100 ms each)', (agents, subtasks, ms) => {
    expect(expectedDemoMs(agents, subtasks)).toBe(ms);
  });

  it.each([
    [100, 300],
    [12, 100],
    [100, 100],
  ])('with %d agents and %d subtasks, every fault lands while work is under way and shows', async (agents, subtasks) => {
    const { promise, events } = run(1, agents, subtasks);
    const { result, faults } = await promise;
    expect(result.success).toBe(true);
    for (const f of faults) expect(f.atMs).toBeLessThan(result.metrics.durationMs);
    const of = (kind: string) => faults.find(f => f.kind === kind)!;
    expect(events.some(e => e.type === 'agent.down' && e.agentId === of('crash').agent)).toBe(true);
    expect(events.some(e => e.type === 'agent.suspected' && e.agentId === of('partition').agent && e.at >= of('partition').atMs)).toBe(true);
    // The hung agent had work in hand, and all of it was finished by others (hedged, or detected and reassigned).
    const hang = of('hang');
    const inHand = new Map<string, string>();
    for (const e of events) {
      if (e.at > hang.atMs) break;
      if (e.type === 'subtask.assigned') inHand.set(e.subtaskId, e.agentId);
      else if (e.type === 'subtask.completed' || e.type === 'subtask.requeued') inHand.delete(e.subtaskId);
    }
    const stuck = [...inHand].filter(([, agent]) => agent === hang.agent).map(([id]) => id);
    expect(stuck.length).toBeGreaterThan(0);
    for (const id of stuck) expect(events.find(e => e.type === 'subtask.completed' && e.subtaskId === id && e.agentId !== hang.agent)).toBeDefined();
  });

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

  it('has no hidden time limit: 20,000 subtasks on 4 agents all finish, past the minute', async () => {
    const scheduler = new VirtualScheduler();
    let done = false;
    const promise = runDemo({ agents: 4, subtasks: 20_000, seed: 1, scheduler }).finally(() => (done = true));
    for (let t = 0; t <= 1_000_000 && !done; t += 1000) {
      scheduler.advanceTo(t);
      await Promise.resolve();
    }
    const { result } = await promise;
    expect(result.metrics.completed).toBe(20_000);
    expect(result.metrics.durationMs).toBeGreaterThan(expectedDemoMs(4, 20_000));
  });

  it('rejects too few agents', async () => {
    await expect(runDemo({ agents: 2, subtasks: 10, seed: 1 })).rejects.toThrow(/agents must be an integer >= 4/);
  });
});
