import fc from 'fast-check';
import { IndexedHeap } from '../../../operators/internal/heap.js';

interface Node {
  heapIndex: number;
  key: number;
  /** Tie-break, so the order is strict as the heap requires. */
  seq: number;
}

const less = (a: Node, b: Node): boolean => a.key < b.key || (a.key === b.key && a.seq < b.seq);
const byKey = (a: Node, b: Node): number => a.key - b.key || a.seq - b.seq;

describe('IndexedHeap', () => {
  it('pops in order and keeps heapIndex current', () => {
    const heap = new IndexedHeap<Node>(less);
    const nodes = [5, 1, 4, 1, 3].map((key, seq) => ({ heapIndex: -1, key, seq }));
    for (const n of nodes) heap.push(n);
    expect(heap.size).toBe(5);
    expect(heap.peek()).toBe(nodes[1]);
    for (const n of nodes) expect(n.heapIndex).toBeGreaterThanOrEqual(0);
    const popped: Node[] = [];
    for (let n = heap.pop(); n !== undefined; n = heap.pop()) popped.push(n);
    expect(popped.map(n => n.seq)).toEqual([1, 3, 4, 2, 0]);
    for (const n of nodes) expect(n.heapIndex).toBe(-1);
    expect(heap.pop()).toBeUndefined();
    expect(heap.peek()).toBeUndefined();
  });

  it('removes and updates entries anywhere; removing or updating an absent entry is a no-op', () => {
    const heap = new IndexedHeap<Node>(less);
    const nodes = [10, 20, 30, 40, 50, 60, 70].map((key, seq) => ({ heapIndex: -1, key, seq }));
    for (const n of nodes) heap.push(n);
    heap.remove(nodes[3]!);
    heap.remove(nodes[3]!);
    expect(heap.size).toBe(6);
    nodes[6]!.key = 0;
    heap.update(nodes[6]!);
    nodes[0]!.key = 100;
    heap.update(nodes[0]!);
    const absent = { heapIndex: -1, key: -1, seq: 99 };
    heap.update(absent);
    heap.remove(absent);
    const order: number[] = [];
    for (let n = heap.pop(); n !== undefined; n = heap.pop()) order.push(n.key);
    expect(order).toEqual([0, 20, 30, 50, 60, 100]);
  });

  it('clear() empties the heap and marks every entry as out of it', () => {
    const heap = new IndexedHeap<Node>(less);
    const nodes = [3, 2, 1].map((key, seq) => ({ heapIndex: -1, key, seq }));
    for (const n of nodes) heap.push(n);
    heap.clear();
    expect(heap.size).toBe(0);
    expect(nodes.map(n => n.heapIndex)).toEqual([-1, -1, -1]);
    heap.push(nodes[0]!);
    expect(heap.pop()).toBe(nodes[0]);
  });

  type Op =
    | { readonly op: 'push'; readonly key: number }
    | { readonly op: 'pop' }
    | { readonly op: 'remove'; readonly pick: number }
    | { readonly op: 'update'; readonly pick: number; readonly key: number };

  const key = fc.integer({ min: -20, max: 20 }); // narrow, so ties are common
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: key.map(k => ({ op: 'push' as const, key: k })) },
    { weight: 2, arbitrary: fc.constant({ op: 'pop' as const }) },
    { weight: 2, arbitrary: fc.nat().map(pick => ({ op: 'remove' as const, pick })) },
    { weight: 2, arbitrary: fc.record({ pick: fc.nat(), key }).map(r => ({ op: 'update' as const, ...r })) },
  );

  it('behaves like a sorted array under random push / pop / remove / update', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), ops => {
        const heap = new IndexedHeap<Node>(less);
        let model: Node[] = [];
        let seq = 0;
        for (const o of ops) {
          switch (o.op) {
            case 'push': {
              const n = { heapIndex: -1, key: o.key, seq: seq++ };
              heap.push(n);
              model.push(n);
              break;
            }
            case 'pop': {
              model.sort(byKey);
              const expected = model.shift();
              expect(heap.pop()).toBe(expected);
              if (expected) expect(expected.heapIndex).toBe(-1);
              break;
            }
            case 'remove': {
              if (model.length === 0) break;
              const n = model[o.pick % model.length]!;
              heap.remove(n);
              model = model.filter(m => m !== n);
              expect(n.heapIndex).toBe(-1);
              break;
            }
            case 'update': {
              if (model.length === 0) break;
              const n = model[o.pick % model.length]!;
              n.key = o.key;
              n.seq = seq++;
              heap.update(n);
              break;
            }
          }
          expect(heap.size).toBe(model.length);
          expect(heap.peek()).toBe([...model].sort(byKey)[0]);
          for (const n of model) expect(n.heapIndex).toBeGreaterThanOrEqual(0);
        }
        const drained: Node[] = [];
        for (let n = heap.pop(); n !== undefined; n = heap.pop()) drained.push(n);
        expect(drained).toEqual(model.sort(byKey));
      }),
      { numRuns: 200 },
    );
  });
});
