/**
 * Laws every layout keeps, checked as fast-check properties from each topology's spec: membership
 * follows removals and additions, routes are loop-free paths of live members, picks come from the
 * candidates, repairs message only live nodes, and everything is deterministic.
 */
import fc from 'fast-check';
import { COORDINATOR, type AgentProfile, type Layout, type Topology, type TopologyOptions } from '../../../src/topology.js';

const CAPABILITIES = ['task_delegation', 'resource_allocation', 'conflict_resolution', 'compute', 'search'] as const;
/** A small id pool, so removals and re-joins of the same id happen often. */
const IDS = Array.from({ length: 40 }, (_, i) => `agent-${i}`);

export const profileArb: fc.Arbitrary<AgentProfile> = fc.record({
  id: fc.constantFrom(...IDS),
  capabilities: fc.subarray([...CAPABILITIES]),
  // Few distinct rates, so score ties (and their id tie-break) are common.
  successRate: fc.oneof(fc.constantFrom(0, 0.5, 0.9, 1), fc.double({ min: 0, max: 1, noNaN: true })),
});

export const agentsArb: fc.Arbitrary<AgentProfile[]> = fc.uniqueArray(profileArb, { selector: a => a.id, maxLength: 25 });

export type Step =
  | { readonly kind: 'remove'; readonly index: number }
  | { readonly kind: 'removeUnknown' }
  | { readonly kind: 'add'; readonly agent: AgentProfile }
  | { readonly kind: 'pick'; readonly mask: readonly boolean[] };

export const stepsArb: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('remove' as const), index: fc.nat() }),
    fc.constant({ kind: 'removeUnknown' as const }),
    fc.record({ kind: fc.constant('add' as const), agent: profileArb }),
    fc.record({ kind: fc.constant('pick' as const), mask: fc.array(fc.boolean(), { maxLength: 30 }) }),
  ),
  { maxLength: 30 },
);

/** Candidates from a mask over the members, kept in the layout's stable order. */
function candidatesOf(layout: Layout, mask: readonly boolean[]): string[] {
  return layout.members.filter((_, i) => mask[i % Math.max(1, mask.length)] ?? true);
}

/** Everything a layout answers, as plain data. */
export function observe(layout: Layout): unknown {
  return {
    topology: layout.topology,
    members: [...layout.members],
    roles: { ...layout.roles() },
    routes: layout.members.map(id => [...layout.route(id)]),
    beats: layout.members.map(id => layout.heartbeatTargets(id).filter(to => to !== id)),
    confirmsFailures: layout.confirmsFailures,
  };
}

/** Throws (via expect) unless `layout` is well formed for exactly the agents in `live`. */
export function checkLayout(layout: Layout, live: ReadonlySet<string>, maxRelays = Infinity): void {
  const members = new Set(layout.members);
  expect(members.size).toBe(layout.members.length);
  expect([...members].sort()).toEqual([...live].sort());
  expect(Object.keys(layout.roles()).sort()).toEqual([...live].sort());
  const problems: string[] = [];
  for (const id of layout.members) {
    const route = layout.route(id);
    if (route.length > maxRelays) problems.push(`route of ${id} has ${route.length} relays`);
    if (new Set(route).size !== route.length) problems.push(`route of ${id} repeats a relay`);
    if (route.includes(id) || route.includes(COORDINATOR)) problems.push(`route of ${id} contains an end`);
    for (const relay of route) if (!members.has(relay)) problems.push(`relay ${relay} of ${id} is not a member`);
    // The last relay is reached along the rest of the path; by induction over all members, routes
    // form a tree rooted at the coordinator (every relay reached the same way, no cycle).
    const last = route[route.length - 1];
    if (last !== undefined) {
      const own = layout.route(last);
      if (own.length !== route.length - 1 || own.some((r, j) => r !== route[j])) problems.push(`relay ${last} of ${id} is reached another way`);
    }
    const beats = layout.heartbeatTargets(id);
    if (!beats.includes(COORDINATOR)) problems.push(`${id} does not beat to the coordinator`);
    // A layout may list the asker itself (one list shared by all members): its host skips it.
    if (new Set(beats).size !== beats.length) problems.push(`${id} beats to a target twice`);
    for (const target of beats) if (target !== COORDINATOR && !members.has(target)) problems.push(`${id} beats to ${target}`);
  }
  expect(problems).toEqual([]);
  expect(layout.route('no-such-agent')).toEqual([]);
  expect(layout.heartbeatTargets('no-such-agent')).toEqual([COORDINATOR]);
}

/** Runs `steps` from `layout(agents)`, checking the laws after each, and returns a transcript. */
export function runSteps(
  topology: Topology,
  agents: readonly AgentProfile[],
  steps: readonly Step[],
  options: TopologyOptions = {},
  maxRelays = Infinity,
  check: (layout: Layout) => void = () => {},
): unknown[] {
  let layout = topology.layout(agents, options);
  const live = new Set(agents.map(a => a.id));
  const transcript: unknown[] = [observe(layout)];
  checkLayout(layout, live, maxRelays);
  check(layout);
  for (const step of steps) {
    switch (step.kind) {
      case 'remove': {
        if (layout.members.length === 0) break;
        const failed = layout.members[step.index % layout.members.length] as string;
        const { layout: next, repair } = layout.without(failed);
        live.delete(failed);
        for (const m of repair.messages) {
          expect(m.from).not.toBe(m.to);
          for (const end of [m.from, m.to]) expect(end === COORDINATOR || live.has(end), `${end} in a repair is live`).toBe(true);
        }
        transcript.push(repair);
        layout = next;
        break;
      }
      case 'removeUnknown': {
        const { layout: same, repair } = layout.without('no-such-agent');
        expect(same).toBe(layout);
        expect(repair.messages).toEqual([]);
        break;
      }
      case 'add':
        layout = layout.with(step.agent);
        live.add(step.agent.id);
        break;
      case 'pick': {
        const candidates = candidatesOf(layout, step.mask);
        const chosen = layout.pick({ id: 'subtask' }, candidates);
        if (candidates.length > 0) expect(candidates).toContain(chosen);
        else expect(chosen).toBeUndefined();
        transcript.push(chosen);
        break;
      }
    }
    checkLayout(layout, live, maxRelays);
    check(layout);
    transcript.push(observe(layout));
  }
  return transcript;
}

/** A copy of `agents` in another order (reversed, then rotated by `by`). */
export function reordered<T>(agents: readonly T[], by: number): T[] {
  const reversed = [...agents].reverse();
  const k = reversed.length === 0 ? 0 : by % reversed.length;
  return [...reversed.slice(k), ...reversed.slice(0, k)];
}

export interface LawOptions<L extends Layout> {
  /** Options to lay out with. Default `{}`. */
  readonly options?: fc.Arbitrary<TopologyOptions>;
  /** The most relays a route may have under the options. Default unbounded. */
  readonly maxRelays?: (options: TopologyOptions) => number;
  /** The topology's own invariants, checked after every step. */
  readonly check?: (layout: L) => void;
  /** Round-robin: over a fixed candidate set, k rounds of picks give every candidate k turns. */
  readonly fair?: boolean;
}

/** The shared properties, as a `describe` block for one topology. */
export function describeLaws<L extends Layout>(topology: Topology<L>, laws: LawOptions<L> = {}): void {
  const { options = fc.constant({}), maxRelays = () => Infinity, check = () => {}, fair = false } = laws;
  const ownCheck = check as (layout: Layout) => void;
  describe(`${topology.name} laws (fast-check)`, () => {
    it('keeps every member reachable over live relays, without cycles, through any removals and additions; picks come from the candidates', () => {
      fc.assert(
        fc.property(agentsArb, stepsArb, options, (agents, steps, o) => {
          runSteps(topology, agents, steps, o, maxRelays(o), ownCheck);
        }),
        { numRuns: 150 },
      );
    });

    it('is deterministic and does not depend on the order agents are given in', () => {
      fc.assert(
        fc.property(agentsArb, stepsArb, options, fc.nat(), (agents, steps, o, by) => {
          const first = runSteps(topology, agents, steps, o);
          expect(runSteps(topology, agents, steps, o)).toEqual(first);
          expect(runSteps(topology, reordered(agents, by), steps, o)).toEqual(first);
        }),
        { numRuns: 100 },
      );
    });

    if (fair) {
      it('gives every candidate of a fixed set the same number of turns, after any history', () => {
        fc.assert(
          fc.property(agentsArb, stepsArb, options, fc.array(fc.boolean(), { minLength: 1 }), fc.integer({ min: 1, max: 3 }), (agents, steps, o, mask, rounds) => {
            let layout = topology.layout(agents, o) as Layout;
            for (const step of steps) {
              if (step.kind === 'add') layout = layout.with(step.agent);
              else if (step.kind === 'remove' && layout.members.length > 0) layout = layout.without(layout.members[step.index % layout.members.length] as string).layout;
              else if (step.kind === 'pick') layout.pick({ id: 's' }, candidatesOf(layout, step.mask));
            }
            const candidates = candidatesOf(layout, mask);
            const picks = Array.from({ length: candidates.length * rounds }, () => layout.pick({ id: 's' }, candidates));
            for (const c of candidates) expect(picks.filter(p => p === c), c).toHaveLength(rounds);
          }),
          { numRuns: 150 },
        );
      });
    }

    it('treats the empty layout as valid', () => {
      const empty = topology.layout([]);
      expect(empty.members).toEqual([]);
      expect(empty.route('x')).toEqual([]);
      expect(empty.pick({ id: 's' }, [])).toBeUndefined();
      expect(empty.pick({ id: 's' }, ['x'])).toBeUndefined();
      expect(empty.roles()).toEqual({});
      expect(empty.heartbeatTargets('x')).toEqual([COORDINATOR]);
      const { layout, repair } = empty.without('x');
      expect(layout).toBe(empty);
      expect(repair.messages).toEqual([]);
      const one = empty.with({ id: 'x', capabilities: [], successRate: 1 });
      expect(one.members).toEqual(['x']);
      expect(one.route('x')).toEqual([]);
      expect(one.pick({ id: 's' }, ['x'])).toBe('x');
    });

    it('rejects duplicate ids, bad profiles and bad options with a RangeError naming them', () => {
      const a = { id: 'a', capabilities: [], successRate: 1 };
      expect(() => topology.layout([a, { ...a }])).toThrow(RangeError);
      expect(() => topology.layout([a, { ...a }])).toThrow(/distinct ids.*"a"/);
      expect(() => topology.layout([{ ...a, successRate: 1.5 }])).toThrow(/agents\[0\]\.successRate/);
      expect(() => topology.layout([{ ...a, successRate: Number.NaN }])).toThrow(/successRate/);
      expect(() => topology.layout([{ ...a, id: '' }])).toThrow(/agents\[0\]\.id/);
      expect(() => topology.layout([{ ...a, id: COORDINATOR }])).toThrow(/agents\[0\]\.id/);
      expect(() => topology.layout([{ ...a, capabilities: 'x' as unknown as string[] }])).toThrow(/capabilities/);
      expect(() => topology.layout('a' as unknown as AgentProfile[])).toThrow(/agents/);
      expect(() => topology.layout([a], { groupSize: 0 })).toThrow(/groupSize.*0/);
      expect(() => topology.layout([a], { groupSize: 1.5 })).toThrow(/groupSize/);
      expect(() => topology.layout([a], { maxDepth: 1 })).toThrow(/maxDepth.*1/);
      expect(() => topology.layout([a], null as unknown as TopologyOptions)).toThrow(/options/);
      expect(() => topology.layout([a]).with({ ...a, id: 'b', successRate: -1 })).toThrow(/joined\.successRate/);
    });

    it('joining again as a member keeps the shape', () => {
      const agents = ['a', 'b', 'c', 'd', 'e'].map(id => ({ id, capabilities: [], successRate: 1 }));
      const layout = topology.layout(agents);
      expect(observe(layout.with({ id: 'c', capabilities: ['compute'], successRate: 0.5 }))).toEqual(observe(layout));
    });

    it('lays out 1,000 agents and routes, picks, removes and adds among them', () => {
      const agents = Array.from({ length: 1000 }, (_, i) => ({
        id: `agent-${String(i).padStart(4, '0')}`,
        capabilities: i % 97 === 0 ? ['task_delegation'] : ['compute'],
        successRate: (i % 10) / 10,
      }));
      let layout: Layout = topology.layout(agents);
      for (const id of layout.members) layout.route(id);
      const ids = [...layout.members];
      for (let i = 0; i < 1000; i++) expect(layout.pick({ id: `s-${i}` }, ids)).toBeDefined();
      for (let i = 0; i < 50; i++) layout = layout.without(layout.members[(i * 37) % layout.members.length] as string).layout;
      for (let i = 0; i < 50; i++) layout = layout.with({ id: `late-${i}`, capabilities: [], successRate: 1 });
      expect(layout.members).toHaveLength(1000);
      checkLayout(layout, new Set(layout.members));
      ownCheck(layout);
    });
  });
}
