/** An entry of a {@link TimerQueue}: the queue keeps `timerSlot` current (−1 when not queued). */
export interface TimerNode {
  timerSlot: number;
}

const INITIAL_CAPACITY = 64;

/**
 * The virtual scheduler's binary min-heap of timers ordered by (time, sequence).
 *
 * Each queued entry gets a small integer slot (recycled through a free list), and the heap itself
 * is made of typed arrays: slots and their keys by heap position, positions by slot. Sifting then
 * touches only those arrays (a few hundred KB for ten thousand timers, cache-resident) and never
 * the entries, which sit scattered over the JS heap: with timers firing in random memory order,
 * a write into an entry per heap level was a cache miss per level. An entry is touched only when
 * it is queued, moved, removed or run.
 */
export class TimerQueue<T extends TimerNode> {
  /** Entries by slot; `undefined` for a free slot. */
  private nodes: (T | undefined)[] = [];
  /** Slot at each heap position. */
  private heap = new Int32Array(INITIAL_CAPACITY);
  /** Heap position of each queued slot; for a free slot, the next free slot (−1 ends the list). */
  private positions = new Int32Array(INITIAL_CAPACITY);
  /** Keys by heap position, interleaved: time at 2i, sequence at 2i + 1. */
  private keys = new Float64Array(2 * INITIAL_CAPACITY);
  private count = 0;
  /** Slots handed out so far (free or not). */
  private slots = 0;
  private freeSlot = -1;

  get size(): number {
    return this.count;
  }

  peek(): T | undefined {
    return this.count === 0 ? undefined : this.nodes[this.heap[0] as number];
  }

  /** Time of the earliest entry; +∞ when empty. */
  peekTime(): number {
    return this.count === 0 ? Infinity : (this.keys[0] as number);
  }

  /** Sequence number `node` is queued with; −1 when it is not queued. */
  seqOf(node: T): number {
    const slot = node.timerSlot;
    return slot < 0 ? -1 : (this.keys[2 * (this.positions[slot] as number) + 1] as number);
  }

  /** Queues `node`, or moves it if it is queued already. */
  set(node: T, time: number, seq: number): void {
    const keys = this.keys;
    const slot = node.timerSlot;
    if (slot < 0) {
      const fresh = this.allocate();
      this.nodes[fresh] = node;
      node.timerSlot = fresh;
      this.up(this.count++, fresh, time, seq);
      return;
    }
    const i = this.positions[slot] as number;
    const t = keys[2 * i] as number;
    if (time > t || (time === t && seq > (keys[2 * i + 1] as number))) this.down(i, slot, time, seq);
    else this.up(i, slot, time, seq);
  }

  remove(node: T): void {
    const slot = node.timerSlot;
    if (slot < 0) return;
    node.timerSlot = -1;
    const i = this.positions[slot] as number;
    this.nodes[slot] = undefined;
    this.positions[slot] = this.freeSlot;
    this.freeSlot = slot;
    const last = --this.count;
    if (i === last) return;
    const keys = this.keys;
    const moved = this.heap[last] as number;
    const time = keys[2 * last] as number;
    const seq = keys[2 * last + 1] as number;
    const t = keys[2 * i] as number;
    if (time > t || (time === t && seq > (keys[2 * i + 1] as number))) this.down(i, moved, time, seq);
    else this.up(i, moved, time, seq);
  }

  private allocate(): number {
    const free = this.freeSlot;
    if (free >= 0) {
      this.freeSlot = this.positions[free] as number;
      return free;
    }
    if (this.slots === this.heap.length) this.grow();
    return this.slots++;
  }

  private grow(): void {
    const capacity = this.heap.length * 2;
    const heap = new Int32Array(capacity);
    const positions = new Int32Array(capacity);
    const keys = new Float64Array(2 * capacity);
    heap.set(this.heap);
    positions.set(this.positions);
    keys.set(this.keys);
    this.heap = heap;
    this.positions = positions;
    this.keys = keys;
  }

  /** Places `slot` with key (time, seq) at position `i` or above it. */
  private up(i: number, slot: number, time: number, seq: number): void {
    const { heap, positions, keys } = this;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = keys[2 * p] as number;
      if (pt < time || (pt === time && (keys[2 * p + 1] as number) < seq)) break;
      const parent = heap[p] as number;
      heap[i] = parent;
      positions[parent] = i;
      keys[2 * i] = pt;
      keys[2 * i + 1] = keys[2 * p + 1] as number;
      i = p;
    }
    heap[i] = slot;
    positions[slot] = i;
    keys[2 * i] = time;
    keys[2 * i + 1] = seq;
  }

  /** Places `slot` with key (time, seq) at position `i` or below it. */
  private down(i: number, slot: number, time: number, seq: number): void {
    const { heap, positions, keys } = this;
    const n = this.count;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let ct = keys[2 * c] as number;
      let cs = keys[2 * c + 1] as number;
      const r = c + 1;
      if (r < n) {
        const rt = keys[2 * r] as number;
        const rs = keys[2 * r + 1] as number;
        if (rt < ct || (rt === ct && rs < cs)) {
          c = r;
          ct = rt;
          cs = rs;
        }
      }
      if (time < ct || (time === ct && seq < cs)) break;
      const child = heap[c] as number;
      heap[i] = child;
      positions[child] = i;
      keys[2 * i] = ct;
      keys[2 * i + 1] = cs;
      i = c;
    }
    heap[i] = slot;
    positions[slot] = i;
    keys[2 * i] = time;
    keys[2 * i + 1] = seq;
  }
}
