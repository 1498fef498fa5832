/**
 * Ring: members in id order; work and the token enter at the first member and travel successor to
 * successor until the member that runs it, so a distant member costs more hops. A failed member is
 * spliced out.
 */
import type { Subtask } from '../../streams/task.js';
import { COORDINATOR, type AgentProfile, type Layout, type Repair, type Topology, type TopologyOptions } from '../topology.js';
import { DIRECT, NO_REPAIR, ONLY_COORDINATOR, checkAgents, checkProfile, compareIds, frozenRecord, insertSorted, positions, settleOptions } from './common.js';

/** A ring layout: `members` in ring order, `members[0]` is the entry point. */
export interface RingLayout extends Layout {
  readonly topology: 'ring';
  /** The next member around the ring; `undefined` for a non-member or a ring of one. */
  successor(agentId: string): string | undefined;
  /** The previous member around the ring; `undefined` for a non-member or a ring of one. */
  predecessor(agentId: string): string | undefined;
  without(failed: string): { readonly layout: RingLayout; readonly repair: Repair };
  with(joined: AgentProfile): RingLayout;
}

class Ring implements RingLayout {
  readonly topology = 'ring';
  readonly confirmsFailures = false;
  private readonly position: Map<string, number>;

  constructor(
    /** Ring order: by id. */
    readonly members: readonly string[],
  ) {
    this.members = Object.freeze([...members]);
    this.position = positions(this.members);
  }

  /** The members from the entry point up to (excluding) `agentId`: its position's worth of hops. O(position). */
  route(agentId: string): readonly string[] {
    const position = this.position.get(agentId);
    return position === undefined || position === 0 ? DIRECT : this.members.slice(0, position);
  }

  /**
   * The candidate nearest the entry point: the work travels the ring from the entry and the first
   * free capable member takes it. Routes stay as short as the free slots allow, and the ring's cost
   * shows honestly once the near members are busy. Stateless.
   */
  pick(_subtask: Subtask, candidates: readonly string[]): string | undefined {
    let chosen: string | undefined;
    let nearest = Infinity;
    for (const id of candidates) {
      const position = this.position.get(id);
      if (position !== undefined && position < nearest) {
        nearest = position;
        chosen = id;
      }
    }
    return chosen;
  }

  successor(agentId: string): string | undefined {
    const position = this.position.get(agentId);
    if (position === undefined || this.members.length < 2) return undefined;
    return this.members[(position + 1) % this.members.length];
  }

  predecessor(agentId: string): string | undefined {
    const position = this.position.get(agentId);
    if (position === undefined || this.members.length < 2) return undefined;
    return this.members[(position - 1 + this.members.length) % this.members.length];
  }

  /** Its successor (which watches it, to notice a break in the ring) and the coordinator. */
  heartbeatTargets(agentId: string): readonly string[] {
    const next = this.successor(agentId);
    return next === undefined ? ONLY_COORDINATOR : [next, COORDINATOR];
  }

  /** `entry` for the first member, `position i` for the others. */
  roles(): Readonly<Record<string, string>> {
    return frozenRecord(this.members.map((id, i) => [id, i === 0 ? 'entry' : `position ${i}`] as const));
  }

  /**
   * Splice: the failed member's predecessor now links to its successor. The successor (which
   * watched the failed member) sends the predecessor one 'splice'; none when fewer than two remain.
   */
  without(failed: string): { readonly layout: RingLayout; readonly repair: Repair } {
    if (!this.position.has(failed)) return { layout: this, repair: NO_REPAIR };
    const before = this.predecessor(failed);
    const after = this.successor(failed);
    const layout = new Ring(this.members.filter(id => id !== failed));
    if (before === undefined || after === undefined || before === after) {
      return { layout, repair: { description: `${failed} removed: ${layout.members.length === 0 ? 'no member' : 'one member'} left, no ring to splice`, messages: [] } };
    }
    return {
      layout,
      repair: { description: `${failed} spliced out: ${before} → ${after}`, messages: [{ from: after, to: before, kind: 'splice' }] },
    };
  }

  /** The agent takes its place in id order. Joining again as a member changes nothing. */
  with(joined: AgentProfile): RingLayout {
    const agent = checkProfile(joined, 'joined');
    return this.position.has(agent.id) ? this : new Ring(insertSorted(this.members, agent.id));
  }
}

/**
 * Ring topology: members in id order, entry at the first; route length = ring position.
 *
 * @example ring.layout(agents).route('c') // ['a', 'b'] for members a, b, c
 */
export const ring: Topology<RingLayout> = Object.freeze({
  name: 'ring' as const,
  layout(agents: readonly AgentProfile[], options?: TopologyOptions): RingLayout {
    const profiles = checkAgents(agents);
    settleOptions(options);
    return new Ring([...profiles.keys()].sort(compareIds));
  },
});
