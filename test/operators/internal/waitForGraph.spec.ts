import fc from 'fast-check';
import { canonicalCycle, WaitForGraph, type TrackedCycle } from '../../../operators/internal/waitForGraph.js';
import { bruteForceCycles } from './bruteForceCycles.js';

const key = (members: readonly string[]): string => members.join(',');

describe('canonicalCycle', () => {
  it.each([
    [['a'], ['a']],
    [['b', 'a'], ['a', 'b']],
    [['c', 'a', 'b'], ['a', 'b', 'c']],
    [['c', 'b', 'a'], ['a', 'c', 'b']], // order kept: only rotated
    [['b', 'c', 'a', 'd'], ['a', 'd', 'b', 'c']],
    [['agent-10', 'agent-2', 'agent-1'], ['agent-1', 'agent-10', 'agent-2']], // code-unit order
  ])('%j → %j', (members, expected) => {
    expect(canonicalCycle(members)).toEqual(expected);
  });
});

describe('WaitForGraph', () => {
  it('tracks the cycles an edge closes and drops those through a removed edge', () => {
    const g = new WaitForGraph();
    expect(g.addEdge('a', 'b', 0)).toBeUndefined();
    expect(g.addEdge('b', 'c', 1)).toBeUndefined();
    expect(g.addEdge('b', 'd', 1)).toBeUndefined();
    expect(g.addEdge('d', 'a', 2)).toEqual([expect.objectContaining({ members: ['a', 'b', 'd'], since: 2 })]);
    expect(g.addEdge('a', 'b', 3)).toBeUndefined(); // present: ignored
    expect(g.addEdge('c', 'a', 4)?.map(c => key(c.members))).toEqual(['a,b,c']);
    expect(g.cycles).toBe(2);
    expect(g.removeEdge('b', 'c')?.map(c => key(c.members))).toEqual(['a,b,c']);
    expect(g.removeEdge('b', 'c')).toBeUndefined(); // absent: ignored
    expect(g.removeEdge('a', 'b')?.map(c => key(c.members))).toEqual(['a,b,d']);
    expect(g.cycles).toBe(0);
  });

  it('finds every cycle one edge closes', () => {
    const g = new WaitForGraph();
    // b → {c, d, e} → f → a, and d → e: closing a → b makes four cycles at once.
    const edges = [['b', 'c'], ['b', 'd'], ['b', 'e'], ['c', 'f'], ['d', 'f'], ['e', 'f'], ['f', 'a'], ['d', 'e']] as const;
    for (const [from, to] of edges) g.addEdge(from, to, 0);
    const closed = g.addEdge('a', 'b', 5)?.map(c => key(c.members)).sort();
    expect(closed).toEqual(['a,b,c,f', 'a,b,d,e,f', 'a,b,d,f', 'a,b,e,f']);
  });

  it('takes a self-loop as a cycle of one', () => {
    const g = new WaitForGraph();
    expect(g.addEdge('a', 'a', 7)?.map(c => [c.members, c.since])).toEqual([[['a'], 7]]);
    expect(g.removeEdge('a', 'a')?.map(c => c.members)).toEqual([['a']]);
    expect(g.size).toBe(0);
  });

  it('forgets vertices left without edges', () => {
    const g = new WaitForGraph();
    g.addEdge('a', 'b', 0);
    g.addEdge('b', 'c', 0);
    expect(g.size).toBe(3);
    g.removeEdge('a', 'b');
    expect(g.size).toBe(2);
    g.removeEdge('b', 'c');
    expect(g.size).toBe(0);
  });

  it('closes a cycle through 50 000 agents without deep recursion', () => {
    const g = new WaitForGraph();
    const n = 50_000;
    for (let i = 0; i < n - 1; i++) g.addEdge(`a${i}`, `a${i + 1}`, 0);
    const closed = g.addEdge(`a${n - 1}`, 'a0', 1);
    expect(closed).toHaveLength(1);
    expect(closed?.[0]?.members).toHaveLength(n);
  });

  it('throws a RangeError naming maxCycles past its bound', () => {
    const g = new WaitForGraph(3);
    g.addEdge('a', 'b', 0);
    g.addEdge('b', 'a', 0);
    g.addEdge('a', 'c', 0);
    g.addEdge('c', 'a', 0);
    g.addEdge('b', 'c', 0);
    expect(g.cycles).toBe(3); // [a,b], [a,c], [a,b,c]
    expect(() => g.addEdge('c', 'b', 0)).toThrow(RangeError);
    expect(() => new WaitForGraph(1).addEdge('a', 'a', 0)).not.toThrow();
    const full = new WaitForGraph(1);
    full.addEdge('a', 'a', 0);
    expect(() => full.addEdge('b', 'b', 0)).toThrow(/maxCycles/);
  });

  it('keeps exactly the simple cycles of the graph (vs brute force)', () => {
    const node = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
    const op = fc.record({ add: fc.boolean(), from: node, to: node });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120, size: 'max' }), ops => {
        const g = new WaitForGraph();
        const edges = new Set<string>();
        const tracked = new Map<string, TrackedCycle>();
        ops.forEach(({ add, from, to }, t) => {
          if (add) {
            edges.add(`${from}>${to}`);
            for (const c of g.addEdge(from, to, t) ?? []) {
              expect(tracked.has(key(c.members))).toBe(false);
              expect(c.since).toBe(t);
              tracked.set(key(c.members), c);
            }
          } else {
            edges.delete(`${from}>${to}`);
            for (const c of g.removeEdge(from, to) ?? []) {
              expect(tracked.delete(key(c.members))).toBe(true);
            }
          }
          expect(new Set(tracked.keys())).toEqual(bruteForceCycles(edges));
          expect(g.cycles).toBe(tracked.size);
        });
      }),
      { numRuns: 200 },
    );
  });
});
