import { unpackColumns, type RowFields } from '../../src/subtaskCells.js';
import { TaskColumns } from '../../src/swarmColumns.js';
import type { SubtaskRow } from '../../src/swarmRows.js';
import { packIds } from '../../src/swarmWire.js';

// A task's rows as typed columns, written at each change, encoded into the wire's columns.

const pending = (since: number): RowFields => ({ state: 'pending', agent: null, attempt: null, attempts: 0, progress: 0, hedged: false, since, reason: undefined });
const rowOf = (taskId: string, id: string, f: RowFields): SubtaskRow => {
  const row: SubtaskRow = { id, taskId, state: f.state, agent: f.agent, attempt: f.attempt, attempts: f.attempts, progress: f.state === 'done' ? 1 : Math.round(f.progress * 1000) / 1000, hedged: f.hedged, since: f.since };
  return f.reason === undefined ? row : { ...row, reason: f.reason };
};

describe('TaskColumns', () => {
  it('a task just queued: one value a column, ids one run', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `s-${i}`);
    const c = new TaskColumns('t', packIds(ids), ids.length, 5000).encode();
    expect(c).toEqual({ taskId: 't', ids: [['s-', 0, 1000]], states: 'p1000', agents: [], agent: 'A'.repeat(1000), attempt: -1, attempts: 0, progress: 0, hedged: 0, sinceBase: 5000, since: 0, reasons: [], reason: -1 });
    expect(unpackColumns(c)).toEqual(ids.map(id => rowOf('t', id, pending(5000))));
  });

  it('rows written in any order and again: the columns say what each row shows last', () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const rows = new TaskColumns('t', packIds(ids), ids.length, 1000);
    const now: RowFields[] = ids.map(() => pending(1000));
    const write = (i: number, f: Partial<RowFields>): void => {
      now[i] = { ...(now[i] as RowFields), ...f };
      rows.write(i, now[i] as RowFields);
    };
    write(3, { state: 'running', agent: 'x', attempt: 1, attempts: 1, since: 1100 });
    write(0, { state: 'running', agent: 'y', attempt: 2, attempts: 1, since: 1050 });
    write(3, { progress: 0.4567 });
    write(0, { state: 'done', progress: 0.5, since: 1200 });
    write(1, { state: 'waiting', reason: 'no live agent has gpu', since: 1300 });
    write(4, { state: 'failed', agent: 'x', attempt: 3, attempts: 2, hedged: true, reason: 'too many attempts', since: 900 });
    expect(unpackColumns(rows.encode())).toEqual(ids.map((id, i) => rowOf('t', id, now[i] as RowFields)));
  });
});
