import type { SubtaskRow } from './swarmRows.js';
import { column, fillColumn, intern, packIndices, STATE_LETTER, unpackIds, unpackIndicesInto, type Column, type SubtaskColumns, type SubtaskTuple } from './swarmWire.js';

// The typed columns of a task's subtask rows, declared once: the service keeps and encodes them
// (TaskColumns, src/swarmColumns.ts), the page decodes and keeps them (SubtaskTable,
// dashboard/subtaskTable.ts). Shared with the dashboard (no Node modules here).

/** What a row shows of a subtask: a row without its ids, its reason always present (maybe undefined). */
export type RowFields = Omit<SubtaskRow, 'id' | 'taskId' | 'reason'> & { readonly reason: string | undefined };

/**
 * How a row's field is kept, one slot a row:
 * `state` a code (index into {@link STATES}); `name` an index into the column's names (-1: none);
 * `count` a whole number (-1: none); `thousandths` a fraction (a done row's is whole); `flag` 0/1;
 * `time` ms, travelling as steps from the row before.
 */
const CELL = { state: 0, name: 1, count: 2, thousandths: 3, flag: 4, time: 5 } as const;
type Cell = keyof typeof CELL;

interface ColumnSpec {
  readonly field: keyof RowFields;
  /**
   * The field of a row (`row[field]` at one site for every column is a lookup by name each time;
   * a function a column reads it as fast as a property: the service writes a row at every change).
   */
  readonly read: (row: RowFields) => unknown;
  readonly cell: Cell;
  /** Its key in {@link SubtaskColumns}. */
  readonly wire: keyof SubtaskColumns;
  /** `name`: the key of its names; `time`: the key of the first row's time. */
  readonly table?: keyof SubtaskColumns;
  /** `name` and `count`: what a row has where the column holds -1 (null, or no such field). */
  readonly none?: 'null' | 'absent';
  /** `name`: the indices travel as one string (see `packIndices`), not as a {@link Column}. */
  readonly packed?: true;
}

/**
 * The columns in the order they travel (and a batch's {@link SubtaskTuple} holds them, after the
 * id). A column more is an entry here, its field in `SubtaskRow` and its key in `SubtaskColumns`:
 * the compiler checks the last two against this list.
 */
export const SUBTASK_COLUMNS = [
  { field: 'state', read: r => r.state, cell: 'state', wire: 'states' },
  { field: 'agent', read: r => r.agent, cell: 'name', wire: 'agent', table: 'agents', none: 'null', packed: true },
  { field: 'attempt', read: r => r.attempt, cell: 'count', wire: 'attempt', none: 'null' },
  { field: 'attempts', read: r => r.attempts, cell: 'count', wire: 'attempts' },
  { field: 'progress', read: r => r.progress, cell: 'thousandths', wire: 'progress' },
  { field: 'hedged', read: r => r.hedged, cell: 'flag', wire: 'hedged' },
  { field: 'since', read: r => r.since, cell: 'time', wire: 'since', table: 'sinceBase' },
  { field: 'reason', read: r => r.reason, cell: 'name', wire: 'reason', table: 'reasons', none: 'absent' },
] as const satisfies readonly ColumnSpec[];

type Declared = (typeof SUBTASK_COLUMNS)[number];
// Every field of a row has its column, and every key of the wire's columns is written by one.
type Unread = Exclude<keyof RowFields, Declared['field']>;
type Unwritten = Exclude<keyof SubtaskColumns, 'taskId' | 'ids' | Declared['wire'] | Extract<Declared, { table: string }>['table']>;
const everyColumn: [Unread, Unwritten] extends [never, never] ? true : never = true;
void everyColumn;

const COLUMNS: readonly ColumnSpec[] = SUBTASK_COLUMNS;
/** The state column's place: written first, so that a row's progress can be read against its state. */
const STATE = 0;
/** Each column's cell as a number (`put` switches on it at every write: faster than on the name). */
const KIND = Uint8Array.from(COLUMNS, c => CELL[c.cell]);
/** Each column's `read`, in an array: the specs have several shapes, and a write reads them all. */
const READ = COLUMNS.map(c => c.read);

/** Each state's code is its index. */
export const STATES: readonly SubtaskRow['state'][] = ['pending', 'waiting', 'running', 'done', 'failed'];
const STATE_CODE = Object.fromEntries(STATES.map((s, code) => [s, code])) as Readonly<Record<SubtaskRow['state'], number>>;
const DONE = STATE_CODE.done;
/** The wire's letter of each state code, and the code of each letter by its char code. */
const CODE_LETTER = STATES.map(s => STATE_LETTER[s]);
const LETTER_CODE = new Uint8Array(128);
CODE_LETTER.forEach((letter, code) => (LETTER_CODE[letter.charCodeAt(0)] = code));

export type Cells = Uint8Array | Int32Array | Float64Array;

/** Where a row has no value: a name or count that is none, a time not yet known (`at`). */
function emptyOf(spec: ColumnSpec, at: number): number {
  return spec.cell === 'time' ? at : spec.none !== undefined || spec.cell === 'name' ? -1 : 0;
}

function cellsOf(spec: ColumnSpec, room: number): Cells {
  return spec.cell === 'time' ? new Float64Array(room) : spec.cell === 'state' || spec.cell === 'flag' ? new Uint8Array(room) : new Int32Array(room);
}

/**
 * A task's subtask rows as {@link SUBTASK_COLUMNS}: a typed array a column with room for some
 * rows, the names the rows repeat, and the wire's columns to and from them. Which rows exist and
 * their ids are the holder's (TaskColumns, SubtaskTable).
 */
export class SubtaskCells {
  /** One typed array a column, in the order of {@link SUBTASK_COLUMNS}. */
  private readonly cells: Cells[];
  /** For each `name` column, its names in the order first named and their indices (empty for the others). */
  private readonly names: string[][];
  private readonly nameIndex: Map<string, number>[];

  constructor(room: number, at: number) {
    this.cells = COLUMNS.map(spec => cellsOf(spec, room).fill(emptyOf(spec, at)));
    this.names = COLUMNS.map(() => []);
    this.nameIndex = COLUMNS.map(() => new Map());
  }

  /** Rows there is room for. */
  get room(): number {
    return (this.cells[STATE] as Cells).length;
  }

  /** The state codes, a byte a row (see {@link STATES}). */
  get states(): Uint8Array {
    return this.cells[STATE] as Uint8Array;
  }

  /** Room for `room` rows, the new ones empty (their time: `at`). */
  grow(room: number, at: number): void {
    for (let k = 0; k < COLUMNS.length; k++) {
      const old = this.cells[k] as Cells;
      const grown = cellsOf(COLUMNS[k] as ColumnSpec, room);
      grown.set(old as ArrayLike<number>);
      grown.fill(emptyOf(COLUMNS[k] as ColumnSpec, at), old.length);
      this.cells[k] = grown;
    }
  }

  /** Row `i` empty: pending since `at`. */
  clear(i: number, at: number): void {
    for (let k = 0; k < COLUMNS.length; k++) (this.cells[k] as Cells)[i] = emptyOf(COLUMNS[k] as ColumnSpec, at);
  }

  /** Row `i` now shows `fields`. */
  write(i: number, fields: RowFields): void {
    for (let k = 0; k < COLUMNS.length; k++) this.put(i, k, (READ[k] as ColumnSpec['read'])(fields));
  }

  /** Row `i` now shows a batch's tuple (the columns' values after its id). */
  writeTuple(i: number, tuple: SubtaskTuple): void {
    for (let k = 0; k < COLUMNS.length; k++) this.put(i, k, tuple[k + 1]);
  }

  private put(i: number, k: number, value: unknown): void {
    const cells = this.cells[k] as Cells;
    switch (KIND[k]) {
      case CELL.state:
        cells[i] = STATE_CODE[value as SubtaskRow['state']];
        return;
      case CELL.name:
        cells[i] = value === null || value === undefined ? -1 : intern(this.names[k] as string[], this.nameIndex[k] as Map<string, number>, value as string);
        return;
      case CELL.count:
        cells[i] = (value as number | null) ?? -1;
        return;
      case CELL.thousandths:
        cells[i] = (this.cells[STATE] as Cells)[i] === DONE ? 1000 : Math.round((value as number) * 1000);
        return;
      case CELL.flag:
        cells[i] = value ? 1 : 0;
        return;
      default:
        cells[i] = value as number;
    }
  }

  /** Row `i` as a row. */
  row(i: number, id: string, taskId: string): SubtaskRow {
    const row: Record<string, unknown> = { id, taskId };
    for (let k = 0; k < COLUMNS.length; k++) {
      const spec = COLUMNS[k] as ColumnSpec;
      const v = this.cells[k]?.[i] ?? 0;
      switch (spec.cell) {
        case 'state':
          row[spec.field] = STATES[v] ?? 'pending';
          break;
        case 'name':
          if (v >= 0) row[spec.field] = this.names[k]?.[v] ?? (spec.none === 'null' ? null : '');
          else if (spec.none === 'null') row[spec.field] = null;
          break;
        case 'count':
          row[spec.field] = v < 0 && spec.none === 'null' ? null : v;
          break;
        case 'thousandths':
          row[spec.field] = v / 1000;
          break;
        case 'flag':
          row[spec.field] = v === 1;
          break;
        case 'time':
          row[spec.field] = v;
      }
    }
    return row as unknown as SubtaskRow;
  }

  /** The first `n` rows as the wire's columns, after `head` (see {@link SubtaskColumns}). */
  encode(n: number, head: Pick<SubtaskColumns, 'taskId' | 'ids'>): SubtaskColumns {
    const wire: Record<string, unknown> = head;
    for (let k = 0; k < COLUMNS.length; k++) {
      const spec = COLUMNS[k] as ColumnSpec;
      const all = this.cells[k] as Cells;
      const cells = all.length === n ? all : all.subarray(0, n);
      switch (spec.cell) {
        case 'state':
          wire[spec.wire] = foldStates(cells, n);
          break;
        case 'name': {
          const names = this.names[k] as string[];
          wire[spec.table as string] = names.slice();
          wire[spec.wire] = spec.packed ? packIndices(cells, names.length - 1) : column(cells);
          break;
        }
        case 'time': {
          const base = n === 0 ? 0 : (cells[0] as number);
          const steps = new Float64Array(n);
          for (let i = 0, previous = base; i < n; i++) {
            const t = cells[i] as number;
            steps[i] = t - previous;
            previous = t;
          }
          wire[spec.table as string] = base;
          wire[spec.wire] = column(steps);
          break;
        }
        default:
          wire[spec.wire] = column(cells);
      }
    }
    return wire as unknown as SubtaskColumns;
  }

  /** Takes the wire's columns of `n` rows, decoded straight into the typed columns (no array of `n` numbers between). */
  decode(c: SubtaskColumns, n: number): void {
    const wire = c as unknown as Record<string, unknown>;
    for (let k = 0; k < COLUMNS.length; k++) {
      const spec = COLUMNS[k] as ColumnSpec;
      const cells = this.cells[k] as Cells;
      switch (spec.cell) {
        case 'state':
          unfoldStates(cells, wire[spec.wire] as string, n);
          break;
        case 'name': {
          const names = this.names[k] as string[];
          const index = this.nameIndex[k] as Map<string, number>;
          for (const name of (wire[spec.table as string] as readonly string[] | undefined) ?? []) index.set(name, names.push(name) - 1);
          if (spec.packed) unpackIndicesInto(cells as Int32Array, wire[spec.wire] as string, n);
          else fillColumn(cells, wire[spec.wire] as Column, n);
          break;
        }
        case 'time': {
          // Steps from the row before into times: a running sum from the base.
          fillColumn(cells, wire[spec.wire] as Column, n);
          let t = wire[spec.table as string] as number;
          for (let i = 0; i < n; i++) cells[i] = t += cells[i] as number;
          break;
        }
        default:
          fillColumn(cells, wire[spec.wire] as Column, n);
      }
    }
  }
}

/** Columns → rows (the tests' and small clients' way; the page keeps the columns). */
export function unpackColumns(c: SubtaskColumns): SubtaskRow[] {
  const ids = unpackIds(c.ids);
  const cells = new SubtaskCells(ids.length, 0);
  cells.decode(c, ids.length);
  return ids.map((id, i) => cells.row(i, id, c.taskId));
}

/** The first `n` state codes as they travel: letters with runs folded (`d49000r800p200`, see {@link SubtaskColumns.states}). */
export function foldStates(codes: Cells, n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; ) {
    const code = codes[i] as number;
    let j = i + 1;
    while (j < n && codes[j] === code) j++;
    const letter = CODE_LETTER[code] as string;
    parts.push(j - i > 1 ? `${letter}${j - i}` : letter);
    i = j;
  }
  return parts.join('');
}

/** Folded state letters into `n` codes, with no string of `n` letters between. */
export function unfoldStates(out: Cells, packed: string, n: number): void {
  let i = 0;
  for (let k = 0; k < packed.length && i < n; ) {
    const code = LETTER_CODE[packed.charCodeAt(k) & 127] as number;
    let j = k + 1;
    let count = 0;
    while (j < packed.length && packed.charCodeAt(j) >= 48 && packed.charCodeAt(j) <= 57) count = count * 10 + packed.charCodeAt(j++) - 48;
    const end = Math.min(n, i + (j > k + 1 ? count : 1));
    out.fill(code, i, end);
    i = end;
    k = j;
  }
}
