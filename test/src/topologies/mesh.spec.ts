import { mesh } from '../../../src/topologies/mesh.js';
import { COORDINATOR, type AgentProfile } from '../../../src/topology.js';
import { describeLaws } from './laws.js';

const plain = (...ids: string[]): AgentProfile[] => ids.map(id => ({ id, capabilities: [], successRate: 1 }));

describe('mesh', () => {
  it('routes directly to every peer and confirms failures by consensus', () => {
    const layout = mesh.layout(plain('c', 'a', 'b'));
    expect(layout.members).toEqual(['a', 'b', 'c']);
    for (const id of layout.members) expect(layout.route(id)).toEqual([]);
    expect(layout.roles()).toEqual({ a: 'peer', b: 'peer', c: 'peer' });
    expect(layout.confirmsFailures).toBe(true);
  });

  it('has every peer beat to every other peer and the coordinator, from one shared list (each host skips itself)', () => {
    const layout = mesh.layout(plain('a', 'b', 'c'));
    expect(layout.heartbeatTargets('a')).toEqual(['a', 'b', 'c', COORDINATOR]);
    // No copy per peer per beat: every peer is answered with the same array.
    expect(layout.heartbeatTargets('b')).toBe(layout.heartbeatTargets('a'));
    expect(layout.heartbeatTargets('nobody')).toEqual([COORDINATOR]);
  });

  it.each([1, 2, 10, 50])('%i peers send n² heartbeats per round (n − 1 peers and the coordinator each)', n => {
    const layout = mesh.layout(Array.from({ length: n }, (_, i) => ({ id: `p${i}`, capabilities: [], successRate: 1 })));
    const beats = layout.members.reduce((sum, id) => sum + layout.heartbeatTargets(id).filter(to => to !== id).length, 0);
    expect(beats).toBe(n * n);
  });

  describe('pick: least recently picked', () => {
    it('is round-robin over a fixed candidate set', () => {
      const layout = mesh.layout(plain('a', 'b', 'c'));
      expect(Array.from({ length: 6 }, () => layout.pick({ id: 's' }, layout.members))).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    });

    it('gives a peer that was busy the next turn once it is free', () => {
      const layout = mesh.layout(plain('a', 'b', 'c'));
      expect(layout.pick({ id: 's' }, ['a', 'c'])).toBe('a');
      expect(layout.pick({ id: 's' }, ['a', 'c'])).toBe('c');
      expect(layout.pick({ id: 's' }, ['a', 'c'])).toBe('a');
      expect(layout.pick({ id: 's' }, ['a', 'b', 'c'])).toBe('b');
      expect(layout.pick({ id: 's' }, ['a', 'b', 'c'])).toBe('c');
      expect(layout.pick({ id: 's' }, ['ghost'])).toBeUndefined();
    });

    it('gives a joining peer the next turn and keeps the others’ history', () => {
      const layout = mesh.layout(plain('a', 'b'));
      layout.pick({ id: 's' }, ['a', 'b']);
      const joined = layout.with({ id: 'z', capabilities: [], successRate: 1 });
      expect(joined.pick({ id: 's' }, joined.members)).toBe('b');
      expect(joined.pick({ id: 's' }, joined.members)).toBe('z');
      expect(joined.pick({ id: 's' }, joined.members)).toBe('a');
    });
  });

  describe('repair by redistribution', () => {
    it('sends each live peer one redistribute from the coordinator', () => {
      const { layout, repair } = mesh.layout(plain('a', 'b', 'c', 'd')).without('b');
      expect(layout.members).toEqual(['a', 'c', 'd']);
      expect(repair.messages).toEqual(['a', 'c', 'd'].map(to => ({ from: COORDINATOR, to, kind: 'redistribute' })));
      expect(layout.heartbeatTargets('a')).toEqual(['a', 'c', 'd', COORDINATOR]);
    });

    it.each([
      [1, 0],
      [2, 1],
      [10, 9],
    ])('a failure among %i peers costs %i messages', (n, messages) => {
      const layout = mesh.layout(Array.from({ length: n }, (_, i) => ({ id: `p${i}`, capabilities: [], successRate: 1 })));
      expect(layout.without('p0').repair.messages).toHaveLength(messages);
    });

    it('returns the same layout for an unknown agent', () => {
      const layout = mesh.layout(plain('a'));
      expect(layout.without('x').layout).toBe(layout);
    });
  });

  describeLaws(mesh, {
    fair: true,
    check: layout => {
      expect(layout.members).toEqual([...layout.members].sort());
      for (const id of layout.members) expect(layout.heartbeatTargets(id).filter(to => to !== id)).toHaveLength(layout.members.length);
    },
  });
});
