import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { map, timer } from 'rxjs';
import { createCoordinator, type Coordinator } from '../../src/coordinator.js';
import type { CoordinationEvent, CoordinationResult } from '../../src/events.js';
import type { LedgerEvent } from '../../src/ledger.js';
import { FileJournal, MemoryJournal, type Journal } from '../../streams/journal.js';
import type { InProcessAgent, Subtask, Task } from '../../streams/task.js';
import { VirtualScheduler } from '../../streams/virtualScheduler.js';

/** Every execution of a handler, across coordinators: subtask, attempt, agent. */
type Executions = Array<{ subtaskId: string; attempt: number; agentId: string }>;

function team(scheduler: VirtualScheduler, n: number, executions: Executions, workMs = (s: Subtask): number => (s.payload as { ms?: number } | undefined)?.ms ?? 100): InProcessAgent[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `agent-${i}`,
    capabilities: [],
    handle: (subtask: Subtask, context) => {
      executions.push({ subtaskId: subtask.id, attempt: context.attempt, agentId: `agent-${i}` });
      return timer(workMs(subtask), scheduler).pipe(map(() => ({ id: subtask.id, by: `agent-${i}` })));
    },
  }));
}

const work = (n: number, prefix = 's', ms = 100): Subtask[] => Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, payload: { ms } }));

/** Follows a task on a coordinator: its events, and its result once it ends. */
function follow(coordinator: Coordinator, taskId: string): { events: CoordinationEvent[]; result(): CoordinationResult | undefined } {
  const events: CoordinationEvent[] = [];
  let result: CoordinationResult | undefined;
  coordinator.attach$(taskId).subscribe(e => {
    events.push(e);
    if (e.type === 'task.completed') result = e.result;
  });
  return { events, result: () => result };
}

function advanceUntil(scheduler: VirtualScheduler, done: () => boolean, limitMs = 3_600_000): void {
  const end = scheduler.now() + limitMs;
  while (!done() && scheduler.now() < end) scheduler.advanceBy(50);
  if (!done()) throw new Error('not done within the limit');
}

/** The ledger events a journal holds (no snapshot in these runs). */
const recorded = (journal: Journal): LedgerEvent[] => journal.recover().records as LedgerEvent[];

describe('durability: a coordinator resumes from its journal', () => {
  it('keeps the results accepted before a crash, never runs them again, and issues the rest with attempts above every earlier one', () => {
    const scheduler = new VirtualScheduler();
    const journal = new MemoryJournal();
    const executions: Executions = [];
    const task: Task = { id: 'long', subtasks: work(40) };
    const first = createCoordinator({ agents: team(scheduler, 4, executions), scheduler, journal, topology: 'star' });
    first.submit(task);
    scheduler.advanceBy(1030); // about 10 results accepted, 4 attempts in flight
    const before = recorded(journal);
    const accepted = new Set(before.filter(e => e.type === 'subtask.accepted').map(e => (e as { subtaskId: string }).subtaskId));
    const issued = Math.max(...before.filter(e => e.type === 'subtask.assigned').map(e => (e as { attempt: number }).attempt));
    expect(accepted.size).toBeGreaterThan(5);
    void first.close(); // a crash: nothing more of it runs; its journal is all that is left

    const second = createCoordinator({ agents: team(scheduler, 4, executions), scheduler, journal, topology: 'star' });
    const followed = follow(second, 'long');
    advanceUntil(scheduler, () => followed.result() !== undefined);
    const result = followed.result() as CoordinationResult;
    expect(result.success).toBe(true);
    expect(Object.keys(result.results).sort()).toEqual(task.subtasks.map(s => s.id).sort());
    // Accepted before the crash: kept, not run again.
    const ranAfter = executions.filter(e => e.attempt > issued);
    expect(ranAfter.filter(e => accepted.has(e.subtaskId))).toEqual([]);
    // Attempts after recovery are above every attempt before.
    const after = recorded(journal).slice(before.length);
    const reissued = after.filter(e => e.type === 'subtask.assigned').map(e => (e as { attempt: number }).attempt);
    expect(Math.min(...reissued)).toBeGreaterThan(issued);
    // Each subtask accepted once, over both lives.
    const acceptedAll = recorded(journal).filter(e => e.type === 'subtask.accepted').map(e => (e as { subtaskId: string }).subtaskId);
    expect(acceptedAll.length).toBe(40);
    expect(new Set(acceptedAll).size).toBe(40);
    // At most the attempts in flight at the crash ran twice.
    expect(executions.length).toBeLessThanOrEqual(40 + 4);
  });

  it('the attempt running at the crash runs again under a higher token (its late result could never be current)', () => {
    const scheduler = new VirtualScheduler();
    const journal = new MemoryJournal();
    const executions: Executions = [];
    const first = createCoordinator({ agents: team(scheduler, 1, executions, () => 1000), scheduler, journal, topology: 'star' });
    first.submit({ id: 't', subtasks: work(1) });
    scheduler.advanceBy(500);
    void first.close();
    const second = createCoordinator({ agents: team(scheduler, 1, executions, () => 1000), scheduler, journal, topology: 'star' });
    const followed = follow(second, 't');
    advanceUntil(scheduler, () => followed.result() !== undefined);
    expect(followed.result()?.success).toBe(true);
    expect(executions.map(e => e.attempt)).toHaveLength(2);
    const [old, fresh] = executions;
    expect((fresh as { attempt: number }).attempt).toBeGreaterThan((old as { attempt: number }).attempt);
  });

  it('resumes queued tasks in their order, and keeps finished results retrievable', () => {
    const scheduler = new VirtualScheduler();
    const journal = new MemoryJournal();
    const executions: Executions = [];
    const first = createCoordinator({ agents: team(scheduler, 2, executions), scheduler, journal, topology: 'star', maxTasks: 1 });
    first.submit({ id: 'a', subtasks: work(2) });
    first.submit({ id: 'b', subtasks: work(2) });
    first.submit({ id: 'c', subtasks: work(2) });
    advanceUntil(scheduler, () => first.result('a') !== undefined);
    expect(first.tasks().map(t => [t.id, t.state, t.queuePosition])).toEqual([
      ['a', 'done', undefined],
      ['b', 'running', undefined],
      ['c', 'queued', 1],
    ]);
    void first.close();
    const second = createCoordinator({ agents: team(scheduler, 2, executions), scheduler, journal, topology: 'star', maxTasks: 1 });
    expect(second.result('a')?.success).toBe(true);
    const c = follow(second, 'c');
    advanceUntil(scheduler, () => c.result() !== undefined);
    expect(second.tasks().map(t => [t.id, t.state])).toEqual([
      ['a', 'done'],
      ['b', 'done'],
      ['c', 'done'],
    ]);
    expect((second.result('b')?.metrics.finishedAt ?? Infinity) <= (second.result('c')?.metrics.startedAt ?? 0)).toBe(true);
  });

  it('a cancelled task stays cancelled after a restart', () => {
    const scheduler = new VirtualScheduler();
    const journal = new MemoryJournal();
    const first = createCoordinator({ agents: team(scheduler, 1, []), scheduler, journal, maxTasks: 1 });
    first.submit({ id: 'run', subtasks: work(5) });
    first.submit({ id: 'wait', subtasks: work(5) });
    scheduler.advanceBy(150);
    expect(first.cancel('wait')).toBe(true);
    expect(first.cancel('run')).toBe(true);
    void first.close();
    const second = createCoordinator({ agents: team(scheduler, 1, []), scheduler, journal });
    expect(second.tasks().map(t => [t.id, t.state])).toEqual([
      ['run', 'cancelled'],
      ['wait', 'cancelled'],
    ]);
    expect(second.result('wait')?.failed).toEqual(Object.fromEntries(work(5).map(s => [s.id, 'cancelled'])));
  });

  it('a file journal: the same resume across coordinators, through a snapshot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxswarm-durable-'));
    try {
      const scheduler = new VirtualScheduler();
      const executions: Executions = [];
      const journal = FileJournal.open(dir);
      const first = createCoordinator({ agents: team(scheduler, 3, executions), scheduler, journal, topology: 'star', snapshotEvery: 25 });
      first.submit({ id: 'f', subtasks: work(30) });
      // Nothing is handed out before the first tokens' reservation is on disk.
      scheduler.advanceBy(200);
      expect(executions).toEqual([]);
      await first.durable();
      scheduler.advanceBy(520);
      await first.durable();
      await first.close();
      const again = FileJournal.open(dir);
      expect(again.recover().snapshot).toBeDefined(); // it was compacted on the way
      const second = createCoordinator({ agents: team(scheduler, 3, executions), scheduler, journal: again, topology: 'star' });
      await again.durable();
      await new Promise(resolve => setImmediate(resolve));
      const followed = follow(second, 'f');
      advanceUntil(scheduler, () => followed.result() !== undefined);
      expect(followed.result()?.success).toBe(true);
      expect(Object.keys(followed.result()?.results ?? {})).toHaveLength(30);
      expect(executions.length).toBeLessThanOrEqual(30 + 3);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a journal that cannot write stops the coordinator taking work, and says why', () => {
    const scheduler = new VirtualScheduler();
    const journal = new MemoryJournal();
    let fail: ((err: Error) => void) | undefined;
    const failing: Journal = Object.assign(Object.create(journal) as Journal, {
      onFailure: (listener: (err: Error) => void) => void (fail = listener),
    });
    const coordinator = createCoordinator({ agents: team(scheduler, 1, []), scheduler, journal: failing });
    const events: CoordinationEvent[] = [];
    coordinator.events$.subscribe(e => events.push(e));
    coordinator.submit({ id: 'before', subtasks: work(3) });
    scheduler.advanceBy(150);
    fail?.(new Error('the journal in /x cannot be written (ENOSPC)'));
    expect(coordinator.halted).toMatch(/ENOSPC/);
    expect(events.filter(e => e.type === 'coordinator.halted')).toHaveLength(1);
    expect(() => coordinator.submit({ id: 'after', subtasks: work(1) })).toThrow(/ENOSPC/);
    const assigned = events.filter(e => e.type === 'subtask.assigned').length;
    scheduler.advanceBy(10_000);
    expect(events.filter(e => e.type === 'subtask.assigned').length).toBe(assigned); // nothing new handed out
  });
});

describe('several tasks at once', () => {
  it('runs maxTasks tasks side by side, sharing the agents in turn; the rest wait in order with their position', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 4, []), scheduler, topology: 'star', maxTasks: 4 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) coordinator.submit({ id, subtasks: work(20, id) });
    expect(coordinator.tasks().map(t => [t.id, t.state, t.queuePosition])).toEqual([
      ['a', 'running', undefined],
      ['b', 'running', undefined],
      ['c', 'running', undefined],
      ['d', 'running', undefined],
      ['e', 'queued', 1],
    ]);
    const followed = ['a', 'b', 'c', 'd', 'e'].map(id => follow(coordinator, id));
    // In turn: after the first 400 ms every running task has had its share.
    scheduler.advanceBy(450);
    const progress = coordinator.tasks().map(t => t.completed);
    expect(progress.slice(0, 4).every(n => n >= 3)).toBe(true);
    advanceUntil(scheduler, () => followed.every(f => f.result() !== undefined));
    expect(followed.every(f => f.result()?.success === true)).toBe(true);
  });

  it('a stuck task does not delay the others', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 3, []), scheduler, topology: 'star', maxTasks: 2 });
    // Its one subtask takes an hour: it holds one agent, the others keep the second task going.
    coordinator.submit({ id: 'stuck', subtasks: [{ id: 'forever', payload: { ms: 3_600_000 } }] });
    coordinator.submit({ id: 'quick', subtasks: work(20, 'q') });
    const quick = follow(coordinator, 'quick');
    advanceUntil(scheduler, () => quick.result() !== undefined, 60_000);
    expect(quick.result()?.success).toBe(true);
    expect(quick.result()?.metrics.durationMs).toBeLessThan(20 * 100); // two agents: ~1 s
    expect(coordinator.tasks().find(t => t.id === 'stuck')?.state).toBe('running');
  });

  it('the same subtask ids in two tasks at once never mix', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 2, []), scheduler, topology: 'ring' });
    const a = follow(coordinator, (coordinator.submit({ id: 'x', subtasks: work(10) }), 'x'));
    const b = follow(coordinator, (coordinator.submit({ id: 'y', subtasks: work(10) }), 'y'));
    advanceUntil(scheduler, () => a.result() !== undefined && b.result() !== undefined);
    expect(Object.keys(a.result()?.results ?? {})).toHaveLength(10);
    expect(Object.keys(b.result()?.results ?? {})).toHaveLength(10);
    expect(a.events.filter(e => e.type === 'subtask.completed')).toHaveLength(10);
    expect(b.events.filter(e => e.type === 'subtask.completed')).toHaveLength(10);
  });

  it('refuses a second task under the id of one queued or running; a finished id may be used again', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 1, []), scheduler });
    coordinator.submit({ id: 't', subtasks: work(1) });
    expect(() => coordinator.submit({ id: 't', subtasks: work(1) })).toThrow(/already running/);
    advanceUntil(scheduler, () => coordinator.result('t') !== undefined);
    coordinator.submit({ id: 't', subtasks: work(2) });
    expect(coordinator.tasks()).toHaveLength(1);
  });

  it('attach$ of an unknown task errors; of a finished one gives its result at once', () => {
    const scheduler = new VirtualScheduler();
    const coordinator = createCoordinator({ agents: team(scheduler, 1, []), scheduler, retentionMs: 60_000 });
    let error: unknown;
    coordinator.attach$('nope').subscribe({ error: e => (error = e) });
    expect(error).toBeInstanceOf(RangeError);
    coordinator.submit({ id: 'kept', subtasks: work(1) });
    advanceUntil(scheduler, () => coordinator.result('kept') !== undefined);
    const followed = follow(coordinator, 'kept');
    expect(followed.result()?.success).toBe(true);
    // Past its retention it is forgotten.
    scheduler.advanceBy(61_000);
    expect(coordinator.tasks()).toEqual([]);
  });
});
