import fc from 'fast-check';
import { hierarchical, type HierarchicalLayout } from '../../../src/topologies/hierarchical.js';
import { COORDINATOR, type AgentProfile, type TopologyOptions } from '../../../src/topology.js';
import { describeLaws } from './laws.js';

const agent = (id: string, capabilities: string[] = [], successRate = 1): AgentProfile => ({ id, capabilities, successRate });
/** `n` plain agents a0…a(n−1): equal scores, so rank is id order. */
const plain = (n: number): AgentProfile[] => Array.from({ length: n }, (_, i) => agent(`a${String(i).padStart(n > 10 ? 4 : 1, '0')}`));

function countRoles(layout: HierarchicalLayout): [root: number, subs: number, members: number] {
  const roles = Object.values(layout.roles());
  return [roles.filter(r => r === 'root').length, roles.filter(r => r === 'sub-coordinator').length, roles.filter(r => r === 'member').length];
}

const maxRelays = (layout: HierarchicalLayout): number => Math.max(0, ...layout.members.map(id => layout.route(id).length));

describe('hierarchical', () => {
  describe('root choice', () => {
    const cases: [name: string, agents: AgentProfile[], root: string][] = [
      ['a coordination capability beats none', [agent('a'), agent('b', ['task_delegation'], 0.5)], 'b'],
      ['resource_allocation + conflict_resolution (0.4) beat task_delegation (0.3)', [agent('x', ['task_delegation']), agent('y', ['resource_allocation', 'conflict_resolution'])], 'y'],
      ['all three capabilities (0.7 + 0.3 × 0.5) beat two (0.5 + 0.3 × 1)', [agent('a', ['task_delegation', 'resource_allocation']), agent('b', ['task_delegation', 'resource_allocation', 'conflict_resolution'], 0.5)], 'b'],
      ['success rate weighs 0.3 among the capable', [agent('a', ['task_delegation'], 0.5), agent('b', ['task_delegation'], 0.9)], 'b'],
      ['a tie goes to the smaller id', [agent('b', ['task_delegation']), agent('a', ['task_delegation'])], 'a'],
      ['any capable agent outranks every general one', [agent('a', [], 1), agent('b', ['conflict_resolution'], 0)], 'b'],
      ['a capability listed twice counts once', [agent('a', ['task_delegation', 'task_delegation'], 0.5), agent('b', ['task_delegation'], 0.6)], 'b'],
      ['none capable: the best general agent by success rate', [agent('a', ['compute'], 0.5), agent('c', [], 0.9), agent('b', ['search'], 0.9)], 'b'],
      ['a single agent is the root', [agent('solo', [], 0)], 'solo'],
    ];
    it.each(cases)('%s', (_name, agents, root) => {
      const layout = hierarchical.layout(agents);
      expect(layout.root).toBe(root);
      expect(layout.roles()[root]).toBe('root');
      expect(layout.route(root)).toEqual([]);
    });
  });

  describe('shape', () => {
    const cases: [n: number, options: TopologyOptions, roles: [number, number, number], relays: number, groupSize: number][] = [
      [1, {}, [1, 0, 0], 0, 1],
      [3, {}, [1, 0, 2], 1, 2], // 2 left ≤ groupSize 2: one group under the root
      [4, {}, [1, 2, 1], 2, 2],
      [10, {}, [1, 4, 5], 2, 4],
      [100, {}, [1, 10, 89], 2, 10],
      [1000, {}, [1, 32, 967], 2, 32],
      [20, { maxDepth: 2 }, [1, 0, 19], 1, 5], // depth cap: the root directs everyone
      [20, { groupSize: 2 }, [1, 2, 17], 2, 2], // depth binds: two subs direct 9 and 8
      [15, { groupSize: 2, maxDepth: 4 }, [1, 6, 8], 3, 2],
      [10, { groupSize: 100 }, [1, 0, 9], 1, 100],
    ];
    it.each(cases)('%i agents %j → [root, subs, members] %j, at most %i relays', (n, options, roles, relays, groupSize) => {
      const layout = hierarchical.layout(plain(n), options);
      expect(countRoles(layout)).toEqual(roles);
      expect(maxRelays(layout)).toBe(relays);
      expect(layout.groupSize).toBe(groupSize);
      expect(layout.maxDepth).toBe(options.maxDepth ?? 3);
    });

    it('deals the groups: the next best lead them, the rest go round in rank order', () => {
      const layout = hierarchical.layout(plain(10));
      expect(layout.members).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a9', 'a6', 'a7', 'a8']);
      expect(layout.children('a0')).toEqual(['a1', 'a2', 'a3', 'a4']);
      expect(layout.children('a1')).toEqual(['a5', 'a9']);
      expect(layout.children('a4')).toEqual(['a8']);
      expect(layout.parent('a9')).toBe('a1');
      expect(layout.parent('a0')).toBeUndefined();
      expect(layout.route('a9')).toEqual(['a0', 'a1']);
      expect(layout.route('a1')).toEqual(['a0']);
      expect(layout.route('a0')).toEqual([]);
      expect(layout.roles()).toEqual({
        a0: 'root', a1: 'sub-coordinator', a2: 'sub-coordinator', a3: 'sub-coordinator', a4: 'sub-coordinator',
        a5: 'member', a6: 'member', a7: 'member', a8: 'member', a9: 'member',
      });
    });

    it('makes coordination-capable agents the sub-coordinators', () => {
      const agents = [...plain(8), agent('z1', ['resource_allocation'], 0.2), agent('z2', ['task_delegation'], 0.1)];
      const layout = hierarchical.layout(agents, { groupSize: 3 });
      expect(layout.root).toBe('z2');
      expect(layout.children('z2')).toEqual(['z1', 'a0', 'a1']);
    });

    it('precomputes routes: the same array every call', () => {
      const layout = hierarchical.layout(plain(1000));
      const id = layout.members[999] as string;
      expect(layout.route(id)).toBe(layout.route(id));
      expect(layout.route(id)).toHaveLength(2);
    });

    it('sends heartbeats to the coordinator only and does not confirm failures by vote', () => {
      const layout = hierarchical.layout(plain(10));
      for (const id of layout.members) expect(layout.heartbeatTargets(id)).toEqual([COORDINATOR]);
      expect(layout.confirmsFailures).toBe(false);
      expect(layout.topology).toBe('hierarchical');
    });
  });

  describe('pick: round-robin within groups', () => {
    // Groups: a0 {a0} · a1 {a1, a5, a9} · a2 {a2, a6} · a3 {a3, a7} · a4 {a4, a8}.
    it('deals turns group by group, each agent once per cycle', () => {
      const layout = hierarchical.layout(plain(10));
      const picks = Array.from({ length: 30 }, (_, i) => layout.pick({ id: `s${i}` }, layout.members));
      expect(picks.slice(0, 10)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9']);
      expect(picks.slice(10, 20)).toEqual(picks.slice(0, 10));
      const counts = new Map<string, number>();
      for (const p of picks) counts.set(p as string, (counts.get(p as string) ?? 0) + 1);
      expect([...counts.values()]).toEqual(Array(10).fill(3));
    });

    it('alternates groups on consecutive picks while several groups have turns left', () => {
      const layout = hierarchical.layout(plain(100));
      const groupOf = (id: string): string => (layout.roles()[id] === 'member' ? (layout.parent(id) as string) : id);
      const picks = Array.from({ length: 11 }, () => layout.pick({ id: 's' }, layout.members) as string);
      for (let i = 1; i < picks.length; i++) expect(groupOf(picks[i] as string)).not.toBe(groupOf(picks[i - 1] as string));
    });

    it('skips busy agents without losing their place', () => {
      const layout = hierarchical.layout(plain(10));
      expect(layout.pick({ id: 's' }, layout.members)).toBe('a0');
      expect(layout.pick({ id: 's' }, ['a0', 'a2', 'a5'])).toBe('a2');
      expect(layout.pick({ id: 's' }, layout.members)).toBe('a3');
      expect(layout.pick({ id: 's' }, ['a1'])).toBe('a1');
      expect(layout.pick({ id: 's' }, [])).toBeUndefined();
      expect(layout.pick({ id: 's' }, ['stranger'])).toBeUndefined();
    });

    it('is fair over any fixed candidate set (fast-check)', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 8 }), fc.array(fc.boolean(), { minLength: 1 }), (n, groupSize, mask) => {
          const layout = hierarchical.layout(plain(n), { groupSize });
          const candidates = layout.members.filter((_, i) => mask[i % mask.length]);
          const picks = Array.from({ length: candidates.length * 3 }, () => layout.pick({ id: 's' }, candidates));
          for (const c of candidates) expect(picks.filter(p => p === c)).toHaveLength(3);
        }),
        { numRuns: 150 },
      );
    });
  });

  describe('repair by promotion', () => {
    it('drops a failed member without messages', () => {
      const { layout, repair } = hierarchical.layout(plain(10)).without('a7');
      expect(repair.messages).toEqual([]);
      expect(repair.description).toMatch(/a7.*a3/);
      expect(layout.children('a3')).toEqual([]);
      expect(layout.roles()['a3']).toBe('sub-coordinator');
      expect(layout.route('a9')).toEqual(['a0', 'a1']);
    });

    it('promotes the best member of a failed sub-coordinator’s group; it tells the rest of the group', () => {
      const { layout, repair } = hierarchical.layout(plain(10)).without('a1');
      expect(repair.messages).toEqual([{ from: 'a5', to: 'a9', kind: 'promotion' }]);
      expect(repair.description).toMatch(/a5 promoted to sub-coordinator/);
      expect(layout.roles()['a5']).toBe('sub-coordinator');
      expect(layout.children('a0')).toEqual(['a5', 'a2', 'a3', 'a4']);
      expect(layout.route('a9')).toEqual(['a0', 'a5']);
    });

    it('promotes by score, not seniority, inside the group', () => {
      // zz joins a2's group after a6, but it is coordination-capable.
      const layout = hierarchical.layout(plain(10)).with(agent('zz', ['task_delegation'], 0));
      expect(layout.children('a2')).toEqual(['a6', 'zz']);
      const { layout: next, repair } = layout.without('a2');
      expect(next.roles()['zz']).toBe('sub-coordinator');
      expect(repair.messages).toEqual([{ from: 'zz', to: 'a6', kind: 'promotion' }]);
    });

    it('replaces a failed root by its best sub-coordinator and fills that seat in turn', () => {
      const { layout, repair } = hierarchical.layout(plain(10)).without('a0');
      expect(layout.root).toBe('a1');
      expect(repair.description).toBe('root a0 failed: a1 promoted to root, a5 promoted to sub-coordinator');
      expect(repair.messages).toEqual([
        { from: 'a1', to: 'a5', kind: 'promotion' },
        { from: 'a1', to: 'a2', kind: 'promotion' },
        { from: 'a1', to: 'a3', kind: 'promotion' },
        { from: 'a1', to: 'a4', kind: 'promotion' },
        { from: 'a5', to: 'a9', kind: 'promotion' },
      ]);
      expect(layout.route('a9')).toEqual(['a1', 'a5']);
      expect(layout.route('a6')).toEqual(['a1', 'a2']);
      expect(maxRelays(layout)).toBe(2);
    });

    it('promotes within a flat tree', () => {
      const { layout, repair } = hierarchical.layout(plain(3)).without('a0');
      expect(layout.root).toBe('a1');
      expect(repair.messages).toEqual([{ from: 'a1', to: 'a2', kind: 'promotion' }]);
    });

    it('lets a sub-coordinator that directed nobody just go', () => {
      const layout = hierarchical.layout(plain(4)); // a0 → a1 {a3}, a2 {}
      expect(layout.children('a2')).toEqual([]);
      const { layout: next, repair } = layout.without('a2');
      expect(repair.messages).toEqual([]);
      expect(repair.description).toMatch(/directed nobody/);
      expect(next.roles()).toEqual({ a0: 'root', a1: 'sub-coordinator', a3: 'member' });
    });

    it('cascades down a deeper tree, keeping its depth', () => {
      const layout = hierarchical.layout(plain(15), { groupSize: 2, maxDepth: 4 });
      const { layout: next, repair } = layout.without(layout.root as string);
      expect(repair.description.match(/promoted/g)).toHaveLength(3);
      expect(maxRelays(next)).toBe(3);
      // Root → best sub → its best sub → its best member: one member fewer, every seat kept.
      expect(countRoles(layout)).toEqual([1, 6, 8]);
      expect(countRoles(next)).toEqual([1, 6, 7]);
      expect(repair.messages).toHaveLength(5);
    });

    it('ends empty when everyone has failed', () => {
      let layout: HierarchicalLayout = hierarchical.layout(plain(10));
      for (const id of plain(10).map(a => a.id)) layout = layout.without(id).layout;
      expect(layout.members).toEqual([]);
      expect(layout.root).toBeUndefined();
    });

    it('returns the same layout and no messages for an unknown agent', () => {
      const layout = hierarchical.layout(plain(10));
      const { layout: same, repair } = layout.without('ghost');
      expect(same).toBe(layout);
      expect(repair.messages).toEqual([]);
    });

    it('keeps turn order across a repair', () => {
      const layout = hierarchical.layout(plain(10));
      expect([layout.pick({ id: 's' }, layout.members), layout.pick({ id: 's' }, layout.members)]).toEqual(['a0', 'a1']);
      // a1 failed after its turn: the cycle resumes after a0, where a5 now sits in a1's seat.
      const next = layout.without('a1').layout;
      expect([next.pick({ id: 's' }, next.members), next.pick({ id: 's' }, next.members)]).toEqual(['a5', 'a2']);
    });
  });

  describe('with', () => {
    it('joins the smallest bottom group, never taking a seat', () => {
      const layout = hierarchical.layout(plain(10)).with(agent('new', ['task_delegation', 'resource_allocation'], 1));
      expect(layout.parent('new')).toBe('a2');
      expect(layout.roles()['new']).toBe('member');
      expect(layout.route('new')).toEqual(['a0', 'a2']);
      expect(layout.root).toBe('a0');
    });

    it('joins the root’s group in a flat tree, and becomes the root of an empty one', () => {
      expect(hierarchical.layout(plain(3)).with(agent('x')).route('x')).toEqual(['a0']);
      const empty = hierarchical.layout([]);
      expect(empty.root).toBeUndefined();
      const one = empty.with(agent('x'));
      expect(one.root).toBe('x');
      expect(one.roles()).toEqual({ x: 'root' });
    });

    it('brings a restarted coordinator back as a member', () => {
      const layout = hierarchical.layout(plain(10)).without('a0').layout.with(agent('a0'));
      expect(layout.root).toBe('a1');
      expect(layout.roles()['a0']).toBe('member');
    });
  });

  describeLaws(hierarchical, {
    fair: true,
    options: fc.record({ groupSize: fc.integer({ min: 1, max: 6 }), maxDepth: fc.integer({ min: 2, max: 5 }) }, { requiredKeys: [] }),
    maxRelays: o => (o.maxDepth ?? 3) - 1,
    check: layout => {
      const roles = layout.roles();
      expect(layout.root).toBe(layout.members[0]);
      for (const id of layout.members) {
        const route = layout.route(id);
        expect(layout.parent(id)).toBe(route[route.length - 1]);
        if (id === layout.root) expect(roles[id]).toBe('root');
        else expect(roles[id]).toBe(layout.children(id).length > 0 ? 'sub-coordinator' : roles[id]);
        if (id !== layout.root) expect(roles[id]).not.toBe('root');
        if (roles[id] === 'member') expect(layout.children(id)).toEqual([]);
        for (const child of layout.children(id)) expect(layout.parent(child)).toBe(id);
      }
    },
  });
});
