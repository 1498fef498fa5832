/**
 * Mesh: every peer talks to every peer. Work goes straight to a peer; every peer heartbeats every
 * other (n² beats: the price of everyone knowing); a failure verdict needs a consensus window of the
 * live peers, and a confirmed failure's work is redistributed.
 */
import type { Subtask } from '../../streams/task.js';
import { COORDINATOR, type AgentProfile, type Layout, type Repair, type Topology, type TopologyOptions } from '../topology.js';
import { DIRECT, NO_REPAIR, ONLY_COORDINATOR, checkAgents, checkProfile, compareIds, frozenRecord, insertSorted, positions, settleOptions } from './common.js';

/** A mesh layout: peers in id order. */
export interface MeshLayout extends Layout {
  readonly topology: 'mesh';
  without(failed: string): { readonly layout: MeshLayout; readonly repair: Repair };
  with(joined: AgentProfile): MeshLayout;
}

class Mesh implements MeshLayout {
  readonly topology = 'mesh';
  readonly confirmsFailures = true;
  private readonly position: Map<string, number>;
  private readonly beats: readonly string[];

  constructor(
    /** Peers in id order. */
    readonly members: readonly string[],
    /** Least-recently-picked state: the pick number at which each peer was last picked. */
    private readonly lastPicked: Map<string, number>,
    private picks: number,
  ) {
    this.members = Object.freeze([...members]);
    this.position = positions(this.members);
    this.beats = Object.freeze([...this.members, COORDINATOR]);
  }

  /** Always direct: `[]`. */
  route(_agentId: string): readonly string[] {
    return DIRECT;
  }

  /**
   * The least recently picked candidate; never-picked peers first, ties by id order. Over a fixed
   * candidate set this is round-robin; when candidates come and go, a peer that was busy gets the
   * next turn once free.
   */
  pick(_subtask: Subtask, candidates: readonly string[]): string | undefined {
    let chosen: string | undefined;
    let chosenAt = Infinity;
    let chosenPosition = Infinity;
    for (const id of candidates) {
      const position = this.position.get(id);
      if (position === undefined) continue;
      const at = this.lastPicked.get(id) ?? -1;
      if (at < chosenAt || (at === chosenAt && position < chosenPosition)) {
        chosen = id;
        chosenAt = at;
        chosenPosition = position;
      }
    }
    if (chosen !== undefined) this.lastPicked.set(chosen, this.picks++);
    return chosen;
  }

  /**
   * Every peer and the coordinator: one list shared by all peers, the asker in it (its host skips
   * itself). O(1) per call: a copy without the asker would cost O(n) per peer per beat, O(n²) per
   * round of beats, on top of the n² beats themselves.
   */
  heartbeatTargets(agentId: string): readonly string[] {
    return this.position.has(agentId) ? this.beats : ONLY_COORDINATOR;
  }

  roles(): Readonly<Record<string, string>> {
    return frozenRecord(this.members.map(id => [id, 'peer'] as const));
  }

  /** The peer is dropped; the coordinator sends each live peer one 'redistribute' with the new plan. */
  without(failed: string): { readonly layout: MeshLayout; readonly repair: Repair } {
    if (!this.position.has(failed)) return { layout: this, repair: NO_REPAIR };
    const lastPicked = new Map(this.lastPicked);
    lastPicked.delete(failed);
    const members = this.members.filter(id => id !== failed);
    const messages = members.map(to => ({ from: COORDINATOR, to, kind: 'redistribute' as const }));
    return {
      layout: new Mesh(members, lastPicked, this.picks),
      repair: { description: `peer ${failed} removed: its work redistributed over ${members.length} peers`, messages },
    };
  }

  /** The peer joins in id order; it has never been picked, so it takes the next turn. Joining again as a member changes nothing. */
  with(joined: AgentProfile): MeshLayout {
    const agent = checkProfile(joined, 'joined');
    const members = this.position.has(agent.id) ? this.members : insertSorted(this.members, agent.id);
    return new Mesh(members, new Map(this.lastPicked), this.picks);
  }
}

/**
 * Mesh topology: peers in id order, direct routes, all-to-all heartbeats, failures confirmed by
 * consensus (`confirmsFailures`).
 *
 * @example mesh.layout(agents).heartbeatTargets('a') // ['a', 'b', 'c', 'coordinator']: a beats b, c and the coordinator
 */
export const mesh: Topology<MeshLayout> = Object.freeze({
  name: 'mesh' as const,
  layout(agents: readonly AgentProfile[], options?: TopologyOptions): MeshLayout {
    const profiles = checkAgents(agents);
    settleOptions(options);
    return new Mesh([...profiles.keys()].sort(compareIds), new Map(), 0);
  },
});
