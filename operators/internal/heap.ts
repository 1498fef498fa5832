/** An entry of an {@link IndexedHeap}: the heap keeps `heapIndex` current (−1 when not queued). */
export interface HeapNode {
  heapIndex: number;
}

/**
 * A binary min-heap that knows where each entry sits, so an entry can be re-keyed or removed in
 * O(log n) without a search. Used for timer queues: one heap per scheduler or per operator instead
 * of one timer per entry. `less` must be a strict order (ties broken by the caller, e.g. a sequence).
 */
export class IndexedHeap<T extends HeapNode> {
  private readonly items: T[] = [];

  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(node: T): void {
    node.heapIndex = this.items.length;
    this.items.push(node);
    this.up(node.heapIndex);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.remove(top);
    return top;
  }

  /** Restores order after `node`'s key changed in either direction. */
  update(node: T): void {
    if (node.heapIndex < 0) return;
    this.up(node.heapIndex);
    this.down(node.heapIndex);
  }

  remove(node: T): void {
    const i = node.heapIndex;
    if (i < 0) return;
    const last = this.items.pop() as T;
    node.heapIndex = -1;
    if (last !== node) {
      this.items[i] = last;
      last.heapIndex = i;
      this.up(i);
      this.down(last.heapIndex);
    }
  }

  clear(): void {
    for (const node of this.items) node.heapIndex = -1;
    this.items.length = 0;
  }

  private up(i: number): void {
    const items = this.items;
    const node = items[i] as T;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = items[parentIndex] as T;
      if (!this.less(node, parent)) break;
      items[i] = parent;
      parent.heapIndex = i;
      i = parentIndex;
    }
    items[i] = node;
    node.heapIndex = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const node = items[i] as T;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.less(items[right] as T, items[left] as T)) child = right;
      const c = items[child] as T;
      if (!this.less(c, node)) break;
      items[i] = c;
      c.heapIndex = i;
      i = child;
    }
    items[i] = node;
    node.heapIndex = i;
  }
}
