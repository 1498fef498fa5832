/**
 * Topologies as values (STYLE.md 6): a `Topology` lays agents out; a `Layout` says who relays work
 * to whom, who watches whom and how the layout repairs itself. The engine's runtime owns every
 * subscription, mailbox and message; a layout only answers questions about shape.
 */
import type { Subtask } from '../streams/task.js';

/** The topologies with a layout. `adaptive` is not one: it switches between these at run time. */
export type TopologyName = 'hierarchical' | 'mesh' | 'ring' | 'star';

/** Every topology with a layout, in a fixed order. */
export const TOPOLOGY_NAMES: readonly TopologyName[] = Object.freeze(['hierarchical', 'mesh', 'ring', 'star']);

/** The node that runs the engine: the origin of all work and a target of every heartbeat. */
export const COORDINATOR = 'coordinator';

/** What a layout knows about an agent. */
export interface AgentProfile {
  readonly id: string;
  readonly capabilities: readonly string[];
  /** Observed share of successful subtasks, 0..1 (1 when unknown). */
  readonly successRate: number;
}

/** A control message a repair costs. */
export interface RepairMessage {
  readonly from: string;
  readonly to: string;
  readonly kind: 'election' | 'promotion' | 'splice' | 'redistribute';
}

/** How a layout repaired itself after a member failed. */
export interface Repair {
  readonly description: string;
  /** Control messages the repair costs, counted on the network by the engine. */
  readonly messages: readonly RepairMessage[];
}

/** Options of `Topology.layout`. Only `hierarchical` reads them; every topology validates them. */
export interface TopologyOptions {
  /**
   * Hierarchical: the most agents one coordinator directs (its work group), unless the depth cap
   * forces more. Smaller: lighter coordinators, deeper trees (more relays per subtask); larger:
   * fewer relays, busier coordinators. Integer ≥ 1. Default `ceil(sqrt(n))`, fixed when laid out.
   */
  readonly groupSize?: number;
  /**
   * Hierarchical: the most levels of agents (the root is level 1, so a route has at most
   * `maxDepth − 1` relays). When it binds, the last coordinators direct more than `groupSize`.
   * Integer ≥ 2. Default 3.
   */
  readonly maxDepth?: number;
}

/** Agents laid out: routing, work placement, liveness links and repair. */
export interface Layout {
  readonly topology: TopologyName;
  /** Agent ids in the layout, in the layout's stable order. */
  readonly members: readonly string[];
  /** Relays between the coordinator and `agentId`, excluding both ends, in the order work travels. `[]` for a non-member. */
  route(agentId: string): readonly string[];
  /**
   * Relays a result of `agentId` crosses on its way back to the coordinator, in the order it
   * travels (excluding both ends). Absent: `route(agentId)` reversed, results aggregating back
   * the way the work came. A layout whose relays only dispatch (a star's hub) sends results
   * straight back: a relay the result does not need is a hop not paid for.
   */
  replyRoute?(agentId: string): readonly string[];
  /**
   * Picks which candidate (live, capable, with a free slot; given in stable order) runs `subtask`.
   * Deterministic: state such as round-robin cursors lives in the layout. Candidates that are not
   * members are ignored (they have no route); `undefined` when none is left.
   */
  pick(subtask: Subtask, candidates: readonly string[]): string | undefined;
  /**
   * Where `agentId` sends liveness heartbeats (always includes COORDINATOR). It may list `agentId`
   * itself, which a host skips: a layout may answer every member with one shared list (a mesh does).
   */
  heartbeatTargets(agentId: string): readonly string[];
  /** Mesh: a failure verdict must be confirmed by a consensus window of the live peers. */
  readonly confirmsFailures: boolean;
  /** Roles for inspection, e.g. `{ a: 'root', b: 'sub-coordinator', c: 'member' }`. */
  roles(): Readonly<Record<string, string>>;
  /** The layout with `failed` removed, repaired. An unknown id gives this layout and an empty repair. */
  without(failed: string): { readonly layout: Layout; readonly repair: Repair };
  /**
   * The layout with `joined` added (an agent restarted or a standby came in). Joining never
   * reshapes the layout (a new `layout()` rebalances). For a current member only its profile is
   * updated. RangeError on a bad profile.
   */
  with(joined: AgentProfile): Layout;
}

/** The relays a result of `agentId` crosses back to the coordinator under `layout` (its `replyRoute`, or its route reversed). */
export function replyRoute(layout: Layout, agentId: string): readonly string[] {
  return layout.replyRoute?.(agentId) ?? [...layout.route(agentId)].reverse();
}

/**
 * A topology: lays agents out. Layouts do not depend on the order agents are given in. `L` is the
 * topology's own layout type (with its inspection extras, e.g. a star's `hub`).
 */
export interface Topology<L extends Layout = Layout> {
  readonly name: TopologyName;
  layout(agents: readonly AgentProfile[], options?: TopologyOptions): L;
}
