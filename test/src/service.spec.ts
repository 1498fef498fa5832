import { TaskRefusedError, builtinWorker, startAgent, submitTask, type AgentProcess } from '../../src/remote.js';
import { Service } from '../../src/service.js';
import type { CoordinationEvent } from '../../src/events.js';
import { asyncScheduler, filter, firstValueFrom, type Observable, throwError, timeout } from 'rxjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';

// A coordinator service and its agents in this process over real sockets on 127.0.0.1; every wait
// is on an event or a promise, bounded by the test's timeout.
const TOKEN = 'service-secret';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function cluster(n: number): Promise<{ service: Service; agents: AgentProcess[] }> {
  const service = await Service.start({ token: TOKEN, port: 0, log: () => undefined, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
  cleanups.push(() => service.close());
  const agents = Array.from({ length: n }, (_, i) => startAgent({ url: service.url, token: TOKEN, id: `w-${i}`, heartbeatIntervalMs: 100 }));
  for (const a of agents) cleanups.push(() => a.leave());
  await Promise.all(agents.map(a => firstValueFrom(a.network.events$.pipe(filter(e => e.type === 'joined'), timeout(5000)))));
  return { service, agents };
}

const work = (n: number, prefix = 's') => Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, payload: { sleepMs: 5 } }));

describe('Service', () => {
  it('runs a submitted task on the connected agents and streams its events to the submitter', async () => {
    const { service } = await cluster(2);
    const events: CoordinationEvent[] = [];
    const result = await submitTask({ url: service.url, token: TOKEN, task: { id: 't', subtasks: work(10) }, onEvent: e => events.push(e) });
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(work(10).map(s => s.id).sort());
    expect(result.results['s-0']).toMatchObject({ subtaskId: 's-0', sleptMs: 5 });
    expect(events.filter(e => e.type === 'subtask.completed')).toHaveLength(10);
    expect(events.some(e => e.type === 'task.completed')).toBe(false); // the result comes as the outcome
    expect(result.metrics.messagesByKind).not.toHaveProperty('event'); // the service's own traffic is not coordination
  });

  it('ends a submitted task at its deadlineMs: what is unfinished fails with the reason, the agents are free again', async () => {
    const { service } = await cluster(1);
    const subtasks = [{ id: 'quick', payload: { sleepMs: 5 } }, ...Array.from({ length: 3 }, (_, i) => ({ id: `long-${i}`, payload: { sleepMs: 60_000 } }))];
    const result = await submitTask({ url: service.url, token: TOKEN, task: { id: 'due', subtasks, deadlineMs: 400 } });
    expect(result.success).toBe(false);
    expect(Object.keys(result.results)).toEqual(['quick']);
    expect(result.failed).toEqual({ 'long-0': 'task deadline reached', 'long-1': 'task deadline reached', 'long-2': 'task deadline reached' });
    // The long run was cancelled: the next task gets the agent.
    const next = await submitTask({ url: service.url, token: TOKEN, task: { id: 'after', subtasks: work(2) } });
    expect(next.success).toBe(true);
  });

  it('keeps hearing its agents between tasks: idle agents stay alive in its view, with a low phi', async () => {
    const { service } = await cluster(2);
    expect((await submitTask({ url: service.url, token: TOKEN, task: { id: 'before', subtasks: work(4) } })).success).toBe(true);
    const endedAt = service.server.scheduler.now();
    // No task runs now: the engine has stopped; the agents beat every 100 ms all the same.
    for (const deadline = Date.now() + 5000; ; await new Promise(resolve => setTimeout(resolve, 50))) {
      const rows = service.view.agentRows(false);
      if (rows.length === 2 && rows.every(r => (r.lastBeatAt ?? 0) > endedAt + 1000)) break;
      if (Date.now() > deadline) throw new Error(`no beats seen a second after the task ended: ${JSON.stringify(rows.map(r => [r.id, r.state, r.lastBeatAt]))}`);
    }
    service.view.watch();
    for (const row of service.view.agentRows(false)) {
      expect(row.state).toBe('alive');
      expect(row.phi).toBeLessThan(8);
    }
  });

  it('after a restart on its data directory, shows the tasks it finished before as they ended: done subtasks done, failed ones with their reason, at the time they finished', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rxswarm-service-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = await Service.start({ token: TOKEN, port: 0, log: () => undefined, dataDir, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
    const agent = startAgent({ url: first.url, token: TOKEN, id: 'w-0', heartbeatIntervalMs: 100 });
    await firstValueFrom(agent.network.events$.pipe(filter(e => e.type === 'joined'), timeout(5000)));
    const subtasks = [...work(5), { id: 'bad', payload: { fail: true }, maxAttempts: 1 }];
    const result = await submitTask({ url: first.url, token: TOKEN, task: { id: 'before', subtasks } });
    expect(Object.keys(result.results)).toHaveLength(5);
    await agent.leave();
    await first.close();

    const second = await Service.start({ token: TOKEN, port: 0, log: () => undefined, dataDir, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
    cleanups.push(() => second.close());
    for (const deadline = Date.now() + 5000; second.view.taskRows().find(t => t.id === 'before')?.state !== 'failed'; await new Promise(resolve => setTimeout(resolve, 20))) {
      if (Date.now() > deadline) throw new Error(`the finished task is not shown: ${JSON.stringify(second.view.taskRows())}`);
    }
    expect(second.view.taskRows().find(t => t.id === 'before')).toMatchObject({ completed: 5, failed: 1, finishedAt: result.metrics.finishedAt });
    const rows = second.view.subtaskRows().filter(r => r.taskId === 'before');
    expect(rows.filter(r => r.state === 'done').map(r => r.id).sort()).toEqual(work(5).map(w => w.id).sort());
    expect(rows.find(r => r.id === 'bad')).toMatchObject({ state: 'failed', reason: result.failed['bad'] });
  });

  it('after a restart on its data directory, shows a task it resumes with what settled before as settled, not pending', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rxswarm-service-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = await Service.start({ token: TOKEN, port: 0, log: () => undefined, dataDir, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
    const agent = startAgent({ url: first.url, token: TOKEN, id: 'w-0', heartbeatIntervalMs: 100 });
    await firstValueFrom(agent.network.events$.pipe(filter(e => e.type === 'joined'), timeout(5000)));
    let completed = 0;
    const subtasks = [...work(4), { id: 'long', payload: { sleepMs: 60_000 } }];
    const running = submitTask({ url: first.url, token: TOKEN, task: { id: 'resumed', subtasks }, silenceMs: 2000, onEvent: e => void (e.type === 'subtask.completed' && completed++) });
    running.catch(() => undefined); // its coordinator goes away
    for (const deadline = Date.now() + 5000; completed < 4; await new Promise(resolve => setTimeout(resolve, 20))) {
      if (Date.now() > deadline) throw new Error(`${completed} of 4 quick subtasks completed`);
    }
    await first.close();
    await agent.leave();

    const second = await Service.start({ token: TOKEN, port: 0, log: () => undefined, dataDir, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
    cleanups.push(() => second.close());
    expect(second.view.taskRows().find(t => t.id === 'resumed')).toMatchObject({ state: 'running', completed: 4 });
    const rows = second.view.subtaskRows().filter(r => r.taskId === 'resumed');
    expect(rows.filter(r => r.state === 'done').map(r => r.id).sort()).toEqual(work(4).map(w => w.id).sort());
    expect(rows.find(r => r.id === 'long')?.state).not.toBe('done');
  });

  it('sends no events to a submitter that does not watch, only the outcome', async () => {
    const { service } = await cluster(2);
    const result = await submitTask({ url: service.url, token: TOKEN, task: { id: 'quiet', subtasks: work(10) } });
    expect(result.success).toBe(true);
    expect(service.server.stats.byKind.event).toBeUndefined();
    expect(service.server.stats.byKind.outcome?.sent).toBe(1);
  });

  it('runs tasks from two clients at once, sharing the agents, each result to its own submitter', async () => {
    const { service } = await cluster(2);
    const [a, b] = await Promise.all([
      submitTask({ url: service.url, token: TOKEN, task: { id: 'a', subtasks: work(6) } }),
      submitTask({ url: service.url, token: TOKEN, task: { id: 'b', subtasks: work(6) } }), // the same subtask ids
    ]);
    expect([a.taskId, a.success, Object.keys(a.results).length]).toEqual(['a', true, 6]);
    expect([b.taskId, b.success, Object.keys(b.results).length]).toEqual(['b', true, 6]);
    const [first, second] = [a.metrics, b.metrics].sort((x, y) => x.startedAt - y.startedAt);
    expect(second!.startedAt).toBeLessThan(first!.finishedAt); // side by side
  });

  it.each([
    ['duplicate subtask ids', { id: 'dup', subtasks: [{ id: 'x' }, { id: 'x' }] }, /duplicate subtask id "x"/],
    ['a reserved character', { id: 'hash', subtasks: [{ id: 'x#1' }] }, /"#" is reserved/],
  ])('refuses a task with %s, says why, and keeps serving', async (_, task, why) => {
    const { service } = await cluster(1);
    await expect(submitTask({ url: service.url, token: TOKEN, task })).rejects.toThrow(TaskRefusedError);
    await expect(submitTask({ url: service.url, token: TOKEN, task })).rejects.toThrow(why);
    const ok = await submitTask({ url: service.url, token: TOKEN, task: { id: 'fine', subtasks: work(2) } });
    expect(ok.success).toBe(true);
  });

  it('a submitter with a bad token is refused for good', async () => {
    const { service } = await cluster(1);
    await expect(submitTask({ url: service.url, token: 'wrong', task: { id: 't', subtasks: work(1) } })).rejects.toThrow(/4001.*invalid token/);
  });

  it('reports the failed subtasks of a task whose work fails, with the reason', async () => {
    const { service } = await cluster(2);
    const result = await submitTask({ url: service.url, token: TOKEN, task: { id: 'f', subtasks: [{ id: 'ok', payload: { sleepMs: 1 } }, { id: 'bad', payload: { fail: true } }] } });
    expect(result.success).toBe(false);
    expect(result.failed.bad).toMatch(/asked to fail/);
    expect(result.results.ok).toBeDefined();
  });
});

describe('Service: what it refuses and what it survives', () => {
  it.each(['coordinator', 'tasks'])('refuses a connection that says hello as %s, also between tasks', async id => {
    const { service } = await cluster(1);
    const socket = new WebSocket(service.url);
    const closed = new Promise<number>(resolve => socket.on('close', code => resolve(code)));
    socket.on('open', () => socket.send(JSON.stringify({ v: 1, type: 'hello', agentId: id, capabilities: [], token: TOKEN })));
    expect(await closed).toBe(1008);
    expect((await submitTask({ url: service.url, token: TOKEN, task: { id: 't', subtasks: work(2) } })).success).toBe(true);
  });

  it.each([
    ['an unknown complexity', { id: 't', subtasks: [{ id: 'a' }], complexity: 'extreme' }, /not a valid task: body\.task\.complexity/],
    ['an id of 300 characters', { id: 't', subtasks: [{ id: 'x'.repeat(300) }] }, /not a valid task: body\.task\.subtasks\.0\.id/],
    ['a priority that is not a number', { id: 't', subtasks: [{ id: 'a', priority: 'high' }] }, /priority/],
    ['a misspelt key', { id: 't', subtasks: [{ id: 'a', capabilites: ['x'] }] }, /subtasks\.0: Unrecognized key: "capabilites"/],
  ])('refuses a task with %s before sending it', async (_, task, why) => {
    await expect(submitTask({ url: 'ws://127.0.0.1:1', token: TOKEN, task: task as never })).rejects.toThrow(why);
  });

  it('a submitter that cannot take its outcome (too big) is told its result is unknown, not left waiting', async () => {
    const { service } = await cluster(2);
    const task = { id: 'big', subtasks: Array.from({ length: 40 }, (_, i) => ({ id: `b-${i}`, payload: 'x'.repeat(100) })) }; // echoed back
    await expect(submitTask({ url: service.url, token: TOKEN, task, maxPayload: 2048 })).rejects.toThrow(/could not send the outcome: a frame of \d+ bytes is above the 2048 .*result is unknown/);
  });

  it('an agent that rejoins a restarted service starts over: a new task with old subtask ids gets new work, not the old result', async () => {
    const first = await Service.start({ token: TOKEN, port: 0, log: () => undefined, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
    const port = first.port;
    const agent = startAgent({ url: first.url, token: TOKEN, id: 'w-0', heartbeatIntervalMs: 100, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
    cleanups.push(() => agent.leave());
    const sessions: Array<string | undefined> = [];
    agent.network.events$.subscribe(e => e.type === 'joined' && sessions.push(e.session));
    await firstValueFrom(agent.network.events$.pipe(filter(e => e.type === 'joined'), timeout(5000)));
    const lost = submitTask({ url: first.url, token: TOKEN, task: { id: 'old', subtasks: [{ id: 's', payload: { sleepMs: 3000 } }] } }).catch((err: Error) => err);
    await firstValueFrom(first.coordinator.events$.pipe(filter(e => e.type === 'subtask.assigned'), timeout(5000)));
    await first.close(); // the service goes away while the agent sleeps on `s`
    expect(await lost).toBeInstanceOf(Error);
    const second = await Service.start({ token: TOKEN, port, log: () => undefined, coordinator: { topology: 'star', heartbeat: { intervalMs: 100 } } });
    cleanups.push(() => second.close());
    await firstValueFrom(agent.network.events$.pipe(filter(e => e.type === 'joined'), timeout(10_000)));
    const result = await submitTask({ url: second.url, token: TOKEN, task: { id: 'new', subtasks: [{ id: 's', payload: { sleepMs: 1 } }] } });
    expect(result.results.s).toMatchObject({ sleptMs: 1 });
    expect(new Set(sessions).size).toBe(2);
  });
});

describe('builtinWorker', () => {
  const context = { agentId: 'w', attempt: 1, scheduler: asyncScheduler, heartbeat: () => undefined, usage: () => undefined, delegate: () => Promise.reject(new Error('no coordinator here')), delegate$: () => throwError(() => new Error('no coordinator here')), signal: new AbortController().signal };
  const run = (payload: unknown) => firstValueFrom(builtinWorker({ id: 's', payload }, context) as Observable<unknown>);

  it.each([
    [{ sleepMs: 0 }, { agentId: 'w', subtaskId: 's', sleptMs: 0 }],
    [{ spinMs: 1 }, { agentId: 'w', subtaskId: 's', spunMs: 1 }],
    ['plain', { agentId: 'w', subtaskId: 's', echo: 'plain' }],
  ])('does what %j says', async (payload, expected) => {
    expect(await run(payload)).toEqual(expected);
  });

  it.each([
    [{ fail: true }, /asked to fail/],
    [{ sleepMs: -1 }, /payload\.sleepMs must be a number of ms/],
    [{ spinMs: 'long' }, /payload\.spinMs must be a number of ms/],
  ])('fails the subtask for %j', async (payload, error) => {
    await expect(run(payload)).rejects.toThrow(error);
  });
});
