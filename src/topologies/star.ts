/**
 * Star: one hub relays every subtask to the spokes and watches them; a failed hub is replaced by
 * election. Two hops per subtask out, a single relay that all dispatch crosses; a spoke's result
 * goes straight back to the coordinator (the hub dispatches, it does not gather: sending results
 * through it would pay two more hops for nothing the hub needs), so three messages per subtask.
 */
import type { Subtask } from '../../streams/task.js';
import { COORDINATOR, type AgentProfile, type Layout, type Repair, type Topology, type TopologyOptions } from '../topology.js';
import {
  DIRECT, NO_REPAIR, ONLY_COORDINATOR, bestLeader, checkAgents, checkProfile, compareIds, frozenRecord, insertSorted,
  nextInCycle, positions, settleOptions,
} from './common.js';

/** A star layout; `hub` is `undefined` only when the layout is empty. */
export interface StarLayout extends Layout {
  readonly topology: 'star';
  readonly hub: string | undefined;
  without(failed: string): { readonly layout: StarLayout; readonly repair: Repair };
  with(joined: AgentProfile): StarLayout;
}

class Star implements StarLayout {
  readonly topology = 'star';
  readonly confirmsFailures = false;
  /** The hub first, then the spokes by id: the round-robin order. */
  readonly members: readonly string[];
  private readonly position: Map<string, number>;
  private readonly viaHub: readonly string[];
  private readonly spokeBeats: readonly string[];

  constructor(
    private readonly profiles: ReadonlyMap<string, AgentProfile>,
    readonly hub: string | undefined,
    private readonly spokes: readonly string[],
    /** Round-robin cursor: the last member picked. */
    private lastPicked: string | undefined,
  ) {
    this.members = Object.freeze(hub === undefined ? [] : [hub, ...spokes]);
    this.position = positions(this.members);
    this.viaHub = Object.freeze(hub === undefined ? [] : [hub]);
    this.spokeBeats = Object.freeze(hub === undefined ? [COORDINATOR] : [hub, COORDINATOR]);
  }

  /** `[hub]` for a spoke, `[]` for the hub. */
  route(agentId: string): readonly string[] {
    return agentId !== this.hub && this.position.has(agentId) ? this.viaHub : DIRECT;
  }

  /** Results go straight back: the hub dispatches, it does not gather. */
  replyRoute(): readonly string[] {
    return DIRECT;
  }

  /** Round-robin over the members (hub first, then spokes by id): the next candidate after the last pick. */
  pick(_subtask: Subtask, candidates: readonly string[]): string | undefined {
    const last = this.lastPicked === undefined ? -1 : (this.position.get(this.lastPicked) ?? -1);
    const chosen = nextInCycle(candidates, id => this.position.get(id), this.members.length, last);
    if (chosen !== undefined) this.lastPicked = chosen;
    return chosen;
  }

  /** A spoke beats to the hub (which dispatches to it, so must know it is alive) and the coordinator; the hub to the coordinator only. */
  heartbeatTargets(agentId: string): readonly string[] {
    return agentId !== this.hub && this.position.has(agentId) ? this.spokeBeats : ONLY_COORDINATOR;
  }

  roles(): Readonly<Record<string, string>> {
    return frozenRecord(this.members.map(id => [id, id === this.hub ? 'hub' : 'spoke'] as const));
  }

  /**
   * A spoke is dropped (no messages). The hub is replaced by the best-ranked remaining member:
   * every other live member sends it one 'election' vote.
   */
  without(failed: string): { readonly layout: StarLayout; readonly repair: Repair } {
    if (!this.position.has(failed)) return { layout: this, repair: NO_REPAIR };
    const profiles = new Map(this.profiles);
    profiles.delete(failed);
    // The cursor steps back to the member before the failed one, so the turn passes on, not back.
    const cursor = this.lastPicked === failed ? this.members[(this.position.get(failed) as number) - 1] : this.lastPicked;
    if (failed !== this.hub) {
      const layout = new Star(profiles, this.hub, this.spokes.filter(id => id !== failed), cursor);
      return { layout, repair: { description: `spoke ${failed} dropped`, messages: [] } };
    }
    const elected = bestLeader(profiles.values());
    if (elected === undefined) {
      return { layout: new Star(profiles, undefined, [], undefined), repair: { description: `hub ${failed} failed: no member left`, messages: [] } };
    }
    const spokes = this.spokes.filter(id => id !== elected.id);
    const messages = spokes.map(from => ({ from, to: elected.id, kind: 'election' as const }));
    return {
      layout: new Star(profiles, elected.id, spokes, cursor === elected.id ? undefined : cursor),
      repair: { description: `hub ${failed} failed: ${elected.id} elected by ${messages.length} votes`, messages },
    };
  }

  /** A joining agent becomes a spoke (the hub stays), or the hub of an empty star. A member's profile is just updated. */
  with(joined: AgentProfile): StarLayout {
    const agent = checkProfile(joined, 'joined');
    const profiles = new Map(this.profiles).set(agent.id, agent);
    if (this.profiles.has(agent.id)) return new Star(profiles, this.hub, this.spokes, this.lastPicked);
    if (this.hub === undefined) return new Star(profiles, agent.id, [], undefined);
    return new Star(profiles, this.hub, insertSorted(this.spokes, agent.id), this.lastPicked);
  }
}

/**
 * Star topology: the hub is the best-ranked agent (leadership score as the hierarchical root:
 * coordination-capable first, then score, then id); spokes in id order.
 *
 * @example star.layout(agents).route('agent-3') // ['agent-0'] when agent-0 is the hub
 */
export const star: Topology<StarLayout> = Object.freeze({
  name: 'star' as const,
  layout(agents: readonly AgentProfile[], options?: TopologyOptions): StarLayout {
    const profiles = checkAgents(agents);
    settleOptions(options);
    const hub = bestLeader(profiles.values());
    const spokes = [...profiles.keys()].filter(id => id !== hub?.id).sort(compareIds);
    return new Star(profiles, hub?.id, spokes, undefined);
  },
});
