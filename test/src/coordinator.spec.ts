import { Subject, concat, defer, from, map, timer } from 'rxjs';
import { createCoordinator, type AgentSlot } from '../../src/coordinator.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import { AgentHost } from '../../streams/agentHost.js';
import { InMemoryNetwork, type Network, type RemoteMember } from '../../streams/network.js';
import { createRandom } from '../../streams/random.js';
import type { InProcessAgent, Subtask, Task } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';
import type { TopologyName } from '../../src/topology.js';

/** An agent whose work takes `workMs` of scheduler time and returns `payload × 2`. */
function worker(id: string, scheduler: VirtualScheduler, workMs = 100, capabilities: string[] = []): InProcessAgent {
  return {
    id,
    capabilities,
    handle: (subtask: Subtask, context) =>
      timer(workMs, scheduler).pipe(
        map(() => {
          if ((subtask.payload as { fail?: boolean } | undefined)?.fail) throw new Error(`refused ${subtask.id}`);
          return { doubled: ((subtask.payload as { n?: number } | undefined)?.n ?? 0) * 2, by: id, attempt: context.attempt };
        }),
      ),
  };
}

function team(scheduler: VirtualScheduler, n: number, workMs = 100): AgentSlot[] {
  return Array.from({ length: n }, (_, i) => {
    const factory = (): InProcessAgent => worker(`agent-${i}`, scheduler, workMs);
    return { agent: factory(), factory };
  });
}

const subtasks = (n: number): Subtask[] => Array.from({ length: n }, (_, i) => ({ id: `s-${i}`, payload: { n: i } }));

/** Runs a task to its end in virtual time. */
function runToEnd(
  scheduler: VirtualScheduler,
  coordinator: ReturnType<typeof createCoordinator>,
  task: Task,
  during?: (at: number) => void,
): { result: CoordinationResult; events: CoordinationEvent[] } {
  const events: CoordinationEvent[] = [];
  let result: CoordinationResult | undefined;
  coordinator.run$(task).subscribe(e => {
    events.push(e);
    if (e.type === 'task.completed') result = e.result;
  });
  const start = scheduler.now();
  for (let t = start; result === undefined && t < start + 3_600_000; t += 100) {
    during?.(t);
    scheduler.advanceTo(t);
  }
  if (result === undefined) throw new Error('run did not finish within a virtual hour');
  return { result, events };
}

const count = (events: CoordinationEvent[], type: CoordinationEvent['type']): number => events.filter(e => e.type === type).length;

describe('createCoordinator', () => {
  it.each<TopologyName>(['star', 'hierarchical', 'ring', 'mesh'])('finishes every subtask exactly once under %s', topology => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 6), topology, scheduler, seed: 1 });
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(40) });
    expect(result.success).toBe(true);
    expect(Object.keys(result.results)).toHaveLength(40);
    expect(result.results['s-7']).toMatchObject({ doubled: 14 });
    expect(result.failed).toEqual({});
    expect(count(events, 'subtask.completed')).toBe(40);
    expect(result.protocol).toBe(topology);
    expect(result.metrics.messagesByKind['assign']).toBeGreaterThanOrEqual(40);
    expect(scheduler.pending).toBe(0); // the run released every timer and host
  });

  it('routes work through more hops in a ring than in a star', () => {
    const perSubtask = (topology: TopologyName): number => {
      const scheduler = new VirtualScheduler();
      const coordinator = createCoordinator({ agents: team(scheduler, 8), topology, scheduler, seed: 2 });
      const { events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(64) });
      const hops = events.flatMap(e => (e.type === 'subtask.assigned' ? [e.hops] : []));
      return hops.reduce((a, b) => a + b, 0) / hops.length;
    };
    expect(perSubtask('ring')).toBeGreaterThan(perSubtask('star'));
    expect(perSubtask('mesh')).toBe(1);
  });

  it('detects a crashed agent, requeues its work with new attempts, and still finishes everything', () => {
    const scheduler = new VirtualScheduler();
    const slots = team(scheduler, 4, 400).map(s => ({ agent: s.agent })); // no factories: no restart
    const coordinator = createCoordinator({ agents: slots, topology: 'star', scheduler, seed: 3 });
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(60) }, t => {
      if (t === 1000) coordinator.hosts.get('agent-2')?.crash();
    });
    expect(result.success).toBe(true);
    expect(count(events, 'subtask.completed')).toBe(60);
    const down = events.find(e => e.type === 'agent.down' && e.agentId === 'agent-2');
    expect(down).toBeDefined();
    expect(events.some(e => e.type === 'subtask.requeued')).toBe(true);
    expect(result.healing.map(h => h.strategy)).toEqual(['restartAgent', 'reassignSubtasks']);
    expect(result.healing[0]!.ok).toBe(false);
  });

  it('restarts a hung agent from its factory when its progress stops', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 3, 500), topology: 'star', scheduler, seed: 4, progressTimeoutMs: 5000 });
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(30) }, t => {
      if (t === 700) coordinator.hosts.get('agent-1')?.hang();
    });
    expect(result.success).toBe(true);
    expect(events.some(e => e.type === 'fault.detected' && e.agentId === 'agent-1' && e.detail.includes('no progress'))).toBe(true);
    expect(events.some(e => e.type === 'agent.restarted' && e.agentId === 'agent-1')).toBe(true);
    expect(count(events, 'subtask.completed')).toBe(30);
  });

  it('rejects the result of a superseded attempt (a zombie behind a partition)', () => {
    const scheduler = new VirtualScheduler();
    const network = new InMemoryNetwork({ scheduler });
    // agent-0 is slow: its first subtask is still running when it is cut off, declared down and
    // its work finished by someone else; its late result must then be refused.
    const slots = ['agent-0', 'agent-1', 'agent-2'].map(id => ({ agent: worker(id, scheduler, id === 'agent-0' ? 8000 : 1000) }));
    const coordinator = createCoordinator({ agents: slots, topology: 'mesh', scheduler, network, seed: 5, progressTimeoutMs: 60_000 });
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(20) }, t => {
      // Cut agent-0 off while it works; heal after it has been declared down and its work moved.
      if (t === 500) network.partition([['agent-0']]);
      if (t === 7000) network.heal();
    });
    expect(result.success).toBe(true);
    expect(count(events, 'subtask.completed')).toBe(20);
    const completedBy = new Map(events.flatMap(e => (e.type === 'subtask.completed' ? [[e.subtaskId, e.attempt]] : [])));
    expect(completedBy.size).toBe(20);
    expect(result.metrics.staleResultsRejected).toBe(1);
    expect(events).toContainEqual(expect.objectContaining({ type: 'subtask.rejected', subtaskId: 's-0', agentId: 'agent-0', attempt: 1 }));
    expect(events.some(e => e.type === 'consensus.decided' && e.outcome === 'accepted')).toBe(true);
  });

  it('reports a subtask whose handler keeps failing, with the reason, after maxSubtaskAttempts runs', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 2), topology: 'star', scheduler, maxSubtaskAttempts: 2 });
    const task = { id: 't', subtasks: [...subtasks(4), { id: 'bad', payload: { fail: true } }] };
    const { result, events } = runToEnd(scheduler, coordinator, task);
    expect(result.success).toBe(false);
    expect(Object.keys(result.results)).toHaveLength(4);
    expect(result.failed['bad']).toMatch(/handler failed 2 time\(s\): refused bad/);
    expect(events.filter(e => e.type === 'subtask.assigned' && e.subtaskId === 'bad')).toHaveLength(2);
  });

  it('fails a subtask no live agent can run, after orphanTimeoutMs, and finishes the rest', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 2), topology: 'star', scheduler, orphanTimeoutMs: 5000 });
    const task = { id: 't', subtasks: [...subtasks(3), { id: 'gpu', capabilities: ['gpu'] }] };
    const { result } = runToEnd(scheduler, coordinator, task);
    expect(Object.keys(result.results).sort()).toEqual(['s-0', 's-1', 's-2']);
    expect(result.failed).toEqual({ gpu: 'no capable live agent for 5000 ms' });
  });

  it('says at once that subtasks wait for a capability no live agent has, once, and fails them at orphanTimeoutMs', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 2), topology: 'star', scheduler });
    const gpu = ['g-0', 'g-1', 'g-2'].map(id => ({ id, capabilities: ['gpu'] }));
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: [...subtasks(20), ...gpu] });
    // Twenty completions mean many dispatch passes; the reason is said once, when the wait starts.
    expect(events.filter(e => e.type === 'subtask.waiting')).toEqual([
      { type: 'subtask.waiting', at: 0, subtaskIds: ['g-0', 'g-1', 'g-2'], capabilities: ['gpu'], reason: 'no live agent has gpu', failsAt: 60_000 },
    ]);
    expect(events.filter(e => e.type === 'subtask.failed')).toEqual(gpu.map(g => ({ type: 'subtask.failed', at: 60_000, subtaskId: g.id, reason: 'no capable live agent for 60000 ms' })));
    expect(Object.keys(result.results)).toHaveLength(20);
  });

  it('names a capability set no single live agent holds', () => {
    const scheduler = new VirtualScheduler();
    const agents = [worker('a', scheduler, 100, ['code']), worker('b', scheduler, 100, ['gpu'])].map(agent => ({ agent }));
    const coordinator = createCoordinator({ agents, topology: 'star', scheduler, orphanTimeoutMs: 5000 });
    const { events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: [{ id: 'both', capabilities: ['gpu', 'code'] }] });
    expect(events.find(e => e.type === 'subtask.waiting')).toMatchObject({ subtaskIds: ['both'], capabilities: [], reason: 'no live agent has all of gpu, code', failsAt: 5000 });
  });

  it('ends at the deadline, reporting what was not done', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 1, 1000), topology: 'star', scheduler, deadlineMs: 2500 });
    const { result } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(5) });
    expect(Object.keys(result.results)).toHaveLength(2);
    expect(Object.values(result.failed)).toEqual(['task deadline reached', 'task deadline reached', 'task deadline reached']);
    expect(result.metrics.finishedAt).toBe(2500);
  });

  it('ends a task at its own deadlineMs, counted from when it starts; the coordinator\'s deadline still holds', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 1, 1000), topology: 'star', scheduler, deadlineMs: 8000 });
    runToEnd(scheduler, coordinator, { id: 'first', subtasks: subtasks(1) });
    // Started after the first (about 1 s in): due 2.5 s later, with two of its subtasks done.
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(5), deadlineMs: 2500 });
    const startedAt = (events.find(e => e.type === 'task.started') as { at: number }).at;
    expect(startedAt).toBeGreaterThanOrEqual(1000);
    expect(result.success).toBe(false);
    expect(Object.keys(result.results)).toHaveLength(2);
    expect(Object.values(result.failed)).toEqual(['task deadline reached', 'task deadline reached', 'task deadline reached']);
    expect(result.metrics.finishedAt).toBe(startedAt + 2500);
    // The coordinator's, at 8,000, comes before this one's own.
    const late = runToEnd(scheduler, coordinator, { id: 'late', subtasks: subtasks(9), deadlineMs: 60_000 });
    expect(late.result.metrics.finishedAt).toBe(8000);
    for (const deadlineMs of [0, -1, Number.NaN, 2 ** 31]) expect(() => coordinator.run$({ id: 'bad', subtasks: [], deadlineMs }).subscribe()).toThrow(/deadlineMs must be a number of ms in \(0, 2147483647\]/);
  });

  it('says how many other tasks ran alongside a task (its message counts are the network\'s, theirs too)', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 2, 100), topology: 'star', scheduler, maxTasks: 2 });
    const results: CoordinationResult[] = [];
    for (const id of ['a', 'b']) coordinator.run$({ id, subtasks: subtasks(4) }).subscribe(e => e.type === 'task.completed' && results.push(e.result));
    for (let t = 0; results.length < 2 && t < 60_000; t += 100) scheduler.advanceTo(t);
    expect(results.map(r => [r.taskId, r.metrics.tasksAlongside])).toEqual([
      ['a', 1],
      ['b', 1],
    ]);
    const alone = runToEnd(scheduler, coordinator, { id: 'c', subtasks: subtasks(2) });
    expect(alone.result.metrics.tasksAlongside).toBe(0);
  });

  it('finishes an empty task at once', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 2), topology: 'ring', scheduler });
    const { result } = runToEnd(scheduler, coordinator, { id: 'empty', subtasks: [] });
    expect(result).toMatchObject({ taskId: 'empty', success: true, results: {}, failed: {} });
  });

  it('resolves run() with the result', async () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 2), topology: 'star', scheduler });
    const promise = coordinator.run({ id: 't', subtasks: subtasks(4) });
    scheduler.advanceTo(60_000);
    await expect(promise).resolves.toMatchObject({ success: true, protocol: 'star' });
  });

  it.each([
    ['topology', { topology: 'bus' }],
    ['agents', { agents: 'many' }],
    ['duplicate agent id', { agents: [{ id: 'a', capabilities: [], handle: () => Promise.resolve(1) }, { id: 'a', capabilities: [], handle: () => Promise.resolve(1) }] }],
    ['heartbeat.intervalMs', { heartbeat: { intervalMs: 0 } }],
    ['progressTimeoutMs', { progressTimeoutMs: -1 }],
    ['maxSubtaskAttempts', { maxSubtaskAttempts: 0 }],
    ['seed', { seed: 1.5 }],
  ])('rejects a bad %s with a RangeError naming it', (name, options) => {
    const scheduler = new VirtualScheduler();
    expect(() => createCoordinator({ agents: team(scheduler, 1), scheduler, ...(options as object) })).toThrow(RangeError);
    expect(() => createCoordinator({ agents: team(scheduler, 1), scheduler, ...(options as object) })).toThrow(name);
  });

  it('rejects a malformed task without starting anything', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 1), scheduler });
    expect(() => coordinator.run$({ id: 't', subtasks: [{ id: 'x' }, { id: 'x' }] })).toThrow(/duplicate subtask id "x"/);
    expect(scheduler.pending).toBe(0);
  });

  it('dispatches a long queue in priority then task order, each subtask once', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 3, 10), topology: 'star', scheduler, seed: 9 });
    const task = { id: 't', subtasks: subtasks(3000).map((s, i) => (i % 500 === 499 ? { ...s, priority: 1 } : s)) };
    const { result, events } = runToEnd(scheduler, coordinator, task);
    expect(result.success).toBe(true);
    const order = events.flatMap(e => (e.type === 'subtask.assigned' ? [e.subtaskId] : []));
    const urgent = task.subtasks.filter(s => s.priority === 1).map(s => s.id);
    expect(order).toEqual([...urgent, ...task.subtasks.filter(s => s.priority === undefined).map(s => s.id)]);
  });

  describe('switchProtocol', () => {
    it('hands a running run over to another topology: in-flight work finishes once, new work takes the new routes', () => {
      const scheduler = new VirtualScheduler();
      const starts = new Map<string, number>();
      const slots = team(scheduler, 6, 1000).map(({ agent }) => ({
        agent: { ...agent, handle: (subtask: Subtask, context: Parameters<InProcessAgent['handle']>[1]) => (starts.set(subtask.id, (starts.get(subtask.id) ?? 0) + 1), agent.handle(subtask, context)) },
      }));
      const coordinator = createCoordinator({ agents: slots, topology: 'star', scheduler, seed: 8 });
      let switched = -1;
      let at = -1;
      const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(24) }, t => {
        if (t !== 500) return;
        at = scheduler.now(); // mid-way through the first subtasks
        switched = coordinator.switchProtocol('ring', 'operator asked');
      });
      expect(switched).toBe(1);
      const change = events.find(e => e.type === 'protocol.switched');
      expect(change).toMatchObject({ at, inFlight: 6, switch: { from: 'star', to: 'ring', reason: 'operator asked', at } });
      expect(result).toMatchObject({ success: true, protocol: 'ring', switches: [{ from: 'star', to: 'ring' }] });
      expect(count(events, 'subtask.completed')).toBe(24);
      expect(new Set(events.flatMap(e => (e.type === 'subtask.completed' ? [e.subtaskId] : []))).size).toBe(24);
      expect([...starts.values()].every(n => n === 1)).toBe(true); // none ran twice
      expect(starts.size).toBe(24);
      expect(result.metrics.staleResultsRejected).toBe(0);
      // Work in flight at the switch came back over the star; later work went round the ring.
      expect(Object.keys(result.metrics.performance).sort()).toEqual(['ring', 'star']);
      expect(events.some(e => e.type === 'subtask.assigned' && e.at > at && e.hops > 2)).toBe(true);
    });

    it('returns 0 when no run is in progress or the run already uses the topology', () => {
      const scheduler = new VirtualScheduler();
      const coordinator = createCoordinator({ agents: team(scheduler, 3), topology: 'mesh', scheduler });
      expect(coordinator.switchProtocol('star')).toBe(0); // nothing running yet
      let during = -1;
      const { result } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(6) }, t => {
        if (t === 100) during = coordinator.switchProtocol('mesh');
      });
      expect(during).toBe(0);
      expect(result.switches).toEqual([]);
      expect(coordinator.switchProtocol('star')).toBe(0); // finished
    });

    it.each(['adaptive', 'bus', 3])('rejects %s with a RangeError naming the option', to => {
      const scheduler = new VirtualScheduler();
      const coordinator = createCoordinator({ agents: team(scheduler, 1), scheduler });
      expect(() => coordinator.switchProtocol(to as TopologyName)).toThrow(RangeError);
      expect(() => coordinator.switchProtocol(to as TopologyName)).toThrow(/to must be one of/);
    });
  });

  it('when every agent slows down at once (saturation), no agent is degraded and nothing switches', () => {
    const scheduler = new VirtualScheduler();
    let workMs = 50;
    const agents: InProcessAgent[] = ['a', 'b', 'c', 'd'].map(id => ({ id, capabilities: [], handle: () => timer(workMs, scheduler).pipe(map(() => id)) }));
    const coordinator = createCoordinator({ agents, topology: 'star', scheduler, seed: 5 });
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(200) }, at => {
      if (at === 1500) workMs = 400; // everyone, at once
    });
    expect(result.failed).toEqual({});
    expect(events.filter(e => e.type === 'fault.detected' && e.kind === 'performance_degradation')).toEqual([]);
    expect(result.healing).toEqual([]);
    expect(count(events, 'protocol.switched')).toBe(0);
    expect(result.protocol).toBe('star');
  });

  it('one agent ×4 slower than its peers on the same work is degraded, and only that one', () => {
    const scheduler = new VirtualScheduler();
    let slowFactor = 1;
    const agents: InProcessAgent[] = ['a', 'b', 'c', 'd'].map(id => ({ id, capabilities: [], handle: () => timer(id === 'c' ? 50 * slowFactor : 50, scheduler).pipe(map(() => id)) }));
    const coordinator = createCoordinator({ agents, topology: 'star', scheduler, seed: 5 });
    const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(300) }, at => {
      if (at === 1500) slowFactor = 4;
    });
    expect(result.failed).toEqual({});
    const degraded = events.filter(e => e.type === 'fault.detected' && e.kind === 'performance_degradation').map(e => (e as { agentId?: string }).agentId);
    expect(degraded.length).toBeGreaterThan(0);
    expect(new Set(degraded)).toEqual(new Set(['c']));
  });

  describe('agents in other processes (a network with members$)', () => {
    /**
     * Remote agents stand in as AgentHosts on the same in-memory network that the coordinator does
     * not host: it learns of them only from `members$`, as it does from a WebSocket server.
     */
    function remoteSetup(ids: readonly string[], topology: TopologyName = 'star') {
      const scheduler = new VirtualScheduler();
      const inner = new InMemoryNetwork({ scheduler });
      // As a server's: those connected now, then each new connection.
      const connected = new Map<string, RemoteMember>();
      const members = new Subject<RemoteMember>();
      const members$ = defer(() => concat(from([...connected.values()]), members));
      const sent: Array<{ from: string; to: string; kind: string; body: unknown }> = [];
      const network: Network = {
        scheduler,
        join: id => inner.join(id),
        send: m => {
          sent.push(m);
          inner.send(m);
        },
        get stats() {
          return inner.stats;
        },
        members$,
      };
      const hosts = new Map(
        ids.map((id, i) => [
          id,
          new AgentHost(worker(id, scheduler, 100), { network, coordinatorId: 'coordinator', heartbeatIntervalMs: 1000, heartbeatJitterMs: 100, random: createRandom(i) }),
        ]),
      );
      const coordinator = createCoordinator({ agents: [], network, topology, scheduler, seed: 3 });
      const connect = (id: string): void => {
        hosts.get(id)?.start();
        connected.set(id, { agentId: id, capabilities: [], slots: 1 });
        members.next({ agentId: id, capabilities: [], slots: 1 });
      };
      return { scheduler, network, inner, hosts, coordinator, connect, sent };
    }

    it('admits agents as they connect, also mid-run, and finishes every subtask on them', () => {
      const { scheduler, coordinator, connect } = remoteSetup(['r-0', 'r-1', 'r-2']);
      const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(30) }, at => {
        if (at === 0) connect('r-0');
        if (at === 500) connect('r-1');
        if (at === 800) connect('r-2');
      });
      expect(result.success).toBe(true);
      expect(Object.keys(result.results)).toHaveLength(30);
      expect(events.filter(e => e.type === 'agent.joined').map(e => (e as { agentId: string }).agentId)).toEqual(['r-0', 'r-1', 'r-2']);
      const by = new Set(events.filter(e => e.type === 'subtask.completed').map(e => (e as { agentId: string }).agentId));
      expect(by).toEqual(new Set(['r-0', 'r-1', 'r-2']));
    });

    it('a reconnect under a known id changes nothing; a remote agent that goes silent is detected and its work moves', () => {
      const { scheduler, coordinator, hosts, connect } = remoteSetup(['r-0', 'r-1']);
      const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(40) }, at => {
        if (at === 0) {
          connect('r-0');
          connect('r-1');
        }
        if (at === 1000) connect('r-1'); // a reconnect: announced again
        if (at === 1500) hosts.get('r-0')?.crash(); // SIGKILL
      });
      expect(result.success).toBe(true);
      expect(count(events, 'agent.joined')).toBe(2);
      expect(events.some(e => e.type === 'agent.down' && e.agentId === 'r-0')).toBe(true);
      const completions = events.filter(e => e.type === 'subtask.completed').map(e => (e as { subtaskId: string }).subtaskId);
      expect(new Set(completions).size).toBe(40);
      expect(completions).toHaveLength(40);
    });

    it('reassigns at once what a restarted remote process was running (a new incarnation forgot it)', () => {
      const { scheduler, coordinator, hosts, connect } = remoteSetup(['r-0', 'r-1']);
      const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(20) }, at => {
        if (at === 0) {
          connect('r-0');
          connect('r-1');
        }
        if (at === 300) hosts.get('r-0')?.restart();
      });
      expect(result.success).toBe(true);
      const requeued = events.filter(e => e.type === 'subtask.requeued' && e.reason.includes('agent restarted'));
      expect(requeued.length).toBeGreaterThan(0);
      expect(requeued.every(e => e.at < 300 + 30_000)).toBe(true); // well before a progress timeout
    });

    it('runs one task after another on the same agents: attempts of the second task start above the first task', () => {
      const { scheduler, coordinator, connect } = remoteSetup(['r-0', 'r-1']);
      connect('r-0');
      connect('r-1');
      const first = runToEnd(scheduler, coordinator, { id: 't-1', subtasks: subtasks(10) });
      const second = runToEnd(scheduler, coordinator, { id: 't-2', subtasks: subtasks(10) }); // the same subtask ids
      expect(first.result.failed).toEqual({});
      expect(second.result.failed).toEqual({});
      const attempts = (events: CoordinationEvent[]): number[] => events.flatMap(e => (e.type === 'subtask.assigned' ? [e.attempt] : []));
      expect(Math.min(...attempts(second.events))).toBeGreaterThan(Math.max(...attempts(first.events)));
      expect(Object.keys(second.result.results)).toHaveLength(10);
    });

    it('in a mesh, tells remote agents their peers: they beat each other, and their votes confirm a crash', () => {
      const { scheduler, coordinator, hosts, connect, sent } = remoteSetup(['r-0', 'r-1', 'r-2'], 'mesh');
      const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(40) }, at => {
        if (at === 0) for (const id of ['r-0', 'r-1', 'r-2']) connect(id);
        if (at === 1000) hosts.get('r-2')?.crash();
      });
      expect(result.failed).toEqual({});
      const told = sent.filter(m => m.kind === 'peers' && m.to === 'r-0').map(m => m.body);
      expect(told).toContainEqual({ targets: expect.arrayContaining(['coordinator', 'r-1', 'r-2']) }); // once all have joined
      expect(told.at(-1)).toEqual({ targets: expect.not.arrayContaining(['r-2']) }); // spliced out after its crash
      expect(sent.some(m => m.kind === 'heartbeat' && m.from === 'r-0' && m.to === 'r-1')).toBe(true);
      const verdict = events.find(e => e.type === 'consensus.decided' && e.proposalId.startsWith('down:r-2'));
      expect(verdict).toMatchObject({ outcome: 'accepted', yes: 2 });
      // Star agents are never told anything: their beats go to the coordinator alone.
      const star = remoteSetup(['s-0'], 'star');
      runToEnd(star.scheduler, star.coordinator, { id: 't', subtasks: subtasks(3) }, at => at === 0 && star.connect('s-0'));
      expect(star.sent.filter(m => m.kind === 'peers')).toEqual([]);
    });

    it('a run abandoned midway tells remote agents to drop its work and to beat the coordinator alone; the next run numbers attempts above it', () => {
      const { scheduler, coordinator, connect, sent } = remoteSetup(['r-0', 'r-1', 'r-2'], 'mesh');
      const first: CoordinationEvent[] = [];
      const running = coordinator.run$({ id: 't-1', subtasks: subtasks(30) }).subscribe(e => first.push(e));
      for (const id of ['r-0', 'r-1', 'r-2']) connect(id);
      scheduler.advanceBy(250);
      const held = new Set(first.filter(e => e.type === 'subtask.assigned').map(e => (e as { subtaskId: string }).subtaskId));
      for (const e of first) if (e.type === 'subtask.completed') held.delete(e.subtaskId);
      expect(held.size).toBeGreaterThan(0);
      const before = sent.length;
      running.unsubscribe();
      const after = sent.slice(before);
      expect(new Set(after.filter(m => m.kind === 'cancel').map(m => (m.body as { subtaskId: string }).subtaskId))).toEqual(held);
      for (const id of ['r-0', 'r-1', 'r-2']) expect(after).toContainEqual(expect.objectContaining({ to: id, kind: 'peers', body: { targets: ['coordinator'] } }));
      const second = runToEnd(scheduler, coordinator, { id: 't-2', subtasks: subtasks(30) });
      expect(second.result.failed).toEqual({});
      const attempts = (events: CoordinationEvent[]): number[] => events.flatMap(e => (e.type === 'subtask.assigned' ? [e.attempt] : []));
      expect(Math.min(...attempts(second.events))).toBeGreaterThan(Math.max(...attempts(first)));
    });

    it('a run that cannot join the network ends at once, every subtask failed with the reason', () => {
      const scheduler = new VirtualScheduler();
      const inner = new InMemoryNetwork({ scheduler });
      inner.join('coordinator').subscribe(); // the id is taken
      const coordinator = createCoordinator({ agents: team(scheduler, 2), network: inner, topology: 'star', scheduler });
      const { result } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(3) });
      expect(result.success).toBe(false);
      expect(Object.values(result.failed)).toEqual(Array(3).fill(expect.stringMatching(/could not join the network: .*already joined/)));
    });

    it('says at once that no agent is connected yet, and fails the waiting subtasks at orphanTimeoutMs', () => {
      const { scheduler, coordinator } = remoteSetup([]);
      const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(50) });
      const waiting = events.filter(e => e.type === 'subtask.waiting');
      expect(waiting).toEqual([{ type: 'subtask.waiting', at: 0, subtaskIds: subtasks(50).map(s => s.id), capabilities: [], reason: 'no agents connected yet', failsAt: 60_000 }]);
      expect(result.metrics.finishedAt).toBe(60_000);
      expect(Object.values(result.failed)).toEqual(Array(50).fill('no capable live agent for 60000 ms'));
    });

    it('an agent that joins in time takes the waiting work; what it cannot run is said to wait for a new reason', () => {
      const { scheduler, coordinator, connect } = remoteSetup(['r-0']);
      const task = { id: 't', subtasks: [...subtasks(5), { id: 'gpu', capabilities: ['gpu'] }] };
      const { result, events } = runToEnd(scheduler, coordinator, task, at => {
        if (at === 10_000) connect('r-0');
      });
      expect(events.filter(e => e.type === 'subtask.waiting').map(e => e.type === 'subtask.waiting' && [e.at, e.subtaskIds.length, e.reason])).toEqual([
        [0, 6, 'no agents connected yet'],
        [9_900, 1, 'no live agent has gpu'], // when it joined (runToEnd calls back before it advances)
      ]);
      expect(Object.keys(result.results)).toHaveLength(5);
      expect(result.failed).toEqual({ gpu: 'no capable live agent for 60000 ms' });
    });

    it('refuses a remote agent whose id belongs to an in-process agent', () => {
      const scheduler = new VirtualScheduler();
      const inner = new InMemoryNetwork({ scheduler });
      const network: Network = {
        scheduler,
        join: id => inner.join(id),
        send: m => inner.send(m),
        get stats() {
          return inner.stats;
        },
        members$: timer(10, scheduler).pipe(map((): RemoteMember => ({ agentId: 'agent-0', capabilities: [], slots: 4 }))),
      };
      const coordinator = createCoordinator({ agents: team(scheduler, 2), network, topology: 'star', scheduler });
      const { result, events } = runToEnd(scheduler, coordinator, { id: 't', subtasks: subtasks(5) });
      expect(result.success).toBe(true);
      expect(events).toContainEqual(expect.objectContaining({ type: 'agent.refused', agentId: 'agent-0' }));
    });

    it('rejects a result that names the assignee but comes from another node, and still finishes', () => {
      const { scheduler, coordinator, inner, connect } = remoteSetup(['r-0']);
      const rogue: string[] = [];
      inner.join('rogue').subscribe();
      const events: CoordinationEvent[] = [];
      let result: CoordinationResult | undefined;
      coordinator.events$.subscribe(e => {
        if (e.type === 'subtask.assigned' && rogue.length === 0) {
          rogue.push(e.subtaskId);
          inner.send({ from: 'rogue', to: 'coordinator', kind: 'result', body: { taskId: 't', subtaskId: e.subtaskId, attempt: e.attempt, agentId: e.agentId, ok: true, value: 'forged', via: [] } });
        }
      });
      coordinator.run$({ id: 't', subtasks: subtasks(3) }).subscribe(e => {
        events.push(e);
        if (e.type === 'task.completed') result = e.result;
      });
      connect('r-0');
      scheduler.advanceBy(60_000);
      expect(result?.success).toBe(true);
      expect(result?.results[rogue[0] as string]).not.toBe('forged');
      expect(events).toContainEqual(expect.objectContaining({ type: 'subtask.rejected', subtaskId: rogue[0], reason: expect.stringMatching(/sent by rogue/) }));
      expect(result?.metrics.staleResultsRejected).toBe(1);
    });
  });
});
