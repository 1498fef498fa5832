import type { CoordinationEvent } from '../../src/events.js';
import { attentionOf } from '../../src/swarmAttention.js';
import type { AgentRow } from '../../src/swarmRows.js';
import { SwarmView } from '../../src/swarmView.js';
import { unpackColumns } from '../../src/subtaskCells.js';

// The service's view of itself, driven by hand: a clock, connections, beats, events.

function setup() {
  let now = 1000;
  const view = new SwarmView(() => now, { phi: { firstHeartbeatEstimateMs: 100, acceptableHeartbeatPauseMs: 200, minStdDeviationMs: 10 }, keepTasks: 2 });
  return { view, at: (t: number) => (now = t), get now() { return now; } };
}

const assigned = (subtaskId: string, agentId: string, attempt: number, at: number): CoordinationEvent => ({ type: 'subtask.assigned', at, subtaskId, agentId, attempt, hops: 1 });

describe('SwarmView', () => {
  it('follows a task: queued with its position, running, progress, done', () => {
    const t = setup();
    t.view.connected('a', [], 2);
    t.view.taskQueued({ id: 'one', subtasks: [{ id: 's1' }, { id: 's2' }] });
    t.view.taskQueued({ id: 'two', subtasks: [{ id: 'x' }] });
    t.view.queue(['one', 'two']);
    expect(t.view.taskRows().map(r => [r.id, r.state, r.queuePosition])).toEqual([['one', 'queued', 1], ['two', 'queued', 2]]);
    t.view.queue(['two']);
    t.view.taskStarted('one');
    t.view.event(assigned('s1', 'a', 5, 1100), 'one');
    t.view.progress('s1', 5, 0, 'a');
    t.view.progress('s1', 5, 0, 'a'); // a repeat is not recorded
    t.view.progress('s1', 5, 0.5, 'relay'); // a relay's report is noise
    t.view.progress('s1', 5, 0.5, 'a');
    t.view.event({ type: 'subtask.completed', at: 1300, subtaskId: 's1', agentId: 'a', attempt: 5 }, 'one');
    const [one, two] = t.view.taskRows();
    expect(one).toMatchObject({ state: 'running', completed: 1, failed: 0, running: 0, progress: 0.5, queuePosition: null });
    expect(two).toMatchObject({ state: 'queued', queuePosition: 1 });
    expect(t.view.timeline('one', 's1')!.map(e => e.step)).toEqual(['assigned', 'acknowledged', 'progress', 'completed']);
    expect(t.view.agentRows(false)[0]).toMatchObject({ running: 0 });
    t.view.taskEnded('one', 'cancelled', 'cancelled');
    expect(t.view.subtaskRows().find(s => s.id === 's2')).toMatchObject({ state: 'failed', reason: 'cancelled' });
    expect(t.view.taskRows()[0]).toMatchObject({ state: 'cancelled', completed: 1, failed: 1, progress: 1 });
  });

  it('tells a hedge from a requeue, and releases the attempts either way', () => {
    const t = setup();
    t.view.connected('a', [], 1);
    t.view.connected('b', [], 1);
    t.view.taskQueued({ id: 'k', subtasks: [{ id: 's' }] });
    t.view.taskStarted('k');
    t.view.event(assigned('s', 'a', 1, 1000), 'k');
    t.view.event(assigned('s', 'b', 2, 1500), 'k'); // still running on a: a backup attempt
    expect(t.view.subtaskRows()[0]).toMatchObject({ state: 'running', hedged: true, attempts: 2 });
    expect(t.view.attention().map(a => a.kind)).toContain('hedged');
    t.view.event({ type: 'subtask.completed', at: 1600, subtaskId: 's', agentId: 'b', attempt: 2 }, 'k');
    expect(t.view.agentRows(false).map(a => a.running)).toEqual([0, 0]);
    expect(t.view.timeline('k', 's')!.map(e => e.step)).toEqual(['assigned', 'hedged', 'completed']);
  });

  it('suspects a silent agent by phi, takes the coordinator’s verdict, and keeps the changes', () => {
    const t = setup();
    t.view.connected('a', [], 1);
    for (let i = 0; i <= 10; i++) {
      t.at(1000 + i * 100);
      t.view.heartbeat('a', 0.5, 1);
    }
    t.at(2100);
    t.view.watch();
    expect(t.view.agentRows(false)[0]!.state).toBe('alive');
    t.at(3000);
    t.view.watch();
    const row = t.view.agentRows(false)[0]!;
    expect(row.state).toBe('suspected');
    expect(row.phi).toBeGreaterThanOrEqual(8);
    const strip = t.view.attention();
    expect(strip[0]).toMatchObject({ kind: 'suspected', agentId: 'a', lastBeatAgeMs: 1000 });
    t.view.event({ type: 'agent.down', at: 3000, agentId: 'a', reason: 'phi 8 ≥ 8' }, 'k');
    expect(t.view.agentRows(false)[0]!.transitions.map(c => c.state)).toEqual(['alive', 'suspected', 'down']);
  });

  it('hands out changes once, and forgets finished tasks beyond keepTasks', () => {
    const t = setup();
    for (const id of ['t1', 't2', 't3']) {
      t.view.taskQueued({ id, subtasks: [{ id: 's' }] });
      t.view.taskStarted(id);
      t.view.taskEnded(id, 'failed', 'no agents');
    }
    const changes = t.view.changes()!;
    expect(changes.removed).toEqual(['t1']);
    expect(changes.tasks.map(r => r.id).sort()).toEqual(['t2', 't3']);
    expect(t.view.changes()).toBeUndefined();
    expect(t.view.subtaskRows().map(s => s.taskId)).toEqual(['t2', 't3']);
  });

  it('shows a running task under the protocol in force, and follows a switch', () => {
    const t = setup();
    t.view.event({ type: 'protocol.selected', at: 1000, protocol: 'hierarchical', reason: 'decision matrix' }, '');
    t.view.taskQueued({ id: 'one', subtasks: [{ id: 's' }] });
    expect(t.view.taskRows()[0]!.protocol).toBeNull();
    t.view.taskStarted('one');
    expect(t.view.taskRows()[0]!.protocol).toBe('hierarchical');
    t.view.event({ type: 'protocol.switched', at: 2000, switch: { from: 'hierarchical', to: 'mesh', at: 2000, reason: 'r', scores: {} }, inFlight: 0 } as CoordinationEvent, '');
    expect(t.view.taskRows()[0]!.protocol).toBe('mesh');
  });

  it('forgets agents gone a minute with nothing running while no task ends: ids that come and go do not pile up', () => {
    const t = setup();
    for (let i = 0; i < 100; i++) {
      t.view.connected(`x-${i}`, [], 1);
      t.view.disconnected(`x-${i}`);
    }
    t.view.connected('stays', [], 1);
    // Sampled once a second: looked for once a minute, forgotten once gone longer than that.
    for (let second = 1; second <= 120; second++) {
      t.at(1000 + second * 1000);
      t.view.sample();
    }
    expect(t.view.agentRows(false).map(a => a.id)).toEqual(['stays']);
  });

  it('hands out a task queued whole, as columns, and only the rows changed after it as rows', () => {
    const t = setup();
    t.view.connected('a', [], 1);
    t.view.taskQueued({ id: 'big', subtasks: Array.from({ length: 1000 }, (_, i) => ({ id: `s-${i}` })) });
    t.view.taskStarted('big');
    t.view.event(assigned('s-3', 'a', 1, 1100), 'big');
    const first = t.view.changes()!;
    expect(first.subtasks).toEqual([]);
    expect(first.columns).toHaveLength(1);
    expect(first.columns[0]!.ids).toEqual([['s-', 0, 1000]]);
    const rows = unpackColumns(first.columns[0]!);
    expect(rows).toHaveLength(1000);
    expect(rows[3]).toEqual(t.view.subtaskRows()[3]);
    expect(rows[3]).toMatchObject({ id: 's-3', state: 'running', agent: 'a', attempt: 1 });
    t.view.event({ type: 'subtask.completed', at: 1200, subtaskId: 's-3', agentId: 'a', attempt: 1 }, 'big');
    const next = t.view.changes()!;
    expect(next.columns).toEqual([]);
    expect(next.subtasks.map(r => [r.id, r.state])).toEqual([['s-3', 'done']]);
    // A watcher that comes now gets every task as columns: the same rows.
    expect(t.view.subtaskColumns().flatMap(unpackColumns)).toEqual(t.view.subtaskRows());
  });

  it('keeps a task\'s columns as its rows change: each kind of change, and a page opening between them', () => {
    const t = setup();
    t.view.connected('a', [], 2);
    t.view.connected('b', [], 2);
    t.view.taskQueued({ id: 'k', subtasks: [...Array.from({ length: 40 }, (_, i) => ({ id: `s-${i}` })), { id: 'odd' }, { id: 's-07' }] });
    t.view.taskStarted('k');
    const same = (): void => expect(t.view.subtaskColumns(['k']).flatMap(unpackColumns)).toEqual(t.view.subtaskRows());
    same();
    t.view.event(assigned('s-0', 'a', 1, 1100), 'k');
    t.view.event(assigned('s-1', 'b', 2, 1100), 'k');
    t.view.progress('s-1', 2, 0.25, 'b');
    same();
    t.view.event(assigned('s-1', 'a', 3, 1150), 'k'); // a hedge
    t.view.event({ type: 'subtask.completed', at: 1200, subtaskId: 's-0', agentId: 'a', attempt: 1 }, 'k');
    t.view.event({ type: 'subtask.requeued', at: 1250, subtaskId: 's-1', attempt: 2, reason: 'b is down' }, 'k');
    t.view.event({ type: 'subtask.waiting', at: 1300, subtaskIds: ['odd', 's-07'], capabilities: ['gpu'], reason: 'no live agent has gpu', failsAt: 61_300 }, 'k');
    same();
    t.view.event({ type: 'subtask.failed', at: 1400, subtaskId: 's-2', reason: 'too many attempts' }, 'k');
    for (let i = 3; i < 30; i++) {
      t.view.event(assigned(`s-${i}`, i % 2 === 0 ? 'a' : 'b', 10 + i, 1400 + i), 'k');
      t.view.event({ type: 'subtask.completed', at: 1500 + i, subtaskId: `s-${i}`, agentId: i % 2 === 0 ? 'a' : 'b', attempt: 10 + i }, 'k');
    }
    same();
    t.view.taskEnded('k', 'cancelled', 'cancelled');
    same();
    expect(t.view.subtaskRows().filter(r => r.state === 'done')).toHaveLength(28);
  });

  it('adds a row for each child a subtask delegates, kept in the columns as it runs and in the task\'s totals', () => {
    const t = setup();
    t.view.connected('a', [], 2);
    t.view.connected('b', [], 2);
    t.view.taskQueued({ id: 'k', subtasks: Array.from({ length: 20 }, (_, i) => ({ id: `s-${i}` })) });
    t.view.taskStarted('k');
    const same = (): void => expect(t.view.subtaskColumns(['k']).flatMap(unpackColumns)).toEqual(t.view.subtaskRows());
    t.view.event(assigned('s-3', 'a', 1, 1100), 'k');
    // More children than the columns' first room: they grow.
    for (let c = 0; c < 12; c++) t.view.event({ type: 'subtask.delegated', at: 1200 + c, subtaskId: `s-3/c${c}`, parentId: 's-3', agentId: 'a', attempt: 1 }, 'k');
    t.view.event({ type: 'subtask.delegated', at: 1300, subtaskId: 's-3/c0', parentId: 's-3', agentId: 'a', attempt: 1 }, 'k'); // told twice: one row
    same();
    t.view.event(assigned('s-3/c5', 'b', 2, 1400), 'k');
    t.view.event({ type: 'subtask.completed', at: 1500, subtaskId: 's-3/c5', agentId: 'b', attempt: 2 }, 'k');
    same();
    const rows = t.view.subtaskRows();
    expect(rows).toHaveLength(32);
    expect(rows.slice(20).map(r => r.id)).toEqual(Array.from({ length: 12 }, (_, c) => `s-3/c${c}`));
    expect(rows.find(r => r.id === 's-3/c5')).toMatchObject({ state: 'done', agent: 'b' });
    expect(rows.find(r => r.id === 's-3/c0')).toMatchObject({ state: 'pending', since: 1200 });
    expect(t.view.taskRows().find(r => r.id === 'k')).toMatchObject({ subtasks: 32, completed: 1 });
  });

  it('names the subtasks waiting for a capable agent, with the reason, until they are assigned', () => {
    const t = setup();
    t.view.connected('a', ['cpu'], 1);
    t.view.taskQueued({ id: 'k', subtasks: [{ id: 'g1' }, { id: 'g2' }, { id: 'c' }] });
    t.view.taskStarted('k');
    const reason = 'no live agent has gpu';
    t.view.event({ type: 'subtask.waiting', at: 1100, subtaskIds: ['g1', 'g2'], capabilities: ['gpu'], reason, failsAt: 61_100 }, 'k');
    t.view.event({ type: 'subtask.waiting', at: 1200, subtaskIds: ['g1', 'g2'], capabilities: ['gpu'], reason, failsAt: 61_100 }, 'k'); // told again: one item
    let waiting = t.view.attention().filter(i => i.kind === 'waiting');
    expect(waiting).toHaveLength(1);
    expect(waiting[0]).toMatchObject({ taskId: 'k', subtaskIds: ['g1', 'g2'] });
    expect(waiting[0]!.text).toContain('g1, g2 of k wait: no live agent has gpu');
    expect(t.view.subtaskRows().find(r => r.id === 'g1')).toMatchObject({ state: 'waiting', reason });
    t.view.connected('b', ['gpu'], 1);
    t.view.event(assigned('g1', 'b', 7, 1300), 'k');
    waiting = t.view.attention().filter(i => i.kind === 'waiting');
    expect(waiting[0]!.text).toContain('g2 of k waits: no live agent has gpu');
    t.view.event(assigned('g2', 'b', 8, 1400), 'k');
    expect(t.view.attention().filter(i => i.kind === 'waiting')).toEqual([]);
  });

  it('follows several tasks running at once beside a queue', () => {
    const t = setup();
    t.view.connected('a', [], 4);
    for (const id of ['t1', 't2', 't3', 't4', 't5', 't6']) t.view.taskQueued({ id, subtasks: [{ id: 's' }] });
    t.view.queue(['t1', 't2', 't3', 't4', 't5', 't6']);
    for (const id of ['t1', 't2', 't3', 't4']) t.view.taskStarted(id);
    t.view.queue(['t5', 't6']);
    t.view.event(assigned('s', 'a', 1, 1100), 't1');
    t.view.event(assigned('s', 'a', 2, 1100), 't3');
    expect(t.view.taskRows().map(r => [r.id, r.state, r.queuePosition, r.running])).toEqual([
      ['t1', 'running', null, 1],
      ['t2', 'running', null, 0],
      ['t3', 'running', null, 1],
      ['t4', 'running', null, 0],
      ['t5', 'queued', 1, 0],
      ['t6', 'queued', 2, 0],
    ]);
    expect(t.view.agentRows(false)[0]).toMatchObject({ running: 2 });
  });

  it.each([
    ['nothing to say', [], 0],
    ['a majority not alive: the quorum at risk', ['alive', 'down', 'down'], 1],
    ['half alive is not a majority', ['alive', 'suspected'], 2],
  ] as const)('attention: %s', (_, states, expected) => {
    const agents: AgentRow[] = states.map((state, i) => ({ id: `a${i}`, state, phi: state === 'suspected' ? 9 : 0, lastBeatAt: 0, slots: 1, running: 0, usage: 0, capabilities: [], since: 0, transitions: [] }));
    const strip = attentionOf({ agents, healing: [], quorum: [], waiting: [], hedged: [], overdue: [], now: 1000 });
    expect(strip).toHaveLength(expected);
    if (expected > 0) expect(strip.map(s => s.kind)).toContain('quorum');
  });
});
