import { phi, phiThresholdOffset } from './phi.js';
import { requireInteger, requireNumber } from './internal/validate.js';

/** Options of a phi accrual detector; defaults are Akka's. */
export interface PhiAccrualDetectorOptions {
  /** phi at which an agent is suspected. Lower: faster detection, more false suspicions. Default 8. */
  readonly threshold?: number;
  /** Intervals kept for the statistics. Larger: steadier estimate, slower to adapt. Default 1000. */
  readonly maxSampleSize?: number;
  /** Floor of the standard deviation, so perfectly regular beats do not make phi explode. Default 100. */
  readonly minStdDeviationMs?: number;
  /** Pause tolerated on top of the mean interval (GC, bursts). Larger: fewer false suspicions, slower detection. Default 3000. */
  readonly acceptableHeartbeatPauseMs?: number;
  /** Interval assumed before any is measured. Default 1000. */
  readonly firstHeartbeatEstimateMs?: number;
}

/** Options settled and checked once, shared by every detector built from them. */
export class PhiSettings {
  readonly threshold: number;
  readonly maxSampleSize: number;
  readonly minStdDeviationMs: number;
  readonly acceptableHeartbeatPauseMs: number;
  readonly firstHeartbeatEstimateMs: number;
  /** `y` at which phi reaches the threshold (see `phiThresholdOffset`). */
  readonly thresholdOffset: number;

  constructor(options: PhiAccrualDetectorOptions = {}) {
    const {
      threshold = 8,
      maxSampleSize = 1000,
      minStdDeviationMs = 100,
      acceptableHeartbeatPauseMs = 3000,
      firstHeartbeatEstimateMs = 1000,
    } = options;
    // Above ~300 the tail probability underflows a double; no real deployment wants that.
    this.threshold = requireNumber('threshold', threshold, 0, true);
    if (threshold > 300) throw new RangeError(`threshold must be <= 300, got ${threshold}`);
    this.maxSampleSize = requireInteger('maxSampleSize', maxSampleSize, 1);
    this.minStdDeviationMs = requireNumber('minStdDeviationMs', minStdDeviationMs, 0, true);
    this.acceptableHeartbeatPauseMs = requireNumber('acceptableHeartbeatPauseMs', acceptableHeartbeatPauseMs, 0);
    this.firstHeartbeatEstimateMs = requireNumber('firstHeartbeatEstimateMs', firstHeartbeatEstimateMs, 0, true);
    this.thresholdOffset = phiThresholdOffset(this.threshold);
  }

  // The detector maths over a window's statistics, shared by `PhiAccrualDetector` and
  // `PhiAccrualTable` so both give bit-identical answers.

  /** The standard deviation phi uses: the window's, floored at `minStdDeviationMs`. */
  stdDeviation(variance: number): number {
    return Math.max(Math.sqrt(variance), this.minStdDeviationMs);
  }

  /** phi `nowMs` after a beat at `lastArrival`, for a window of mean `mean` and deviation `std`. */
  phiAt(nowMs: number, lastArrival: number, mean: number, std: number): number {
    return phi(nowMs - lastArrival, mean + this.acceptableHeartbeatPauseMs, std);
  }

  /** Closed-form instant where phi reaches the threshold (exact up to floating rounding). */
  crossing(lastArrival: number, mean: number, std: number): number {
    return lastArrival + mean + this.acceptableHeartbeatPauseMs + this.thresholdOffset * std;
  }

  /** First whole ms at which phi reaches the threshold: the crossing settled by phi itself. */
  suspicionAt(lastArrival: number, mean: number, std: number): number {
    const threshold = this.threshold;
    const paused = mean + this.acceptableHeartbeatPauseMs;
    let at = Math.ceil(this.crossing(lastArrival, mean, std));
    // Rounding can put the closed form a ms off either way; phi is monotone, so step.
    while (phi(at - 1 - lastArrival, paused, std) >= threshold) at--;
    while (phi(at - lastArrival, paused, std) < threshold) at++;
    return at;
  }
}

/** Mean of a window of `size` intervals summing to `sum`; 0 when empty. */
export function windowMean(size: number, sum: number): number {
  return size === 0 ? 0 : sum / size;
}

/** Population variance of a window from its running sums; 0 when empty (never negative from rounding). */
export function windowVariance(size: number, sum: number, squaredSum: number): number {
  if (size === 0) return 0;
  const mean = sum / size;
  return Math.max(0, squaredSum / size - mean * mean);
}

/**
 * A window of the last `maxSampleSize` heartbeat intervals with running sums: O(1) `add`, `mean`
 * and population `variance`. Grows up to `maxSampleSize`, then overwrites the oldest.
 */
export class IntervalWindow<Settings extends { readonly maxSampleSize: number } = { readonly maxSampleSize: number }> {
  private readonly intervals: number[] = [];
  private oldest = 0;
  private sum = 0;
  private squaredSum = 0;

  /** `settings` is held by reference: thousands of windows share one object. */
  constructor(readonly settings: Settings) {
    requireInteger('maxSampleSize', settings.maxSampleSize, 1);
  }

  get size(): number {
    return this.intervals.length;
  }

  get mean(): number {
    return windowMean(this.intervals.length, this.sum);
  }

  /** Population variance; 0 for fewer than two samples (never negative from rounding). */
  get variance(): number {
    return windowVariance(this.intervals.length, this.sum, this.squaredSum);
  }

  add(interval: number): void {
    const intervals = this.intervals;
    if (intervals.length < this.settings.maxSampleSize) {
      intervals.push(interval);
    } else {
      const oldest = this.oldest;
      const dropped = intervals[oldest] as number;
      this.sum -= dropped;
      this.squaredSum -= dropped * dropped;
      intervals[oldest] = interval;
      this.oldest = oldest + 1 === intervals.length ? 0 : oldest + 1;
    }
    this.sum += interval;
    this.squaredSum += interval * interval;
  }
}

/**
 * The phi accrual failure detector of one agent, as Akka's `PhiAccrualFailureDetector`: a window of
 * heartbeat intervals with running sums (O(1) per heartbeat), phi over `mean + acceptableHeartbeatPauseMs`
 * and `max(std, minStdDeviationMs)`, bootstrapped from `firstHeartbeatEstimateMs`, and no sampling of
 * the first interval after an outage. Time is whatever clock the caller passes (scheduler time).
 *
 * @example
 * const detector = new PhiAccrualDetector({ threshold: 8 });
 * detector.heartbeat(0);
 * detector.heartbeat(1000);
 * detector.isAvailable(2000); // true
 * detector.suspicionAt();     // first ms at which phi >= 8 if no beat comes
 */
export class PhiAccrualDetector extends IntervalWindow<PhiSettings> {
  // Few fields on purpose: a coordinator holds one detector per agent (see the memory benchmark).
  private lastArrival = 0;
  /**
   * A whole ms before the closed-form instant where phi reaches the threshold (exact up to
   * floating rounding, ≪ 1 ms). Kept whole so it stays a small integer, not a boxed double.
   */
  private lowerBound = 0;

  constructor(options: PhiAccrualDetectorOptions | PhiSettings = {}) {
    super(options instanceof PhiSettings ? options : new PhiSettings(options));
  }

  /** True once the first heartbeat has arrived (which seeds the window). */
  get isMonitoring(): boolean {
    return this.size > 0;
  }

  /** Population standard deviation of the sampled intervals, floored at `minStdDeviationMs`. */
  get stdDeviationMs(): number {
    return this.settings.stdDeviation(this.variance);
  }

  /**
   * A whole ms at or before `suspicionAt()`, known without evaluating phi: what a timer queue may
   * key on, and what lets a beat well inside the deadline skip every `exp` and `log10`.
   */
  get suspicionLowerBound(): number {
    return this.lowerBound;
  }

  /** Records a heartbeat arriving at `nowMs`. */
  heartbeat(nowMs: number): void {
    const settings = this.settings;
    if (this.size === 0) {
      const estimate = settings.firstHeartbeatEstimateMs;
      const spread = Math.floor(estimate / 4);
      this.add(estimate - spread);
      this.add(estimate + spread);
    } else if (this.isAvailable(nowMs)) {
      // The first beat after an outage is not sampled: its long interval would skew the statistics.
      this.add(nowMs - this.lastArrival);
    }
    this.lastArrival = nowMs;
    this.lowerBound = Math.floor(this.crossing()) - 1;
  }

  /** Suspicion level at `nowMs`; 0 before the first heartbeat. */
  phi(nowMs: number): number {
    if (this.size === 0) return 0;
    return this.settings.phiAt(nowMs, this.lastArrival, this.mean, this.stdDeviationMs);
  }

  /** `phi(nowMs) < threshold`. */
  isAvailable(nowMs: number): boolean {
    // phi is increasing in time; a whole ms before the closed-form crossing it is below threshold.
    if (this.size === 0 || nowMs <= this.suspicionLowerBound) return true;
    return this.phi(nowMs) < this.settings.threshold;
  }

  /**
   * First whole ms at which phi reaches the threshold if no heartbeat comes; undefined before the
   * first. The closed-form crossing settled on the exact ms by phi itself: O(1), a few `exp`.
   */
  suspicionAt(): number | undefined {
    if (this.size === 0) return undefined;
    return this.settings.suspicionAt(this.lastArrival, this.mean, this.stdDeviationMs);
  }

  private crossing(): number {
    return this.settings.crossing(this.lastArrival, this.mean, this.stdDeviationMs);
  }
}

// Layout of one detector in a `PhiAccrualTable`: 16 doubles, 128 bytes. What every heartbeat
// reads and writes comes first (LAST to TAG and one buffered sample): two cache lines at most.
const STRIDE = 16;
const LAST = 0;
const SUM = 1;
const SQUARES = 2;
/**
 * Samples and ring cursor in one number: below `maxSampleSize` the window is still filling and
 * this is both its size and the cursor; from there on the window is full and the cursor (the
 * oldest sample, overwritten next) is `FILL − maxSampleSize`. 0: no heartbeat yet.
 */
const FILL = 3;
const BOUND = 4;
const TAG = 5;
/** Where the detector's window starts in the pool, and how many samples it has room for. */
const BASE = 6;
const ROOM = 7;
/** Doubles 8–15 hold the block of the ring the cursor is in. */
const BUFFER = 8;
const BLOCK = 8;
const BLOCK_MASK = BLOCK - 1;
/** Growth factor of the record array and of the window pool (tight: thousands of agents). */
const GROWTH = 1.25;

/**
 * Many `PhiAccrualDetector`s in one table, for a coordinator watching thousands of agents: each
 * detector is a slot, its numbers a 128-byte record in one `Float64Array` and its window a region
 * of a shared pool (4 bytes a sample for whole-ms intervals). Answers are bit-identical to
 * `PhiAccrualDetector`'s (same settings maths, same running sums in the same order).
 *
 * Why a table: heartbeats from thousands of agents arrive in no particular order, so every
 * object a heartbeat touches is a cache miss. A detector object costs several (the object, its
 * boxed sums, its window array, the array's elements); a record costs one or two lines, and the
 * ring block the cursor is in lives in the record itself, so the window proper is read and
 * written only once every 8 samples, a block at a time. Windows grow in the pool as they fill
 * (regions move to the end; the pool is compacted when full), so a young detector holds little.
 *
 * @example
 * const table = new PhiAccrualTable(new PhiSettings({ threshold: 8 }));
 * const slot = table.add(0);   // first heartbeat at 0
 * table.heartbeat(slot, 1000);
 * table.suspicionAt(slot);     // first ms at which phi >= 8 if no beat comes
 * table.release(slot);
 */
export class PhiAccrualTable {
  private records = new Float64Array(0);
  private capacity = 0;
  /** Slots handed out so far; released ones wait in `free`. */
  private slots = 0;
  private free: number[] = [];
  /**
   * Windows, each a region of `ROOM` samples from `BASE`; regions left behind are reclaimed by
   * compaction. Whole-ms intervals (the usual case) take 4 bytes each; the first interval that is
   * not a 32-bit integer turns the pool to doubles for good.
   */
  private pool: Int32Array | Float64Array = new Int32Array(0);
  private poolTop = 0;
  /** Samples of room held by live detectors. */
  private poolLive = 0;
  /** Live detectors whose window has not reached full size. */
  private growing = 0;

  /** `settings.maxSampleSize`, at hand. */
  private readonly ring: number;

  /** `settings` is held by reference. */
  constructor(readonly settings: PhiSettings) {
    this.ring = settings.maxSampleSize;
  }

  /** Number of detectors in the table. */
  get size(): number {
    return this.slots - this.free.length;
  }

  /** Starts a detector with its first heartbeat at `nowMs`; returns its slot. Its tag starts at 0. */
  add(nowMs: number): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.slots === this.capacity) this.grow();
      slot = this.slots++;
    }
    this.growing++;
    this.heartbeat(slot, nowMs);
    return slot;
  }

  /** Forgets the detector in `slot`; the slot may be handed out again. */
  release(slot: number): void {
    const o = slot * STRIDE;
    const room = this.records[o + ROOM] as number;
    if (room < this.settings.maxSampleSize) this.growing--;
    this.poolLive -= room;
    this.records.fill(0, o, o + STRIDE);
    this.free.push(slot);
  }

  /** Forgets every detector. */
  clear(): void {
    this.records = new Float64Array(0);
    this.capacity = 0;
    this.slots = 0;
    this.free = [];
    this.pool = new Int32Array(0);
    this.poolTop = 0;
    this.poolLive = 0;
    this.growing = 0;
  }

  /**
   * A number kept with the detector for the table's owner, in the record a heartbeat reads anyway
   * (`phiAccrual` keeps there the time the agent is queued under).
   */
  tag(slot: number): number {
    return this.records[slot * STRIDE + TAG] as number;
  }

  setTag(slot: number, value: number): void {
    this.records[slot * STRIDE + TAG] = value;
  }

  /** `PhiAccrualDetector.heartbeat` for the detector in `slot`; returns its new `suspicionLowerBound`. */
  heartbeat(slot: number, nowMs: number): number {
    // The hot path of a coordinator with thousands of agents: one flat function over the record.
    const records = this.records;
    const o = slot * STRIDE;
    if (records[o + FILL] === 0) {
      const estimate = this.settings.firstHeartbeatEstimateMs;
      const spread = Math.floor(estimate / 4);
      this.sample(o, estimate - spread);
      this.sample(o, estimate + spread);
    } else if (nowMs <= (records[o + BOUND] as number) || this.phi(slot, nowMs) < this.settings.threshold) {
      // The first beat after an outage is not sampled: its long interval would skew the statistics.
      this.sample(o, nowMs - (records[o + LAST] as number));
    }
    records[o + LAST] = nowMs;
    const fill = records[o + FILL] as number;
    const size = fill < this.ring ? fill : this.ring;
    const sum = records[o + SUM] as number;
    const settings = this.settings;
    const std = settings.stdDeviation(windowVariance(size, sum, records[o + SQUARES] as number));
    const bound = Math.floor(settings.crossing(nowMs, windowMean(size, sum), std)) - 1;
    records[o + BOUND] = bound;
    return bound;
  }

  /** `PhiAccrualDetector.suspicionLowerBound`. */
  suspicionLowerBound(slot: number): number {
    return this.records[slot * STRIDE + BOUND] as number;
  }

  /** `PhiAccrualDetector.phi`. */
  phi(slot: number, nowMs: number): number {
    const records = this.records;
    const o = slot * STRIDE;
    const size = this.sizeAt(o);
    if (size === 0) return 0;
    const sum = records[o + SUM] as number;
    const std = this.settings.stdDeviation(windowVariance(size, sum, records[o + SQUARES] as number));
    return this.settings.phiAt(nowMs, records[o + LAST] as number, windowMean(size, sum), std);
  }

  /** `PhiAccrualDetector.isAvailable`. */
  isAvailable(slot: number, nowMs: number): boolean {
    const o = slot * STRIDE;
    if (this.records[o + FILL] === 0 || nowMs <= (this.records[o + BOUND] as number)) return true;
    return this.phi(slot, nowMs) < this.settings.threshold;
  }

  /** `PhiAccrualDetector.suspicionAt`. */
  suspicionAt(slot: number): number | undefined {
    const records = this.records;
    const o = slot * STRIDE;
    const size = this.sizeAt(o);
    if (size === 0) return undefined;
    const sum = records[o + SUM] as number;
    const std = this.settings.stdDeviation(windowVariance(size, sum, records[o + SQUARES] as number));
    return this.settings.suspicionAt(records[o + LAST] as number, windowMean(size, sum), std);
  }

  private sizeAt(o: number): number {
    const fill = this.records[o + FILL] as number;
    return fill < this.ring ? fill : this.ring;
  }

  /** `IntervalWindow.add`: the same running sums, in the same order. */
  private sample(o: number, interval: number): void {
    const records = this.records;
    const capacity = this.ring;
    const fill = records[o + FILL] as number;
    const full = fill >= capacity;
    const cursor = full ? fill - capacity : fill;
    const i = o + BUFFER + (cursor & BLOCK_MASK);
    let sum = records[o + SUM] as number;
    let squares = records[o + SQUARES] as number;
    if (full) {
      const dropped = records[i] as number;
      sum -= dropped;
      squares -= dropped * dropped;
    }
    records[i] = interval;
    records[o + SUM] = sum + interval;
    records[o + SQUARES] = squares + interval * interval;
    const wrapped = cursor + 1 === capacity;
    const next = wrapped ? 0 : cursor + 1;
    const nowFull = full || wrapped;
    records[o + FILL] = nowFull ? capacity + next : next;
    if ((next & BLOCK_MASK) === 0) this.flush(o, cursor & ~BLOCK_MASK, next, nowFull);
  }

  /** The cursor left `block`: write it to the window and, once the ring is full, cache the one at `next`. */
  private flush(o: number, block: number, next: number, full: boolean): void {
    const capacity = this.settings.maxSampleSize;
    const end = Math.min(block + BLOCK, capacity);
    if (end > (this.records[o + ROOM] as number)) this.enlarge(o, block, end);
    const records = this.records;
    if (this.pool instanceof Int32Array) {
      for (let j = o + BUFFER, last = j + end - block; j < last; j++) {
        const interval = records[j] as number;
        if ((interval | 0) !== interval) {
          this.pool = Float64Array.from(this.pool);
          break;
        }
      }
    }
    const pool = this.pool;
    const base = records[o + BASE] as number;
    for (let k = base + block, j = o + BUFFER, last = base + end; k < last; k++, j++) pool[k] = records[j] as number;
    if (full) {
      for (let k = base + next, j = o + BUFFER, last = base + Math.min(next + BLOCK, capacity); k < last; k++, j++) {
        records[j] = pool[k] as number;
      }
    }
  }

  /** Gives a growing window (its first `used` samples) room for at least `needed`. */
  private enlarge(o: number, used: number, needed: number): void {
    if (this.poolTop + this.grownRoom(this.records[o + ROOM] as number) > this.pool.length) {
      this.compact(true); // gives every growing window, this one too, room to grow once more
    }
    const records = this.records;
    const room = records[o + ROOM] as number;
    if (room < needed) {
      // Move to the top of the pool; the old region waits for the next compaction.
      const wanted = Math.max(needed, this.grownRoom(room));
      const from = records[o + BASE] as number;
      const to = this.poolTop;
      this.pool.copyWithin(to, from, from + used);
      this.poolTop = to + wanted;
      this.poolLive += wanted - room;
      records[o + BASE] = to;
      this.setRoom(o, wanted);
    }
    // Every window at full size: drop what growth left behind.
    if (this.growing === 0 && this.poolTop - this.poolLive > this.poolLive / 8) this.compact(false);
  }

  /**
   * Room a window gets when it outgrows `room`: half as much again (as a JS array's backing
   * store), from two blocks, and straight to full size once that is the next step anyway.
   */
  private grownRoom(room: number): number {
    const capacity = this.settings.maxSampleSize;
    const grown = Math.max(2 * BLOCK, Math.ceil(room * 1.5));
    return grown * 1.5 >= capacity ? capacity : grown;
  }

  /** Room for the window at `o` after a growing compaction: grown if it is at least half full. */
  private nextRoom(o: number): number {
    const room = this.records[o + ROOM] as number;
    const size = this.sizeAt(o);
    return size < this.settings.maxSampleSize && 2 * size >= room ? this.grownRoom(room) : room;
  }

  private setRoom(o: number, room: number): void {
    const capacity = this.settings.maxSampleSize;
    if (room === capacity && (this.records[o + ROOM] as number) < capacity) this.growing--;
    this.records[o + ROOM] = room;
  }

  /**
   * Copies the live windows into a fresh pool, with a little to spare at the top. With `grow`,
   * each window at least half full gets its next room on the way: agents that joined together
   * fill their windows together, so a round of growth costs one compaction and no moves.
   */
  private compact(grow: boolean): void {
    const records = this.records;
    const end = this.slots * STRIDE;
    let live = 0;
    for (let o = 0; o < end; o += STRIDE) {
      if (records[o + FILL] === 0) continue;
      live += grow ? this.nextRoom(o) : (records[o + ROOM] as number);
    }
    const old = this.pool;
    const length = Math.max(64, live + Math.ceil(live / 16) + 2 * BLOCK);
    const pool = old instanceof Int32Array ? new Int32Array(length) : new Float64Array(length);
    let top = 0;
    for (let o = 0; o < end; o += STRIDE) {
      if (records[o + FILL] === 0) continue;
      const room = records[o + ROOM] as number;
      const base = records[o + BASE] as number;
      if (room > 0) pool.set(old.subarray(base, base + room), top);
      records[o + BASE] = top;
      const next = grow ? this.nextRoom(o) : room;
      this.setRoom(o, next);
      top += next;
    }
    this.pool = pool;
    this.poolTop = top;
    this.poolLive = live;
  }

  private grow(): void {
    const capacity = Math.max(16, Math.ceil(this.capacity * GROWTH));
    const records = new Float64Array(capacity * STRIDE);
    records.set(this.records);
    this.records = records;
    this.capacity = capacity;
  }
}
