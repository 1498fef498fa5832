/**
 * Benchmark plumbing: a measured case is always reported beside a baseline run in the same
 * process, as a ratio, because absolute times on a shared machine drift from run to run.
 */

export interface BenchRow {
  readonly suite: string;
  readonly case: string;
  readonly value: number;
  readonly unit: string;
  /** Ratio of `value` to the named baseline row of the same suite (higher is better unless noted). */
  readonly ratio?: { readonly against: string; readonly value: number };
  /** A target from the issue, e.g. '>= 30x naive'. */
  readonly target?: string;
  readonly note?: string;
}

export type Bench = () => BenchRow[] | Promise<BenchRow[]>;

/**
 * Runs `batch` (which returns how many operations it did) `samples` times after `warmups` unmeasured
 * runs and returns the median rate in operations per second.
 */
export function rate(batch: () => number, { samples = 5, warmups = 1 } = {}): number {
  for (let i = 0; i < warmups; i++) batch();
  const rates: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = performance.now();
    const ops = batch();
    rates.push((ops * 1000) / (performance.now() - start));
  }
  return median(rates);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Heap bytes retained by what `build` returns, after full collections (needs `--expose-gc`). */
export function retainedBytes(build: () => unknown): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench does)');
  gc();
  gc();
  const used = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers; // typed-array state lives outside the JS heap
  const before = used();
  const kept = build();
  gc();
  gc();
  const after = used();
  (globalThis as { __kept?: unknown }).__kept = kept; // keep it alive until measured
  (globalThis as { __kept?: unknown }).__kept = undefined;
  return after - before;
}

export function ratioRow(suite: string, name: string, value: number, unit: string, baselineName: string, baseline: number, target?: string, note?: string): BenchRow {
  return {
    suite,
    case: name,
    value,
    unit,
    ratio: { against: baselineName, value: value / baseline },
    ...(target === undefined ? {} : { target }),
    ...(note === undefined ? {} : { note }),
  };
}

/** A number for a table note: grouped thousands, `digits` decimals. */
export function formatNumber(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
