import { Subject, concat, defer, from, map, timer, type Subscription } from 'rxjs';
import { createCoordinator, type CoordinatorOptions } from '../../src/coordinator.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import { AgentHost } from '../../streams/agentHost.js';
import { InMemoryNetwork, type Envelope, type Network, type RemoteMember } from '../../streams/network.js';
import { hopsLeft, type AssignBody, type ResultBody } from '../../streams/protocol.js';
import { createRandom } from '../../streams/random.js';
import type { InProcessAgent, Subtask, Task } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

// The coordinator against agents in other processes that stall, forge or restart, in virtual
// time. Remote agents are nodes of an in-memory network the coordinator learns of only through
// `members$`, as it does from a WebSocket server; hostile ones are scripted by hand.

function worker(id: string, scheduler: VirtualScheduler, workMs = 100): InProcessAgent {
  return { id, capabilities: [], handle: (subtask: Subtask) => timer(workMs, scheduler).pipe(map(() => ({ by: id, subtask: subtask.id }))) };
}

function setup(options: Partial<CoordinatorOptions> = {}) {
  const scheduler = new VirtualScheduler();
  const inner = new InMemoryNetwork({ scheduler });
  const members = new Subject<RemoteMember>();
  const departures = new Subject<string>();
  const connected = new Map<string, RemoteMember>();
  const network: Network = {
    scheduler,
    join: id => inner.join(id),
    send: m => inner.send(m),
    get stats() {
      return inner.stats;
    },
    members$: defer(() => concat(from([...connected.values()]), members)),
    departures$: departures,
  };
  const coordinator = createCoordinator({ agents: [], network, topology: 'star', scheduler, seed: 5, ...options });
  const announce = (member: RemoteMember): void => {
    connected.set(member.agentId, member);
    members.next(member);
  };
  const honest = (id: string, workMs = 100): AgentHost => {
    const host = new AgentHost(worker(id, scheduler, workMs), { network, coordinatorId: 'coordinator', heartbeatIntervalMs: 1000, heartbeatJitterMs: 100, random: createRandom(id.length) });
    host.start();
    announce({ agentId: id, capabilities: [], slots: 1, instance: `${id}#1` });
    return host;
  };
  /** A scripted node: beats every second and does what `react` says with what it receives. */
  const rogue = (id: string, slots: number, react: (envelope: Envelope, send: (m: { to: string; kind: string; body: unknown }) => void) => void, capabilities: string[] = []): { received: Envelope[]; stop: () => void } => {
    const received: Envelope[] = [];
    const send = (m: { to: string; kind: string; body: unknown }): void => network.send({ from: id, ...m });
    const inbox = inner.join(id).subscribe(envelope => {
      received.push(envelope);
      react(envelope, send);
    });
    const beat = (): Subscription =>
      scheduler.schedule(function (this: { schedule(state?: unknown, delay?: number): void }) {
        send({ to: 'coordinator', kind: 'heartbeat', body: { load: 0, incarnation: 1 } });
        this.schedule(undefined, 1000);
      }, 0);
    const beating = beat();
    announce({ agentId: id, capabilities, slots, instance: `${id}#1` });
    return { received, stop: () => (inbox.unsubscribe(), beating.unsubscribe()) };
  };
  const run = (task: Task, during?: (at: number) => void): { result: CoordinationResult; events: CoordinationEvent[] } => {
    const events: CoordinationEvent[] = [];
    let result: CoordinationResult | undefined;
    coordinator.run$(task).subscribe(e => {
      events.push(e);
      if (e.type === 'task.completed') result = e.result;
    });
    for (let t = scheduler.now(); result === undefined && t < 3_600_000; t += 10) {
      during?.(t);
      scheduler.advanceTo(t);
    }
    if (result === undefined) throw new Error(`the run did not finish within a virtual hour:\n${events.slice(0, 60).map(e => JSON.stringify(e)).join('\n')}`);
    return { result, events };
  };
  /** Its connection closes without a leave (as a server reports a killed process). */
  const closeConnection = (id: string): void => {
    connected.delete(id);
    departures.next(id);
  };
  return { scheduler, network, coordinator, honest, rogue, announce, closeConnection, run };
}

const subtasks = (n: number): Subtask[] => Array.from({ length: n }, (_, i) => ({ id: `s-${i}` }));
const of = <T extends CoordinationEvent['type']>(events: CoordinationEvent[], type: T) => events.filter((e): e is Extract<CoordinationEvent, { type: T }> => e.type === type);

/** Every subtask ended exactly once: completed once or failed, never both, none left. */
function exactlyOnce(result: CoordinationResult, events: CoordinationEvent[], n: number): void {
  const completed = of(events, 'subtask.completed').map(e => e.subtaskId);
  expect(new Set(completed).size).toBe(completed.length);
  expect(Object.keys(result.results).length + Object.keys(result.failed).length).toBe(n);
}

describe('coordinator defences against agents in other processes', () => {
  it('an agent claiming 1,024 slots that fakes progress gets one subtask at a time, loses it at the timeout, and is quarantined; the task completes', () => {
    const { honest, rogue, run } = setup();
    honest('h-0');
    honest('h-1');
    let rogueRunning = 0;
    let rogueMost = 0;
    const faker = rogue('faker', 1024, (e, send) => {
      if (e.kind === 'cancel') rogueRunning--;
      if (e.kind !== 'assign' || hopsLeft(e.body as AssignBody) > 0) return;
      const { taskId = 't', subtask, attempt } = e.body as AssignBody;
      rogueMost = Math.max(rogueMost, ++rogueRunning);
      // Acknowledges and reports progress forever, never a result.
      for (let p = 0; p < 10; p++) send({ to: 'coordinator', kind: 'progress', body: { taskId, subtaskId: subtask.id, attempt, progress: p / 10 } });
    });
    const { result, events } = run({ id: 't', subtasks: subtasks(30), timeoutMs: 5000 });
    expect(result.success).toBe(true);
    exactlyOnce(result, events, 30);
    expect(rogueMost).toBe(1); // granted one slot, never more: it delivers nothing
    expect(of(events, 'agent.quarantined')).toEqual([expect.objectContaining({ agentId: 'faker', reason: '2 attempts in a row ran past their limit' })]);
    expect(of(events, 'subtask.completed').every(e => e.agentId !== 'faker')).toBe(true);
    faker.stop();
  });

  it('a subtask whose attempts all time out fails with the reason after maxSubtaskAttempts, and the rest completes', () => {
    const { honest, run } = setup({ maxSubtaskAttempts: 2 });
    const { result, events } = run({ id: 't', subtasks: [{ id: 'slow', timeoutMs: 300 }, ...subtasks(4)] }, at => {
      if (at === 0) {
        honest('h-0', 1000); // every run of `slow` (1 s) is past its 300 ms
        honest('h-1', 1000);
      }
    });
    expect(result.failed).toEqual({ slow: expect.stringMatching(/^timed out 2 time\(s\): attempt \d+ on h-\d ran past its 300 ms limit$/) });
    expect(Object.keys(result.results).sort()).toEqual(['s-0', 's-1', 's-2', 's-3']); // 1 s each, under the default limit
    exactlyOnce(result, events, 5);
  });

  it('an agent that beats but never acknowledges is quarantined after three assignments; its work completes elsewhere', () => {
    const { honest, rogue, run } = setup();
    honest('h-0', 1000);
    const mute = rogue('mute', 1, () => undefined);
    const { result, events } = run({ id: 't', subtasks: subtasks(20) });
    expect(result.success).toBe(true);
    exactlyOnce(result, events, 20);
    expect(of(events, 'agent.quarantined')).toEqual([expect.objectContaining({ agentId: 'mute', reason: '3 assignments in a row not acknowledged' })]);
    // One relayed by the hub (unanswered: the hub or the agent?), then three straight to it, unanswered: the agent.
    // Each attempt is sent again on its retransmission timeout before it is given up: a retransmission is no new attempt.
    const reached = mute.received.filter(e => e.kind === 'assign' && hopsLeft(e.body as AssignBody) === 0).map(e => (e.body as AssignBody).attempt);
    expect(new Set(reached).size).toBe(4);
    expect(reached.length).toBeGreaterThan(4);
    mute.stop();
  });

  it('progress reported by anyone but the assignee is ignored: it neither acknowledges nor keeps the attempt alive', () => {
    const { honest, rogue, run } = setup();
    let meddled = 0;
    const meddler = rogue('meddler', 1, (e, send) => {
      if (e.kind !== 'assign') return;
      const { taskId = 't', subtask, attempt } = e.body as AssignBody;
      send({ to: 'coordinator', kind: 'progress', body: { taskId, subtaskId: subtask.id, attempt, progress: 0 } });
      // …and for every other attempt it can guess, as if it were the other agents.
      for (let a = attempt - 3; a <= attempt + 3; a++) for (let i = 0; i < 10; i++) send({ to: 'coordinator', kind: 'progress', body: { taskId: 't', subtaskId: `s-${i}`, attempt: a, progress: 0.5 } }), meddled++;
    });
    const { result, events } = run({ id: 't', subtasks: subtasks(10) }, at => {
      if (at === 0) honest('h-0');
    });
    expect(meddled).toBeGreaterThan(0);
    expect(result.success).toBe(true);
    exactlyOnce(result, events, 10);
    meddler.stop();
  });

  it('a hub that drops what it relays is charged for it and quarantined; the work goes by other routes', () => {
    const { scheduler, honest, rogue, run } = setup();
    const sink = rogue('sink', 1, (e, send) => {
      // Does its own work (a second each), but passes nothing on.
      if (e.kind !== 'assign' || hopsLeft(e.body as AssignBody) > 0) return;
      const { taskId = 't', subtask, attempt } = e.body as AssignBody;
      send({ to: 'coordinator', kind: 'progress', body: { taskId, subtaskId: subtask.id, attempt, progress: 0 } });
      scheduler.schedule(() => send({ to: 'coordinator', kind: 'result', body: { via: [], taskId, subtaskId: subtask.id, attempt, agentId: 'sink', ok: true, value: 1 } satisfies ResultBody }), 1000);
    });
    honest('h-0', 1000);
    honest('h-1', 1000);
    const { result, events } = run({ id: 't', subtasks: subtasks(20) });
    expect(result.success).toBe(true);
    exactlyOnce(result, events, 20);
    expect(of(events, 'agent.quarantined')).toEqual([expect.objectContaining({ agentId: 'sink', reason: '3 deliveries through it in a row failed' })]);
    sink.stop();
  });

  it('a result its transport marks as forged is rejected; the hub forging it and keeping the real work back is routed around', () => {
    const { honest, rogue, run } = setup();
    let forged = 0;
    const liar = rogue('liar', 1, (e, send) => {
      if (e.kind !== 'assign') return;
      const { taskId = 't', subtask, attempt } = e.body as AssignBody;
      send({ to: 'coordinator', kind: 'progress', body: { taskId, subtaskId: subtask.id, attempt, progress: 0 } });
      // A result in h-0's name, as a WebSocket server hands over one not signed by h-0.
      const body: ResultBody = { via: [], taskId, subtaskId: subtask.id, attempt, agentId: 'h-0', ok: true, value: 'forged', forged: 'not signed by "h-0"' };
      forged++;
      send({ to: 'coordinator', kind: 'result', body });
    });
    const { result, events } = run({ id: 't', subtasks: subtasks(10) }, at => {
      if (at === 0) honest('h-0');
    });
    expect(forged).toBeGreaterThan(0);
    expect(result.success).toBe(true);
    expect(Object.values(result.results)).not.toContain('forged');
    exactlyOnce(result, events, 10);
    expect(of(events, 'subtask.rejected').some(e => /^forged: not signed by "h-0" \(delivered by liar\)$/.test(e.reason))).toBe(true);
    // With h-0 the only agent behind it, the coordinator cannot tell a hub that drops from a spoke
    // that ignores what the hub brings it: one agent's failures do not condemn a relay (see
    // `chargeRelays`); h-0's next assignments go straight to it. No honest agent is quarantined.
    expect(of(events, 'agent.quarantined').filter(e => e.agentId !== 'liar')).toEqual([]);
    liar.stop();
  });

  it('a root that drops the results it relays is found out once the member it keeps back has been tried as often as its route needs, not after 16 of the first guess (24 s)', () => {
    const { scheduler, honest, rogue, run } = setup({ topology: 'hierarchical' });
    // The root: relays assignments down, drops every result it should carry up, does its own work.
    const root = rogue(
      'root',
      1,
      (e, send) => {
        const body = e.body as AssignBody;
        if (e.kind === 'result') return;
        if (e.kind !== 'assign') return;
        if (hopsLeft(body) > 0) return send({ to: body.via[0] as string, kind: 'assign', body: { ...body, via: body.via.slice(1) } });
        const { taskId = 't', subtask, attempt } = body;
        send({ to: 'coordinator', kind: 'progress', body: { taskId, subtaskId: subtask.id, attempt, progress: 0 } });
        scheduler.schedule(() => send({ to: 'coordinator', kind: 'result', body: { via: [], taskId, subtaskId: subtask.id, attempt, agentId: 'root', ok: true, value: 1 } satisfies ResultBody }), 10);
      },
      ['task_delegation', 'resource_allocation', 'conflict_resolution'],
    );
    honest('h-0', 10);
    const { result, events } = run({ id: 't', subtasks: subtasks(6) });
    exactlyOnce(result, events, 6);
    const sent = new Map(of(events, 'subtask.assigned').map(e => [`${e.subtaskId}#${e.attempt}`, e.at]));
    const lost = of(events, 'subtask.requeued').filter(e => /lost in transit via root/.test(e.reason));
    expect(lost.length).toBeGreaterThan(0);
    // The member's `done` measured its round trip (heldMs): the root's silence is put to the test
    // by resends every rto of that trip, and the floor is the acknowledgement timeout (3 s).
    for (const e of lost) expect(e.at - (sent.get(`${e.subtaskId}#${e.attempt}`) as number)).toBeLessThan(3_500);
    root.stop();
  });

  it('short work acknowledged by its result alone is measured when the result says how long the agent held it (heldMs): later assignments carry its round trip, not the first guess', () => {
    for (const says of [true, false]) {
      const { scheduler, rogue, run } = setup();
      const rtos: number[] = [];
      rogue('r-0', 1, (envelope, send) => {
        if (envelope.kind !== 'assign') return;
        const body = envelope.body as AssignBody;
        rtos.push(body.rto as number);
        // 5 ms of work, and no acknowledgement of its own: the result says it.
        const result: ResultBody = { via: [], subtaskId: body.subtask.id, attempt: body.attempt, agentId: 'r-0', ok: true, value: 1, ...(body.taskId === undefined ? {} : { taskId: body.taskId }), ...(says ? { heldMs: 5 } : {}) };
        scheduler.schedule(() => send({ to: 'coordinator', kind: 'result', body: result }), 5);
      });
      const { result, events } = run({ id: 'held', subtasks: subtasks(3) });
      exactlyOnce(result, events, 3);
      expect(rtos).toHaveLength(3);
      expect(rtos[0]).toBe(1000); // nothing measured yet: a third of ackTimeoutMs
      // Measured: the in-memory round trip less the 5 ms held (the estimate's floor); unsaid, the work would count as the trip, so nothing is measured.
      if (says) expect(rtos.slice(1).every(rto => rto < 1000)).toBe(true);
      else expect(rtos).toEqual([1000, 1000, 1000]);
    }
  });

  it('an agent holding its acknowledgement (ackDelayMs 250) holds it no longer than a quarter of the rto its assignment carries: once measured, work of 100 ms is acknowledged in time, never sent again', () => {
    const { scheduler, network, announce, run } = setup();
    const host = new AgentHost(worker('h-0', scheduler, 100), { network, coordinatorId: 'coordinator', heartbeatIntervalMs: 1000, heartbeatJitterMs: 100, random: createRandom(3), ackDelayMs: 250 });
    host.start();
    announce({ agentId: 'h-0', capabilities: [], slots: 1, instance: 'h-0#1' });
    const { result, events } = run({ id: 'held-long', subtasks: subtasks(5) });
    exactlyOnce(result, events, 5);
    expect(network.stats.byKind.assign?.sent).toBe(5); // one each: none sent again
  });

  it('slots of a remote agent are granted one more per result, up to what it claims', () => {
    const { scheduler, rogue, run } = setup();
    let running = 0;
    /** How many it held at once, at each assignment it took. */
    const held: number[] = [];
    const worker = rogue('worker', 4, (e, send) => {
      if (e.kind !== 'assign') return;
      const { taskId = 't', subtask, attempt } = e.body as AssignBody;
      held.push(++running);
      send({ to: 'coordinator', kind: 'progress', body: { taskId, subtaskId: subtask.id, attempt, progress: 0 } });
      // Each takes 100 ms: what it holds at once is what it was granted.
      scheduler.schedule(() => {
        running--;
        send({ to: 'coordinator', kind: 'result', body: { via: [], taskId, subtaskId: subtask.id, attempt, agentId: 'worker', ok: true, value: 1 } satisfies ResultBody });
      }, 100);
    });
    const { result } = run({ id: 't', subtasks: subtasks(20) });
    expect(result.success).toBe(true);
    expect(result.metrics.assignments).toBe(20);
    // One at first; one more after each result; never above its claim of 4.
    expect(held.slice(0, 3)).toEqual([1, 1, 2]);
    expect(Math.max(...held)).toBe(4);
    worker.stop();
  });

  it('a restarted process is known from its hello, before its first beat: its work is re-issued at once', () => {
    const { scheduler, honest, run, announce } = setup();
    let victim: AgentHost | undefined;
    let requeuedAt: number | undefined;
    let helloAt: number | undefined;
    const { result, events } = run({ id: 't', subtasks: subtasks(6) }, at => {
      if (at === 0) {
        victim = honest('v', 5000);
        honest('h-0', 5000);
      }
      if (at === 50) victim?.crash(); // killed holding work, before its next beat
      if (at === 60) {
        helloAt = scheduler.now();
        announce({ agentId: 'v', capabilities: [], slots: 1, instance: 'v#2' }); // the new process says hello
      }
      if (at === 500) victim?.start(); // … and beats only later
    });
    requeuedAt = of(events, 'subtask.requeued').find(e => e.reason === 'v: agent restarted')?.at;
    expect(requeuedAt).toBe(helloAt);
    expect(result.success).toBe(true);
    exactlyOnce(result, events, 6);
  });

  it('a connection closed without a leave is suspected at once and declared down after the grace: its work moves within it', () => {
    const { scheduler, honest, closeConnection, run } = setup();
    let victim: AgentHost | undefined;
    let killedAt = 0;
    const { result, events } = run({ id: 't', subtasks: subtasks(6) }, at => {
      if (at === 0) {
        victim = honest('v', 5000);
        honest('h-0', 1000);
      }
      if (at === 200) {
        killedAt = scheduler.now();
        victim?.crash(); // SIGKILL: its socket closes at once
        closeConnection('v');
      }
    });
    expect(result.success).toBe(true);
    exactlyOnce(result, events, 6);
    expect(of(events, 'agent.suspected').find(e => e.agentId === 'v')).toMatchObject({ at: killedAt, detail: 'connection closed; down unless it reconnects within 500 ms' });
    expect(of(events, 'agent.down').find(e => e.agentId === 'v')).toMatchObject({ at: killedAt + 500, reason: 'connection closed and not back within 500 ms' });
    expect(of(events, 'subtask.requeued').filter(e => e.reason.startsWith('v:')).every(e => e.at === killedAt + 500)).toBe(true);
  });

  it('a connection that closes and comes back within the grace changes nothing', () => {
    const { honest, closeConnection, announce, run } = setup();
    const { result, events } = run({ id: 't', subtasks: subtasks(4) }, at => {
      if (at === 0) honest('b', 1000);
      if (at === 300) closeConnection('b'); // a blip of the link: the process runs on
      if (at === 600) announce({ agentId: 'b', capabilities: [], slots: 1, instance: 'b#1' });
    });
    expect(result.success).toBe(true);
    expect(of(events, 'agent.suspected').map(e => e.agentId)).toEqual(['b']);
    expect(of(events, 'agent.recovered').map(e => e.agentId)).toEqual(['b']);
    expect(of(events, 'agent.down')).toEqual([]);
    expect(of(events, 'subtask.requeued')).toEqual([]);
    expect(result.metrics.assignments).toBe(4);
  });

  it('subtask ids that are Object.prototype names are reported like any other', () => {
    const scheduler = new VirtualScheduler();
    const agent: InProcessAgent = {
      id: 'a',
      capabilities: [],
      handle: subtask => timer(10, scheduler).pipe(map(() => {
        if (subtask.id === '__proto__' || subtask.id === 'toString') throw new Error(`refused ${subtask.id}`);
        return subtask.id;
      })),
    };
    const coordinator = createCoordinator({ agents: [agent], topology: 'star', scheduler, maxSubtaskAttempts: 1 });
    let result: CoordinationResult | undefined;
    coordinator.run$({ id: 't', subtasks: ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'].map(id => ({ id })) }).subscribe(e => {
      if (e.type === 'task.completed') result = e.result;
    });
    scheduler.advanceBy(10_000);
    expect(result?.success).toBe(false);
    expect(Object.keys(result?.failed ?? {}).sort()).toEqual(['__proto__', 'toString']);
    expect(Object.keys(result?.results ?? {}).sort()).toEqual(['constructor', 'hasOwnProperty', 'valueOf']);
    expect(JSON.parse(JSON.stringify(result?.failed))).toEqual(JSON.parse('{"__proto__":"handler failed 1 time(s): refused __proto__","toString":"handler failed 1 time(s): refused toString"}'));
    expect(result?.metrics.failed).toBe(2);
  });
});
