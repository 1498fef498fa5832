import type { Observable, Subscription } from 'rxjs';
import { topologyFor } from './topologies/index.js';
import { replyRoute, type AgentProfile, type Layout, type TopologyName } from './topology.js';

/** What a probe reads of the team: the live agents, and a counter that moves whenever that set changes. */
export interface LiveTeam {
  readonly liveChanges: number;
  liveProfiles(): AgentProfile[];
}

export interface ProtocolProbeOptions {
  /**
   * Share of first assignments routed under a candidate protocol instead of the one in force, in
   * [0, 1). Higher: candidates measured sooner (and switches taken sooner when conditions change),
   * more of the work on routes that may be worse. 0 turns probing off.
   */
  readonly share: number;
  /** Protocols that may be probed. */
  readonly candidates: readonly TopologyName[];
  /** The protocol in force at the start (never probed while in force). */
  readonly initial: TopologyName;
  /** Every protocol put in force from then on (the engine's switches, whoever made them). */
  readonly inForce?: Observable<string>;
}

/** A probe: the protocol an assignment is routed under, its route to the agent and its result's way back. */
export interface Probe {
  readonly protocol: TopologyName;
  readonly route: readonly string[];
  readonly reply: readonly string[];
}

/**
 * Measured exploration for the adaptive protocol: one assignment in `1 / share` is routed under a
 * candidate protocol instead of the one in force (candidates in turn), so that `adaptiveSwitch`
 * scores candidates from what they measured here and now, not from a prior. Without it only the
 * protocol in force is ever measured: a condition that makes its routes cost more (slow links
 * between agents, loss on relays) shows as its score falling, never as another protocol's being
 * better, and the switch waits on a guess.
 *
 * Only protocols never in force are probed: `adaptiveSwitch` holds a protocol it left at what it
 * measured when it left it (fresh records of it would be ignored), so probing stops once every
 * candidate has had its turn in force. The agent is still picked by the layout in force; a probe
 * changes the route only, so it runs the same work on the same agents, through other relays.
 *
 * Deterministic: which assignments are probed depends on their order alone (a share accumulator,
 * no random draws), so a seeded run replays. Each candidate's layout is built from the live team
 * when first needed and again whenever the team changed.
 *
 * @example
 * const probe = new ProtocolProbe({ share: 0.1, candidates: ['mesh', 'ring', 'star'], initial: 'hierarchical' });
 * probe.next('hierarchical', 'agent-3', team) // undefined nine times, then { protocol: 'mesh', route: [] }
 */
export class ProtocolProbe {
  private readonly share: number;
  private readonly candidates: readonly TopologyName[];
  /** Protocols that have been in force: not probed any more. */
  private readonly tried = new Set<string>();
  private readonly layouts = new Map<TopologyName, { readonly layout: Layout; readonly liveChanges: number }>();
  private readonly subscription: Subscription | undefined;
  /** Share accumulated since the last probe: a probe is due when it reaches 1. */
  private due = 0;
  /** Index in `candidates` of the last one probed. */
  private turn = -1;

  constructor(options: ProtocolProbeOptions) {
    const { share, candidates, initial, inForce } = options;
    if (typeof share !== 'number' || !(share >= 0 && share < 1)) throw new RangeError(`share must be a number in [0, 1), got ${String(share)}`);
    if (!Array.isArray(candidates)) throw new RangeError(`candidates must be an array of topology names, got ${String(candidates)}`);
    for (const c of candidates) topologyFor(c);
    this.share = share;
    this.candidates = [...candidates];
    this.tried.add(initial);
    this.subscription = inForce?.subscribe(protocol => this.tried.add(protocol));
  }

  /**
   * The probe for the next first assignment (to `agentId`, under `current`), or undefined when it
   * goes by the layout in force: not its turn, or no candidate left to probe.
   */
  next(current: TopologyName, agentId: string, team: LiveTeam): Probe | undefined {
    if (this.share === 0) return undefined;
    this.due += this.share;
    // Sums of a share such as 0.1 fall short of 1 by a rounding error: not by a whole assignment.
    if (this.due < 1 - 1e-9) return undefined;
    const n = this.candidates.length;
    for (let i = 1; i <= n; i++) {
      const k = (this.turn + i) % n;
      const protocol = this.candidates[k] as TopologyName;
      if (protocol === current || this.tried.has(protocol)) continue;
      this.due -= 1;
      this.turn = k;
      const layout = this.layoutOf(protocol, team);
      return { protocol, route: layout.route(agentId), reply: replyRoute(layout, agentId) };
    }
    // Nothing left to probe: the share is not saved up for later.
    this.due = 0;
    return undefined;
  }

  /** Stops following the protocols put in force. */
  close(): void {
    this.subscription?.unsubscribe();
    this.layouts.clear();
  }

  private layoutOf(protocol: TopologyName, team: LiveTeam): Layout {
    const cached = this.layouts.get(protocol);
    if (cached !== undefined && cached.liveChanges === team.liveChanges) return cached.layout;
    const layout = topologyFor(protocol).layout(team.liveProfiles());
    this.layouts.set(protocol, { layout, liveChanges: team.liveChanges });
    return layout;
  }
}
