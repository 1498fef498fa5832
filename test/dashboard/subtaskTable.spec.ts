import { SubtaskTable } from '../../dashboard/subtaskTable.js';
import { SUBTASK_COLUMNS, unpackColumns } from '../../src/subtaskCells.js';
import { TaskColumns } from '../../src/swarmColumns.js';
import type { SubtaskRow } from '../../src/swarmRows.js';
import { packIds, packSubtasks, type SubtaskColumns, type SubtaskTuple } from '../../src/swarmWire.js';

// The page's table of a task's rows: made from columns as they travel, ids kept as runs.

/** Rows as the service sends them: written into its TaskColumns, encoded, through JSON. */
function columnsOf(taskId: string, rows: readonly SubtaskRow[]): SubtaskColumns {
  const columns = new TaskColumns(taskId, packIds(rows.map(r => r.id)), rows.length, 0);
  rows.forEach((r, i) => columns.write(i, { ...r, reason: r.reason }));
  return JSON.parse(JSON.stringify(columns.encode())) as SubtaskColumns;
}

const row = (id: string, over: Partial<SubtaskRow> = {}): SubtaskRow => ({ id, taskId: 't', state: 'pending', agent: null, attempt: null, attempts: 0, progress: 0, hedged: false, since: 1000, ...over });
const rowsOf = (table: SubtaskTable): SubtaskRow[] => Array.from({ length: table.length }, (_, i) => table.row(i));

describe('SubtaskTable', () => {
  it('holds the rows its columns were made of: runs of ids, named ids, every column', () => {
    const rows = [
      row('s-0', { state: 'done', agent: 'a', attempt: 1, attempts: 1, progress: 1, since: 1500 }),
      row('s-1', { state: 'running', agent: 'b', attempt: 2, attempts: 2, progress: 0.25, hedged: true, since: 1200, reason: 'requeued: a is down' }),
      row('odd'),
      row('s-02', { state: 'waiting', reason: 'no agent has gpu' }),
      row('s-2', { state: 'failed', reason: 'requeued: a is down', since: 900 }),
      row('s-3'),
      row('x9'),
    ];
    const table = new SubtaskTable('t', columnsOf('t', rows));
    expect(table.length).toBe(rows.length);
    expect(rowsOf(table)).toEqual(rows);
    expect(rows.map(r => table.indexOf(r.id))).toEqual(rows.map((_, i) => i));
    expect(['s-4', 's-00', 'x8', 'y', 's-'].map(id => table.indexOf(id))).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('50,000 numbered rows: one run, found by number, one state letter a run', () => {
    const n = 50_000;
    const rows = Array.from({ length: n }, (_, i) => row(`s-${i}`, i < 49_000 ? { state: 'done', agent: `agent-${i % 1000}`, attempt: i, attempts: 1, progress: 1, since: 1000 + i } : {}));
    const c = columnsOf('t', rows);
    expect(c.ids).toEqual([['s-', 0, n]]);
    const table = new SubtaskTable('t', c);
    expect(table.length).toBe(n);
    for (const i of [0, 1, 999, 48_999, 49_000, n - 1]) {
      expect(table.idAt(i)).toBe(`s-${i}`);
      expect(table.indexOf(`s-${i}`)).toBe(i);
      expect(table.row(i)).toEqual(rows[i]);
    }
    expect(table.select('pending').length).toBe(1000);
    expect(table.select('done')[0]).toBe(0);
  });

  it('takes changed rows in place (their revision moves) and new ones at the end, past its first room', () => {
    const table = new SubtaskTable('t', columnsOf('t', [row('s-0'), row('s-1')]));
    const tuple = (id: string, state: SubtaskRow['state'], since: number): SubtaskTuple => [id, state, 'a', 1, 1, state === 'done' ? 1 : 0.5, 0, since];
    expect(table.set(tuple('s-1', 'running', 2000))).toBe(2000);
    expect(table.revisionOf(1)).toBe(1);
    expect(table.revisionOf(0)).toBe(0);
    expect(table.row(1)).toEqual(row('s-1', { state: 'running', agent: 'a', attempt: 1, attempts: 1, progress: 0.5, since: 2000 }));
    for (let i = 2; i < 40; i++) table.set(tuple(`s-${i}`, 'done', 3000 + i));
    table.set(['late', 'failed', null, null, 0, 0, 0, 5000, 'cancelled']);
    expect(table.length).toBe(41);
    expect(table.idAt(39)).toBe('s-39');
    expect(table.indexOf('s-39')).toBe(39);
    expect(table.row(40)).toEqual(row('late', { state: 'failed', since: 5000, reason: 'cancelled' }));
    expect(table.row(0)).toEqual(row('s-0'));
  });

  it('an empty table (rows of a task it never had whole)', () => {
    const table = new SubtaskTable('t');
    expect(table.length).toBe(0);
    table.set(['a', 'running', 'x', 3, 1, 0.1, 1, 7]);
    expect(rowsOf(table)).toEqual([row('a', { state: 'running', agent: 'x', attempt: 3, attempts: 1, progress: 0.1, hedged: true, since: 7 })]);
  });

  it('the service encodes and the page decodes every column alike: every field set, optional fields missing', () => {
    const full = row('s-0', { state: 'running', agent: 'a', attempt: 7, attempts: 2, progress: 0.457, hedged: true, since: 1234.5, reason: 'requeued: b is down' });
    expect(Object.keys(full)).toEqual(expect.arrayContaining(SUBTASK_COLUMNS.map(c => c.field)));
    const rows = [
      full,
      row('s-1'),
      row('s-2', { state: 'done', agent: 'b', attempt: 8, attempts: 1, progress: 1, since: 900 }),
      row('odd', { state: 'waiting', reason: 'no agent has gpu', since: 2000 }),
      row('s-4', { state: 'failed', agent: 'a', attempts: 3, reason: 'too many attempts', since: 1500 }),
      { ...full, id: 's-5', reason: 'no agent has gpu' },
    ];
    // The whole task at once (columns), and row by row (a batch's tuples into an empty table).
    const whole = new SubtaskTable('t', columnsOf('t', rows));
    expect(rowsOf(whole)).toEqual(rows);
    expect(unpackColumns(columnsOf('t', rows))).toEqual(rows);
    const batched = new SubtaskTable('t');
    for (const [, tuples] of JSON.parse(JSON.stringify(packSubtasks(rows))) as ReturnType<typeof packSubtasks>) for (const tuple of tuples) batched.set(tuple);
    expect(rowsOf(batched)).toEqual(rows);
  });
});
