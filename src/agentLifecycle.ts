import type { SchedulerLike } from 'rxjs';
import type { Decision } from '../operators/index.js';
import type { AgentHost } from '../streams/agentHost.js';
import type { Network, RemoteMember } from '../streams/network.js';
import type { CoordinationEvent } from './events.js';
import { isProbe, suspectOf, type EngineDetection } from './engineDetection.js';
import type { DetectedFault, FaultEvent } from './faultDetector.js';
import { COORDINATOR_ONLY, type AgentRecord, type Membership } from './membership.js';
import type { Attempt } from './taskRun.js';
import { COORDINATOR, type Layout, type TopologyName } from './topology.js';

/** Unacknowledged assignments in a row after which a beating agent is treated as hung (quarantined if remote). */
export const UNACKED_LIMIT = 3;

/**
 * What an agent's lifecycle needs of the engine: the team, its hosts and the network, the
 * detection it feeds, the layout it changes, and the engine's moves on work (requeue, revoke,
 * dispatch) and on faults (heal).
 */
export interface LifecycleEngine {
  readonly agents: Membership;
  readonly detection: EngineDetection;
  readonly network: Network;
  readonly scheduler: SchedulerLike;
  /** The hosts of in-process agents, by id. */
  readonly hosts: ReadonlyMap<string, AgentHost>;
  /** Each agent's heartbeat targets, as its host reads them. */
  readonly targets: Map<string, () => readonly string[]>;
  readonly reconnectGraceMs: number;
  protocol(): TopologyName;
  layout(): Layout;
  setLayout(layout: Layout): void;
  emit(event: CoordinationEvent): void;
  /** Runs `work` after the input being handled (see the engine's `serial`). */
  serial(work: () => void): void;
  dispatch(): void;
  heal(fault: DetectedFault): void;
  /** Requeues every subtask the agent holds, with new attempts. */
  reassign(record: AgentRecord, reason: string): void;
  /** Takes an assignment back from its agent (told to drop it) and requeues the subtask. */
  revoke(attempt: Attempt, reason: string): void;
  /** Revokes every current assignment whose route passes through the agent. */
  revokeRoutedThrough(agentId: string, reason: string): void;
}

/**
 * The life of the team's agents: joining, beating, leaving, suspected, confirmed down by peers,
 * recovered, restarted, stalled, quarantined. Each change of an agent's status goes through here,
 * and so does what it means for the layout (an agent taken out, a topology repaired). What happens
 * to the work an agent held is the engine's (reassign, revoke).
 */
export class AgentLifecycle {
  /** Why each suspect being probed was suspected: its down verdict says so. */
  private readonly probing = new Map<string, string>();

  constructor(private readonly engine: LifecycleEngine) {}

  private now(): number {
    return this.engine.scheduler.now();
  }

  /**
   * A remote agent the network admitted. A new one joins the layout and gets work; one already
   * known (a reconnect) changes nothing here: its beats say whether it is back. An id held by an
   * in-process agent is refused.
   */
  admit(member: RemoteMember): void {
    const known = this.engine.agents.get(member.agentId);
    if (known !== undefined) {
      if (known.host !== undefined) {
        this.engine.emit({ type: 'agent.refused', at: this.now(), agentId: member.agentId, reason: 'the id belongs to an in-process agent' });
        return;
      }
      const restarted = member.instance !== undefined && known.instance !== undefined && member.instance !== known.instance;
      if (restarted) this.restarted(known, member.instance as string);
      if (known.closed !== undefined) {
        // Back within the grace: a blip of the link (the same process) changes nothing.
        known.closed.unsubscribe();
        known.closed = undefined;
        if (known.status === 'suspected') this.recover(known);
      }
      return;
    }
    if (member.agentId === COORDINATOR) return;
    const record = this.engine.agents.add(member.agentId, member.capabilities, undefined, member.slots, 'live');
    record.instance = member.instance;
    this.engine.agents.touch(record);
    this.join(record);
    this.engine.setLayout(this.engine.layout().with(this.engine.agents.profile(record)));
    this.engine.dispatch();
  }

  /**
   * Its connection closed without a leave (a killed process, a reset link): suspected at once, and
   * declared down unless it reconnects within `reconnectGraceMs`. A stopped process or a silent
   * network keeps its connection open: those remain the failure detector's to judge.
   */
  onConnectionClosed(agentId: string): void {
    const record = this.engine.agents.get(agentId);
    if (record === undefined || record.host !== undefined || record.closed !== undefined) return;
    const { reconnectGraceMs } = this.engine;
    if (record.status === 'live') {
      record.status = 'suspected';
      this.engine.agents.touch(record);
      this.engine.emit({ type: 'agent.suspected', at: this.now(), agentId, detail: `connection closed; down unless it reconnects within ${reconnectGraceMs} ms` });
    }
    record.closed = this.engine.scheduler.schedule(
      () =>
        this.engine.serial(() => {
          record.closed = undefined;
          if (record.status === 'suspected') this.declareDown(record, `connection closed and not back within ${reconnectGraceMs} ms`);
        }),
      reconnectGraceMs,
    );
  }

  /**
   * Another process under a known id, known from its hello before it ever beats: what the old one
   * ran and what it relayed (results in transit included) is gone, so those attempts are re-issued
   * at once rather than after a progress timeout. Its first beat restarts its detector.
   */
  private restarted(record: AgentRecord, instance: string): void {
    record.instance = instance;
    record.incarnation = 0;
    record.granted = 1;
    this.engine.agents.touch(record);
    if (record.inFlight.size > 0) this.engine.reassign(record, 'agent restarted');
    this.engine.revokeRoutedThrough(record.id, `relay ${record.id} restarted`);
    this.engine.dispatch();
  }

  /**
   * Starts an agent's host and its membership. Membership begins now, not at its first beat: the
   * detector is primed, so an agent whose beats never arrive is suspected like any other.
   */
  join(record: AgentRecord): void {
    this.engine.targets.set(record.id, () => this.engine.layout().heartbeatTargets(record.id));
    this.engine.hosts.get(record.id)?.start();
    this.engine.detection.beat(record.id);
    this.engine.emit({ type: 'agent.joined', at: this.now(), agentId: record.id });
  }

  /**
   * The detector's verdict on an agent's liveness: a suspicion is put to the peers where the
   * layout confirms failures (mesh), else to the agent itself (`probe`: lost beats are not a
   * crash; it is declared down if it does not answer); an all-clear brings a suspected or down
   * agent back.
   */
  onAgentTimeout(fault: FaultEvent): void {
    const record = fault.agentId === undefined ? undefined : this.engine.agents.get(fault.agentId);
    if (record === undefined) return;
    if (fault.type === 'resolved') {
      if (record.status === 'suspected' || record.status === 'down') this.recover(record);
      return;
    }
    if (record.status !== 'live') return;
    record.status = 'suspected';
    this.engine.agents.touch(record);
    this.engine.emit({ type: 'agent.suspected', at: fault.at, agentId: record.id, detail: fault.detail });
    if (this.engine.layout().confirmsFailures) {
      this.askPeers(record.id);
    } else {
      this.probing.set(record.id, fault.detail);
      this.engine.detection.probe(record.id);
    }
  }

  /** Mesh: the live peers vote on the suspicion within a consensus window. */
  private askPeers(suspect: string): void {
    this.engine.detection.askPeers(suspect, this.engine.agents.liveIds().filter(id => id !== suspect));
  }

  onVerdict(decision: Decision): void {
    const suspect = suspectOf(decision);
    const record = this.engine.agents.get(suspect);
    if (isProbe(decision)) {
      // No peers' vote: the suspect answered (alive, its beats were lost on the way) or stayed silent (down).
      const why = this.probing.get(suspect) ?? 'suspected';
      this.probing.delete(suspect);
      if (record === undefined || record.status !== 'suspected') return;
      if (decision.outcome === 'rejected') this.recover(record);
      else this.declareDown(record, `${why}, and no answer to the coordinator's probes for ${decision.decidedAt - decision.openedAt} ms`);
      return;
    }
    this.engine.emit({ type: 'consensus.decided', at: decision.decidedAt, proposalId: decision.proposalId, outcome: decision.outcome, yes: decision.yes.length, no: decision.no.length });
    if (record === undefined || record.status !== 'suspected') return;
    // A confirmed verdict, or no quorum either way: the coordinator cannot hear it, so it is not usable.
    if (decision.outcome !== 'rejected') this.declareDown(record, `peers confirmed (${decision.yes.length} of ${decision.yes.length + decision.no.length + decision.missing.length})`);
  }

  /**
   * A delivery through these relays, to or from `agentId`, failed: one in another process that fails
   * `UNACKED_LIMIT` times with no result through it in between, for at least two agents, is stalled.
   * Whether the relay or the agent kept it back is unknown, and an agent can fail on purpose (take
   * in only what comes straight from the coordinator, or say its result is on its way and send
   * none): one agent's failures alone never condemn a relay, or a token-holding agent could have
   * every honest relay quarantined in turn. That agent's next assignment goes straight to it.
   * Relays in this process are not suspected of keeping things back: what they lose is lost on a
   * link, which the links' own failure counts and the detectors answer for.
   */
  chargeRelays(route: readonly string[], agentId: string): void {
    for (const id of route) {
      const relay = this.engine.agents.get(id);
      if (relay === undefined || relay.host !== undefined) continue;
      relay.droppedFor.add(agentId);
      if (++relay.dropped >= UNACKED_LIMIT && relay.droppedFor.size >= 2) this.stalled(relay, `${relay.dropped} deliveries through it in a row failed`);
    }
  }

  /**
   * An agent that beats but takes nothing in, or drops what it relays, is treated as hung: healed
   * if it lives in this process; quarantined if it is in another (it cannot be restarted from here).
   */
  stalled(record: AgentRecord, detail: string): void {
    record.unacked = record.dropped = 0;
    record.droppedFor.clear();
    if (record.status !== 'live') return;
    if (record.host === undefined) return this.quarantine(record, detail);
    const fault: DetectedFault = { type: 'detected', kind: 'agent_timeout', severity: 'medium', at: this.now(), agentId: record.id, detail };
    this.engine.emit({ type: 'fault.detected', at: fault.at, kind: fault.kind, severity: fault.severity, agentId: record.id, detail });
    this.engine.heal(fault);
  }

  private declareDown(record: AgentRecord, reason: string): void {
    record.status = 'down';
    this.engine.agents.touch(record);
    this.engine.emit({ type: 'agent.down', at: this.now(), agentId: record.id, reason });
    this.engine.emit({ type: 'fault.detected', at: this.now(), kind: 'agent_timeout', severity: 'medium', agentId: record.id, detail: reason });
    this.takeOut(record);
    this.engine.heal({ type: 'detected', kind: 'agent_timeout', severity: 'medium', at: this.now(), agentId: record.id, detail: reason });
  }

  /** Removes an agent from the layout (the topology repairs itself) and resends what went through it. */
  takeOut(record: AgentRecord): void {
    const { layout, repair } = this.engine.layout().without(record.id);
    this.engine.setLayout(layout);
    for (const m of repair.messages) this.engine.network.send({ from: m.from, to: m.to, kind: m.kind, body: { failed: record.id } });
    this.engine.emit({ type: 'protocol.repaired', at: this.now(), protocol: this.engine.protocol(), failed: record.id, repair: repair.description });
    // Work relayed through it is lost on the way, there or back: send it again by the new routes.
    // The agents holding it are told to drop it (by the new routes), so their slots come free.
    // Work it carried there, acknowledged, whose result comes back another way runs on.
    this.engine.revokeRoutedThrough(record.id, `relay ${record.id} failed`);
  }

  /**
   * A liveness beat. A new incarnation (the agent restarted) starts the detector over for it: the
   * old process's rhythm would skew the new one's statistics, and its arrival is a recovery.
   */
  onBeat(agentId: string, incarnation: number): void {
    const record = this.engine.agents.get(agentId);
    if (record === undefined) return;
    if (incarnation !== record.incarnation) {
      // A new process forgot what the old one was running: that work gets new attempts now.
      if (record.incarnation !== 0 && record.inFlight.size > 0) {
        this.engine.reassign(record, 'agent restarted');
        this.engine.dispatch();
      }
      // Also the first real beat: it replaces the primer the detector was given at join.
      const fresh = record.incarnation !== 0;
      record.incarnation = incarnation;
      this.engine.agents.touch(record); // a restarted host may run another number of slots
      if (fresh && record.host === undefined) {
        record.told = COORDINATOR_ONLY; // a new process knows nothing of its peers
        this.engine.setLayout(this.engine.layout());
      }
      this.engine.detection.forget(agentId);
      this.engine.detection.beat(agentId);
      if (record.status === 'suspected' || record.status === 'down') this.recover(record);
      return;
    }
    this.engine.detection.beat(agentId);
  }

  /** A clean departure: no fault, nothing to heal; its work goes to others. */
  onLeaving(agentId: string): void {
    const record = this.engine.agents.get(agentId);
    if (record === undefined || record.status === 'down' || record.status === 'quarantined') return;
    this.engine.detection.forget(agentId);
    this.engine.detection.usageEnded(agentId);
    record.status = 'down';
    this.engine.agents.touch(record);
    this.engine.emit({ type: 'agent.down', at: this.now(), agentId, reason: 'left' });
    this.takeOut(record);
    this.engine.reassign(record, 'left');
    this.engine.dispatch();
  }

  private recover(record: AgentRecord): void {
    record.status = 'live';
    this.engine.agents.touch(record);
    this.engine.setLayout(this.engine.layout().with(this.engine.agents.profile(record)));
    this.engine.emit({ type: 'agent.recovered', at: this.now(), agentId: record.id });
    this.engine.dispatch();
  }

  /**
   * No more work for this agent in this run, and no relaying: it forged, stalled or took nothing
   * in. Its work and the work routed through it go elsewhere. It stays connected (its beats are
   * harmless); the next run starts it afresh.
   */
  quarantine(record: AgentRecord, reason: string): void {
    if (record.status === 'quarantined') return;
    const wasInLayout = this.engine.layout().members.includes(record.id);
    record.status = 'quarantined';
    this.engine.agents.touch(record);
    this.engine.emit({ type: 'agent.quarantined', at: this.now(), agentId: record.id, reason });
    if (wasInLayout) this.takeOut(record);
    for (const state of [...record.inFlight]) this.engine.revoke(state, `${record.id} quarantined: ${reason}`);
  }
}
