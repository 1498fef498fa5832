/**
 * The pure core of `performanceWindow` and `adaptiveSwitch`: execution records, the snapshot of a
 * time window over them, and an incremental window that keeps that snapshot current with binary
 * searches and a splice within one block of sorted latencies per record instead of re-sorting the
 * window every time.
 *
 * Window membership: a record stamped `t` is inside the window that ends at `now` iff
 * `now − windowMs < t` (the window is the half-open interval `(now − windowMs, now]`, and records
 * stamped later than `now` — a sender's clock ahead of ours — count as recent).
 *
 * Throughput is over the time the window actually covers: a window older than the observation
 * (a stream watched for 20 s through a 5-minute window) covers only the time since `since`, when
 * watching began — or since its oldest record, when one is stamped earlier — not the window's
 * whole length, which would under-read by the ratio of the two.
 */

/** One finished execution, naming the protocol it ran under. */
export interface ExecutionRecord {
  readonly protocol: string;
  readonly ok: boolean;
  /** From dispatch to result, ms. Finite, ≥ 0. */
  readonly latencyMs: number;
  /** Network messages the execution cost. Finite, ≥ 0. */
  readonly messages: number;
  /** When it finished (scheduler time). Absent: the time the record arrives. */
  readonly at?: number;
}

/**
 * The records inside one window. Never NaN: an empty window reads as all zeros (nothing measured
 * is nothing achieved, so a scoring function fed an empty snapshot never sees a perfect protocol).
 */
export interface PerformanceSnapshot {
  /** End of the window (scheduler time). */
  readonly at: number;
  readonly count: number;
  /** `ok / count`; 0 when empty. */
  readonly successRate: number;
  readonly meanLatencyMs: number;
  /** Nearest-rank percentiles of the latencies in the window (see {@link nearestRank}); 0 when empty. */
  readonly p50LatencyMs: number;
  readonly p95LatencyMs: number;
  /**
   * Records per second over the time the window covers: `count / (coveredMs / 1000)`, where the
   * covered span runs from `max(at − windowMs, min(since, oldest record's stamp))` to `at` (`since`:
   * when watching began). 0 when empty or when no time is covered yet (records at the first instant).
   */
  readonly throughputPerSec: number;
  /** Mean messages per execution; 0 when empty. */
  readonly messagesPerExecution: number;
}

/**
 * Nearest-rank percentile of an ascending list: the smallest value such that at least `percent` %
 * of the values are ≤ it, i.e. `sorted[ceil(percent/100 · n) − 1]` (rank clamped to ≥ 1). Always
 * one of the values, never interpolated. Empty list → 0.
 *
 * @example nearestRank([15, 20, 35, 40, 50], 30) // 20
 */
export function nearestRank(sortedAsc: ArrayLike<number>, percent: number): number {
  if (!(percent > 0 && percent <= 100)) throw new RangeError(`percent must be in (0, 100], got ${percent}`);
  const n = sortedAsc.length;
  return n === 0 ? 0 : (sortedAsc[rankIndex(percent, n)] as number);
}

/** Index of the nearest-rank `percent` percentile among `n` ascending values (n ≥ 1). */
function rankIndex(percent: number, n: number): number {
  // percent · n is an exact integer for integer percents, so ceil sees no rounding noise.
  return Math.max(1, Math.ceil((percent * n) / 100)) - 1;
}

/** Throws a `RangeError` for a record whose numbers would poison the sums (NaN, ∞, negative). */
export function checkRecord(record: ExecutionRecord): void {
  const { latencyMs, messages, at } = record;
  if (typeof latencyMs !== 'number' || !Number.isFinite(latencyMs) || latencyMs < 0) {
    throw new RangeError(`record.latencyMs must be a finite number >= 0, got ${String(latencyMs)}`);
  }
  if (typeof messages !== 'number' || !Number.isFinite(messages) || messages < 0) {
    throw new RangeError(`record.messages must be a finite number >= 0, got ${String(messages)}`);
  }
  if (at !== undefined && (typeof at !== 'number' || !Number.isFinite(at))) {
    throw new RangeError(`record.at must be a finite number when given, got ${String(at)}`);
  }
}

/**
 * The time, ms, that the window ending at `now` covers: from the later of its start and the start of
 * the observation (`since`, or the oldest record's stamp when that is earlier) to `now`.
 *
 * @example coveredMs(20_000, 300_000, 0, 1200) // 20_000: watched for 20 s, not 300
 */
export function coveredMs(now: number, windowMs: number, since: number, oldest: number | undefined): number {
  return now - Math.max(now - windowMs, oldest === undefined ? since : Math.min(since, oldest));
}

function snapshotOf(
  at: number, coveredMs: number, count: number, okCount: number, latencySum: number,
  messageSum: number, p50LatencyMs: number, p95LatencyMs: number,
): PerformanceSnapshot {
  if (count === 0) {
    return { at, count: 0, successRate: 0, meanLatencyMs: 0, p50LatencyMs: 0, p95LatencyMs: 0, throughputPerSec: 0, messagesPerExecution: 0 };
  }
  return {
    at,
    count,
    successRate: okCount / count,
    meanLatencyMs: latencySum / count,
    p50LatencyMs,
    p95LatencyMs,
    throughputPerSec: coveredMs > 0 ? count / (coveredMs / 1000) : 0,
    messagesPerExecution: messageSum / count,
  };
}

/**
 * The snapshot of the records inside the window `(now − windowMs, now]` (records without `at`
 * count as stamped `now`), observed since `since` (default: forever, so throughput is over the
 * whole window). Pure and O(n log n): the reference that {@link RollingWindow} keeps incrementally.
 */
export function summarize(records: Iterable<ExecutionRecord>, windowMs: number, now: number, since = -Infinity): PerformanceSnapshot {
  const cutoff = now - windowMs;
  const latencies: number[] = [];
  let oldest: number | undefined;
  let okCount = 0;
  let latencySum = 0;
  let messageSum = 0;
  for (const record of records) {
    checkRecord(record);
    const t = record.at ?? now;
    if (t <= cutoff) continue;
    if (oldest === undefined || t < oldest) oldest = t;
    latencies.push(record.latencyMs);
    if (record.ok === true) okCount++;
    latencySum += record.latencyMs;
    messageSum += record.messages;
  }
  latencies.sort((a, b) => a - b);
  return snapshotOf(now, coveredMs(now, windowMs, since, oldest), latencies.length, okCount, latencySum, messageSum, nearestRank(latencies, 50), nearestRank(latencies, 95));
}

/** A record inside the window. */
interface Entry {
  readonly t: number;
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly messages: number;
}

/** First index in `a[from, to)` whose value is > `x` (`strict`) or ≥ `x`. */
function bound(a: ArrayLike<number>, x: number, from: number, to: number, strict: boolean): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = a[mid] as number;
    if (strict ? v <= x : v < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Values per block of {@link SortedBlocks}: a block splits in two past twice this. */
const BLOCK = 512;

/**
 * A multiset of numbers in ascending blocks of at most 2 × {@link BLOCK} values: O(BLOCK + n/BLOCK)
 * to add, delete or read a rank. One sorted array costs O(n) per add and delete (a splice moves half
 * the window), which a window of a hundred thousand records pays on every execution.
 */
class SortedBlocks {
  private blocks: number[][] = [];

  add(value: number): void {
    const blocks = this.blocks;
    if (blocks.length === 0) {
      blocks.push([value]);
      return;
    }
    // The first block whose last value is above `value` (else the last block): equal values stay in arrival order.
    let lo = 0;
    let hi = blocks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const block = blocks[mid] as number[];
      if ((block[block.length - 1] as number) <= value) lo = mid + 1;
      else hi = mid;
    }
    const block = blocks[lo] as number[];
    block.splice(bound(block, value, 0, block.length, true), 0, value);
    if (block.length > 2 * BLOCK) blocks.splice(lo + 1, 0, block.splice(BLOCK));
  }

  /** Removes one occurrence of `value` (nothing if there is none). */
  delete(value: number): void {
    const blocks = this.blocks;
    // The first block whose last value is not below `value`: it holds `value` if any block does.
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const block = blocks[mid] as number[];
      if ((block[block.length - 1] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    const block = blocks[lo];
    if (block === undefined) return;
    const i = bound(block, value, 0, block.length, false);
    if (block[i] !== value) return;
    block.splice(i, 1);
    if (block.length === 0) blocks.splice(lo, 1);
  }

  /** The value at 0-based `rank` in ascending order (`rank` below the size). */
  at(rank: number): number {
    for (const block of this.blocks) {
      if (rank < block.length) return block[rank] as number;
      rank -= block.length;
    }
    return NaN;
  }

  clear(): void {
    this.blocks = [];
  }
}

/**
 * An incremental rolling window of execution records: a time-ordered deque (oldest at `head`)
 * with running sums for the counts and means, and the latencies in sorted blocks for the
 * percentiles. Records arriving in time order are appended in O(1); a late one is inserted in
 * place. Expiry pops from the front. Assumes a non-decreasing clock.
 *
 * `since` is when watching began (scheduler time; default: forever), for the covered span of
 * `throughputPerSec`.
 *
 * @example
 * const w = new RollingWindow(60_000, scheduler.now());
 * w.add({ protocol: 'mesh', ok: true, latencyMs: 120, messages: 6 }, scheduler.now());
 * w.snapshot(scheduler.now()).p95LatencyMs; // 120
 */
export class RollingWindow {
  private entries: Entry[] = [];
  private times: number[] = [];
  private head = 0;
  private readonly latencies = new SortedBlocks();
  private okCount = 0;
  private latencySum = 0;
  private messageSum = 0;

  constructor(
    readonly windowMs: number,
    readonly since = -Infinity,
  ) {
    if (typeof windowMs !== 'number' || !Number.isFinite(windowMs) || windowMs <= 0) {
      throw new RangeError(`windowMs must be a finite number > 0, got ${String(windowMs)}`);
    }
    if (typeof since !== 'number' || Number.isNaN(since) || since === Infinity) throw new RangeError(`since must be a number < Infinity, got ${String(since)}`);
  }

  /** Records currently inside the window (as of the last `add` / `expire`). */
  get count(): number {
    return this.entries.length - this.head;
  }

  /**
   * Expires what has left the window at `now`, then adds `record`, stamped `record.at ?? now`.
   * Returns false when the record is already outside the window (it is not kept).
   * Throws a `RangeError` for a malformed record (see {@link checkRecord}).
   */
  add(record: ExecutionRecord, now: number): boolean {
    checkRecord(record);
    this.expire(now);
    const t = record.at ?? now;
    if (t <= now - this.windowMs) return false;
    const entry: Entry = { t, ok: record.ok === true, latencyMs: record.latencyMs, messages: record.messages };
    const end = this.entries.length;
    if (end === this.head || (this.times[end - 1] as number) <= t) {
      this.entries.push(entry);
      this.times.push(t);
    } else {
      // Late record: after every entry with the same stamp, so equal stamps keep arrival order.
      const at = bound(this.times, t, this.head, end, true);
      this.entries.splice(at, 0, entry);
      this.times.splice(at, 0, t);
    }
    this.latencies.add(record.latencyMs);
    if (entry.ok) this.okCount++;
    this.latencySum += entry.latencyMs;
    this.messageSum += entry.messages;
    return true;
  }

  /** Drops the records stamped at or before `now − windowMs`. */
  expire(now: number): void {
    const cutoff = now - this.windowMs;
    const entries = this.entries;
    let head = this.head;
    while (head < entries.length && (this.times[head] as number) <= cutoff) {
      const old = entries[head] as Entry;
      this.latencies.delete(old.latencyMs);
      if (old.ok) this.okCount--;
      this.latencySum -= old.latencyMs;
      this.messageSum -= old.messages;
      head++;
    }
    if (head === entries.length) {
      // Empty: start the sums afresh so rounding left over from removals cannot accumulate.
      this.clear();
    } else if (head > 64 && head * 2 > entries.length) {
      // Compact once the dead prefix outweighs the live records: amortised O(1) per record.
      this.entries = entries.slice(head);
      this.times = this.times.slice(head);
      this.head = 0;
    } else {
      this.head = head;
    }
  }

  /** The snapshot of the window ending at `now`; call `expire(now)` (or `add`) first. */
  snapshot(now: number): PerformanceSnapshot {
    const count = this.count;
    const oldest = count === 0 ? undefined : (this.times[this.head] as number);
    const p50 = count === 0 ? 0 : this.latencies.at(rankIndex(50, count));
    const p95 = count === 0 ? 0 : this.latencies.at(rankIndex(95, count));
    return snapshotOf(now, coveredMs(now, this.windowMs, this.since, oldest), count, this.okCount, this.latencySum, this.messageSum, p50, p95);
  }

  /** Forgets every record. */
  clear(): void {
    this.entries = [];
    this.times = [];
    this.head = 0;
    this.latencies.clear();
    this.okCount = 0;
    this.latencySum = 0;
    this.messageSum = 0;
  }
}
