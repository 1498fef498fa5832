import type { PerformanceSnapshot, ProtocolSwitch } from '../operators/index.js';
import type { AgentHost } from '../streams/agentHost.js';
import type { InProcessAgent } from '../streams/task.js';
import type { CoordinationEvent } from './events.js';
import type { DetectedFault } from './faultDetector.js';
import { sameCapabilities, type AgentRecord, type Membership } from './membership.js';
import type { ActionResult, EngineActions } from './selfHealing.js';
import type { Attempt } from './taskRun.js';
import type { Layout, TopologyName } from './topology.js';
import { topologyFor } from './topologies/index.js';

/**
 * What the healing strategies may do to an engine: its team and hosts, its layout and protocol,
 * and the engine's own moves on assignments and topology. Everything else stays the engine's.
 */
export interface HealingHost {
  readonly agents: Membership;
  /** The hosts of in-process agents, by id. */
  readonly hosts: ReadonlyMap<string, AgentHost>;
  /** Re-creates an in-process agent (its slot's factory), if it has one. */
  factoryOf(agentId: string): (() => InProcessAgent) | undefined;
  protocol(): TopologyName;
  layout(): Layout;
  setLayout(layout: Layout): void;
  /** What the run measured of a protocol, if it has run under it. */
  performance(protocol: TopologyName): PerformanceSnapshot | undefined;
  /** The protocol to fall back to from the current one, if any is left. */
  fallback(): string | undefined;
  /** Requeues every subtask the agent holds, with new attempts. */
  reassign(record: AgentRecord, reason: string): ActionResult;
  /** Takes an assignment back from its agent (told to drop it) and requeues the subtask. */
  revoke(attempt: Attempt, reason: string): void;
  /** Removes an agent from the layout (the topology repairs itself) and resends what went through it. */
  takeOut(record: AgentRecord): void;
  /** Starts an agent's host and its membership. */
  join(record: AgentRecord): void;
  /** Hands over to another topology. */
  switchTo(to: TopologyName, change: ProtocolSwitch): void;
  emit(event: CoordinationEvent): void;
  now(): number;
}

/** What healing strategies do to an engine's run: real effects on hosts, layout and assignments. */
export function healingActions(host: HealingHost): EngineActions {
  const agentOf = (fault: DetectedFault): AgentRecord | undefined => (fault.agentId === undefined ? undefined : host.agents.get(fault.agentId));
  const onAgent = (fault: DetectedFault, act: (record: AgentRecord) => ActionResult): ActionResult => {
    const record = agentOf(fault);
    return record === undefined ? { ok: false, detail: 'no agent named by the fault' } : act(record);
  };
  return {
    restartAgent: f => onAgent(f, r => restartAgent(host, r)),
    reassignSubtasks: f => onAgent(f, r => host.reassign(r, f.detail)),
    replaceAgent: f => onAgent(f, r => replace(host, r)),
    reduceLoad: f => onAgent(f, r => reduceLoad(host, r)),
    rebalanceResources: f => onAgent(f, r => rebalance(host, r)),
    switchToCheaperProtocol: () => switchToCheaper(host),
    // Channels of the in-memory network and of WebSocket links carry no state to reset; a fresh
    // layout re-chooses every relay, and mesh routes go direct.
    resetChannels: () => ({ ok: false, detail: 'links keep no channel state to reset' }),
    switchRoute: f => routeAround(host, f),
    useAlternativeRoutes: () => switchToProtocol(host, 'mesh', 'direct routes to every agent'),
    breakWaitChain: f => breakWaitChain(host, f),
    restartCoordination: () => relayout(host, 'coordination restarted: layout rebuilt over live agents'),
    switchProtocol: f => {
      const next = host.fallback();
      return next === undefined ? { ok: false, detail: 'no fallback protocol left' } : switchToProtocol(host, next as TopologyName, `healing of ${f.kind}`);
    },
  };
}

function reduceLoad(host: HealingHost, record: AgentRecord): ActionResult {
  const agentHost = host.hosts.get(record.id);
  if (agentHost === undefined && record.granted > 1) {
    // An agent in another process: it earns its slots back as it delivers.
    const from = record.granted;
    record.granted = from >> 1;
    host.agents.touch(record);
    return { ok: true, detail: `slots granted ${from} -> ${record.granted}` };
  }
  if (agentHost === undefined || agentHost.slots <= 1) return { ok: false, detail: 'already at one slot' };
  const from = agentHost.slots;
  agentHost.setSlots(Math.floor(from / 2));
  host.agents.touch(record);
  return { ok: true, detail: `slots ${from} -> ${agentHost.slots}` };
}

/** Takes back the agent's newest assignments beyond one, for other agents to run. */
function rebalance(host: HealingHost, record: AgentRecord): ActionResult {
  const extra = [...record.inFlight].slice(1);
  for (const state of extra) host.revoke(state, `rebalanced away from ${record.id}`);
  return extra.length === 0 ? { ok: false, detail: 'nothing to move' } : { ok: true, detail: `${extra.length} subtask(s) moved` };
}

function breakWaitChain(host: HealingHost, fault: DetectedFault): ActionResult {
  const waiter = fault.members?.map(id => host.agents.get(id)).find(r => r !== undefined && r.inFlight.size > 0);
  if (waiter === undefined) return { ok: false, detail: 'no waiter with work to abort' };
  const [first] = waiter.inFlight;
  host.revoke(first as Attempt, 'aborted to break a circular wait');
  return { ok: true, detail: `aborted ${(first as Attempt).state.subtask.id} of ${waiter.id} and requeued it` };
}

/**
 * Cheapest by messages per execution, like with like: against a measured protocol only measured
 * ones compete (a prior is not a measurement, and comparing the two made a saturated run flip
 * between star and hierarchical); while the current one is unmeasured, all go by their route
 * lengths.
 */
function switchToCheaper(host: HealingHost): ActionResult {
  const order: TopologyName[] = ['star', 'hierarchical', 'ring', 'mesh'];
  const current = host.protocol();
  const measured = (t: TopologyName): number | undefined => host.performance(t)?.messagesPerExecution;
  const byMeasurement = measured(current) !== undefined;
  const cost = (t: TopologyName): number => (byMeasurement ? (measured(t) ?? Infinity) : 2 + order.indexOf(t));
  const cheaper = order.filter(t => t !== current && cost(t) < cost(current)).sort((a, b) => cost(a) - cost(b));
  return cheaper[0] === undefined ? { ok: false, detail: `${current} is already the cheapest${byMeasurement ? ' measured' : ''}` } : switchToProtocol(host, cheaper[0], 'cheaper protocol');
}

function switchToProtocol(host: HealingHost, to: TopologyName, reason: string): ActionResult {
  const from = host.protocol();
  if (to === from) return { ok: false, detail: `already on ${to}` };
  host.switchTo(to, { from, to, at: host.now(), reason, scores: {} });
  return { ok: true, detail: `${from} -> ${to}` };
}

/** Stops relaying through the far end of a failing link: the topology repairs as if it had left, then takes it back as a plain member. */
function routeAround(host: HealingHost, fault: DetectedFault): ActionResult {
  const far = fault.link?.split('->')[1];
  const record = far === undefined ? undefined : host.agents.get(far);
  const layout = host.layout();
  if (record === undefined || !layout.members.includes(record.id)) return relayout(host, 'routes re-chosen over live agents');
  const relays = layout.members.some(m => m !== record.id && layout.route(m).includes(record.id));
  if (!relays) return { ok: false, detail: `${record.id} relays nothing` };
  host.takeOut(record);
  host.setLayout(host.layout().with(host.agents.profile(record)));
  return { ok: true, detail: `routes no longer pass through ${record.id}` };
}

function relayout(host: HealingHost, detail: string): ActionResult {
  host.setLayout(topologyFor(host.protocol()).layout(host.agents.liveProfiles()));
  return { ok: true, detail };
}

function restartAgent(host: HealingHost, record: AgentRecord): ActionResult {
  const factory = host.factoryOf(record.id);
  const agentHost = host.hosts.get(record.id);
  if (factory === undefined || agentHost === undefined) return { ok: false, detail: 'no factory to re-create the agent' };
  // Its running work dies with the old instance: give those subtasks new attempts first.
  host.reassign(record, 'agent restarted');
  agentHost.restart(factory());
  host.agents.touch(record);
  host.emit({ type: 'agent.restarted', at: host.now(), agentId: record.id });
  // The fresh instance must beat before it gets work again: it stays down until the detector says alive.
  return { ok: true, detail: 'agent re-created from its factory' };
}

function replace(host: HealingHost, record: AgentRecord): ActionResult {
  const standby = [...host.agents.values()].find(a => a.status === 'standby' && sameCapabilities(a, record));
  if (standby === undefined) return { ok: false, detail: 'no standby agent with the same capabilities' };
  standby.status = 'live';
  host.agents.touch(standby);
  host.join(standby);
  host.setLayout(host.layout().with(host.agents.profile(standby)));
  return { ok: true, detail: `standby ${standby.id} took over` };
}
