import fc from 'fast-check';
import {
  LedgerError,
  applyLedgerEvent,
  emptyLedger,
  ended,
  restoreLedger,
  resultOf,
  type Ledger,
  type LedgerEvent,
  type SubtaskEntry,
  type TaskEntry,
  type TaskSummary,
} from '../../src/ledger.js';
import type { Task } from '../../streams/task.js';

// The ledger's reducer, with no network: tables of what each event changes and of the events
// that do not fit (a LedgerError, nothing changed), then properties over random legal histories
// drawn from a small model of the coordinator.

const TASK: Task = { id: 't', subtasks: [{ id: 'a' }, { id: 'b', payload: { n: 1 } }] };
const SUMMARY: TaskSummary = {
  protocol: 'star',
  protocolId: 't:star',
  metrics: {
    subtasks: 2,
    completed: 1,
    failed: 1,
    staleResultsRejected: 0,
    assignments: 2,
    messages: 8,
    messagesByKind: { assign: 2 },
    messagesPerSubtask: 4,
    startedAt: 1,
    finishedAt: 9,
    durationMs: 8,
    performance: {},
  },
  healing: [],
  switches: [],
};

const submitted = (task: Task = TASK, at = 0): LedgerEvent => ({ type: 'task.submitted', at, task });
const started = (taskId = 't', at = 1): LedgerEvent => ({ type: 'task.started', at, taskId });
const reserved = (upTo: number): LedgerEvent => ({ type: 'attempts.reserved', upTo });
const assigned = (subtaskId: string, attempt: number, agentId = 'agent-0', taskId = 't'): LedgerEvent => ({ type: 'subtask.assigned', taskId, subtaskId, agentId, attempt });
const hedged = (subtaskId: string, attempt: number, agentId = 'agent-1', taskId = 't'): LedgerEvent => ({ type: 'subtask.hedged', taskId, subtaskId, agentId, attempt });
const delegated = (parentId: string, subtask: Task['subtasks'][number], taskId = 't'): LedgerEvent => ({ type: 'subtask.delegated', taskId, parentId, subtask });
const acked = (subtaskId: string, attempt: number, taskId = 't'): LedgerEvent => ({ type: 'subtask.acknowledged', taskId, subtaskId, attempt });
const requeued = (subtaskId: string, attempt: number, failure: boolean, taskId = 't'): LedgerEvent => ({ type: 'subtask.requeued', taskId, subtaskId, attempt, failure });
const accepted = (subtaskId: string, attempt: number, value: unknown = `${subtaskId}@${attempt}`, taskId = 't'): LedgerEvent => ({ type: 'subtask.accepted', taskId, subtaskId, attempt, value });
const failed = (subtaskId: string, reason = 'boom', taskId = 't'): LedgerEvent => ({ type: 'subtask.failed', taskId, subtaskId, reason });
const cancelled = (taskId = 't', reason = 'asked', at = 5): LedgerEvent => ({ type: 'task.cancelled', at, taskId, reason });
const finished = (taskId = 't', at = 9, summary: TaskSummary = SUMMARY): LedgerEvent => ({ type: 'task.finished', at, taskId, summary });
const forgotten = (taskId = 't'): LedgerEvent => ({ type: 'task.forgotten', taskId });

function ledgerOf(events: readonly LedgerEvent[]): Ledger {
  const ledger = emptyLedger();
  for (const e of events) applyLedgerEvent(ledger, e);
  return ledger;
}

const task = (ledger: Ledger, id = 't'): TaskEntry => ledger.tasks[id] as TaskEntry;
const sub = (ledger: Ledger, id: string, taskId = 't'): SubtaskEntry => task(ledger, taskId).subtasks[id] as SubtaskEntry;

/** Histories the tables start from. */
const QUEUED = [submitted()];
const RUNNING = [submitted(), started(), reserved(100)];
const A_ASSIGNED = [...RUNNING, assigned('a', 7)];
const A_DONE = [...A_ASSIGNED, accepted('a', 7)];
const A_HEDGED = [...A_ASSIGNED, hedged('a', 9)];
const ALL_ENDED = [...A_DONE, failed('b')];
const DONE = [...ALL_ENDED, finished()];

describe('applyLedgerEvent: what each event changes', () => {
  it('starts empty, and returns the ledger it changed', () => {
    const ledger = emptyLedger();
    expect(ledger).toEqual({ tasks: {}, queue: [], reservedAttempts: 0, applied: 0 });
    expect(Object.getPrototypeOf(ledger.tasks)).toBeNull();
    expect(applyLedgerEvent(ledger, submitted())).toBe(ledger);
  });

  const table: Array<[name: string, history: LedgerEvent[], event: LedgerEvent, expectChange: (before: Ledger, after: Ledger) => void]> = [
    [
      'task.submitted: a queued task, every subtask queued with no attempt, at the end of the queue',
      [submitted({ id: 'first', subtasks: [] })],
      submitted(TASK, 3),
      (before, after) => {
        expect(after.queue).toEqual(['first', 't']);
        expect(task(after)).toEqual({ task: TASK, state: 'queued', submittedAt: 3, startedAt: undefined, finishedAt: undefined, subtasks: { a: expect.anything(), b: expect.anything() }, children: [], completed: 0, failed: 0, cancelled: undefined, summary: undefined });
        for (const id of ['a', 'b']) expect(sub(after, id)).toEqual({ status: 'queued', attempt: 0, agentId: undefined, acked: false, failures: 0, value: undefined, reason: undefined });
        expect(Object.getPrototypeOf(task(after).subtasks)).toBeNull();
        expect(after.tasks['first']).toEqual(before.tasks['first']);
      },
    ],
    [
      'task.started: running from then, out of the queue',
      [...QUEUED, submitted({ id: 'u', subtasks: [] })],
      started('t', 4),
      (_, after) => {
        expect(task(after).state).toBe('running');
        expect(task(after).startedAt).toBe(4);
        expect(after.queue).toEqual(['u']);
      },
    ],
    [
      'task.started: a task behind others in the queue may start first',
      [submitted({ id: 'u', subtasks: [] }), ...QUEUED],
      started('t'),
      (_, after) => expect(after.queue).toEqual(['u']),
    ],
    ['attempts.reserved: the bound rises', RUNNING, reserved(200), (_, after) => expect(after.reservedAttempts).toBe(200)],
    [
      'subtask.assigned: the attempt, its agent, not yet acknowledged',
      RUNNING,
      assigned('a', 7, 'agent-3'),
      (_, after) => expect(sub(after, 'a')).toEqual({ status: 'assigned', attempt: 7, agentId: 'agent-3', acked: false, failures: 0, value: undefined, reason: undefined }),
    ],
    ['subtask.acknowledged: the agent has it', A_ASSIGNED, acked('a', 7), (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'assigned', attempt: 7, acked: true })],
    [
      'subtask.requeued (not a failure): queued again, its attempt kept, no agent',
      [...A_ASSIGNED, acked('a', 7)],
      requeued('a', 7, false),
      (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'queued', attempt: 7, agentId: undefined, failures: 0 }),
    ],
    ['subtask.requeued (a failure): counted against it', A_ASSIGNED, requeued('a', 7, true), (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'queued', failures: 1 })],
    [
      'subtask.assigned again after a requeue: a higher attempt',
      [...A_ASSIGNED, requeued('a', 7, true)],
      assigned('a', 9, 'agent-1'),
      (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'assigned', attempt: 9, agentId: 'agent-1', failures: 1, acked: false }),
    ],
    [
      'subtask.hedged: a backup attempt beside the assigned one, on another agent',
      A_ASSIGNED,
      hedged('a', 9, 'agent-1'),
      (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'assigned', attempt: 7, agentId: 'agent-0', hedge: { attempt: 9, agentId: 'agent-1', acked: false } }),
    ],
    [
      'subtask.delegated: the child joins the task, queued, naming its parent; the parent stays assigned',
      A_ASSIGNED,
      delegated('a', { id: 'a/c', capabilities: ['web'] }),
      (before, after) => {
        expect(sub(after, 'a/c')).toEqual({ status: 'queued', attempt: 0, agentId: undefined, acked: false, hedge: undefined, failures: 0, value: undefined, reason: undefined, parent: 'a' });
        expect(task(after).children).toEqual([{ id: 'a/c', capabilities: ['web'] }]);
        expect(sub(after, 'a')).toEqual(sub(before, 'a'));
      },
    ],
    ['subtask.acknowledged (the backup): its agent has it', A_HEDGED, acked('a', 9), (_, after) => expect(sub(after, 'a')).toMatchObject({ acked: false, hedge: { attempt: 9, acked: true } })],
    [
      'subtask.requeued (the backup): the latest attempt goes on alone, still assigned',
      A_HEDGED,
      requeued('a', 9, false),
      (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'assigned', attempt: 7, agentId: 'agent-0', hedge: undefined, failures: 0 }),
    ],
    [
      'subtask.requeued (the hedged latest, a failure): the backup goes on as the latest, the failure counted',
      [...A_HEDGED, acked('a', 9)],
      requeued('a', 7, true),
      (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'assigned', attempt: 9, agentId: 'agent-1', acked: true, hedge: undefined, failures: 1 }),
    ],
    [
      'subtask.accepted (the backup wins): done with its value, its attempt and agent',
      A_HEDGED,
      accepted('a', 9, 'fast'),
      (_, after) => {
        expect(sub(after, 'a')).toMatchObject({ status: 'done', attempt: 9, agentId: 'agent-1', hedge: undefined, value: 'fast' });
        expect(task(after).completed).toBe(1);
      },
    ],
    ['subtask.accepted (the hedged latest wins): the backup is dropped', A_HEDGED, accepted('a', 7), (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'done', attempt: 7, agentId: 'agent-0', hedge: undefined })],
    ['subtask.failed (hedged): both attempts let go', A_HEDGED, failed('a'), (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'failed', agentId: undefined, hedge: undefined })],
    [
      'subtask.accepted: done with its value, counted',
      A_ASSIGNED,
      accepted('a', 7, { out: [1, 2] }),
      (_, after) => {
        expect(sub(after, 'a')).toMatchObject({ status: 'done', attempt: 7, value: { out: [1, 2] } });
        expect(task(after).completed).toBe(1);
      },
    ],
    [
      'subtask.failed (queued): failed with its reason, counted',
      RUNNING,
      failed('b', 'no agent can run it'),
      (_, after) => {
        expect(sub(after, 'b')).toMatchObject({ status: 'failed', reason: 'no agent can run it', agentId: undefined });
        expect(task(after).failed).toBe(1);
      },
    ],
    ['subtask.failed (assigned): its agent let go', A_ASSIGNED, failed('a'), (_, after) => expect(sub(after, 'a')).toMatchObject({ status: 'failed', agentId: undefined, attempt: 7 })],
    [
      'task.cancelled (queued): ends at once, out of the queue, every subtask failed with the reason',
      QUEUED,
      cancelled('t', 'not wanted', 6),
      (_, after) => {
        expect(task(after)).toMatchObject({ state: 'cancelled', cancelled: 'not wanted', finishedAt: 6, failed: 2, completed: 0 });
        expect(sub(after, 'a')).toMatchObject({ status: 'failed', reason: 'not wanted' });
        expect(after.queue).toEqual([]);
      },
    ],
    [
      'task.cancelled (running): marked, still running until its subtasks end',
      A_ASSIGNED,
      cancelled('t', 'not wanted'),
      (_, after) => {
        expect(task(after)).toMatchObject({ state: 'running', cancelled: 'not wanted', finishedAt: undefined });
        expect(sub(after, 'a').status).toBe('assigned');
      },
    ],
    [
      'task.finished: failed when a subtask failed, with its summary',
      ALL_ENDED,
      finished('t', 9),
      (_, after) => expect(task(after)).toMatchObject({ state: 'failed', finishedAt: 9, summary: SUMMARY }),
    ],
    ['task.finished: done when every subtask completed', [...A_DONE, assigned('b', 8), accepted('b', 8)], finished(), (_, after) => expect(task(after).state).toBe('done')],
    ['task.finished: cancelled when it was cancelled', [...ALL_ENDED, cancelled()], finished(), (_, after) => expect(task(after).state).toBe('cancelled')],
    ['task.finished: a task with no subtasks', [submitted({ id: 't', subtasks: [] }), started()], finished(), (_, after) => expect(task(after).state).toBe('done')],
    ['task.forgotten: dropped', DONE, forgotten(), (_, after) => expect(after.tasks['t']).toBeUndefined()],
    [
      'task.submitted: a forgotten id may be used again, from scratch',
      [...DONE, forgotten()],
      submitted(),
      (_, after) => {
        expect(task(after)).toMatchObject({ state: 'queued', completed: 0, failed: 0 });
        expect(sub(after, 'a')).toMatchObject({ status: 'queued', attempt: 0 });
      },
    ],
  ];

  it.each(table)('%s', (_, history, event, expectChange) => {
    const ledger = ledgerOf(history);
    const before = structuredClone(ledger);
    applyLedgerEvent(ledger, event);
    expect(ledger.applied).toBe(before.applied + 1);
    expectChange(before, ledger);
    // It applies the same way to a ledger restored from a snapshot of the one before.
    const restored = restoreLedger(JSON.parse(JSON.stringify(before)));
    applyLedgerEvent(restored, event);
    expect(restored).toEqual(ledger);
  });
});

describe('applyLedgerEvent: events that do not fit throw a LedgerError and change nothing', () => {
  const table: Array<[name: string, history: LedgerEvent[], event: LedgerEvent, message: RegExp]> = [
    ['a task submitted twice', QUEUED, submitted(), /task "t" is already in the ledger \(queued\)/],
    ['a finished task submitted again before it is forgotten', DONE, submitted(), /already in the ledger \(failed\)/],
    ['an unknown task started', [], started('nope'), /no task "nope" in the ledger/],
    ['a task started twice', RUNNING, started(), /cannot start: it is running/],
    ['a finished task started', DONE, started(), /cannot start: it is failed/],
    ['attempts reserved below the bound', RUNNING, reserved(50), /attempts reserved up to 50, below 100/],
    ['attempts reserved at the bound', RUNNING, reserved(100), /below 100/],
    ['attempts reserved up to a fraction', RUNNING, reserved(100.5), /up to 100.5/],
    ['attempts reserved up to infinity', RUNNING, reserved(Infinity), /up to Infinity/],
    ['an assignment in a queued task', [...QUEUED, reserved(100)], assigned('a', 1), /task "t" is queued, not running/],
    ['an assignment in a finished task', DONE, assigned('a', 9), /task "t" is failed, not running/],
    ['an assignment in an unknown task', RUNNING, assigned('a', 1, 'agent-0', 'nope'), /no task "nope"/],
    ['an assignment of an unknown subtask', RUNNING, assigned('zz', 1), /no subtask "zz" in task "t"/],
    ['an assignment of an assigned subtask', A_ASSIGNED, assigned('a', 8), /subtask a of t is assigned, not queued/],
    ['an assignment of a done subtask', A_DONE, assigned('a', 8), /is done, not queued/],
    ['an assignment of a failed subtask', ALL_ENDED, assigned('b', 8), /is failed, not queued/],
    ['an attempt token at the reservation', RUNNING, assigned('a', 100), /attempt 100 of a is not a whole number above 0 and below the reservation 100/],
    ['an attempt token without any reservation', [submitted(), started()], assigned('a', 1), /below the reservation 0/],
    ['an attempt token not above the last one', [...A_ASSIGNED, requeued('a', 7, false)], assigned('a', 7), /attempt 7 of a is not a whole number above 7/],
    ['an attempt token of 0', RUNNING, assigned('a', 0), /attempt 0 of a is not a whole number above 0/],
    ['an attempt token that is not a number', RUNNING, assigned('a', Number.NaN), /attempt NaN/],
    ['an attempt token that is not whole', RUNNING, assigned('a', 1.5), /attempt 1.5 of a is not a whole number above 0/],
    ['a task with two subtasks under one id', [], submitted({ id: 't', subtasks: [{ id: 'a' }, { id: 'a' }] }), /task "t" has two subtasks "a"/],
    ['a child of a queued subtask', RUNNING, delegated('a', { id: 'a/c' }), /subtask a of t is queued, not assigned/],
    ['a child of an unknown subtask', RUNNING, delegated('zz', { id: 'zz/c' }), /no subtask "zz" in task "t"/],
    ['a child under an id the task has', A_ASSIGNED, delegated('a', { id: 'b' }), /task "t" already has a subtask "b"/],
    ['a child in a finished task', DONE, delegated('a', { id: 'a/c' }), /task "t" is failed, not running/],
    ['a task finished while a child is open', [...A_ASSIGNED, delegated('a', { id: 'a/c' }), accepted('a', 7), failed('b')], finished(), /cannot finish with 1 subtask\(s\) not ended/],
    ['an acknowledgement of another attempt', A_ASSIGNED, acked('a', 6), /attempt 6 of a is not its current one \(7\)/],
    ['an acknowledgement of a queued subtask', RUNNING, acked('a', 0), /is queued, not assigned/],
    ['a backup of a queued subtask', RUNNING, hedged('a', 9), /subtask a of t is queued, not assigned/],
    ['a second backup', A_HEDGED, hedged('a', 10, 'agent-2'), /subtask a of t already has a backup attempt \(9\)/],
    ['a backup on the agent of the latest attempt', A_ASSIGNED, hedged('a', 9, 'agent-0'), /the backup attempt of a must run on another agent than agent-0/],
    ['a backup token not above the latest', A_ASSIGNED, hedged('a', 7), /attempt 7 of a is not a whole number above 7/],
    ['a backup token at the reservation', A_ASSIGNED, hedged('a', 100), /below the reservation 100/],
    ['a result of an attempt neither the latest nor the backup', A_HEDGED, accepted('a', 8), /attempt 8 of a is not its current one \(7\)/],
    ['an acknowledgement of an attempt neither the latest nor the backup', A_HEDGED, acked('a', 8), /attempt 8 of a is not its current one \(7\)/],
    ['a requeue of another attempt', A_ASSIGNED, requeued('a', 8, false), /attempt 8 of a is not its current one \(7\)/],
    ['a requeue of a done subtask', A_DONE, requeued('a', 7, false), /is done, not assigned/],
    ['a result of a superseded attempt', [...A_ASSIGNED, requeued('a', 7, false), assigned('a', 9)], accepted('a', 7), /attempt 7 of a is not its current one \(9\)/],
    ['a result accepted twice', A_DONE, accepted('a', 7), /is done, not assigned/],
    ['a result of a queued subtask', RUNNING, accepted('a', 0), /is queued, not assigned/],
    ['a result of a failed subtask', [...A_ASSIGNED, failed('a')], accepted('a', 7), /is failed, not assigned/],
    ['a result in a queued task', QUEUED, accepted('a', 0), /is queued, not running/],
    ['a failure of a done subtask', A_DONE, failed('a'), /subtask a of t has already ended \(done\)/],
    ['a failure of a failed subtask', ALL_ENDED, failed('b'), /has already ended \(failed\)/],
    ['a failure in a queued task', QUEUED, failed('a'), /is queued, not running/],
    ['a failure of an unknown subtask', RUNNING, failed('zz'), /no subtask "zz"/],
    ['a finished task cancelled', DONE, cancelled(), /cannot be cancelled: it is failed/],
    ['an unknown task cancelled', [], cancelled('nope'), /no task "nope"/],
    ['a queued task finished', QUEUED, finished(), /cannot finish: it is queued/],
    ['a running task finished with subtasks open', A_DONE, finished(), /cannot finish with 1 subtask\(s\) not ended/],
    ['a task finished twice', DONE, finished(), /cannot finish: it is failed/],
    ['a queued task forgotten', QUEUED, forgotten(), /cannot be forgotten: it is queued/],
    ['a running task forgotten', RUNNING, forgotten(), /cannot be forgotten: it is running/],
    ['an unknown task forgotten', [], forgotten('nope'), /no task "nope"/],
    ['an event of an unknown type', RUNNING, { type: 'task.paused', taskId: 't' } as unknown as LedgerEvent, /unknown ledger event "task.paused"/],
  ];

  it.each(table)('%s', (_, history, event, message) => {
    const ledger = ledgerOf(history);
    const before = structuredClone(ledger);
    expect(() => applyLedgerEvent(ledger, event)).toThrow(LedgerError);
    expect(() => applyLedgerEvent(ledger, event)).toThrow(message);
    expect(ledger).toEqual(before);
    expect(ledger.applied).toBe(history.length);
  });

  it('names itself', () => {
    expect(() => applyLedgerEvent(emptyLedger(), started('x'))).toThrow(expect.objectContaining({ name: 'LedgerError' }));
  });
});

describe('restoreLedger', () => {
  it('gives back the ledger a snapshot was taken of, records without prototypes', () => {
    const ledger = ledgerOf([...ALL_ENDED, submitted({ id: 'u', subtasks: [{ id: 'x' }] })]);
    const restored = restoreLedger(JSON.parse(JSON.stringify(ledger)));
    expect(restored).toEqual(ledger);
    expect(Object.getPrototypeOf(restored.tasks)).toBeNull();
    expect(Object.getPrototypeOf(task(restored).subtasks)).toBeNull();
    // It goes on from there as the original does.
    applyLedgerEvent(restored, started('u'));
    applyLedgerEvent(ledger, started('u'));
    expect(restored).toEqual(ledger);
  });

  it('keeps ids that mean something to a plain object', () => {
    const ledger = ledgerOf([submitted({ id: '__proto__', subtasks: [{ id: 'constructor' }, { id: 'toString' }] }), started('__proto__')]);
    const restored = restoreLedger(JSON.parse(JSON.stringify(ledger)));
    expect(Object.keys(restored.tasks)).toEqual(['__proto__']);
    expect(Object.keys(task(restored, '__proto__').subtasks)).toEqual(['constructor', 'toString']);
    expect(restored).toEqual(ledger);
  });

  it.each([
    ['null', null],
    ['a number', 42],
    ['an array', []],
    ['no tasks', { queue: [], reservedAttempts: 0 }],
    ['no queue', { tasks: {}, reservedAttempts: 0 }],
    ['no reservation', { tasks: {}, queue: [] }],
    ['tasks null', { tasks: null, queue: [], reservedAttempts: 0 }],
    ['a task entry without subtasks', { tasks: { t: { task: TASK } }, queue: [], reservedAttempts: 0 }],
    ['a task entry null', { tasks: { t: null }, queue: [], reservedAttempts: 0 }],
    ['a task entry without its task', { tasks: { t: { subtasks: {} } }, queue: [], reservedAttempts: 0 }],
    ['a subtask entry null', { tasks: { t: { task: TASK, subtasks: { a: null } } }, queue: [], reservedAttempts: 0 }],
  ])('refuses %s with a LedgerError', (_, value) => {
    expect(() => restoreLedger(value)).toThrow(LedgerError);
    expect(() => restoreLedger(value)).toThrow(/the snapshot is not a ledger/);
  });
});

describe('resultOf', () => {
  it('is undefined while the task has not ended', () => {
    expect(resultOf(task(ledgerOf(QUEUED)))).toBeUndefined();
    expect(resultOf(task(ledgerOf(ALL_ENDED)))).toBeUndefined();
  });

  it('rebuilds the result of a finished task from its entries and summary', () => {
    const result = resultOf(task(ledgerOf(DONE)));
    expect(result).toEqual({ taskId: 't', success: false, results: { a: 'a@7' }, failed: { b: 'boom' }, protocol: 'star', protocolId: 't:star', metrics: SUMMARY.metrics, healing: [], switches: [] });
  });

  it('gives a task cancelled in the queue a result with the reason for every subtask', () => {
    const result = resultOf(task(ledgerOf([...QUEUED, cancelled('t', 'not wanted', 6)])));
    expect(result).toMatchObject({ success: false, results: {}, failed: { a: 'not wanted', b: 'not wanted' }, protocol: 'none', protocolId: 't:none' });
    expect(result?.metrics).toMatchObject({ subtasks: 2, completed: 0, failed: 2, startedAt: 6, finishedAt: 6, durationMs: 0 });
  });
});

// ---------------------------------------------------------------------------------------------
// Properties over random histories. A small model of the coordinator picks, at each step, one of
// the events the ledger allows now (the choices are numbers, so a failing history shrinks).

const TASKS: readonly Task[] = [
  { id: 't0', subtasks: [{ id: 's0' }] },
  { id: 't1', subtasks: [{ id: 's0' }, { id: 's1' }, { id: 's2' }] },
  { id: 't2', subtasks: [] },
  { id: 't3', subtasks: [{ id: 'x' }, { id: 'y' }] },
];

/** The events the ledger allows now, as the coordinator could record them (tokens from one counter). */
function legalEvents(ledger: Ledger, nextToken: number, step: number): LedgerEvent[] {
  const out: LedgerEvent[] = [];
  out.push(reserved(Math.max(ledger.reservedAttempts, nextToken) + 4));
  for (const t of TASKS) {
    const entry = ledger.tasks[t.id];
    if (entry === undefined) {
      out.push(submitted(t, step));
      continue;
    }
    if (entry.state === 'queued') out.push(started(t.id, step), cancelled(t.id, 'asked', step));
    if (entry.state === 'running') {
      if (entry.cancelled === undefined) out.push(cancelled(t.id, 'asked', step));
      for (const s of [...t.subtasks, ...entry.children]) {
        const e = entry.subtasks[s.id] as SubtaskEntry;
        if (e.status === 'queued') {
          if (nextToken > e.attempt && nextToken < ledger.reservedAttempts) out.push(assigned(s.id, nextToken, `agent-${step % 3}`, t.id));
          out.push(failed(s.id, 'gave up', t.id));
        }
        if (e.status === 'assigned') {
          if (!e.acked) out.push(acked(s.id, e.attempt, t.id));
          out.push(requeued(s.id, e.attempt, step % 2 === 0, t.id), accepted(s.id, e.attempt, { by: e.agentId, n: step }, t.id), failed(s.id, 'gave up', t.id));
          if (entry.children.length < 4) out.push(delegated(s.id, { id: `${s.id}/${entry.children.length}` }, t.id));
          const h = e.hedge;
          if (h === undefined) {
            if (nextToken > e.attempt && nextToken < ledger.reservedAttempts) out.push(hedged(s.id, nextToken, `${e.agentId ?? ''}-backup`, t.id));
          } else {
            if (!h.acked) out.push(acked(s.id, h.attempt, t.id));
            out.push(requeued(s.id, h.attempt, step % 2 === 1, t.id), accepted(s.id, h.attempt, { by: h.agentId, n: step }, t.id));
          }
        }
      }
      if (entry.completed + entry.failed === t.subtasks.length + entry.children.length) out.push(finished(t.id, step));
    }
    if (ended(entry)) out.push(forgotten(t.id));
  }
  return out;
}

/** A history the model allows, from a list of choices. */
function history(choices: readonly number[]): LedgerEvent[] {
  const ledger = emptyLedger();
  const events: LedgerEvent[] = [];
  let nextToken = 1;
  choices.forEach((choice, step) => {
    const legal = legalEvents(ledger, nextToken, step);
    const event = legal[choice % legal.length] as LedgerEvent;
    applyLedgerEvent(ledger, event);
    if (event.type === 'subtask.assigned' || event.type === 'subtask.hedged') nextToken = event.attempt + 1;
    events.push(event);
  });
  return events;
}

const histories = fc.array(fc.nat({ max: 1000 }), { minLength: 1, maxLength: 120 }).map(history);

/** Print the seed and path when a property fails, as the other property suites do. */
const PARAMS = { numRuns: 200, verbose: 1 } as const;

describe('applyLedgerEvent: properties over random histories', () => {
  it('draws histories that reach every event type, finished tasks and ids used again', () => {
    const samples = fc.sample(histories, { seed: 1, numRuns: 300 });
    const types = new Set(samples.flat().map(e => e.type));
    expect([...types].sort()).toEqual(
      ['attempts.reserved', 'subtask.accepted', 'subtask.acknowledged', 'subtask.assigned', 'subtask.delegated', 'subtask.failed', 'subtask.hedged', 'subtask.requeued', 'task.cancelled', 'task.finished', 'task.forgotten', 'task.started', 'task.submitted'].sort(),
    );
    const reused = samples.some(events => events.some((e, i) => e.type === 'task.forgotten' && events.slice(i).some(x => x.type === 'task.submitted' && x.task.id === e.taskId)));
    expect(reused).toBe(true);
    const longHistoriesFinish = samples.filter(events => events.length > 60).every(events => events.some(e => e.type === 'task.finished'));
    expect(longHistoriesFinish).toBe(true);
  });

  it('replays: the same events on a fresh ledger, or on a snapshot taken anywhere (through JSON), give the same ledger', () => {
    fc.assert(
      fc.property(histories, fc.nat(), (events, cutAt) => {
        const once = ledgerOf(events);
        expect(ledgerOf(events)).toEqual(once);
        const cut = cutAt % (events.length + 1);
        const snapshot = restoreLedger(JSON.parse(JSON.stringify(ledgerOf(events.slice(0, cut)))));
        for (const e of events.slice(cut)) applyLedgerEvent(snapshot, JSON.parse(JSON.stringify(e)) as LedgerEvent);
        expect(snapshot).toEqual(once);
        expect(restoreLedger(JSON.parse(JSON.stringify(once)))).toEqual(once);
        expect(once.applied).toBe(events.length);
      }),
      PARAMS,
    );
  });

  it('keeps its books: each result accepted at most once and kept, a backup only beside an assigned attempt, attempts only grow and stay under the reservation, counts match the entries, the queue is the queued tasks in order', () => {
    fc.assert(
      fc.property(histories, events => {
        const ledger = emptyLedger();
        const acceptedOnce = new Map<string, unknown>();
        const lastAttempt = new Map<string, number>();
        let reservedBefore = 0;
        for (const event of events) {
          if (event.type === 'task.submitted') {
            // A new life of the id: what the old one accepted is gone with it.
            for (const key of [...acceptedOnce.keys()]) if (key.startsWith(`${event.task.id}\u0000`)) acceptedOnce.delete(key);
            for (const key of [...lastAttempt.keys()]) if (key.startsWith(`${event.task.id}\u0000`)) lastAttempt.delete(key);
          }
          if (event.type === 'subtask.accepted') {
            const key = `${event.taskId}\u0000${event.subtaskId}`;
            expect(acceptedOnce.has(key), `${key} accepted twice`).toBe(false);
            acceptedOnce.set(key, event.value);
          }
          applyLedgerEvent(ledger, event);
          expect(ledger.reservedAttempts).toBeGreaterThanOrEqual(reservedBefore);
          reservedBefore = ledger.reservedAttempts;
          for (const entry of Object.values(ledger.tasks)) {
            const subs = Object.values(entry.subtasks);
            expect(entry.completed).toBe(subs.filter(s => s.status === 'done').length);
            expect(entry.failed).toBe(subs.filter(s => s.status === 'failed').length);
            expect(subs).toHaveLength(entry.task.subtasks.length + entry.children.length);
            if (ended(entry)) expect(entry.completed + entry.failed).toBe(entry.task.subtasks.length + entry.children.length);
            // Every child names a parent of the task, and only children do.
            for (const c of entry.children) expect(entry.subtasks[(entry.subtasks[c.id] as SubtaskEntry).parent as string]).toBeDefined();
            for (const own of entry.task.subtasks) expect((entry.subtasks[own.id] as SubtaskEntry).parent).toBeUndefined();
            for (const [id, s] of Object.entries(entry.subtasks)) {
              const key = `${entry.task.id}\u0000${id}`;
              expect(s.attempt).toBeGreaterThanOrEqual(lastAttempt.get(key) ?? 0);
              lastAttempt.set(key, s.attempt);
              if (s.attempt > 0) expect(s.attempt).toBeLessThan(ledger.reservedAttempts);
              if (s.status === 'assigned') expect(s.agentId).toBeDefined();
              else expect(s.agentId === undefined || s.status === 'done').toBe(true);
              if (s.status === 'done') expect(s.value).toEqual(acceptedOnce.get(key));
              // A backup only beside an assigned attempt, newer than it, on another agent.
              if (s.hedge !== undefined) {
                expect(s.status).toBe('assigned');
                expect(s.hedge.attempt).toBeGreaterThan(s.attempt);
                expect(s.hedge.agentId).not.toBe(s.agentId);
              }
            }
          }
          const queued = Object.values(ledger.tasks).filter(e => e.state === 'queued');
          expect([...ledger.queue].sort()).toEqual(queued.map(e => e.task.id).sort());
          const order = ledger.queue.map(id => (ledger.tasks[id] as TaskEntry).submittedAt);
          expect(order).toEqual([...order].sort((a, b) => a - b));
        }
      }),
      PARAMS,
    );
  });

  it('gives an ended task a result that matches its entries', () => {
    fc.assert(
      fc.property(histories, events => {
        const ledger = ledgerOf(events);
        for (const entry of Object.values(ledger.tasks)) {
          const result = resultOf(entry);
          if (!ended(entry)) {
            expect(result).toBeUndefined();
            continue;
          }
          const done = entry.task.subtasks.filter(s => entry.subtasks[s.id]?.status === 'done').map(s => s.id);
          expect(Object.keys(result!.results).sort()).toEqual([...done].sort());
          expect(Object.keys(result!.results).length + Object.keys(result!.failed).length).toBe(entry.task.subtasks.length);
          expect(result!.success).toBe(entry.failed === 0);
          expect(result!.taskId).toBe(entry.task.id);
        }
      }),
      PARAMS,
    );
  });

  it('refuses any event that does not fit with a LedgerError, changing nothing', () => {
    // Events of every type with fields drawn near the ledger's own: most do not fit.
    const taskId = fc.constantFrom('t0', 't1', 't2', 't3', 'nope');
    const subtaskId = fc.constantFrom('s0', 's1', 's2', 'x', 'y', 'zz');
    const attempt = fc.oneof(fc.integer({ min: -1, max: 40 }), fc.constantFrom(Number.NaN, 0.5));
    const anyEvent: fc.Arbitrary<LedgerEvent> = fc.oneof(
      fc.constantFrom(...TASKS).map(t => submitted(t, 1)),
      taskId.map(id => started(id)),
      fc.integer({ min: -1, max: 60 }).map(reserved),
      fc.tuple(taskId, subtaskId, attempt).map(([t, s, a]) => assigned(s, a, 'agent-0', t)),
      fc.tuple(taskId, subtaskId, attempt).map(([t, s, a]) => acked(s, a, t)),
      fc.tuple(taskId, subtaskId, attempt, fc.boolean()).map(([t, s, a, f]) => requeued(s, a, f, t)),
      fc.tuple(taskId, subtaskId, attempt).map(([t, s, a]) => accepted(s, a, 'v', t)),
      fc.tuple(taskId, subtaskId).map(([t, s]) => failed(s, 'r', t)),
      taskId.map(id => cancelled(id)),
      taskId.map(id => finished(id)),
      taskId.map(id => forgotten(id)),
    );
    fc.assert(
      fc.property(histories, fc.array(anyEvent, { maxLength: 20 }), (events, probes) => {
        const ledger = ledgerOf(events);
        for (const probe of probes) {
          const before = structuredClone(ledger);
          try {
            applyLedgerEvent(ledger, probe);
            expect(ledger.applied).toBe(before.applied + 1);
          } catch (err) {
            expect(err).toBeInstanceOf(LedgerError);
            expect(ledger).toEqual(before);
          }
        }
      }),
      PARAMS,
    );
  });
});
