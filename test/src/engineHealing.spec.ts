import type { PerformanceSnapshot, ProtocolSwitch } from '../../operators/index.js';
import type { AgentHost } from '../../streams/agentHost.js';
import type { CoordinationEvent } from '../../src/events.js';
import { healingActions, type HealingHost } from '../../src/engineHealing.js';
import type { DetectedFault } from '../../src/faultDetector.js';
import { Membership, type AgentRecord } from '../../src/membership.js';
import type { ActionReply } from '../../src/selfHealing.js';
import type { Attempt } from '../../src/taskRun.js';
import type { Layout, TopologyName } from '../../src/topology.js';
import { topologyFor } from '../../src/topologies/index.js';

/** A stand-in for a subtask in flight, named for what the actions say about it. */
const work = (id: string): Attempt => ({ state: { subtask: { id } } }) as Attempt;

function fault(over: Partial<DetectedFault> = {}): DetectedFault {
  return { type: 'detected', kind: 'agent_timeout', severity: 'medium', at: 0, detail: 'test', ...over };
}

/** A recording engine around a team of remote agents (no hosts), laid out as `protocol`. */
function engine(protocol: TopologyName, agents: ReadonlyArray<readonly [string, readonly string[], 'live' | 'standby']>, measured: Partial<Record<TopologyName, number>> = {}) {
  const members = new Membership(8);
  for (const [id, capabilities, status] of agents) members.add(id, capabilities, undefined, 8, status);
  const calls: string[] = [];
  const events: CoordinationEvent[] = [];
  const switches: ProtocolSwitch[] = [];
  const state = { protocol, layout: topologyFor(protocol).layout(members.liveProfiles()) as Layout };
  const host: HealingHost = {
    agents: members,
    hosts: new Map<string, AgentHost>(),
    factoryOf: () => undefined,
    protocol: () => state.protocol,
    layout: () => state.layout,
    setLayout: layout => {
      calls.push(`setLayout ${layout.members.join(',')}`);
      state.layout = layout;
    },
    performance: t => (measured[t] === undefined ? undefined : ({ messagesPerExecution: measured[t] } as PerformanceSnapshot)),
    fallback: () => (state.protocol === 'mesh' ? undefined : 'mesh'),
    reassign: (record, reason) => {
      calls.push(`reassign ${record.id}: ${reason}`);
      return { ok: true, detail: 'requeued' };
    },
    revoke: (a, reason) => calls.push(`revoke ${a.state.subtask.id}: ${reason}`),
    takeOut: record => {
      calls.push(`takeOut ${record.id}`);
      state.layout = state.layout.without(record.id).layout;
    },
    join: record => calls.push(`join ${record.id}`),
    switchTo: (to, change) => {
      state.protocol = to;
      switches.push(change);
    },
    emit: event => events.push(event),
    now: () => 42,
  };
  return { actions: healingActions(host), members, calls, events, switches, state };
}

const team = [
  ['a', ['code'], 'live'],
  ['b', ['code'], 'live'],
  ['c', ['code', 'review'], 'live'],
] as const;

describe('healingActions', () => {
  it('restart needs a factory: an agent in another process cannot be restarted from here', () => {
    const { actions, calls } = engine('star', team);
    expect(actions.restartAgent(fault({ agentId: 'a' }))).toEqual({ ok: false, detail: 'no factory to re-create the agent' });
    expect(calls).toEqual([]);
  });

  it('acts on an agent only when the fault names a known one', () => {
    const { actions } = engine('star', team);
    const answers: ActionReply[] = [actions.reduceLoad(fault()), actions.reassignSubtasks(fault({ agentId: 'nobody' }))];
    expect(answers).toEqual([
      { ok: false, detail: 'no agent named by the fault' },
      { ok: false, detail: 'no agent named by the fault' },
    ]);
  });

  it('reassigns through the engine, with the fault\'s detail', () => {
    const { actions, calls } = engine('star', team);
    expect(actions.reassignSubtasks(fault({ agentId: 'b', detail: 'hung' }))).toEqual({ ok: true, detail: 'requeued' });
    expect(calls).toEqual(['reassign b: hung']);
  });

  it.each([
    [1, { ok: false, detail: 'already at one slot' }, 1],
    [2, { ok: true, detail: 'slots granted 2 -> 1' }, 1],
    [7, { ok: true, detail: 'slots granted 7 -> 3' }, 3],
  ])('reduces the slots granted to a remote agent: %i granted', (granted, answer, after) => {
    const { actions, members } = engine('star', team);
    const a = members.get('a') as AgentRecord;
    a.granted = granted;
    expect(actions.reduceLoad(fault({ agentId: 'a' }))).toEqual(answer);
    expect(a.granted).toBe(after);
  });

  it('rebalances all but the oldest assignment away', () => {
    const { actions, members, calls } = engine('star', team);
    const a = members.get('a') as AgentRecord;
    expect(actions.rebalanceResources(fault({ agentId: 'a' }))).toEqual({ ok: false, detail: 'nothing to move' });
    for (const id of ['s-0', 's-1', 's-2']) a.inFlight.add(work(id));
    expect(actions.rebalanceResources(fault({ agentId: 'a' }))).toEqual({ ok: true, detail: '2 subtask(s) moved' });
    expect(calls).toEqual(['revoke s-1: rebalanced away from a', 'revoke s-2: rebalanced away from a']);
  });

  it('breaks a wait chain at its first member with work', () => {
    const { actions, members, calls } = engine('star', team);
    expect(actions.breakWaitChain(fault({ kind: 'protocol_deadlock', members: ['a', 'b'] }))).toEqual({ ok: false, detail: 'no waiter with work to abort' });
    (members.get('b') as AgentRecord).inFlight.add(work('s-7'));
    expect(actions.breakWaitChain(fault({ kind: 'protocol_deadlock', members: ['a', 'b'] }))).toEqual({ ok: true, detail: 'aborted s-7 of b and requeued it' });
    expect(calls).toEqual(['revoke s-7: aborted to break a circular wait']);
  });

  it.each([
    // current, measured messages per execution, answer
    ['mesh', {}, { ok: true, detail: 'mesh -> star' }],
    ['star', {}, { ok: false, detail: 'star is already the cheapest' }],
    ['ring', { ring: 4, hierarchical: 3, star: 5 }, { ok: true, detail: 'ring -> hierarchical' }],
    ['ring', { ring: 2 }, { ok: false, detail: 'ring is already the cheapest measured' }],
  ] as const)('switches from %s to a cheaper protocol (measured: %j)', (current, measured, answer) => {
    const { actions, switches } = engine(current, team, measured);
    expect(actions.switchToCheaperProtocol(fault({ kind: 'performance_degradation' }))).toEqual(answer);
    expect(switches.map(s => [s.from, s.to, s.reason, s.at])).toEqual(answer.ok ? [[current, answer.detail.split(' -> ')[1], 'cheaper protocol', 42]] : []);
  });

  it('uses alternative routes by going to mesh, once', () => {
    const { actions } = engine('ring', team);
    expect(actions.useAlternativeRoutes(fault({ kind: 'communication_failure' }))).toEqual({ ok: true, detail: 'ring -> mesh' });
    expect(actions.useAlternativeRoutes(fault({ kind: 'communication_failure' }))).toEqual({ ok: false, detail: 'already on mesh' });
  });

  it('switches protocol to the fallback while one is left', () => {
    const { actions } = engine('star', team);
    expect(actions.switchProtocol(fault({ kind: 'protocol_deadlock' }))).toEqual({ ok: true, detail: 'star -> mesh' });
    expect(actions.switchProtocol(fault({ kind: 'protocol_deadlock' }))).toEqual({ ok: false, detail: 'no fallback protocol left' });
  });

  it('has no channel state to reset', () => {
    const { actions } = engine('star', team);
    expect(actions.resetChannels(fault({ kind: 'communication_failure' }))).toEqual({ ok: false, detail: 'links keep no channel state to reset' });
  });

  it('restarts coordination by laying the live agents out anew', () => {
    const { actions, calls } = engine('ring', team);
    expect(actions.restartCoordination(fault({ kind: 'protocol_deadlock' }))).toEqual({ ok: true, detail: 'coordination restarted: layout rebuilt over live agents' });
    expect(calls).toEqual(['setLayout a,b,c']);
  });

  it('routes around the far end of a failing link only if it relays', () => {
    const ring = engine('ring', team);
    const relay = ring.state.layout.members.find(m => ring.state.layout.members.some(o => o !== m && ring.state.layout.route(o).includes(m))) as string;
    expect(ring.actions.switchRoute(fault({ kind: 'communication_failure', link: `coordinator->${relay}` }))).toEqual({ ok: true, detail: `routes no longer pass through ${relay}` });
    expect(ring.calls[0]).toBe(`takeOut ${relay}`);
    expect(ring.state.layout.members).toContain(relay); // back, as a plain member
    const star = engine('star', team);
    const spoke = star.state.layout.members.find(m => !star.state.layout.members.some(o => o !== m && star.state.layout.route(o).includes(m))) as string;
    expect(star.actions.switchRoute(fault({ kind: 'communication_failure', link: `coordinator->${spoke}` }))).toEqual({ ok: false, detail: `${spoke} relays nothing` });
    expect(star.actions.switchRoute(fault({ kind: 'communication_failure', link: 'coordinator->nobody' }))).toEqual({ ok: true, detail: 'routes re-chosen over live agents' });
  });

  it('replaces an agent with a standby that can do all it did', () => {
    const { actions, members, calls } = engine('star', [...team, ['s1', ['code'], 'standby'], ['s2', ['code', 'review'], 'standby']]);
    expect(actions.replaceAgent(fault({ agentId: 'c' }))).toEqual({ ok: true, detail: 'standby s2 took over' });
    expect(members.get('s2')?.status).toBe('live');
    expect(calls).toEqual(['join s2', 'setLayout a,b,c,s2']);
    expect(actions.replaceAgent(fault({ agentId: 'c' }))).toEqual({ ok: false, detail: 'no standby agent with the same capabilities' });
  });
});
