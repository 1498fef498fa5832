import { Observable, asyncScheduler, type OperatorFunction, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { operate } from './internal/operate.js';
import { requireScheduler } from './internal/validate.js';
import type { Heartbeat, Liveness } from './liveness.js';
import { PhiAccrualTable, PhiSettings, type PhiAccrualDetectorOptions } from './phiAccrualDetector.js';

export interface PhiAccrualOptions extends PhiAccrualDetectorOptions {
  /** Clock and timers; arrival time is `scheduler.now()`. Default `asyncScheduler`. */
  readonly scheduler?: SchedulerLike;
}

/**
 * Min-heap of detector slots keyed by wake-up time, in typed arrays: sifting never touches the
 * detectors. Moves entries exactly as `IndexedHeap` would (same comparisons), so agents due at the
 * same ms come out in the same order.
 */
class WakeQueue {
  /** Slot at each heap position. */
  private heap = new Int32Array(16);
  /** Key at each heap position. */
  private keys = new Float64Array(16);
  /** Heap position of each slot; −1 when not queued. */
  private positions = new Int32Array(16).fill(-1);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Key of the first entry; +∞ when empty. */
  get topKey(): number {
    return this.count === 0 ? Infinity : (this.keys[0] as number);
  }

  /** Slot of the first entry; call only when not empty. */
  get topSlot(): number {
    return this.heap[0] as number;
  }

  has(slot: number): boolean {
    return slot < this.positions.length && (this.positions[slot] as number) >= 0;
  }

  push(slot: number, key: number): void {
    if (slot >= this.positions.length) this.growPositions(slot);
    if (this.count === this.heap.length) this.growHeap();
    const i = this.count++;
    this.heap[i] = slot;
    this.keys[i] = key;
    this.positions[slot] = i;
    this.up(i);
  }

  /** Re-keys a queued slot, in either direction. */
  update(slot: number, key: number): void {
    const i = this.positions[slot] as number;
    this.keys[i] = key;
    this.up(i);
    this.down(this.positions[slot] as number);
  }

  remove(slot: number): void {
    if (!this.has(slot)) return;
    const i = this.positions[slot] as number;
    const last = --this.count;
    this.positions[slot] = -1;
    if (i !== last) {
      const moved = this.heap[last] as number;
      this.heap[i] = moved;
      this.keys[i] = this.keys[last] as number;
      this.positions[moved] = i;
      this.up(i);
      this.down(this.positions[moved] as number);
    }
  }

  clear(): void {
    this.heap = new Int32Array(16);
    this.keys = new Float64Array(16);
    this.positions = new Int32Array(16).fill(-1);
    this.count = 0;
  }

  private growHeap(): void {
    const heap = new Int32Array(this.heap.length * 2);
    const keys = new Float64Array(this.keys.length * 2);
    heap.set(this.heap);
    keys.set(this.keys);
    this.heap = heap;
    this.keys = keys;
  }

  private growPositions(slot: number): void {
    const positions = new Int32Array(Math.max(slot + 1, Math.ceil(this.positions.length * 1.5))).fill(-1);
    positions.set(this.positions);
    this.positions = positions;
  }

  private up(i: number): void {
    const { heap, keys, positions } = this;
    const slot = heap[i] as number;
    const key = keys[i] as number;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parentKey = keys[p] as number;
      if (!(key < parentKey)) break;
      const parent = heap[p] as number;
      heap[i] = parent;
      keys[i] = parentKey;
      positions[parent] = i;
      i = p;
    }
    heap[i] = slot;
    keys[i] = key;
    positions[slot] = i;
  }

  private down(i: number): void {
    const { heap, keys, positions } = this;
    const n = this.count;
    const slot = heap[i] as number;
    const key = keys[i] as number;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && (keys[right] as number) < (keys[left] as number)) child = right;
      const childKey = keys[child] as number;
      if (!(childKey < key)) break;
      const c = heap[child] as number;
      heap[i] = c;
      keys[i] = childKey;
      positions[c] = i;
      i = child;
    }
    heap[i] = slot;
    keys[i] = key;
    positions[slot] = i;
  }
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
 * forgotten. All agents share one timer: a heap keyed by a lower bound of each agent's deadline.
 * A heartbeat only moves the deadline later (O(1), no allocation, no phi evaluated); the heap is
 * touched when a deadline moves earlier or when a stale entry reaches the top, about once per
 * deadline span per agent instead of once per beat. Detectors live in a `PhiAccrualTable` and the
 * heap holds their slots, so a beat touches few memory lines whatever order agents beat in.
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
      const slots = new Map<string, number>();
      const detectors = new PhiAccrualTable(settings);
      /** Agent ids by slot, for the verdicts. */
      const agentIds: (string | undefined)[] = [];
      /**
       * Slots keyed at or before their deadline, never after; a suspected agent is not queued. Each
       * detector's tag mirrors its key (NaN when not queued), so a beat need not look in the heap.
       */
      const queue = new WakeQueue();
      let timer: Subscription | undefined;
      let timerAt = Infinity;

      /** Suspects every agent whose deadline has come; false if the consumer unsubscribed meanwhile. */
      const expire = (now: number): boolean => {
        // Re-entrant beats during `next` may change the heap: read the top afresh each time.
        while (queue.topKey <= now) {
          const top = queue.topSlot;
          // A stale key: look again at the new bound; settle the exact ms only once it is due.
          const bound = detectors.suspicionLowerBound(top);
          if (bound > now) {
            queue.update(top, bound);
            detectors.setTag(top, bound);
            continue;
          }
          const deadline = detectors.suspicionAt(top) as number;
          if (deadline <= now) {
            queue.remove(top); // out of the queue until it beats again: that is what "suspected" means here
            detectors.setTag(top, NaN);
            subscriber.next({ type: 'suspected', agentId: agentIds[top] as string, at: now, phi: detectors.phi(top, now) });
            if (subscriber.closed) return false;
          } else {
            queue.update(top, deadline);
            detectors.setTag(top, deadline);
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

      const track = (slot: number): void => {
        // Keys are lower bounds of the deadline, so no phi is evaluated per beat; the exact
        // instant is settled only when an agent reaches the top of the queue.
        const bound = detectors.suspicionLowerBound(slot);
        const key = detectors.tag(slot);
        if (Number.isNaN(key)) {
          queue.push(slot, bound);
        } else if (bound < key) {
          queue.update(slot, bound);
        } else {
          return; // a later deadline: the earlier, stale wake-up finds it at the top
        }
        detectors.setTag(slot, bound);
        if (bound < timerAt) {
          timer?.unsubscribe();
          timerAt = bound;
          timer = scheduler.schedule(wake, bound - scheduler.now());
        }
      };

      operate(source, subscriber, {
        next: beat => {
          const now = scheduler.now();
          // A beat landing on a deadline comes after it (deadlines are inclusive), whichever of
          // the beat and the timer the scheduler happens to run first.
          if (queue.topKey <= now && !expire(now)) return;
          const id = beat.agentId;
          let slot = slots.get(id);
          if (beat.status === 'leaving') {
            if (slot === undefined) return;
            queue.remove(slot);
            slots.delete(id);
            const phi = detectors.phi(slot, now);
            detectors.release(slot);
            agentIds[slot] = undefined;
            subscriber.next({ type: 'left', agentId: id, at: now, phi });
            return;
          }
          if (slot === undefined) {
            slot = detectors.add(now);
            detectors.setTag(slot, NaN);
            slots.set(id, slot);
            agentIds[slot] = id;
            track(slot);
            subscriber.next({ type: 'alive', agentId: id, at: now, phi: detectors.phi(slot, now) });
            return;
          }
          const wasSuspected = Number.isNaN(detectors.tag(slot));
          detectors.heartbeat(slot, now);
          track(slot);
          if (wasSuspected) {
            subscriber.next({ type: 'alive', agentId: id, at: now, phi: detectors.phi(slot, now) });
          }
        },
      });

      return () => {
        timer?.unsubscribe();
        timer = undefined;
        queue.clear();
        slots.clear();
        detectors.clear();
        agentIds.length = 0;
      };
    });
}
