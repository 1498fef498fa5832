import { cancelServiceTask, readServiceState, startAgent, submitTask, type AgentProcess } from '../../src/remote.js';
import { Service } from '../../src/service.js';
import type { TaskRow } from '../../src/swarmRows.js';

// What clients other than submitters do: read the state once, cancel a queued or a running task.

const TOKEN = 'watch-token';

describe('Service: watching and cancelling', () => {
  let service: Service;
  const agents: AgentProcess[] = [];
  afterEach(async () => {
    for (const agent of agents.splice(0)) await agent.leave().catch(() => undefined);
    await service?.close();
  });

  it('tells running and queued tasks with their position, cancels the queued one, then the running one', async () => {
    service = await Service.start({ token: TOKEN, port: 0, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 }, maxTasks: 1 }, metrics: { processMetrics: false } });
    const ask = { url: service.url, token: TOKEN };
    agents.push(startAgent({ ...ask, id: 'w-0', heartbeatIntervalMs: 100 }));
    const long = submitTask({ ...ask, task: { id: 'long', subtasks: Array.from({ length: 40 }, (_, i) => ({ id: `l-${i}`, payload: { sleepMs: 200 } })) } });
    const next = submitTask({ ...ask, task: { id: 'next', subtasks: [{ id: 'n', payload: { sleepMs: 1 } }] } });
    next.catch(() => undefined);
    const deadline = Date.now() + 10_000;
    let tasks: readonly TaskRow[] = [];
    while (Date.now() < deadline) {
      tasks = (await readServiceState(ask)).tasks as TaskRow[];
      if ((tasks.find(t => t.id === 'long')?.completed ?? 0) > 0) break;
      await new Promise(resolve => setTimeout(resolve, 50));
    }
    expect(tasks.find(t => t.id === 'long')).toMatchObject({ state: 'running', queuePosition: null });
    expect(tasks.find(t => t.id === 'next')).toMatchObject({ state: 'queued', queuePosition: 1, progress: 0 });

    expect(await cancelServiceTask({ ...ask, taskId: 'next' })).toEqual({ taskId: 'next', ok: true });
    // It never ran: its result says so, every subtask failed with the reason.
    expect(await next).toMatchObject({ taskId: 'next', success: false, failed: { n: 'cancelled' }, results: {} });
    expect(await cancelServiceTask({ ...ask, taskId: 'nothing' })).toMatchObject({ ok: false, error: expect.stringMatching(/no queued or running task "nothing"/) });

    expect(await cancelServiceTask({ ...ask, taskId: 'long' })).toEqual({ taskId: 'long', ok: true });
    const result = await long;
    expect(result.success).toBe(false);
    expect(Object.keys(result.failed).length).toBeGreaterThan(0);
    expect(new Set(Object.values(result.failed))).toEqual(new Set(['cancelled']));
    expect(result.metrics.completed + result.metrics.failed).toBe(40);
    const after = (await readServiceState(ask)).tasks as TaskRow[];
    expect(after.find(t => t.id === 'long')).toMatchObject({ state: 'cancelled', error: 'cancelled', progress: 1 });
    expect(after.find(t => t.id === 'next')).toMatchObject({ state: 'cancelled' });
  });

  it('refuses a second task under the id of one queued or running', async () => {
    service = await Service.start({ token: TOKEN, port: 0, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } }, metrics: { processMetrics: false } });
    const ask = { url: service.url, token: TOKEN };
    agents.push(startAgent({ ...ask, id: 'w-0', heartbeatIntervalMs: 100 }));
    const first = submitTask({ ...ask, task: { id: 'same', subtasks: [{ id: 'a', payload: { sleepMs: 300 } }] } });
    await new Promise(resolve => setTimeout(resolve, 100));
    await expect(submitTask({ ...ask, task: { id: 'same', subtasks: [{ id: 'b' }] } })).rejects.toThrow(/a task with id "same" is already (running|queued)/);
    expect((await first).success).toBe(true);
  });
});
