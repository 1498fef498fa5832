import { ring } from '../../../src/topologies/ring.js';
import { COORDINATOR, type AgentProfile } from '../../../src/topology.js';
import { describeLaws } from './laws.js';

const plain = (...ids: string[]): AgentProfile[] => ids.map(id => ({ id, capabilities: [], successRate: 1 }));

describe('ring', () => {
  it('orders members by id and routes from the entry point, successor to successor', () => {
    const layout = ring.layout(plain('d', 'a', 'c', 'b', 'e'));
    expect(layout.members).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(layout.route('a')).toEqual([]);
    expect(layout.route('b')).toEqual(['a']);
    expect(layout.route('e')).toEqual(['a', 'b', 'c', 'd']);
    expect(layout.roles()).toEqual({ a: 'entry', b: 'position 1', c: 'position 2', d: 'position 3', e: 'position 4' });
    expect(layout.confirmsFailures).toBe(false);
  });

  it.each([
    [1, 0],
    [2, 1],
    [5, 4],
    [100, 99],
  ])('with %i members the farthest is %i hops past the entry', (n, hops) => {
    const layout = ring.layout(Array.from({ length: n }, (_, i) => ({ id: `m${String(i).padStart(3, '0')}`, capabilities: [], successRate: 1 })));
    expect(Math.max(...layout.members.map(id => layout.route(id).length))).toBe(hops);
    layout.members.forEach((id, i) => expect(layout.route(id)).toHaveLength(i));
  });

  it('links successors and predecessors around the ring', () => {
    const layout = ring.layout(plain('a', 'b', 'c'));
    expect(['a', 'b', 'c'].map(id => layout.successor(id))).toEqual(['b', 'c', 'a']);
    expect(['a', 'b', 'c'].map(id => layout.predecessor(id))).toEqual(['c', 'a', 'b']);
    expect(layout.successor('x')).toBeUndefined();
    expect(ring.layout(plain('a')).successor('a')).toBeUndefined();
  });

  it('has each member beat to its successor (which watches it) and the coordinator', () => {
    const layout = ring.layout(plain('a', 'b', 'c'));
    expect(layout.heartbeatTargets('a')).toEqual(['b', COORDINATOR]);
    expect(layout.heartbeatTargets('c')).toEqual(['a', COORDINATOR]);
    expect(ring.layout(plain('a')).heartbeatTargets('a')).toEqual([COORDINATOR]);
  });

  it('picks the free candidate nearest the entry point: the first the work meets', () => {
    const layout = ring.layout(plain('a', 'b', 'c', 'd'));
    expect(layout.pick({ id: 's' }, ['a', 'b', 'c', 'd'])).toBe('a');
    expect(layout.pick({ id: 's' }, ['a', 'b', 'c', 'd'])).toBe('a'); // stateless: a is still free
    expect(layout.pick({ id: 's' }, ['d', 'c'])).toBe('c');
    expect(layout.pick({ id: 's' }, ['ghost', 'd'])).toBe('d');
    expect(layout.pick({ id: 's' }, [])).toBeUndefined();
  });

  describe('repair by splice', () => {
    it('links the predecessor to the successor; the successor tells it', () => {
      const { layout, repair } = ring.layout(plain('a', 'b', 'c', 'd')).without('b');
      expect(layout.members).toEqual(['a', 'c', 'd']);
      expect(layout.successor('a')).toBe('c');
      expect(layout.route('d')).toEqual(['a', 'c']);
      expect(repair.messages).toEqual([{ from: 'c', to: 'a', kind: 'splice' }]);
      expect(repair.description).toBe('b spliced out: a → c');
    });

    it('moves the entry point on when the entry fails, wrapping the splice round', () => {
      const { layout, repair } = ring.layout(plain('a', 'b', 'c')).without('a');
      expect(layout.roles()).toEqual({ b: 'entry', c: 'position 1' });
      expect(repair.messages).toEqual([{ from: 'b', to: 'c', kind: 'splice' }]);
    });

    it.each([
      [1, 0],
      [2, 0],
      [3, 1],
      [10, 1],
    ])('a failure in a ring of %i costs %i splice messages', (n, messages) => {
      const layout = ring.layout(Array.from({ length: n }, (_, i) => ({ id: `m${i}`, capabilities: [], successRate: 1 })));
      expect(layout.without('m0').repair.messages).toHaveLength(messages);
    });

    it('returns the same layout for an unknown agent', () => {
      const layout = ring.layout(plain('a', 'b'));
      expect(layout.without('x').layout).toBe(layout);
    });
  });

  it('inserts a joining agent at its place in id order', () => {
    const layout = ring.layout(plain('a', 'c', 'e')).with({ id: 'd', capabilities: [], successRate: 1 });
    expect(layout.members).toEqual(['a', 'c', 'd', 'e']);
    expect(layout.route('e')).toEqual(['a', 'c', 'd']);
  });

  describeLaws(ring, {
    check: layout => {
      const n = layout.members.length;
      expect(layout.members).toEqual([...layout.members].sort());
      layout.members.forEach((id, i) => {
        expect(layout.route(id)).toHaveLength(i);
        if (n > 1) expect(layout.successor(id)).toBe(layout.members[(i + 1) % n]);
      });
    },
  });
});
