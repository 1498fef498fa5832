import { SubtaskCells, type RowFields } from './subtaskCells.js';
import type { IdRuns, SubtaskColumns } from './swarmWire.js';

/**
 * A task's subtask rows kept as typed columns, one slot a row, written when a row changes: what a
 * page opening now gets is encoded from them (a few tight loops over typed arrays) instead of
 * gathered from 50,000 entries on demand, while the coordinator runs the task. Ids never change:
 * they are folded into runs once, when the task is queued; a child a subtask delegates is a row
 * appended (`append`), its id added as itself.
 *
 * @example
 * const rows = new TaskColumns('t', packIds(ids), ids.length, now);
 * rows.write(3, entry); // at every change of row 3
 * rows.encode();        // SubtaskColumns: the wire form of every row now
 */
export class TaskColumns {
  /** The rows' values, one slot a row (see `SUBTASK_COLUMNS`). */
  private readonly cells: SubtaskCells;
  /** The rows' ids, folded (see `packIds`), children appended as themselves. */
  private readonly idRuns: Array<IdRuns[number]>;
  /** Rows (the columns may hold room for more). */
  private rowCount: number;

  constructor(
    readonly taskId: string,
    /** The rows' ids, folded (see `packIds`). */
    ids: IdRuns,
    length: number,
    /** When the rows were made (every row's `since` until it changes). */
    at: number,
  ) {
    this.idRuns = [...ids];
    this.rowCount = length;
    this.cells = new SubtaskCells(length, at);
  }

  /** The rows' ids, folded. */
  get ids(): IdRuns {
    return this.idRuns;
  }

  get length(): number {
    return this.rowCount;
  }

  /** A row more at the end (a child a subtask delegated), pending since `at`: its index. */
  append(id: string, at: number): number {
    const i = this.rowCount++;
    this.idRuns.push(id);
    // Room doubles: a task's children cost amortised O(1) each.
    if (i >= this.cells.room) this.cells.grow(Math.max(8, 2 * this.cells.room), at);
    this.cells.clear(i, at);
    return i;
  }

  /** Row `i` now shows `s`. */
  write(i: number, s: RowFields): void {
    this.cells.write(i, s);
  }

  /** Every row as the wire's columns (see {@link SubtaskColumns}). */
  encode(): SubtaskColumns {
    return this.cells.encode(this.rowCount, { taskId: this.taskId, ids: this.idRuns.slice() });
  }
}
