import { BUCKET_STRIDE, POSITION, removeAt, siftUp } from '../operators/internal/bucketHeap.js';

/**
 * An entry of a {@link TimerQueue}. The queue keeps these fields: the timers due at the same time
 * form a list through the timers themselves, so running or moving a timer touches the timer and
 * its neighbours, never a side table.
 */
export interface TimerNode<T> {
  /** Next timer due at the same time; undefined for the last. */
  timerNext: T | undefined;
  timerPrev: T | undefined;
  /** The time (bucket) the timer is due at; −1 when not queued. */
  timerBucket: number;
}

const INITIAL_CAPACITY = 64;

/** In a free bucket's link group (any field but the heap's): the next free bucket (−1: none). */
const NEXT_FREE: Exclude<0 | 1 | 2 | 3, typeof POSITION> = 0;

function grownInt32(array: Int32Array, length: number): Int32Array<ArrayBuffer> {
  const grown = new Int32Array(length);
  grown.set(array);
  return grown;
}

function grownFloat64(array: Float64Array, length: number): Float64Array<ArrayBuffer> {
  const grown = new Float64Array(length);
  grown.set(array);
  return grown;
}

/** Bits of a double, for hashing. */
const bits = new Float64Array(1);
const bitWords = new Int32Array(bits.buffer);

/**
 * Distinct times to small integers (bucket ids): open addressing with linear probing in one typed
 * array of (time, bucket) pairs, so a probe reads one cache line. A `Map` would do, but the queue
 * adds and deletes a time for almost every timer that moves, and each deletion leaves a hole that
 * later costs a table reallocation.
 */
class TimeIndex {
  /** Time and bucket at each table position, side by side; bucket −1 marks an empty position. */
  private table = TimeIndex.empty(16);
  private count = 0;
  /** 32 − log2(table size), for Fibonacci hashing of whole-ms times. */
  private shift = 28;

  private static empty(size: number): Float64Array {
    const table = new Float64Array(2 * size);
    for (let i = 1; i < table.length; i += 2) table[i] = -1;
    return table;
  }

  get(time: number): number {
    const table = this.table;
    const mask = table.length / 2 - 1;
    for (let i = this.home(time); ; i = (i + 1) & mask) {
      const bucket = table[2 * i + 1] as number;
      if (bucket < 0 || table[2 * i] === time) return bucket;
    }
  }

  /** Adds `time`, which must be absent. */
  set(time: number, bucket: number): void {
    if (4 * (this.count + 1) > this.table.length) this.rehash(this.table.length);
    const table = this.table;
    const mask = table.length / 2 - 1;
    let i = this.home(time);
    while ((table[2 * i + 1] as number) >= 0) i = (i + 1) & mask;
    table[2 * i] = time;
    table[2 * i + 1] = bucket;
    this.count++;
  }

  /** Removes `time`, which must be present; later entries of its run shift back into the hole. */
  delete(time: number): void {
    const table = this.table;
    const mask = table.length / 2 - 1;
    let hole = this.home(time);
    while (table[2 * hole] !== time || (table[2 * hole + 1] as number) < 0) hole = (hole + 1) & mask;
    for (let i = (hole + 1) & mask; (table[2 * i + 1] as number) >= 0; i = (i + 1) & mask) {
      const home = this.home(table[2 * i] as number);
      // Move the entry back unless its home lies cyclically in (hole, i].
      if (hole <= i ? home <= hole || home > i : home <= hole && home > i) {
        table[2 * hole] = table[2 * i] as number;
        table[2 * hole + 1] = table[2 * i + 1] as number;
        hole = i;
      }
    }
    table[2 * hole + 1] = -1;
    this.count--;
  }

  /** Table position where `time`'s probe starts. */
  private home(time: number): number {
    // Whole ms (the usual times) by Fibonacci hashing: consecutive ms land far apart.
    if ((time | 0) === time) return Math.imul(time, 0x9e3779b1) >>> this.shift;
    bits[0] = time;
    // Both words, then murmur3's finaliser: large whole ms leave the low word and low bits all zero.
    let h = (bitWords[0] as number) ^ Math.imul(bitWords[1] as number, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> this.shift;
  }

  /** Doubles the table to `size` positions. */
  private rehash(size: number): void {
    const old = this.table;
    this.table = TimeIndex.empty(size);
    this.shift = 32 - Math.log2(size);
    this.count = 0;
    for (let i = 0; i < old.length; i += 2) if ((old[i + 1] as number) >= 0) this.set(old[i] as number, old[i + 1] as number);
  }
}

/**
 * The virtual scheduler's timer queue, ordered by time and, among timers due at the same time,
 * by when they were queued: a binary min-heap of the distinct due times ("buckets"), each with
 * the FIFO list of the timers due then. O(log d) to queue, move or remove a timer, d the number
 * of distinct due times, plus one hash look-up by time; O(1) when the time is already queued.
 *
 * Built for many timers firing in no particular memory order (thousands of agents each
 * re-arming its own timer): a timer's list links live in the timer itself, which whoever runs it
 * reads anyway, so taking the first timer off touches that timer and, if another is due at the
 * same time, that one (the next to run); queuing it again touches the last timer of its new
 * time (queued moments ago). No side table of slots to miss in.
 * The heap and the bucket keys live in typed arrays; with whole-ms times, ten thousand timers
 * share about a thousand distinct times, so the heap stays in the nearest cache and most moves
 * are a list append.
 */
export class TimerQueue<T extends TimerNode<T>> {
  private count = 0;

  // Distinct due times, by bucket id.
  private readonly bucketByTime = new TimeIndex();
  private times = new Float64Array(INITIAL_CAPACITY);
  /** First and last timer of each bucket. */
  private heads: (T | undefined)[] = [];
  private tails: (T | undefined)[] = [];
  /** `NEXT_FREE` and `POSITION` of each bucket, in groups of `BUCKET_STRIDE`. */
  private bucketLinks = new Int32Array(INITIAL_CAPACITY * BUCKET_STRIDE);
  private buckets = 0;
  private freeBucket = -1;

  // The heap of buckets, by position.
  private heap = new Int32Array(INITIAL_CAPACITY);
  private keys = new Float64Array(INITIAL_CAPACITY);
  private heapSize = 0;

  get size(): number {
    return this.count;
  }

  /** Time of the earliest timer; +∞ when empty. */
  peekTime(): number {
    return this.count === 0 ? Infinity : (this.keys[0] as number);
  }

  /** Takes the earliest timer off the queue; call only when not empty. */
  shift(): T {
    const node = this.heads[this.heap[0] as number] as T;
    this.remove(node);
    return node;
  }

  /** Queues `node` at `time`, behind the timers already due then; moves it if it is queued already. */
  set(node: T, time: number): void {
    if (node.timerBucket < 0) this.count++;
    else this.unlink(node);
    time += 0; // −0 and 0 are one time
    let bucket = this.bucketByTime.get(time);
    if (bucket < 0) bucket = this.addBucket(time);
    const tail = this.tails[bucket];
    node.timerNext = undefined;
    node.timerPrev = tail;
    node.timerBucket = bucket;
    if (tail === undefined) this.heads[bucket] = node;
    else tail.timerNext = node;
    this.tails[bucket] = node;
  }

  remove(node: T): void {
    if (node.timerBucket < 0) return;
    this.unlink(node);
    node.timerNext = undefined;
    node.timerPrev = undefined;
    node.timerBucket = -1;
    this.count--;
  }

  /** Takes `node` out of its bucket's list, and the bucket out of the heap once it is empty. */
  private unlink(node: T): void {
    const bucket = node.timerBucket;
    const prev = node.timerPrev;
    const next = node.timerNext;
    if (prev === undefined) this.heads[bucket] = next;
    else prev.timerNext = next;
    if (next === undefined) this.tails[bucket] = prev;
    else next.timerPrev = prev;
    if (prev === undefined && next === undefined) this.removeBucket(bucket);
  }

  private addBucket(time: number): number {
    let bucket = this.freeBucket;
    if (bucket >= 0) {
      this.freeBucket = this.bucketLinks[bucket * BUCKET_STRIDE + NEXT_FREE] as number;
    } else {
      if (this.buckets === this.times.length) {
        const capacity = this.buckets * 2;
        this.times = grownFloat64(this.times, capacity);
        this.bucketLinks = grownInt32(this.bucketLinks, capacity * BUCKET_STRIDE);
        this.heap = grownInt32(this.heap, capacity);
        this.keys = grownFloat64(this.keys, capacity);
      }
      bucket = this.buckets++;
    }
    this.bucketByTime.set(time, bucket);
    this.times[bucket] = time;
    siftUp(this.heap, this.keys, this.bucketLinks, this.heapSize++, bucket, time);
    return bucket;
  }

  private removeBucket(bucket: number): void {
    const time = this.times[bucket] as number;
    this.bucketByTime.delete(time);
    this.heads[bucket] = undefined;
    this.tails[bucket] = undefined;
    this.bucketLinks[bucket * BUCKET_STRIDE + NEXT_FREE] = this.freeBucket;
    this.freeBucket = bucket;
    removeAt(this.heap, this.keys, this.bucketLinks, --this.heapSize, bucket, time);
  }
}
