/**
 * What the topologies share: checking agents and options, the leadership ranking (hierarchical
 * root, star hub, promotion, election) and the cyclic cursor behind round-robin picks.
 */
import { COORDINATOR, type AgentProfile, type Repair, type TopologyOptions } from '../topology.js';

/** Capability weights of the leadership score (DESIGN.md, hierarchical). */
export const COORDINATION_WEIGHTS: Readonly<Record<string, number>> = Object.freeze({
  task_delegation: 0.3,
  resource_allocation: 0.2,
  conflict_resolution: 0.2,
});

/** The weights as entries, once (a ranking of 10,000 agents asks for scores hundreds of thousands of times). */
const WEIGHTS: ReadonlyArray<readonly [string, number]> = Object.entries(COORDINATION_WEIGHTS);

/** Weight of the observed success rate in the leadership score. */
export const SUCCESS_RATE_WEIGHT = 0.3;

/** Whether the agent offers at least one coordination capability. */
export function isCoordinationCapable(agent: AgentProfile): boolean {
  return agent.capabilities.some(c => Object.hasOwn(COORDINATION_WEIGHTS, c));
}

/**
 * Leadership score in [0, 1]: 0.3 for `task_delegation`, 0.2 each for `resource_allocation` and
 * `conflict_resolution`, plus `successRate × 0.3`. A capability listed twice counts once.
 */
export function coordinationScore(agent: AgentProfile): number {
  let score = 0;
  for (const [capability, weight] of WEIGHTS) {
    if (agent.capabilities.includes(capability)) score += weight;
  }
  // Rounded to 1e-12 so that scores equal on paper tie exactly and the id decides: unrounded,
  // 0.3 + 0.3 × 0.1 = 0.32999999999999996 would lose to 0.2 + 0.3 × (0.1 + 1/3) = 0.33.
  return Math.round((score + agent.successRate * SUCCESS_RATE_WEIGHT) * 1e12) / 1e12;
}

/** Code-unit order of ids: the same in every locale. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Leadership order, best first: coordination-capable agents before the rest (with none capable,
 * this is the "best general agent" fallback: successRate, since the score is then 0.3 × successRate),
 * then higher `coordinationScore`, then the smaller id.
 */
export function compareLeadership(a: AgentProfile, b: AgentProfile): number {
  const capable = Number(isCoordinationCapable(b)) - Number(isCoordinationCapable(a));
  if (capable !== 0) return capable;
  const score = coordinationScore(b) - coordinationScore(a);
  if (score !== 0) return score;
  return compareIds(a.id, b.id);
}

/** `agents` in leadership order (as {@link compareLeadership}), each one's rank computed once: O(n log n) comparisons of numbers. */
export function rankByLeadership(agents: Iterable<AgentProfile>): AgentProfile[] {
  const keyed = Array.from(agents, agent => ({ agent, capable: isCoordinationCapable(agent) ? 0 : 1, score: coordinationScore(agent) }));
  keyed.sort((a, b) => a.capable - b.capable || b.score - a.score || compareIds(a.agent.id, b.agent.id));
  return keyed.map(k => k.agent);
}

/** The best-ranked of `agents`, or `undefined` when there are none. O(n). */
export function bestLeader(agents: Iterable<AgentProfile>): AgentProfile | undefined {
  let best: AgentProfile | undefined;
  for (const agent of agents) if (best === undefined || compareLeadership(agent, best) < 0) best = agent;
  return best;
}

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** A checked copy of one profile; `name` locates it in errors (`agents[3]`, `joined`). */
export function checkProfile(value: unknown, name: string): AgentProfile {
  const agent = value as Partial<AgentProfile> | null;
  if (agent === null || typeof agent !== 'object') throw new RangeError(`${name} must be an agent profile, got ${show(value)}`);
  const { id, capabilities, successRate } = agent;
  if (typeof id !== 'string' || id.length === 0) throw new RangeError(`${name}.id must be a non-empty string, got ${show(id)}`);
  if (id === COORDINATOR) throw new RangeError(`${name}.id must not be ${show(COORDINATOR)}, the engine's own node`);
  if (!Array.isArray(capabilities) || !capabilities.every(c => typeof c === 'string')) {
    throw new RangeError(`${name}.capabilities must be an array of strings, got ${show(capabilities)}`);
  }
  if (typeof successRate !== 'number' || !(successRate >= 0 && successRate <= 1)) {
    throw new RangeError(`${name}.successRate must be a number in [0, 1], got ${show(successRate)}`);
  }
  return Object.freeze({ id, capabilities: Object.freeze([...capabilities]), successRate });
}

/** Checked copies of `agents`, by id; RangeError on a bad profile or a duplicate id. */
export function checkAgents(agents: unknown): Map<string, AgentProfile> {
  if (!Array.isArray(agents)) throw new RangeError(`agents must be an array of agent profiles, got ${show(agents)}`);
  const byId = new Map<string, AgentProfile>();
  agents.forEach((value, i) => {
    const agent = checkProfile(value, `agents[${i}]`);
    if (byId.has(agent.id)) throw new RangeError(`agents must have distinct ids, got ${show(agent.id)} twice`);
    byId.set(agent.id, agent);
  });
  return byId;
}

export interface SettledOptions {
  /** `undefined`: the default, `ceil(sqrt(n))` at layout time. */
  readonly groupSize: number | undefined;
  readonly maxDepth: number;
}

/** Options checked and defaulted: RangeError naming the option and the bad value. */
export function settleOptions(options: TopologyOptions | undefined): SettledOptions {
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new RangeError(`options must be an object, got ${show(options)}`);
  }
  const { groupSize, maxDepth = 3 } = options ?? {};
  if (groupSize !== undefined && (typeof groupSize !== 'number' || !Number.isInteger(groupSize) || groupSize < 1)) {
    throw new RangeError(`groupSize must be an integer >= 1, got ${show(groupSize)}`);
  }
  if (typeof maxDepth !== 'number' || !Number.isInteger(maxDepth) || maxDepth < 2) {
    throw new RangeError(`maxDepth must be an integer >= 2, got ${show(maxDepth)}`);
  }
  return { groupSize, maxDepth };
}

/** The repair of a failure the layout did not know about. */
export const NO_REPAIR: Repair = Object.freeze({ description: 'not a member: nothing to repair', messages: Object.freeze([]) });

/**
 * The candidate that comes next after position `last` in a cycle of `size` positions: the one with
 * the smallest `(position − last − 1) mod size`. Candidates without a position are skipped.
 * `last = -1` starts from position 0. O(candidates), less when the very next position is free.
 */
export function nextInCycle(
  candidates: readonly string[],
  positionOf: (id: string) => number | undefined,
  size: number,
  last: number,
): string | undefined {
  let chosen: string | undefined;
  let best = Infinity;
  for (const id of candidates) {
    const position = positionOf(id);
    if (position === undefined) continue;
    const distance = (((position - last - 1) % size) + size) % size;
    if (distance < best) {
      best = distance;
      chosen = id;
      if (distance === 0) break; // the very next position: nothing comes sooner
    }
  }
  return chosen;
}

/** A frozen record from entries (roles()). */
export function frozenRecord(entries: Iterable<readonly [string, string]>): Readonly<Record<string, string>> {
  // fromEntries defines own properties, so an agent named "__proto__" is a key like any other.
  return Object.freeze(Object.fromEntries(entries));
}

export const ONLY_COORDINATOR: readonly string[] = Object.freeze([COORDINATOR]);
export const DIRECT: readonly string[] = Object.freeze([]);

/** A copy of `sorted` (ascending by id) with `id` inserted in place. O(n). */
export function insertSorted(sorted: readonly string[], id: string): string[] {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareIds(sorted[mid] as string, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return [...sorted.slice(0, lo), id, ...sorted.slice(lo)];
}

/** Positions of `ids` in their order. */
export function positions(ids: readonly string[]): Map<string, number> {
  return new Map(ids.map((id, i) => [id, i]));
}
