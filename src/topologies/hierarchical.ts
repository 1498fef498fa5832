/**
 * Hierarchical: a root coordinator over sub-coordinators, each directing a work group. Work travels
 * down the tree and results aggregate back up; a failed coordinator is replaced by promotion.
 */
import type { Subtask } from '../../streams/task.js';
import type { AgentProfile, Layout, Repair, RepairMessage, Topology, TopologyOptions } from '../topology.js';
import {
  DIRECT, NO_REPAIR, ONLY_COORDINATOR, bestLeader, checkAgents, checkProfile, frozenRecord,
  nextInCycle, rankByLeadership, settleOptions,
} from './common.js';

/** The seat an agent holds in the tree. */
export type HierarchicalRole = 'root' | 'sub-coordinator' | 'member';

/** A hierarchical layout: `members` in breadth-first order, the root first. */
export interface HierarchicalLayout extends Layout {
  readonly topology: 'hierarchical';
  /** `undefined` only when the layout is empty. */
  readonly root: string | undefined;
  /** The most agents a coordinator directs when laid out (settled: the default is fixed at layout time). */
  readonly groupSize: number;
  readonly maxDepth: number;
  /** The coordinator directing `agentId`; `undefined` for the root and non-members. */
  parent(agentId: string): string | undefined;
  /** The agents `agentId` directs, in turn order. */
  children(agentId: string): readonly string[];
  without(failed: string): { readonly layout: HierarchicalLayout; readonly repair: Repair };
  with(joined: AgentProfile): HierarchicalLayout;
}

interface Seat {
  readonly id: string;
  parent: string | undefined;
  children: string[];
  role: HierarchicalRole;
}

function cloneSeats(seats: ReadonlyMap<string, Seat>): Map<string, Seat> {
  const copy = new Map<string, Seat>();
  for (const [id, seat] of seats) copy.set(id, { ...seat, children: [...seat.children] });
  return copy;
}

class Hierarchy implements HierarchicalLayout {
  readonly topology = 'hierarchical';
  readonly confirmsFailures = false;
  readonly members: readonly string[];
  private readonly routes = new Map<string, readonly string[]>();
  /** The turn cycle (see `pick`) and each agent's place in it. */
  private readonly cycle: readonly string[];
  private readonly turn = new Map<string, number>();

  constructor(
    private readonly profiles: ReadonlyMap<string, AgentProfile>,
    /** Never mutated once a layout holds them: without()/with() work on copies. */
    private readonly seats: ReadonlyMap<string, Seat>,
    readonly root: string | undefined,
    readonly groupSize: number,
    readonly maxDepth: number,
    /** Round-robin cursor: the agent picked last. */
    private lastPicked: string | undefined,
  ) {
    const members: string[] = [];
    // Work groups: a leader (root or sub-coordinator), then the members it directs.
    // A slot: the agent, its place inside its group, its group's number (leaders breadth-first).
    const slots: Array<readonly [id: string, inGroup: number, group: number]> = [];
    let groups = 0;
    if (root !== undefined) {
      this.routes.set(root, DIRECT);
      members.push(root);
    }
    // Breadth-first: a parent's route is known before its children's.
    for (let i = 0; i < members.length; i++) {
      const id = members[i] as string;
      const seat = seats.get(id) as Seat;
      const below = Object.freeze([...(this.routes.get(id) as readonly string[]), id]);
      let inGroup = 0;
      const group = seat.role === 'member' ? -1 : groups++;
      if (group >= 0) slots.push([id, inGroup++, group]);
      for (const child of seat.children) {
        this.routes.set(child, below);
        members.push(child);
        if ((seats.get(child) as Seat).role === 'member') slots.push([child, inGroup++, group]);
      }
    }
    this.members = Object.freeze(members);
    // The turn cycle deals the groups like cards: every group's first agent, then every group's
    // second… so groups alternate, members of a group take turns, and each agent has one turn per cycle.
    slots.sort((a, b) => a[1] - b[1] || a[2] - b[2]);
    this.cycle = slots.map(([id]) => id);
    this.cycle.forEach((id, i) => this.turn.set(id, i));
  }

  /** `[]` for the root, `[root]` for its children, `[root, sub-coordinator]` below them… O(1): precomputed. */
  route(agentId: string): readonly string[] {
    return this.routes.get(agentId) ?? DIRECT;
  }

  /**
   * Round-robin within groups. A work group is a leader (root or sub-coordinator) and the members
   * it directs, leader first; the turn cycle takes every group's first agent (groups breadth-first),
   * then every group's second, and so on. So consecutive picks go to different groups, inside a
   * group the agents take turns, and every agent gets one turn per cycle whatever its group's size.
   * The next candidate after the last pick in that cycle is chosen, so busy agents are skipped
   * without stalling the rest. O(candidates).
   */
  pick(_subtask: Subtask, candidates: readonly string[]): string | undefined {
    const last = this.lastPicked === undefined ? -1 : (this.turn.get(this.lastPicked) ?? -1);
    const chosen = nextInCycle(candidates, id => this.turn.get(id), this.turn.size, last);
    if (chosen !== undefined) this.lastPicked = chosen;
    return chosen;
  }

  /** The coordinator only: the tree carries work, not liveness (each hop would delay detection). */
  heartbeatTargets(_agentId: string): readonly string[] {
    return ONLY_COORDINATOR;
  }

  roles(): Readonly<Record<string, string>> {
    return frozenRecord(this.members.map(id => [id, (this.seats.get(id) as Seat).role] as const));
  }

  parent(agentId: string): string | undefined {
    return this.seats.get(agentId)?.parent;
  }

  children(agentId: string): readonly string[] {
    return this.seats.get(agentId)?.children ?? DIRECT;
  }

  /**
   * A failed member leaves its group (no messages). A failed coordinator's seat goes to the
   * best-ranked agent it directed, which sends a 'promotion' to each agent it now directs; if the
   * promoted agent led a group itself, its old seat is filled the same way (down to a member), so
   * the tree keeps its shape and depth. A coordinator that directed nobody just disappears.
   */
  without(failed: string): { readonly layout: HierarchicalLayout; readonly repair: Repair } {
    const seat = this.seats.get(failed);
    if (seat === undefined) return { layout: this, repair: NO_REPAIR };
    const seats = cloneSeats(this.seats);
    const vacated = seats.get(failed) as Seat;
    seats.delete(failed);
    const profiles = new Map(this.profiles);
    profiles.delete(failed);

    const messages: RepairMessage[] = [];
    const steps: string[] = [];
    const holder = vacated.role === 'member' ? undefined : fill(vacated, vacated.parent, seats, profiles, messages, steps);
    let root = this.root;
    if (vacated.parent === undefined) root = holder;
    else {
      const parent = seats.get(vacated.parent) as Seat;
      const at = parent.children.indexOf(failed);
      if (holder === undefined) parent.children.splice(at, 1);
      else parent.children[at] = holder;
    }

    const description = vacated.role === 'member'
      ? `member ${failed} left the group of ${String(vacated.parent)}`
      : `${vacated.role} ${failed} failed: ${steps.length === 0 ? 'it directed nobody, its seat is gone' : steps.join(', ')}`;
    // Turns carry on from the last pick; if that was the failed agent, from the one before it.
    const cursor = this.lastPicked === failed ? this.cycle[(this.turn.get(failed) as number) - 1] : this.lastPicked;
    const layout = new Hierarchy(profiles, seats, root, this.groupSize, this.maxDepth, cursor);
    return { layout, repair: { description, messages } };
  }

  /**
   * A joining agent becomes a member of the smallest bottom work group (a sub-coordinator that
   * directs only members; ties: breadth-first order), or of the root's group when there is no
   * sub-coordinator, or the root of an empty layout. It never takes over a seat: the tree is not
   * reshaped by a join. A member's profile is just updated.
   */
  with(joined: AgentProfile): HierarchicalLayout {
    const agent = checkProfile(joined, 'joined');
    const profiles = new Map(this.profiles).set(agent.id, agent);
    const cursor = this.lastPicked;
    if (this.seats.has(agent.id)) return new Hierarchy(profiles, this.seats, this.root, this.groupSize, this.maxDepth, cursor);
    const seats = cloneSeats(this.seats);
    if (this.root === undefined) {
      seats.set(agent.id, { id: agent.id, parent: undefined, children: [], role: 'root' });
      return new Hierarchy(profiles, seats, agent.id, this.groupSize, this.maxDepth, cursor);
    }
    let target = seats.get(this.root) as Seat;
    let smallest = Infinity;
    for (const id of this.members) {
      const seat = seats.get(id) as Seat;
      if (seat.role !== 'sub-coordinator') continue;
      if (seat.children.some(child => (seats.get(child) as Seat).role !== 'member')) continue;
      if (seat.children.length < smallest) {
        smallest = seat.children.length;
        target = seat;
      }
    }
    target.children.push(agent.id);
    seats.set(agent.id, { id: agent.id, parent: target.id, children: [], role: 'member' });
    return new Hierarchy(profiles, seats, this.root, this.groupSize, this.maxDepth, cursor);
  }
}

/**
 * Gives `vacated`'s seat (its role, its place under `parent` and the agents it directed) to the best-ranked of those
 * agents, cascading into the promoted agent's old seat. Returns the new holder, or `undefined` when
 * the seat directed nobody (then it is gone).
 */
function fill(
  vacated: Seat,
  parent: string | undefined,
  seats: Map<string, Seat>,
  profiles: ReadonlyMap<string, AgentProfile>,
  messages: RepairMessage[],
  steps: string[],
): string | undefined {
  const directed = vacated.children;
  const best = bestLeader(directed.map(id => profiles.get(id) as AgentProfile));
  if (best === undefined) return undefined;
  const promoted = seats.get(best.id) as Seat;
  steps.push(`${best.id} promoted to ${vacated.role}`);
  const cascade: RepairMessage[] = [];
  const successor = promoted.role === 'member'
    ? undefined
    : fill({ ...promoted, children: [...promoted.children] }, best.id, seats, profiles, cascade, steps);
  const children: string[] = [];
  for (const id of directed) {
    if (id !== best.id) children.push(id);
    else if (successor !== undefined) children.push(successor);
  }
  promoted.parent = parent;
  promoted.role = vacated.role;
  promoted.children = children;
  for (const id of children) {
    (seats.get(id) as Seat).parent = best.id;
    messages.push({ from: best.id, to: id, kind: 'promotion' });
  }
  messages.push(...cascade);
  return best.id;
}

/**
 * Hierarchical topology. The root is the best-ranked agent: coordination-capable agents
 * (`task_delegation` 0.3, `resource_allocation` 0.2, `conflict_resolution` 0.2) first, by
 * `coordinationScore` (those plus `successRate × 0.3`), then id; with none capable, the best general
 * agent by success rate, then id. When more agents remain than `groupSize`, the next `groupSize`
 * best become sub-coordinators and the rest are dealt over their groups in rank order (so groups
 * differ in size by at most one and each gets a share of the strong agents); groups are split the
 * same way again while depth allows. At the last level allowed by `maxDepth` a coordinator directs
 * everyone left. With the default `groupSize = ceil(sqrt(n))` three levels hold any n.
 *
 * Options: `groupSize` (fan-out: smaller means lighter coordinators but longer routes),
 * `maxDepth` (levels, default 3: caps relays per subtask at `maxDepth − 1`).
 *
 * @example hierarchical.layout(agents, { groupSize: 4 }).route('agent-9') // ['agent-0', 'agent-3']
 */
export const hierarchical: Topology<HierarchicalLayout> = Object.freeze({
  name: 'hierarchical' as const,
  layout(agents: readonly AgentProfile[], options?: TopologyOptions): HierarchicalLayout {
    const profiles = checkAgents(agents);
    const settled = settleOptions(options);
    const groupSize = settled.groupSize ?? Math.max(1, Math.ceil(Math.sqrt(profiles.size)));
    const seats = new Map<string, Seat>();
    const place = (group: readonly AgentProfile[], levelsLeft: number, parent: string | undefined, role: HierarchicalRole): string => {
      const [leader, ...rest] = group as [AgentProfile, ...AgentProfile[]];
      const seat: Seat = { id: leader.id, parent, children: [], role };
      seats.set(leader.id, seat);
      if (rest.length <= groupSize || levelsLeft <= 2) {
        for (const member of rest) {
          seats.set(member.id, { id: member.id, parent: leader.id, children: [], role: 'member' });
          seat.children.push(member.id);
        }
        return leader.id;
      }
      // The `groupSize` best lead the groups; the others are dealt round the groups in rank order.
      const groups = rest.slice(0, groupSize).map(sub => [sub]);
      for (let i = groupSize; i < rest.length; i++) (groups[(i - groupSize) % groupSize] as AgentProfile[]).push(rest[i] as AgentProfile);
      for (const sub of groups) seat.children.push(place(sub, levelsLeft - 1, leader.id, 'sub-coordinator'));
      return leader.id;
    };
    const ranked = rankByLeadership(profiles.values());
    const root = ranked.length === 0 ? undefined : place(ranked, settled.maxDepth, undefined, 'root');
    return new Hierarchy(profiles, seats, root, groupSize, settled.maxDepth, undefined);
  },
});
