import type { SubtaskRow } from '../../src/swarmRows.js';
import { STATES, foldStates, unfoldStates, unpackColumns } from '../../src/subtaskCells.js';
import { STATE_LETTER, column, expandColumn, packIds, packIndices, unpackIndices, unpackIds } from '../../src/swarmWire.js';

/** Letters to the state codes a table keeps. */
const codes = (letters: readonly string[]): Uint8Array => Uint8Array.from(letters, l => STATES.findIndex(s => STATE_LETTER[s] === l));

// How the dashboard's bulky parts travel: ids in numbered runs, a task's rows as columns.

describe('swarmWire', () => {
  it.each([
    ['a numbered run is one entry', ['s-0', 's-1', 's-2'], [['s-', 0, 3]]],
    ['a lone numbered id is itself', ['s-7'], ['s-7']],
    ['a gap starts a new run', ['a1', 'a2', 'a4', 'a5'], [['a', 1, 2], ['a', 4, 2]]],
    ['another prefix starts a new run', ['x1', 'x2', 'y3', 'y4'], [['x', 1, 2], ['y', 3, 2]]],
    ['leading zeros are kept as they are', ['f01', 'f02'], ['f01', 'f02']],
    ['no digits', ['alpha', 'beta'], ['alpha', 'beta']],
    ['digits alone', ['9', '10', '11'], [['', 9, 3]]],
    ['too many digits for a number', ['n1234567890123456', 'n1234567890123457'], ['n1234567890123456', 'n1234567890123457']],
    ['nothing', [], []],
  ] as const)('ids: %s', (_, ids, runs) => {
    expect(packIds(ids)).toEqual(runs);
    expect(unpackIds(packIds(ids))).toEqual(ids);
  });

  it.each([
    [[], ''],
    [['d'], 'd'],
    [['d', 'd', 'd', 'r', 'p', 'p'], 'd3rp2'],
    [Array.from({ length: 12 }, () => 'f'), 'f12'],
  ])('states %j fold to %j', (letters, packed) => {
    expect(foldStates(codes(letters), letters.length)).toBe(packed);
    const out = new Uint8Array(letters.length);
    unfoldStates(out, packed, letters.length);
    expect(out).toEqual(codes(letters));
  });

  it.each([
    [[], 0],
    [[-1, 0, 1], 1],
    [[62, -1], 62],
    [[63, 0, 4094], 4094],
    [[4095, 7], 4095],
  ])('indices %j (at most %i) travel in one string', (values, max) => {
    const packed = packIndices(values, max);
    expect(packed.length).toBe(values.length * (max + 1 < 64 ? 1 : max + 1 < 4096 ? 2 : 3));
    expect(unpackIndices(packed, values.length)).toEqual(values);
  });

  it.each([
    ['one number when every row has it', [3, 3, 3], 3],
    ['nothing', [], 0],
    ['values when runs would be no smaller', [3, 4], [3, 4]],
    ['runs when they are few', [...Array.from({ length: 12 }, () => 1000), ...Array.from({ length: 12 }, () => 0)], { runs: [1000, 12, 0, 12] }],
    ['values when they change often', [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2], [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]],
  ])('columns: %s', (_, values, packed) => {
    expect(column(values)).toEqual(packed);
    expect(expandColumn(column(values), values.length)).toEqual(values);
  });

  it('columns turn back into the rows they were made of', () => {
    const rows: SubtaskRow[] = [
      { id: 's-0', taskId: 't', state: 'done', agent: 'a', attempt: 3, attempts: 1, progress: 1, hedged: false, since: 1500 },
      { id: 's-1', taskId: 't', state: 'running', agent: 'b', attempt: 4, attempts: 2, progress: 0.25, hedged: true, since: 1200, reason: 'requeued: a is down' },
      { id: 'odd', taskId: 't', state: 'waiting', agent: null, attempt: null, attempts: 0, progress: 0, hedged: false, since: 1000, reason: 'no agent has gpu' },
    ];
    const c = {
      taskId: 't',
      ids: packIds(rows.map(r => r.id)),
      states: 'drw',
      agents: ['a', 'b'],
      agent: packIndices([0, 1, -1], 1),
      attempt: [3, 4, -1],
      attempts: [1, 2, 0],
      progress: [1000, 250, 0],
      hedged: [0, 1, 0],
      sinceBase: 1000,
      since: [500, -300, -200],
      reasons: ['requeued: a is down', 'no agent has gpu'],
      reason: [-1, 0, 1],
    };
    expect(unpackColumns(c)).toEqual(rows);
  });
});
