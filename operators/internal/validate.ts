/**
 * Option checks shared by every operator. Each throws a `RangeError` naming the option and the
 * bad value, so a wrong configuration fails when the operator is built, not minutes into a run.
 */

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** A finite number `>= min` (or `> min` when `exclusive`). */
export function requireNumber(name: string, value: unknown, min: number, exclusive = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || (exclusive ? value <= min : value < min)) {
    throw new RangeError(`${name} must be a finite number ${exclusive ? '>' : '>='} ${min}, got ${show(value)}`);
  }
  return value;
}

/** An integer `>= min`. */
export function requireInteger(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${show(value)}`);
  }
  return value;
}

/** A number in `[min, max]`. */
export function requireInRange(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${name} must be a number in [${min}, ${max}], got ${show(value)}`);
  }
  return value;
}

/** A function, when one is given. */
export function requireFunction<F>(name: string, value: F | undefined): F | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new RangeError(`${name} must be a function, got ${show(value)}`);
  }
  return value;
}

/** A `SchedulerLike`: something with `now()` and `schedule()`. */
export function requireScheduler<S>(value: S): S {
  const s = value as { now?: unknown; schedule?: unknown } | null;
  if (s === null || typeof s !== 'object' || typeof s.now !== 'function' || typeof s.schedule !== 'function') {
    throw new RangeError(`scheduler must be a SchedulerLike with now() and schedule(), got ${show(value)}`);
  }
  return value;
}
