import type { SubtaskRow } from '../src/swarmRows.js';
import { STATES, SubtaskCells } from '../src/subtaskCells.js';
import type { IdRuns, SubtaskColumns, SubtaskTuple } from '../src/swarmWire.js';

/** Where a numbered run of ids starts, for finding a row by id without a map of every id. */
interface Run {
  readonly prefix: string;
  readonly first: number;
  readonly count: number;
  /** Index of its first row. */
  readonly at: number;
}

/**
 * A task's subtask rows as the page keeps them: columns in the task's order, as they came (see
 * `SubtaskColumns` in src/swarmWire.ts), changed in place by the rows of later batches. Rows are
 * made only for the few on screen; the list filters by the state column (a byte a row).
 *
 * Made from a first frame at once: the columns are decoded straight into typed arrays (no array
 * of 50,000 numbers in between), and the ids stay numbered runs — an id is made when its row is
 * drawn, and a row is found by its id from its run (its number less the run's first), so the
 * first batch of changed rows builds no map of 50,000 ids either.
 */
export class SubtaskTable {
  private n: number;
  /** Ids as they came, in runs; `runIndex` finds a run's rows, `named` the rows not in a run. */
  private readonly runs: Run[] = [];
  /** Run starts in row order (binary search from a row to its run). */
  private readonly runAt: number[] = [];
  /** Runs by prefix (usually one prefix: `s-`). */
  private readonly byPrefix = new Map<string, Run[]>();
  /** Ids not in a numbered run (and rows added later), by id; `nameOf` the reverse. */
  private readonly named = new Map<string, number>();
  private readonly nameOf = new Map<number, string>();
  /** The rows' values, one slot a row (see `SUBTASK_COLUMNS`). */
  private readonly cells: SubtaskCells;
  /** Changes of each row: what a rendered row compares to skip drawing itself again. */
  private revision: Int32Array;

  constructor(
    readonly taskId: string,
    c?: SubtaskColumns,
  ) {
    const n = c === undefined ? 0 : this.takeIds(c.ids);
    this.n = n;
    const room = Math.max(16, n);
    this.cells = new SubtaskCells(room, 0);
    this.revision = new Int32Array(room);
    if (c !== undefined) this.cells.decode(c, n);
  }

  get length(): number {
    return this.n;
  }

  /** The id of row `i` (made now: ids in runs are not kept as strings). */
  idAt(i: number): string {
    const name = this.nameOf.get(i);
    if (name !== undefined) return name;
    // The last run starting at or before i.
    let lo = 0;
    let hi = this.runAt.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.runAt[mid] as number) <= i) lo = mid;
      else hi = mid - 1;
    }
    const run = this.runs[lo];
    return run === undefined ? '' : `${run.prefix}${run.first + i - run.at}`;
  }

  /** The row of `id`, or undefined. */
  indexOf(id: string): number | undefined {
    const named = this.named.get(id);
    if (named !== undefined || this.runs.length === 0) return named;
    // As packIds reads a numbered id: decimal digits at the end, no leading zero, at most 15.
    let j = id.length;
    while (j > 0 && id.charCodeAt(j - 1) >= 48 && id.charCodeAt(j - 1) <= 57) j--;
    const digits = id.length - j;
    if (digits === 0 || digits > 15 || (digits > 1 && id.charCodeAt(j) === 48)) return undefined;
    const number = Number(id.slice(j));
    for (const run of this.byPrefix.get(id.slice(0, j)) ?? []) if (number >= run.first && number < run.first + run.count) return run.at + number - run.first;
    return undefined;
  }

  /** Sets one row from a batch's tuple (a row not known yet is added at the end). Returns its `since`. */
  set(tuple: SubtaskTuple): number {
    const id = tuple[0];
    let i = this.indexOf(id);
    if (i === undefined) {
      i = this.n++;
      this.named.set(id, i);
      this.nameOf.set(i, id);
      if (i >= this.revision.length) this.grow();
    }
    this.cells.writeTuple(i, tuple);
    this.revision[i] = (this.revision[i] as number) + 1;
    return tuple[7];
  }

  /** Row indices whose state is `state`, in the task's order. */
  select(state: SubtaskRow['state'] | string): Int32Array {
    const n = this.n;
    const states = this.cells.states;
    const code = STATES.indexOf(state as SubtaskRow['state']);
    let count = 0;
    for (let i = 0; i < n; i++) if (states[i] === code) count++;
    const out = new Int32Array(count);
    for (let i = 0, k = 0; i < n; i++) if (states[i] === code) out[k++] = i;
    return out;
  }

  revisionOf(i: number): number {
    return this.revision[i] ?? 0;
  }

  row(i: number): SubtaskRow {
    return this.cells.row(i, this.idAt(i), this.taskId);
  }

  /** Numbered runs kept as runs, other ids by name. Returns how many rows. */
  private takeIds(ids: IdRuns): number {
    let n = 0;
    for (const r of ids) {
      if (typeof r === 'string') {
        this.named.set(r, n);
        this.nameOf.set(n, r);
        n++;
        continue;
      }
      const run: Run = { prefix: r[0], first: r[1], count: r[2], at: n };
      this.runs.push(run);
      this.runAt.push(n);
      let same = this.byPrefix.get(run.prefix);
      if (same === undefined) this.byPrefix.set(run.prefix, (same = []));
      same.push(run);
      n += r[2];
    }
    return n;
  }

  private grow(): void {
    const room = this.revision.length * 2;
    this.cells.grow(room, 0);
    const revision = new Int32Array(room);
    revision.set(this.revision);
    this.revision = revision;
  }
}
