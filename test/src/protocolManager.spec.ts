import { timer, map } from 'rxjs';
import { ProtocolManager } from '../../src/protocolManager.js';
import type { CoordinationEvent } from '../../src/events.js';
import type { InProcessAgent, Subtask } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

const agent = (id: string, scheduler: VirtualScheduler): InProcessAgent => ({
  id,
  capabilities: [],
  handle: (s: Subtask) =>
    timer(100, scheduler).pipe(
      map(() => {
        if ((s.payload as { fail?: boolean } | undefined)?.fail) throw new Error('cannot');
        return s.id;
      }),
    ),
});

async function settle<T>(scheduler: VirtualScheduler, promise: Promise<T>): Promise<T> {
  // Fallback runs start after a microtask: alternate virtual time and the microtask queue.
  let done = false;
  void promise.then(() => (done = true), () => (done = true));
  for (let t = 0; !done && t < 600_000; t += 500) {
    scheduler.advanceTo(t);
    await Promise.resolve();
    await Promise.resolve();
  }
  return promise;
}

describe('ProtocolManager', () => {
  it('plans a protocol from the decision matrix and runs a task under it', async () => {
    const scheduler = new VirtualScheduler();
    const manager = new ProtocolManager({ scheduler });
    const id = manager.initializeCoordination({ agentCount: 5, complexity: 'high', coordinationIntensity: 'high' });
    expect(id).toMatch(/adaptive-mesh$/);
    const agents = ['a', 'b', 'c', 'd', 'e'].map(n => agent(n, scheduler));
    const result = await settle(scheduler, manager.coordinateTaskExecution(id, { id: 't', subtasks: [{ id: 'x' }, { id: 'y' }] }, agents));
    expect(result).toMatchObject({ success: true, protocolId: id, results: { x: 'x', y: 'y' } });
  });

  it('reruns only what failed under other protocols, at most maxFallbacks times', async () => {
    const scheduler = new VirtualScheduler();
    const manager = new ProtocolManager({ scheduler, maxFallbacks: 2, maxSubtaskAttempts: 1 });
    const events: CoordinationEvent[] = [];
    manager.events$.subscribe(e => events.push(e));
    const id = manager.initializeCoordination({ agentCount: 2, topology: 'star' });
    const agents = ['a', 'b'].map(n => agent(n, scheduler));
    const task = { id: 't', subtasks: [{ id: 'ok' }, { id: 'bad', payload: { fail: true } }] };
    const result = await settle(scheduler, manager.coordinateTaskExecution(id, task, agents));
    expect(result.success).toBe(false);
    expect(result.results).toEqual({ ok: 'ok' });
    expect(result.failed['bad']).toMatch(/cannot/);
    const runs = events.filter(e => e.type === 'protocol.selected').map(e => (e as { protocol: string }).protocol);
    expect(runs).toEqual(['star', 'hierarchical', 'ring']); // the first run and two fallbacks, never the same twice
    expect(events.filter(e => e.type === 'subtask.assigned' && e.subtaskId === 'bad')).toHaveLength(3);
  });

  it('rejects an unknown protocol id and a bad plan', async () => {
    const manager = new ProtocolManager();
    await expect(manager.coordinateTaskExecution('nope', { id: 't', subtasks: [] }, [])).rejects.toThrow(/unknown protocol id "nope"/);
    expect(() => manager.initializeCoordination({ agentCount: -1 })).toThrow(RangeError);
    expect(() => new ProtocolManager({ maxFallbacks: -1 })).toThrow(/maxFallbacks/);
  });
});
