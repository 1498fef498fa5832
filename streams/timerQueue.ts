/** An entry of a {@link TimerQueue}: the queue keeps `timerSlot` current (−1 when not queued). */
export interface TimerNode {
  timerSlot: number;
}

const INITIAL_CAPACITY = 64;

function grownInt32(array: Int32Array, capacity: number): Int32Array<ArrayBuffer> {
  const grown = new Int32Array(capacity);
  grown.set(array);
  return grown;
}

function grownFloat64(array: Float64Array, capacity: number): Float64Array<ArrayBuffer> {
  const grown = new Float64Array(capacity);
  grown.set(array);
  return grown;
}

/** Bits of a double, for hashing. */
const bits = new Float64Array(1);
const bitWords = new Int32Array(bits.buffer);

/**
 * Distinct times to small integers (bucket ids): open addressing with linear probing in typed
 * arrays. A `Map` would do, but the queue adds and deletes a time for almost every timer that
 * moves, and each deletion leaves a hole that later costs a table reallocation.
 */
class TimeIndex {
  private keys = new Float64Array(16);
  /** Bucket at each table position; −1 for an empty position. */
  private values = new Int32Array(16).fill(-1);
  private count = 0;

  get(time: number): number {
    const { keys, values } = this;
    const mask = values.length - 1;
    for (let i = this.home(time, mask); ; i = (i + 1) & mask) {
      const value = values[i] as number;
      if (value < 0 || keys[i] === time) return value;
    }
  }

  /** Adds `time`, which must be absent. */
  set(time: number, bucket: number): void {
    if (2 * (this.count + 1) > this.values.length) this.rehash(this.values.length * 2);
    const { keys, values } = this;
    const mask = values.length - 1;
    let i = this.home(time, mask);
    while ((values[i] as number) >= 0) i = (i + 1) & mask;
    keys[i] = time;
    values[i] = bucket;
    this.count++;
  }

  /** Removes `time`, which must be present; later entries of its run shift back into the hole. */
  delete(time: number): void {
    const { keys, values } = this;
    const mask = values.length - 1;
    let hole = this.home(time, mask);
    while (keys[hole] !== time || (values[hole] as number) < 0) hole = (hole + 1) & mask;
    for (let i = (hole + 1) & mask; (values[i] as number) >= 0; i = (i + 1) & mask) {
      const home = this.home(keys[i] as number, mask);
      // Move the entry back unless its home lies cyclically in (hole, i].
      if (hole <= i ? home <= hole || home > i : home <= hole && home > i) {
        keys[hole] = keys[i] as number;
        values[hole] = values[i] as number;
        hole = i;
      }
    }
    values[hole] = -1;
    this.count--;
  }

  private home(time: number, mask: number): number {
    bits[0] = time;
    // Both words, then murmur3's finaliser: whole ms leave the low word and low bits all zero.
    let h = (bitWords[0] as number) ^ Math.imul(bitWords[1] as number, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) & mask;
  }

  private rehash(size: number): void {
    const { keys, values } = this;
    this.keys = new Float64Array(size);
    this.values = new Int32Array(size).fill(-1);
    this.count = 0;
    for (let i = 0; i < values.length; i++) if ((values[i] as number) >= 0) this.set(keys[i] as number, values[i] as number);
  }
}

/**
 * The virtual scheduler's timer queue, ordered by (time, sequence): a binary min-heap of the
 * distinct due times, each with the FIFO list of the timers due then (so timers due at the same
 * time leave in the order they were queued). O(log d) to queue, move or remove a timer, d the
 * number of distinct due times, plus one hash look-up by time.
 *
 * Built for many timers firing in no particular memory order (thousands of agents each
 * re-arming its own timer): each queued timer gets a small integer slot, recycled through a free
 * list, and every link and key lives in typed arrays indexed by slot, by time or by heap
 * position. Moving timers about never touches the timer objects, which sit scattered over the JS
 * heap (a write into one per heap level was a cache miss per level); and with whole-ms times,
 * ten thousand timers share about a thousand distinct times, so most moves are a list append
 * and the heap is small enough to stay in the nearest cache.
 */
export class TimerQueue<T extends TimerNode> {
  private count = 0;

  // Timers, by slot.
  /** The timer in each slot; `undefined` for a free slot. */
  private nodes: (T | undefined)[] = [];
  /** Sequence each timer was queued with. */
  private seqs = new Float64Array(INITIAL_CAPACITY);
  /** Next timer due at the same time (−1: last); for a free slot, the next free slot. */
  private next = new Int32Array(INITIAL_CAPACITY);
  private prev = new Int32Array(INITIAL_CAPACITY);
  /** The time (bucket) each timer is due at. */
  private bucketOf = new Int32Array(INITIAL_CAPACITY);
  private slots = 0;
  private freeSlot = -1;

  // Distinct due times ("buckets"), by bucket id.
  private readonly bucketByTime = new TimeIndex();
  private times = new Float64Array(INITIAL_CAPACITY);
  /** First timer of each bucket; for a free bucket, the next free bucket. */
  private heads = new Int32Array(INITIAL_CAPACITY);
  private tails = new Int32Array(INITIAL_CAPACITY);
  /** Heap position of each bucket. */
  private positions = new Int32Array(INITIAL_CAPACITY);
  private buckets = 0;
  private freeBucket = -1;

  // The heap of buckets, by position.
  private heap = new Int32Array(INITIAL_CAPACITY);
  private keys = new Float64Array(INITIAL_CAPACITY);
  private heapSize = 0;

  get size(): number {
    return this.count;
  }

  peek(): T | undefined {
    return this.count === 0 ? undefined : this.nodes[this.heads[this.heap[0] as number] as number];
  }

  /** Time of the earliest entry; +∞ when empty. */
  peekTime(): number {
    return this.count === 0 ? Infinity : (this.keys[0] as number);
  }

  /** Sequence number `node` is queued with; −1 when it is not queued. */
  seqOf(node: T): number {
    const slot = node.timerSlot;
    return slot < 0 ? -1 : (this.seqs[slot] as number);
  }

  /**
   * Queues `node`, or moves it if it is queued already. `seq` must exceed every sequence given
   * before: it orders timers due at the same time, and a moved timer goes behind them.
   */
  set(node: T, time: number, seq: number): void {
    let slot = node.timerSlot;
    if (slot < 0) {
      slot = this.allocateSlot();
      this.nodes[slot] = node;
      node.timerSlot = slot;
      this.count++;
    } else {
      this.unlink(slot);
    }
    this.seqs[slot] = seq;
    time += 0; // −0 and 0 are one time
    let bucket = this.bucketByTime.get(time);
    if (bucket < 0) bucket = this.addBucket(time);
    const tail = this.tails[bucket] as number;
    this.prev[slot] = tail;
    this.next[slot] = -1;
    this.bucketOf[slot] = bucket;
    if (tail < 0) this.heads[bucket] = slot;
    else this.next[tail] = slot;
    this.tails[bucket] = slot;
  }

  remove(node: T): void {
    const slot = node.timerSlot;
    if (slot < 0) return;
    node.timerSlot = -1;
    this.unlink(slot);
    this.nodes[slot] = undefined;
    this.next[slot] = this.freeSlot;
    this.freeSlot = slot;
    this.count--;
  }

  private allocateSlot(): number {
    const free = this.freeSlot;
    if (free >= 0) {
      this.freeSlot = this.next[free] as number;
      return free;
    }
    if (this.slots === this.next.length) {
      const capacity = this.slots * 2;
      this.seqs = grownFloat64(this.seqs, capacity);
      this.next = grownInt32(this.next, capacity);
      this.prev = grownInt32(this.prev, capacity);
      this.bucketOf = grownInt32(this.bucketOf, capacity);
    }
    return this.slots++;
  }

  /** Takes `slot` out of its bucket's list, and the bucket out of the heap once it is empty. */
  private unlink(slot: number): void {
    const bucket = this.bucketOf[slot] as number;
    const prev = this.prev[slot] as number;
    const next = this.next[slot] as number;
    if (prev < 0) this.heads[bucket] = next;
    else this.next[prev] = next;
    if (next < 0) this.tails[bucket] = prev;
    else this.prev[next] = prev;
    if (prev < 0 && next < 0) this.removeBucket(bucket);
  }

  private addBucket(time: number): number {
    let bucket = this.freeBucket;
    if (bucket >= 0) {
      this.freeBucket = this.heads[bucket] as number;
    } else {
      if (this.buckets === this.heads.length) {
        const capacity = this.buckets * 2;
        this.times = grownFloat64(this.times, capacity);
        this.heads = grownInt32(this.heads, capacity);
        this.tails = grownInt32(this.tails, capacity);
        this.positions = grownInt32(this.positions, capacity);
        this.heap = grownInt32(this.heap, capacity);
        this.keys = grownFloat64(this.keys, capacity);
      }
      bucket = this.buckets++;
    }
    this.bucketByTime.set(time, bucket);
    this.times[bucket] = time;
    this.heads[bucket] = -1;
    this.tails[bucket] = -1;
    this.up(this.heapSize++, bucket, time);
    return bucket;
  }

  private removeBucket(bucket: number): void {
    const time = this.times[bucket] as number;
    this.bucketByTime.delete(time);
    this.heads[bucket] = this.freeBucket;
    this.freeBucket = bucket;
    const i = this.positions[bucket] as number;
    const last = --this.heapSize;
    if (i === last) return;
    const moved = this.heap[last] as number;
    const key = this.keys[last] as number;
    if (key > time) this.down(i, moved, key);
    else this.up(i, moved, key);
  }

  /** Places `bucket`, due at `key`, at heap position `i` or above it. Keys are distinct. */
  private up(i: number, bucket: number, key: number): void {
    const { heap, keys, positions } = this;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parentKey = keys[p] as number;
      if (parentKey < key) break;
      const parent = heap[p] as number;
      heap[i] = parent;
      keys[i] = parentKey;
      positions[parent] = i;
      i = p;
    }
    heap[i] = bucket;
    keys[i] = key;
    positions[bucket] = i;
  }

  /** Places `bucket`, due at `key`, at heap position `i` or below it. */
  private down(i: number, bucket: number, key: number): void {
    const { heap, keys, positions } = this;
    const n = this.heapSize;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let childKey = keys[c] as number;
      if (c + 1 < n) {
        const right = keys[c + 1] as number;
        if (right < childKey) {
          c++;
          childKey = right;
        }
      }
      if (key < childKey) break;
      const child = heap[c] as number;
      heap[i] = child;
      keys[i] = childKey;
      positions[child] = i;
      i = c;
    }
    heap[i] = bucket;
    keys[i] = key;
    positions[bucket] = i;
  }
}
