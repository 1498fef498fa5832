import { Observable, asyncScheduler, type OperatorFunction, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { BUCKET_STRIDE, POSITION, removeAt, siftUp } from './internal/bucketHeap.js';
import { operate } from './internal/operate.js';
import { requireScheduler } from './internal/validate.js';
import type { Heartbeat, Liveness } from './liveness.js';
import { PhiAccrualTable, PhiSettings, type PhiAccrualDetectorOptions } from './phiAccrualDetector.js';

export interface PhiAccrualOptions extends PhiAccrualDetectorOptions {
  /** Clock and timers; arrival time is `scheduler.now()`. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
}

// A slot's links in the wake queue, four int32 per slot: one 16-byte group, so a move reads and
// writes one cache line per slot.
/** Next slot filed under the same ms (−1: last). */
const NEXT = 0;
const PREV = 1;
/** Bucket (ms) the slot is filed under; −1 when not queued. */
const BUCKET = 2;
const SLOT_STRIDE = 4;

// A bucket's links, likewise, around the heap's `POSITION` field.
type BucketField = Exclude<0 | 1 | 2 | 3, typeof POSITION>;
/** First slot filed under the bucket's ms; for a free bucket, the next free bucket. */
const HEAD: BucketField = 0;
const TAIL: BucketField = 1;
/** Next bucket in the same hash chain (−1: last). */
const CHAIN: BucketField = 3;

/**
 * Detector slots filed by wake-up time, a whole ms: a min-heap of the distinct ms ("buckets"),
 * each with the FIFO list of the slots filed under it, all in typed arrays (sifting never touches
 * the detectors). Filing a slot, moving it or taking it out is O(1) when its ms already has a
 * bucket (the usual case: lower bounds are filed by 64 ms grain, so ten thousand agents share a
 * few dozen keys), O(log b) otherwise, b the number of distinct keys. Slots filed under the same
 * ms come out first come, first served.
 */
class WakeQueue {
  /** `NEXT`, `PREV`, `BUCKET` of each slot. */
  private links = new Int32Array(16 * SLOT_STRIDE).fill(-1);

  // Buckets, by bucket id.
  private times = new Float64Array(16);
  /** `HEAD`, `TAIL`, `POSITION`, `CHAIN` of each bucket. */
  private bucketLinks = new Int32Array(16 * BUCKET_STRIDE);
  private buckets = 0;
  private freeBucket = -1;
  /** First bucket of each hash chain (−1: none), twice as many chains as bucket ids. */
  private chains = new Int32Array(32).fill(-1);
  /** 32 − log2(chains.length), for Fibonacci hashing of whole ms. */
  private shift = 27;

  // The heap of buckets, by position.
  private heap = new Int32Array(16);
  private keys = new Float64Array(16);
  private heapSize = 0;

  /** Key of the first entry; +∞ when empty. */
  get topKey(): number {
    return this.heapSize === 0 ? Infinity : (this.keys[0] as number);
  }

  /** Slot of the first entry; call only when not empty. */
  get topSlot(): number {
    return this.bucketLinks[(this.heap[0] as number) * BUCKET_STRIDE + HEAD] as number;
  }

  /** The slot filed after `slot` under the same ms; −1 if it is the last. */
  nextSlot(slot: number): number {
    return this.links[slot * SLOT_STRIDE + NEXT] as number;
  }

  /** Files `slot` under `key` (a whole ms), behind the slots already there; moves it if it is queued. */
  file(slot: number, key: number): void {
    if (slot * SLOT_STRIDE >= this.links.length) this.growLinks(slot);
    const links = this.links;
    const s = slot * SLOT_STRIDE;
    if ((links[s + BUCKET] as number) >= 0) this.unlink(s);
    const bucket = this.bucketOf(key);
    const bucketLinks = this.bucketLinks;
    const b = bucket * BUCKET_STRIDE;
    const tail = bucketLinks[b + TAIL] as number;
    links[s + NEXT] = -1;
    links[s + PREV] = tail;
    links[s + BUCKET] = bucket;
    if (tail < 0) bucketLinks[b + HEAD] = slot;
    else links[tail * SLOT_STRIDE + NEXT] = slot;
    bucketLinks[b + TAIL] = slot;
  }

  remove(slot: number): void {
    const s = slot * SLOT_STRIDE;
    if (s >= this.links.length || (this.links[s + BUCKET] as number) < 0) return;
    this.unlink(s);
    this.links[s + BUCKET] = -1;
  }

  clear(): void {
    this.links = new Int32Array(16 * SLOT_STRIDE).fill(-1);
    this.times = new Float64Array(16);
    this.bucketLinks = new Int32Array(16 * BUCKET_STRIDE);
    this.buckets = 0;
    this.freeBucket = -1;
    this.chains = new Int32Array(32).fill(-1);
    this.shift = 27;
    this.heap = new Int32Array(16);
    this.keys = new Float64Array(16);
    this.heapSize = 0;
  }

  /** Takes the slot at `s` out of its bucket's list, and the bucket out of the heap once it is empty. */
  private unlink(s: number): void {
    const { links, bucketLinks } = this;
    const bucket = links[s + BUCKET] as number;
    const b = bucket * BUCKET_STRIDE;
    const prev = links[s + PREV] as number;
    const next = links[s + NEXT] as number;
    if (prev < 0) bucketLinks[b + HEAD] = next;
    else links[prev * SLOT_STRIDE + NEXT] = next;
    if (next < 0) bucketLinks[b + TAIL] = prev;
    else links[next * SLOT_STRIDE + PREV] = prev;
    if (prev < 0 && next < 0) this.removeBucket(bucket);
  }

  private chainOf(key: number): number {
    return Math.imul(key | 0, 0x9e3779b1) >>> this.shift;
  }

  /** The bucket of `key`, made if there is none. */
  private bucketOf(key: number): number {
    const { times, bucketLinks } = this;
    for (let bucket = this.chains[this.chainOf(key)] as number; bucket >= 0; bucket = bucketLinks[bucket * BUCKET_STRIDE + CHAIN] as number) {
      if (times[bucket] === key) return bucket;
    }
    let bucket = this.freeBucket;
    if (bucket >= 0) {
      this.freeBucket = this.bucketLinks[bucket * BUCKET_STRIDE + HEAD] as number;
    } else {
      if (this.buckets === this.times.length) this.growBuckets();
      bucket = this.buckets++;
    }
    const chain = this.chainOf(key);
    const b = bucket * BUCKET_STRIDE;
    this.times[bucket] = key;
    this.bucketLinks[b + HEAD] = -1;
    this.bucketLinks[b + TAIL] = -1;
    this.bucketLinks[b + CHAIN] = this.chains[chain] as number;
    this.chains[chain] = bucket;
    siftUp(this.heap, this.keys, this.bucketLinks, this.heapSize++, bucket, key);
    return bucket;
  }

  private removeBucket(bucket: number): void {
    const { times, bucketLinks } = this;
    const key = times[bucket] as number;
    const b = bucket * BUCKET_STRIDE;
    // Out of its hash chain.
    const chain = this.chainOf(key);
    let at = this.chains[chain] as number;
    if (at === bucket) {
      this.chains[chain] = bucketLinks[b + CHAIN] as number;
    } else {
      while ((bucketLinks[at * BUCKET_STRIDE + CHAIN] as number) !== bucket) at = bucketLinks[at * BUCKET_STRIDE + CHAIN] as number;
      bucketLinks[at * BUCKET_STRIDE + CHAIN] = bucketLinks[b + CHAIN] as number;
    }
    bucketLinks[b + HEAD] = this.freeBucket;
    this.freeBucket = bucket;
    removeAt(this.heap, this.keys, bucketLinks, --this.heapSize, bucket, key);
  }

  private growLinks(slot: number): void {
    const links = new Int32Array(Math.max(slot + 1, Math.ceil((this.links.length / SLOT_STRIDE) * 1.5)) * SLOT_STRIDE).fill(-1);
    links.set(this.links);
    this.links = links;
  }

  private growBuckets(): void {
    const capacity = this.buckets * 2;
    const times = new Float64Array(capacity);
    times.set(this.times);
    this.times = times;
    const bucketLinks = new Int32Array(capacity * BUCKET_STRIDE);
    bucketLinks.set(this.bucketLinks);
    this.bucketLinks = bucketLinks;
    const heap = new Int32Array(capacity);
    heap.set(this.heap);
    this.heap = heap;
    const keys = new Float64Array(capacity);
    keys.set(this.keys);
    this.keys = keys;
    // Re-chain every live bucket (free ones are in no chain) into twice as many chains.
    this.chains = new Int32Array(capacity * 2).fill(-1);
    this.shift = 32 - Math.log2(capacity * 2);
    for (let i = 0; i < this.heapSize; i++) {
      const bucket = heap[i] as number;
      const chain = this.chainOf(times[bucket] as number);
      bucketLinks[bucket * BUCKET_STRIDE + CHAIN] = this.chains[chain] as number;
      this.chains[chain] = bucket;
    }
  }
}

/**
 * An empty table of detector slots by agent id. A null-prototype object rather than a `Map`: V8
 * keeps it as one open hash table with each key beside its value and compares internalised keys
 * by pointer, so a look-up reads one memory line where a `Map` of thousands of ids reads a
 * bucket, then an entry, and often another id's string to compare with. (Ids that arrive as
 * fresh strings, parsed from each message, are first looked up in V8's string table; a `Map`
 * hashes those too.) With no prototype, every string is an own key: `__proto__`, `constructor`,
 * `"0"` included.
 */
function slotsById(): Record<string, number | undefined> {
  return Object.create(null) as Record<string, number | undefined>;
}

/**
 * Lower bounds of deadlines are filed by this grain: one wake-up then serves every agent whose
 * bound falls in the same 64 ms, instead of one per ms. Settled deadlines keep their exact ms.
 */
const WAKE_GRAIN_MS = 64;

/**
 * The key to file a deadline's lower bound `bound` under at `now`: the start of its grain, or the
 * bound itself once that start is not in the future (a key must come due after `now`, or the
 * bound is the one to settle).
 */
function wakeKey(bound: number, now: number): number {
  const grain = Math.floor(bound / WAKE_GRAIN_MS) * WAKE_GRAIN_MS;
  return grain > now ? grain : bound;
}

/**
 * A phi accrual failure detector per `agentId` (see `PhiAccrualDetector`), driven by arrival time.
 *
 * ```
 * heartbeats: a---a---a-------------------------a--
 * liveness:   A--------------------------S------A--   A = alive, S = suspected (at suspicionAt())
 * ```
 *
 * Emits `alive` on an agent's first heartbeat and when it beats again after suspicion,
 * `suspected` once per outage at the exact first ms where phi reaches the threshold (computed by
 * inverting phi, never polled), and `left` for a `status: 'leaving'` beat, after which the agent is
 * forgotten.
 *
 * All agents share one timer over a queue of whole-ms wake-ups, each a lower bound of an agent's
 * deadline filed by 64 ms grain. A heartbeat only moves the deadline later (O(1), no allocation,
 * no phi evaluated); the queue is touched when a deadline moves earlier or when a stale wake-up
 * comes due, about once per deadline span per agent instead of once per beat, and then in O(1)
 * (a list move between keys). The exact ms is settled when an agent's wake-up comes due and finds
 * no later beat. Detectors live in a `PhiAccrualTable` and the queue holds their slots, so a beat
 * touches few memory lines whatever order agents beat in.
 *
 * Agents suspected in the same ms are reported in the order their deadlines were settled, and
 * wake-ups due together are served first come, first served: agents with the same history come
 * out in the order of their beats. The order depends only on the heartbeats and their order, so
 * a run replays exactly.
 *
 * @example
 * heartbeats$.pipe(phiAccrual({ threshold: 8, acceptableHeartbeatPauseMs: 3000 }))
 *   .subscribe(({ type, agentId, at }) => console.log(type, agentId, at));
 */
export function phiAccrual(options: PhiAccrualOptions = {}): OperatorFunction<Heartbeat, Liveness> {
  const { scheduler = asyncScheduler, ...detectorOptions } = options;
  requireScheduler(scheduler);
  const settings = new PhiSettings(detectorOptions);

  return source =>
    new Observable<Liveness>(subscriber => {
      let slots = slotsById();
      const detectors = new PhiAccrualTable(settings);
      /** Agent ids by slot, for the verdicts. */
      const agentIds: (string | undefined)[] = [];
      /**
       * Slots filed at or before their deadline, never after; a suspected agent is not queued. Each
       * detector's tag mirrors its key (NaN when not queued), so a beat need not look in the queue.
       */
      const queue = new WakeQueue();
      let timer: Subscription | undefined;
      let timerAt = Infinity;
      /** See `expire`. */
      let lookahead = 0;

      /** Files `slot` under `key` (NaN: out of the queue), keeping the detector's tag equal to it. */
      const file = (slot: number, key: number): void => {
        if (Number.isNaN(key)) queue.remove(slot);
        else queue.file(slot, key);
        detectors.setTag(slot, key);
      };

      /** Suspects every agent whose deadline has come; false if the consumer unsubscribed meanwhile. */
      const expire = (now: number): boolean => {
        // Re-entrant beats during `next` may change the queue: read the top afresh each time.
        while (queue.topKey <= now) {
          const top = queue.topSlot;
          // Read the next agent's bound now, so its record is on its way while this one is filed
          // (a wake-up serves many agents, each record a cache miss of its own).
          const after = queue.nextSlot(top);
          if (after >= 0) lookahead = detectors.suspicionLowerBound(after);
          // A stale key: look again at the new bound; settle the exact ms only once it is due.
          const bound = detectors.suspicionLowerBound(top);
          if (bound > now) {
            file(top, wakeKey(bound, now));
            continue;
          }
          const deadline = detectors.suspicionAt(top) as number;
          if (deadline <= now) {
            file(top, NaN); // out of the queue until it beats again: that is what "suspected" means here
            subscriber.next({ type: 'suspected', agentId: agentIds[top] as string, at: now, phi: detectors.phi(top, now) });
            if (subscriber.closed) return false;
          } else {
            file(top, deadline);
          }
        }
        return true;
      };

      const wake = function (this: SchedulerAction<unknown>): void {
        timer = undefined;
        timerAt = Infinity;
        const now = scheduler.now();
        if (!expire(now)) return;
        // Re-entrant heartbeats during `next` may have armed a timer already; keep the earlier one.
        const next = queue.topKey;
        if (next < timerAt) {
          (timer as Subscription | undefined)?.unsubscribe();
          timerAt = next;
          timer = this.schedule(undefined, next - now);
        }
      };

      /** Files `slot` by `bound` (a lower bound of its deadline), arming the timer earlier if need be. */
      const wakeAt = (slot: number, bound: number): void => {
        const now = scheduler.now();
        const key = wakeKey(bound, now);
        file(slot, key);
        if (key < timerAt) {
          timer?.unsubscribe();
          timerAt = key;
          timer = scheduler.schedule(wake, key - now);
        }
      };

      operate(source, subscriber, {
        next: beat => {
          const now = scheduler.now();
          // A beat landing on a deadline comes after it (deadlines are inclusive), whichever of
          // the beat and the timer the scheduler happens to run first.
          if (queue.topKey <= now && !expire(now)) return;
          const id = beat.agentId;
          let slot = slots[id];
          if (beat.status === 'leaving') {
            if (slot === undefined) return;
            queue.remove(slot);
            delete slots[id];
            const phi = detectors.phi(slot, now);
            detectors.release(slot);
            agentIds[slot] = undefined;
            subscriber.next({ type: 'left', agentId: id, at: now, phi });
            return;
          }
          if (slot === undefined) {
            slot = detectors.add(now);
            slots[id] = slot;
            agentIds[slot] = id;
            wakeAt(slot, detectors.suspicionLowerBound(slot));
            subscriber.next({ type: 'alive', agentId: id, at: now, phi: detectors.phi(slot, now) });
            return;
          }
          // Keys are lower bounds of the deadline, so no phi is evaluated per beat; the exact
          // instant is settled only when an agent reaches the top of the queue.
          const key = detectors.tag(slot); // NaN: suspected, so not queued
          const bound = detectors.heartbeat(slot, now);
          // A later deadline is left alone: the earlier, stale wake-up finds it at the top.
          if (bound >= key) return;
          wakeAt(slot, bound);
          if (Number.isNaN(key)) {
            subscriber.next({ type: 'alive', agentId: id, at: now, phi: detectors.phi(slot, now) });
          }
        },
      });

      return () => {
        timer?.unsubscribe();
        timer = undefined;
        queue.clear();
        slots = slotsById();
        detectors.clear();
        agentIds.length = 0;
      };
    });
}
