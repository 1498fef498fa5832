import { cancelServiceTask, readServiceState, startAgent, submitTask, type AgentProcess } from '../../src/remote.js';
import { Service, TASKS } from '../../src/service.js';
import type { TaskRow } from '../../src/swarmRows.js';
import { unpackColumns } from '../../src/subtaskCells.js';
import type { SubtaskColumns } from '../../src/swarmWire.js';
import type { StateBody } from '../../streams/protocol.js';
import { WsClientNetwork } from '../../streams/wsNetwork.js';

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

  it('feeds a live watcher the first task shown at once, the others one a batch, and a timeline asked for alone', async () => {
    const agents = ['a', 'b'].map(id => ({ id, capabilities: [], handle: () => Promise.resolve(1) }));
    service = await Service.start({ token: TOKEN, port: 0, coordinator: { agents, topology: 'star' }, metrics: { processMetrics: false } });
    const ask = { url: service.url, token: TOKEN };
    for (const id of ['t1', 't2', 't3']) {
      const result = await submitTask({ ...ask, task: { id, subtasks: Array.from({ length: 30 }, (_, i) => ({ id: `s-${i}` })) } });
      expect(result.success).toBe(true);
    }
    const network = new WsClientNetwork({ url: service.url, agentId: 'watcher', token: TOKEN, role: 'client' });
    const states: StateBody[] = [];
    const joined = network.events$.subscribe(event => {
      if (event.type === 'joined') network.send({ from: 'watcher', to: TASKS, kind: 'watch', body: { live: true, subtasks: true } });
    });
    const inbox = network.join('watcher').subscribe(envelope => {
      if (envelope.kind === 'state') states.push(envelope.body as StateBody);
    });
    const columnsOf = (body: StateBody): SubtaskColumns[] => (body['columns'] as SubtaskColumns[] | undefined) ?? [];
    const until = async (what: string, ok: () => boolean): Promise<void> => {
      for (const deadline = Date.now() + 10_000; !ok(); await new Promise(resolve => setTimeout(resolve, 20))) {
        if (Date.now() > deadline) throw new Error(`no ${what} within 10 s`);
      }
    };
    try {
      await until('rows of the three tasks', () => states.flatMap(columnsOf).length >= 3);
      // The first frame holds everything a page draws first, with the latest finished task's rows.
      expect(states[0]).toMatchObject({ full: true });
      expect(columnsOf(states[0]!).map(c => c.taskId)).toEqual(['t3']);
      expect((states[0]!['tasks'] as TaskRow[]).map(t => t.id).sort()).toEqual(['t1', 't2', 't3']);
      // The others follow, one task a batch, latest first.
      const later = states.slice(1).filter(b => columnsOf(b).length > 0);
      expect(later.map(b => columnsOf(b).map(c => c.taskId))).toEqual([['t2'], ['t1']]);
      for (const c of states.flatMap(columnsOf)) {
        const rows = unpackColumns(c);
        expect(rows.map(r => r.id)).toEqual(Array.from({ length: 30 }, (_, i) => `s-${i}`));
        expect(new Set(rows.map(r => r.state))).toEqual(new Set(['done']));
      }
      // Another subtask's timeline: that alone, not everything again.
      const before = states.length;
      network.send({ from: 'watcher', to: TASKS, kind: 'watch', body: { live: true, subtasks: true, focus: { taskId: 't2', subtaskId: 's-3' } } });
      await until('the timeline', () => states.slice(before).some(b => b['timeline'] !== undefined));
      const answers = states.slice(before);
      expect(answers.some(b => b.full)).toBe(false);
      expect(answers.flatMap(columnsOf)).toEqual([]);
      const timeline = answers.find(b => b['timeline'] !== undefined)!['timeline'] as { taskId: string; subtaskId: string; entries: { step: string }[] };
      expect(timeline).toMatchObject({ taskId: 't2', subtaskId: 's-3' });
      expect(timeline.entries.map(e => e.step)).toContain('completed');
    } finally {
      joined.unsubscribe();
      inbox.unsubscribe();
      network.close();
    }
  });

  it('answers a flood of asks for everything with everything once a tick: now, then the latest ask at the end of its tick', async () => {
    const agents = ['a'].map(id => ({ id, capabilities: [], handle: () => Promise.resolve(1) }));
    service = await Service.start({ token: TOKEN, port: 0, feedMs: 1000, coordinator: { agents, topology: 'star' }, metrics: { processMetrics: false } });
    expect((await submitTask({ url: service.url, token: TOKEN, task: { id: 't', subtasks: Array.from({ length: 200 }, (_, i) => ({ id: `s-${i}` })) } })).success).toBe(true);
    const network = new WsClientNetwork({ url: service.url, agentId: 'flooder', token: TOKEN, role: 'client' });
    const fulls: StateBody[] = [];
    let cancelled = false;
    const inbox = network.join('flooder').subscribe(envelope => {
      if (envelope.kind === 'state' && (envelope.body as StateBody).full) fulls.push(envelope.body as StateBody);
      if (envelope.kind === 'cancelled') cancelled = true;
    });
    const joined = network.events$.subscribe(event => {
      if (event.type !== 'joined') return;
      // A hundred asks at once, one-shot and live by turns; the last is live without rows.
      for (let i = 0; i < 100; i++) network.send({ from: 'flooder', to: TASKS, kind: 'watch', body: { live: i % 2 === 1, subtasks: i < 99 } });
    });
    const until = async (what: string, ok: () => boolean): Promise<void> => {
      for (const deadline = Date.now() + 10_000; !ok(); await new Promise(resolve => setTimeout(resolve, 20))) {
        if (Date.now() > deadline) throw new Error(`no ${what} within 10 s`);
      }
    };
    try {
      await until('the second full state', () => fulls.length >= 2);
      // Anything the service still had for it comes before the answer to a later ask.
      network.send({ from: 'flooder', to: TASKS, kind: 'cancel-task', body: { taskId: 'none' } });
      await until('the answer to a cancel', () => cancelled);
      expect(fulls).toHaveLength(2);
      expect(fulls[0]).toHaveProperty('columns'); // the first ask: rows too
      expect(fulls[1]).not.toHaveProperty('columns'); // the latest: live, no rows
    } finally {
      joined.unsubscribe();
      inbox.unsubscribe();
      network.close();
    }
  });
});
