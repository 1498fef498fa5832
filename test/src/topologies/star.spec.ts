import { star } from '../../../src/topologies/star.js';
import { COORDINATOR, type AgentProfile } from '../../../src/topology.js';
import { describeLaws } from './laws.js';

const agent = (id: string, capabilities: string[] = [], successRate = 1): AgentProfile => ({ id, capabilities, successRate });
const plain = (...ids: string[]): AgentProfile[] => ids.map(id => agent(id));

describe('star', () => {
  describe('hub choice (the hierarchical root’s ranking)', () => {
    const cases: [name: string, agents: AgentProfile[], hub: string][] = [
      ['task_delegation wins over none', [agent('a'), agent('b', ['task_delegation'], 0.2)], 'b'],
      ['higher score among the capable', [agent('a', ['conflict_resolution']), agent('b', ['task_delegation', 'conflict_resolution'], 0.5)], 'b'],
      ['equal scores on paper tie: 0.2 + 0.3 × 1 = 0.5 + 0.3 × 0, so the id decides', [agent('b', ['conflict_resolution'], 1), agent('a', ['task_delegation', 'resource_allocation'], 0)], 'a'],
      // Unrounded, 0.3 + 0.3 × 0.1 = 0.32999999999999996 would lose to 0.2 + 0.3 × (0.1 + 1/3) = 0.33.
      ['scores equal on paper tie despite floating-point rounding', [agent('b', ['resource_allocation'], 0.1 + 1 / 3), agent('a', ['task_delegation'], 0.1)], 'a'],
      ['ties go to the smaller id', [agent('c', ['resource_allocation']), agent('b', ['conflict_resolution'])], 'b'],
      ['none capable: best success rate', [agent('a', [], 0.3), agent('b', ['compute'], 0.8), agent('c', [], 0.5)], 'b'],
      ['none capable, equal rates: smaller id', plain('z', 'y', 'x'), 'x'],
    ];
    it.each(cases)('%s', (_name, agents, hub) => {
      const layout = star.layout(agents);
      expect(layout.hub).toBe(hub);
      expect(layout.members[0]).toBe(hub);
      expect(layout.roles()[hub]).toBe('hub');
    });
  });

  it('routes spokes through the hub and the hub directly', () => {
    const layout = star.layout(plain('d', 'b', 'a', 'c'));
    expect(layout.members).toEqual(['a', 'b', 'c', 'd']);
    expect(layout.roles()).toEqual({ a: 'hub', b: 'spoke', c: 'spoke', d: 'spoke' });
    expect(layout.route('a')).toEqual([]);
    for (const spoke of ['b', 'c', 'd']) expect(layout.route(spoke)).toEqual(['a']);
    expect(layout.route('zz')).toEqual([]);
    expect(layout.confirmsFailures).toBe(false);
  });

  it('has spokes beat to the hub and the coordinator, the hub to the coordinator', () => {
    const layout = star.layout(plain('a', 'b', 'c'));
    expect(layout.heartbeatTargets('a')).toEqual([COORDINATOR]);
    expect(layout.heartbeatTargets('b')).toEqual(['a', COORDINATOR]);
    expect(layout.heartbeatTargets('c')).toEqual(['a', COORDINATOR]);
  });

  describe('pick: round-robin', () => {
    it('cycles through the candidates, hub first', () => {
      const layout = star.layout(plain('a', 'b', 'c'));
      const picks = Array.from({ length: 7 }, () => layout.pick({ id: 's' }, layout.members));
      expect(picks).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    });

    it('skips busy members and resumes after the last pick', () => {
      const layout = star.layout(plain('a', 'b', 'c', 'd'));
      expect(layout.pick({ id: 's' }, ['a', 'b', 'c', 'd'])).toBe('a');
      expect(layout.pick({ id: 's' }, ['a', 'c', 'd'])).toBe('c');
      expect(layout.pick({ id: 's' }, ['a', 'b'])).toBe('a');
      expect(layout.pick({ id: 's' }, ['a', 'b', 'c', 'd'])).toBe('b');
      expect(layout.pick({ id: 's' }, ['ghost'])).toBeUndefined();
    });

    it('gives every candidate the same share', () => {
      const layout = star.layout(plain('a', 'b', 'c', 'd', 'e'));
      const candidates = ['b', 'c', 'e'];
      const picks = Array.from({ length: 30 }, () => layout.pick({ id: 's' }, candidates));
      for (const c of candidates) expect(picks.filter(p => p === c)).toHaveLength(10);
    });
  });

  describe('repair', () => {
    it('drops a spoke without messages', () => {
      const { layout, repair } = star.layout(plain('a', 'b', 'c')).without('b');
      expect(layout.members).toEqual(['a', 'c']);
      expect(layout.hub).toBe('a');
      expect(repair.messages).toEqual([]);
    });

    it('elects the best remaining member when the hub fails; each other member votes once', () => {
      const agents = [agent('hub', ['task_delegation']), agent('a', [], 0.9), agent('b', ['conflict_resolution'], 0.1), agent('c', [], 1)];
      const { layout, repair } = star.layout(agents).without('hub');
      expect(layout.hub).toBe('b');
      expect(layout.members).toEqual(['b', 'a', 'c']);
      expect(layout.route('a')).toEqual(['b']);
      expect(layout.heartbeatTargets('c')).toEqual(['b', COORDINATOR]);
      expect(repair.messages).toEqual([
        { from: 'a', to: 'b', kind: 'election' },
        { from: 'c', to: 'b', kind: 'election' },
      ]);
      expect(repair.description).toBe('hub hub failed: b elected by 2 votes');
    });

    it.each([
      [2, 0],
      [3, 1],
      [10, 8],
    ])('a hub failure among %i members costs %i election messages', (n, messages) => {
      const layout = star.layout(Array.from({ length: n }, (_, i) => agent(`m${i}`)));
      expect(layout.without(layout.hub as string).repair.messages).toHaveLength(messages);
    });

    it('ends empty when the last member fails', () => {
      const { layout, repair } = star.layout(plain('a')).without('a');
      expect(layout.members).toEqual([]);
      expect(layout.hub).toBeUndefined();
      expect(repair.messages).toEqual([]);
    });

    it('returns the same layout for an unknown agent', () => {
      const layout = star.layout(plain('a', 'b'));
      expect(layout.without('x').layout).toBe(layout);
      expect(layout.without('x').repair.messages).toEqual([]);
    });

    it('passes the turn on when the last pick fails', () => {
      const layout = star.layout(plain('a', 'b', 'c', 'd'));
      layout.pick({ id: 's' }, layout.members);
      layout.pick({ id: 's' }, layout.members); // b
      const next = layout.without('b').layout;
      expect(next.pick({ id: 's' }, next.members)).toBe('c');
    });
  });

  it('adds a joining agent as a spoke, even a better one, or as the hub of an empty star', () => {
    const layout = star.layout(plain('b', 'd')).with(agent('c', ['task_delegation']));
    expect(layout.hub).toBe('b');
    expect(layout.members).toEqual(['b', 'c', 'd']);
    expect(layout.route('c')).toEqual(['b']);
    const one = star.layout([]).with(agent('x'));
    expect(one.hub).toBe('x');
  });

  describeLaws(star, {
    fair: true,
    check: layout => {
      expect(layout.hub).toBe(layout.members[0]);
      for (const id of layout.members.slice(1)) expect(layout.route(id)).toEqual([layout.hub]);
      expect(layout.members.slice(1)).toEqual([...layout.members.slice(1)].sort());
    },
  });
});
