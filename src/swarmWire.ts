import type { SubtaskRow } from './swarmRows.js';

// How the bulky parts of a `state` message travel: 50,000 subtask rows as objects are ~7 MB of
// JSON; as tuples grouped by task, under half that, and parsed in half the time. Shared with the
// dashboard (no Node modules here).

/** `[id, state, agent, attempt, attempts, progress, hedged (0/1), since, reason?]`. */
export type SubtaskTuple = readonly [string, SubtaskRow['state'], string | null, number | null, number, number, 0 | 1, number, string?];

/** Subtask rows grouped by task: `[[taskId, [tuple, …]], …]`. */
export type PackedSubtasks = ReadonlyArray<readonly [string, readonly SubtaskTuple[]]>;

/** An agent's once-a-second numbers: `[id, phi, lastBeatAt, running, usage]`. */
export type AgentSample = readonly [string, number | null, number | null, number, number];

export function packSubtasks(rows: readonly SubtaskRow[]): PackedSubtasks {
  const byTask = new Map<string, SubtaskTuple[]>();
  for (const r of rows) {
    let tuples = byTask.get(r.taskId);
    if (tuples === undefined) byTask.set(r.taskId, (tuples = []));
    const progress = Math.round(r.progress * 1000) / 1000;
    tuples.push(r.reason === undefined ? [r.id, r.state, r.agent, r.attempt, r.attempts, progress, r.hedged ? 1 : 0, r.since] : [r.id, r.state, r.agent, r.attempt, r.attempts, progress, r.hedged ? 1 : 0, r.since, r.reason]);
  }
  return [...byTask];
}

/**
 * A whole task's subtask rows as columns, in the task's order: how a task travels when all of it
 * goes at once (the first state a watcher gets, a task queued). 50,000 rows as objects are ~7 MB
 * of JSON and 50,000 objects to make and collect at each end; as columns ~1 MB of short arrays and
 * strings, and the page keeps them as they are. A numeric column is one number when every row has
 * it (a task just queued: every attempt is -1).
 */
export interface SubtaskColumns {
  readonly taskId: string;
  /** The rows' ids (see {@link packIds}). */
  readonly ids: IdRuns;
  /**
   * The first letter of each row's state (`p`ending, `w`aiting, `r`unning, `d`one, `f`ailed),
   * runs folded: a letter then how many rows in a row have it when more than one (`d49000r800p200`).
   */
  readonly states: string;
  /** Agents named by the rows; `agent` holds an index into it for each row (see {@link packIndices}). */
  readonly agents: readonly string[];
  readonly agent: string;
  /** -1: none. */
  readonly attempt: Column;
  readonly attempts: Column;
  /** Thousandths. */
  readonly progress: Column;
  /** 0/1. */
  readonly hedged: Column;
  /** ms after the previous row's (the first row's: after `sinceBase`): rows end about in order, so these are short. */
  readonly sinceBase: number;
  readonly since: Column;
  /** Reasons named by the rows; `reason` is an index into it (-1: none). */
  readonly reasons: readonly string[];
  readonly reason: Column;
}

/**
 * Ids in order, numbered runs folded: `[prefix, first, count]` stands for `prefix + first`, …,
 * `prefix + (first + count - 1)` (decimal, no leading zero); any other id is itself. A task's
 * `s-0` … `s-49999` is one entry, not 450 KB of strings to write, parse and keep.
 */
export type IdRuns = ReadonlyArray<string | readonly [prefix: string, first: number, count: number]>;

export function packIds(ids: readonly string[]): IdRuns {
  const out: (string | [string, number, number])[] = [];
  let run: [string, number, number] | undefined;
  for (const id of ids) {
    let j = id.length;
    while (j > 0 && id.charCodeAt(j - 1) >= 48 && id.charCodeAt(j - 1) <= 57) j--;
    const digits = id.length - j;
    if (digits === 0 || digits > 15 || (digits > 1 && id.charCodeAt(j) === 48)) {
      out.push(id);
      run = undefined;
      continue;
    }
    const n = Number(id.slice(j));
    const prefix = id.slice(0, j);
    if (run !== undefined && run[0] === prefix && run[1] + run[2] === n) run[2]++;
    else out.push((run = [prefix, n, 1]));
  }
  return out.map(r => (typeof r !== 'string' && r[2] === 1 ? `${r[0]}${r[1]}` : r));
}

export function unpackIds(runs: IdRuns): string[] {
  const ids: string[] = [];
  for (const r of runs) {
    if (typeof r === 'string') ids.push(r);
    else for (let n = r[1], end = r[1] + r[2]; n < end; n++) ids.push(`${r[0]}${n}`);
  }
  return ids;
}

/**
 * A numeric column: one value for every row; or runs, `{ runs: [value, count, value, count, …] }`
 * (a running task's rows: the done ones, then the pending ones); or one value a row.
 */
export type Column = number | { readonly runs: readonly number[] } | readonly number[];

export const STATE_LETTER: Readonly<Record<SubtaskRow['state'], string>> = { pending: 'p', waiting: 'w', running: 'r', done: 'd', failed: 'f' };
export const LETTER_STATE: Readonly<Record<string, SubtaskRow['state']>> = { p: 'pending', w: 'waiting', r: 'running', d: 'done', f: 'failed' };

/** `values` as a column: one number when they are all the same, runs when they are few. */
export function column(values: ArrayLike<number>): Column {
  const runs: number[] = [];
  for (let i = 0; i < values.length; ) {
    const value = values[i] as number;
    let j = i + 1;
    while (j < values.length && values[j] === value) j++;
    runs.push(value, j - i);
    // Past a run every eight rows, runs are no smaller than the values.
    if (runs.length > 2 && runs.length > values.length / 4) return Array.isArray(values) ? (values as readonly number[]) : Array.from(values);
    i = j;
  }
  if (runs.length <= 2) return runs[0] ?? 0;
  return { runs };
}

/** A column's `n` values. */
export function expandColumn(c: Column, n: number): number[] {
  return fillColumn(new Array<number>(n), c, n);
}

/** A column's `n` values into `out[0..n)` (a typed array: no array of `n` numbers between). */
export function fillColumn<T extends number[] | Uint8Array | Int32Array | Float64Array>(out: T, c: Column, n: number): T {
  if (typeof c === 'number') out.fill(c, 0, n);
  else if ('runs' in c) {
    const runs = c.runs;
    let i = 0;
    for (let k = 0; k + 1 < runs.length && i < n; k += 2) {
      const end = Math.min(n, i + (runs[k + 1] as number));
      out.fill(runs[k] as number, i, end);
      i = end;
    }
  } else {
    const values = c as readonly number[];
    for (let i = 0; i < n; i++) out[i] = values[i] as number;
  }
  return out;
}

const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Value of each digit of {@link packIndices} by its char code (127 and below). */
const INDEX_DIGIT = new Uint8Array(128);
for (let i = 0; i < DIGITS.length; i++) INDEX_DIGIT[DIGITS.charCodeAt(i)] = i;

/**
 * Small indices (-1: none) as one string, each in the same number of base-64 digits (two for up
 * to 4,095 values): 50,000 rows naming 1,000 agents are 100 KB of one string to parse, not 200 KB
 * of numbers. The width is the string's length over the rows'.
 */
export function packIndices(values: ArrayLike<number>, max: number): string {
  let width = 1;
  while (64 ** width <= max + 1) width++;
  // Each value's digits looked up (two digits: 4,096 codes made once), joined once.
  const codes = width <= 2 ? indexCodes(width) : undefined;
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    let code = codes?.[v + 1];
    if (code === undefined) {
      code = '';
      for (let k = 0, x = v + 1; k < width; k++, x = Math.floor(x / 64)) code = (DIGITS[x % 64] as string) + code;
    }
    parts[i] = code;
  }
  return parts.join('');
}

const CODES: string[][] = [];
function indexCodes(width: number): string[] {
  let codes = CODES[width];
  if (codes === undefined) {
    codes = [];
    for (let x = 0; x < 64 ** width; x++) codes.push(width === 1 ? (DIGITS[x] as string) : (DIGITS[x >> 6] as string) + (DIGITS[x & 63] as string));
    CODES[width] = codes;
  }
  return codes;
}

export function unpackIndices(packed: string, n: number): number[] {
  return unpackIndicesInto(new Array<number>(n), packed, n);
}

/** {@link packIndices}' `n` values into `out[0..n)` (a typed array: no array of `n` numbers between). */
export function unpackIndicesInto<T extends number[] | Int32Array>(out: T, packed: string, n: number): T {
  const width = n === 0 ? 1 : packed.length / n;
  for (let i = 0, p = 0; i < n; i++) {
    let x = 0;
    for (let k = 0; k < width; k++) x = x * 64 + (INDEX_DIGIT[packed.charCodeAt(p++) & 127] as number);
    out[i] = x - 1;
  }
  return out;
}

export function unpackSubtask(taskId: string, [id, state, agent, attempt, attempts, progress, hedged, since, reason]: SubtaskTuple): SubtaskRow {
  return reason === undefined ? { id, taskId, state, agent, attempt, attempts, progress, hedged: hedged === 1, since } : { id, taskId, state, agent, attempt, attempts, progress, hedged: hedged === 1, since, reason };
}

/** What the dashboard measures of itself, as `window.__rxswarm` (read by the browser tests and the benchmark). */
export interface PageMeasures {
  /** ms from navigation to the first render with the service's state (agents, tasks, attention). */
  firstRenderMs: number | null;
  /** ms from navigation to the first render holding every subtask row too. */
  allRowsMs: number | null;
  /** ms from the earliest change in a batch (service clock) to its render (page clock), per batch: the last 2,000. */
  lags: number[];
  batches: number;
  renders: number;
  /** ms from navigation: the hello answered, the first state received and applied. */
  marks: Record<string, number>;
}

/** The index of `value` in `values` (added at the end if new), found through `index`: a small table of the names rows repeat. */
export function intern(values: string[], index: Map<string, number>, value: string): number {
  let i = index.get(value);
  if (i === undefined) {
    i = values.length;
    values.push(value);
    index.set(value, i);
  }
  return i;
}
