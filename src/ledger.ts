import type { ProtocolSwitch } from '../operators/index.js';
import type { Subtask, Task } from '../streams/task.js';
import type { CoordinationMetrics, CoordinationResult } from './events.js';
import type { HealingAttempt } from './selfHealing.js';

/**
 * The coordinator's durable state: every task it has taken and where each subtask stands, changed
 * only by {@link applyLedgerEvent} over recorded events. The runtime records an event, then does
 * its effects (send, schedule, heal); recovery replays the journal through the same reducer, so
 * there is one code path for both.
 *
 * ```
 * task.submitted ─▶ queued ─task.started─▶ running ─task.finished─▶ done | failed | cancelled
 * subtask: queued ─assigned─▶ assigned ─accepted─▶ done
 *                      ▲           ├─requeued──▶ queued (a failure when the attempt failed)
 *                      └───────────┘─failed────▶ failed
 * ```
 *
 * A running attempt may ask for a child subtask (`subtask.delegated`): it joins the task, queued,
 * and the task ends only once its children have too.
 *
 * An assigned subtask whose attempt is silent may be `hedged`: a backup attempt runs beside it,
 * and a result of either is accepted (the other is cancelled). While it has two attempts, one
 * ending without a result (`requeued`) leaves the other: the subtask stays assigned.
 */
export interface Ledger {
  /** Tasks by id (no prototype: ids are anyone's strings). */
  readonly tasks: Record<string, TaskEntry>;
  /** Ids of queued tasks in the order they were submitted: the run queue. */
  readonly queue: string[];
  /**
   * Attempt tokens are handed out below this bound, which is recorded before any token under it
   * is sent: after a crash the next token starts above it, so it is above every token issued.
   */
  reservedAttempts: number;
  /** Events applied since the ledger was empty (snapshots included). */
  applied: number;
}

export type TaskState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface TaskEntry {
  readonly task: Task;
  state: TaskState;
  readonly submittedAt: number;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  /** By subtask id (no prototype), the task's own and the children its subtasks delegated. */
  readonly subtasks: Record<string, SubtaskEntry>;
  /** Subtasks its subtasks delegated, in the order they were asked for (their ids are `PARENT/CHILD`). */
  readonly children: Subtask[];
  completed: number;
  failed: number;
  /** Why it was cancelled (`task.cancelled`). */
  cancelled: string | undefined;
  /** What the run measured, recorded at its end: with the subtasks' entries, its whole result. */
  summary: TaskSummary | undefined;
}

export type SubtaskStatus = 'queued' | 'assigned' | 'done' | 'failed';

export interface SubtaskEntry {
  status: SubtaskStatus;
  /** Token of the latest attempt (0: none yet). */
  attempt: number;
  /** Agent of the latest attempt. */
  agentId: string | undefined;
  /** The agent of the latest attempt said it has it. */
  acked: boolean;
  /** A backup attempt beside the latest one (it was silent too long), or undefined. */
  hedge: HedgeEntry | undefined;
  /** Attempts that failed or ran past their limit. */
  failures: number;
  /** The accepted result. */
  value: unknown;
  /** Why it failed. */
  reason: string | undefined;
  /** The subtask that delegated it, when it is a child. */
  readonly parent?: string;
}

/** A backup attempt of an assigned subtask. */
export interface HedgeEntry {
  readonly attempt: number;
  readonly agentId: string;
  acked: boolean;
}

/** What a finished run measured besides its subtasks' outcomes. */
export interface TaskSummary {
  readonly protocol: string;
  readonly protocolId: string;
  readonly metrics: CoordinationMetrics;
  readonly healing: readonly HealingAttempt[];
  readonly switches: readonly ProtocolSwitch[];
}

/** The events the ledger is made of, as they are journaled. */
export type LedgerEvent =
  | { readonly type: 'task.submitted'; readonly at: number; readonly task: Task }
  | { readonly type: 'task.started'; readonly at: number; readonly taskId: string }
  | { readonly type: 'attempts.reserved'; readonly upTo: number }
  | { readonly type: 'subtask.assigned'; readonly taskId: string; readonly subtaskId: string; readonly agentId: string; readonly attempt: number }
  /** A backup attempt starts beside the assigned one, on another agent. */
  | { readonly type: 'subtask.hedged'; readonly taskId: string; readonly subtaskId: string; readonly agentId: string; readonly attempt: number }
  /** An attempt of the assigned subtask `parentId` asked for a child: it joins the task, queued. */
  | { readonly type: 'subtask.delegated'; readonly taskId: string; readonly parentId: string; readonly subtask: Subtask }
  /** One of its attempts (the latest or the backup) reached its agent. */
  | { readonly type: 'subtask.acknowledged'; readonly taskId: string; readonly subtaskId: string; readonly attempt: number }
  /**
   * The attempt is over without a result (lost, revoked, the agent left); `failure`: it counts
   * against the subtask's attempts. With a backup beside it, the other attempt goes on.
   */
  | { readonly type: 'subtask.requeued'; readonly taskId: string; readonly subtaskId: string; readonly attempt: number; readonly failure: boolean }
  | { readonly type: 'subtask.accepted'; readonly taskId: string; readonly subtaskId: string; readonly attempt: number; readonly value: unknown }
  | { readonly type: 'subtask.failed'; readonly taskId: string; readonly subtaskId: string; readonly reason: string }
  | { readonly type: 'task.cancelled'; readonly at: number; readonly taskId: string; readonly reason: string }
  | { readonly type: 'task.finished'; readonly at: number; readonly taskId: string; readonly summary: TaskSummary }
  /** Its retention is over: it is dropped. */
  | { readonly type: 'task.forgotten'; readonly taskId: string };

export type LedgerEventType = LedgerEvent['type'];

/** An event that does not fit the ledger it was applied to: a bug, or a journal from elsewhere. */
export class LedgerError extends Error {
  override readonly name = 'LedgerError';
}

export function emptyLedger(): Ledger {
  return { tasks: Object.create(null) as Record<string, TaskEntry>, queue: [], reservedAttempts: 0, applied: 0 };
}

/**
 * A ledger from its JSON (a snapshot): the same value, its records without prototypes again.
 * Throws a {@link LedgerError} when it is not a ledger.
 */
export function restoreLedger(value: unknown): Ledger {
  const v = value as Partial<Ledger> | null;
  if (v === null || typeof v !== 'object' || typeof v.tasks !== 'object' || v.tasks === null || !Array.isArray(v.queue) || typeof v.reservedAttempts !== 'number') {
    throw new LedgerError('the snapshot is not a ledger');
  }
  const ledger = emptyLedger();
  for (const [id, entry] of Object.entries(v.tasks)) {
    // A snapshot from another version, or not a ledger's: a LedgerError naming the entry, not a TypeError.
    if (!isRecord(entry) || !isRecord(entry.task) || !Array.isArray(entry.task.subtasks) || !isRecord(entry.subtasks)) throw new LedgerError(`the snapshot is not a ledger: task ${JSON.stringify(id)} is malformed`);
    // Taken as parsed (no copy per entry: a snapshot holds every retained task's subtasks), the
    // maps keyed by anyone's ids given no prototype, as the reducer makes them.
    const subtasks = entry.subtasks;
    for (const sid in subtasks) {
      if (!isRecord(subtasks[sid])) throw new LedgerError(`the snapshot is not a ledger: subtask ${JSON.stringify(sid)} of task ${JSON.stringify(id)} is malformed`);
    }
    Object.setPrototypeOf(subtasks, null);
    if (!Array.isArray(entry.children)) (entry as { children: unknown }).children = []; // a snapshot from before delegation
    ledger.tasks[id] = entry as unknown as TaskEntry;
  }
  ledger.queue.push(...v.queue);
  ledger.reservedAttempts = v.reservedAttempts;
  ledger.applied = v.applied ?? 0;
  return ledger;
}

/**
 * Applies one event: the only way a ledger changes. It updates the value in place (O(1) per event
 * but for a task's submission), reads no clock and does nothing else; an event that does not fit
 * throws a {@link LedgerError} and changes nothing.
 *
 * @example applyLedgerEvent(ledger, { type: 'task.started', at: 5, taskId: 't' })
 */
export function applyLedgerEvent(ledger: Ledger, event: LedgerEvent): Ledger {
  switch (event.type) {
    case 'task.submitted': {
      const { task } = event;
      const known = ledger.tasks[task.id];
      if (known !== undefined) throw new LedgerError(`task ${JSON.stringify(task.id)} is already in the ledger (${known.state})`);
      const subtasks = Object.create(null) as Record<string, SubtaskEntry>;
      for (const s of task.subtasks) {
        // Two subtasks under one id would share an entry, and the task could never finish.
        if (subtasks[s.id] !== undefined) throw new LedgerError(`task ${JSON.stringify(task.id)} has two subtasks ${JSON.stringify(s.id)}`);
        subtasks[s.id] = { status: 'queued', attempt: 0, agentId: undefined, acked: false, hedge: undefined, failures: 0, value: undefined, reason: undefined };
      }
      ledger.tasks[task.id] = { task, state: 'queued', submittedAt: event.at, startedAt: undefined, finishedAt: undefined, subtasks, children: [], completed: 0, failed: 0, cancelled: undefined, summary: undefined };
      ledger.queue.push(task.id);
      break;
    }
    case 'task.started': {
      const entry = taskOf(ledger, event.taskId);
      if (entry.state !== 'queued') throw new LedgerError(`task ${JSON.stringify(event.taskId)} cannot start: it is ${entry.state}`);
      entry.state = 'running';
      entry.startedAt = event.at;
      unqueue(ledger, event.taskId);
      break;
    }
    case 'attempts.reserved':
      if (!(Number.isSafeInteger(event.upTo) && event.upTo > ledger.reservedAttempts)) throw new LedgerError(`attempts reserved up to ${event.upTo}, below ${ledger.reservedAttempts}`);
      ledger.reservedAttempts = event.upTo;
      break;
    case 'subtask.assigned': {
      const entry = subtaskOf(ledger, event.taskId, event.subtaskId, 'queued');
      if (!(Number.isSafeInteger(event.attempt) && event.attempt > entry.attempt && event.attempt < ledger.reservedAttempts)) {
        throw new LedgerError(`attempt ${event.attempt} of ${event.subtaskId} is not a whole number above ${entry.attempt} and below the reservation ${ledger.reservedAttempts}`);
      }
      entry.status = 'assigned';
      entry.attempt = event.attempt;
      entry.agentId = event.agentId;
      entry.acked = false;
      break;
    }
    case 'subtask.hedged': {
      const entry = subtaskOf(ledger, event.taskId, event.subtaskId, 'assigned');
      if (entry.hedge !== undefined) throw new LedgerError(`subtask ${event.subtaskId} of ${event.taskId} already has a backup attempt (${entry.hedge.attempt})`);
      if (event.agentId === entry.agentId) throw new LedgerError(`the backup attempt of ${event.subtaskId} must run on another agent than ${event.agentId}`);
      if (!(Number.isSafeInteger(event.attempt) && event.attempt > entry.attempt && event.attempt < ledger.reservedAttempts)) {
        throw new LedgerError(`attempt ${event.attempt} of ${event.subtaskId} is not a whole number above ${entry.attempt} and below the reservation ${ledger.reservedAttempts}`);
      }
      entry.hedge = { attempt: event.attempt, agentId: event.agentId, acked: false };
      break;
    }
    case 'subtask.delegated': {
      subtaskOf(ledger, event.taskId, event.parentId, 'assigned');
      const task = taskOf(ledger, event.taskId);
      const id = event.subtask.id;
      if (task.subtasks[id] !== undefined) throw new LedgerError(`task ${JSON.stringify(event.taskId)} already has a subtask ${JSON.stringify(id)}`);
      task.subtasks[id] = { status: 'queued', attempt: 0, agentId: undefined, acked: false, hedge: undefined, failures: 0, value: undefined, reason: undefined, parent: event.parentId };
      task.children.push(event.subtask);
      break;
    }
    case 'subtask.acknowledged': {
      const entry = subtaskOf(ledger, event.taskId, event.subtaskId, 'assigned');
      if (isHedge(entry, event)) (entry.hedge as HedgeEntry).acked = true;
      else current(entry, event).acked = true;
      break;
    }
    case 'subtask.requeued': {
      const entry = subtaskOf(ledger, event.taskId, event.subtaskId, 'assigned');
      const hedge = entry.hedge;
      if (isHedge(entry, event)) {
        entry.hedge = undefined;
      } else {
        current(entry, event);
        if (hedge === undefined) {
          entry.status = 'queued';
          entry.agentId = undefined;
        } else {
          // The backup goes on alone: it is the latest attempt now.
          entry.attempt = hedge.attempt;
          entry.agentId = hedge.agentId;
          entry.acked = hedge.acked;
          entry.hedge = undefined;
        }
      }
      if (event.failure) entry.failures++;
      break;
    }
    case 'subtask.accepted': {
      const entry = subtaskOf(ledger, event.taskId, event.subtaskId, 'assigned');
      const hedge = entry.hedge;
      if (isHedge(entry, event)) {
        entry.attempt = event.attempt;
        entry.agentId = (hedge as HedgeEntry).agentId;
      } else {
        current(entry, event);
      }
      entry.hedge = undefined;
      entry.status = 'done';
      entry.value = event.value;
      taskOf(ledger, event.taskId).completed++;
      break;
    }
    case 'subtask.failed': {
      const task = taskOf(ledger, event.taskId);
      const entry = subtaskOf(ledger, event.taskId, event.subtaskId);
      if (entry.status === 'done' || entry.status === 'failed') throw new LedgerError(`subtask ${event.subtaskId} of ${event.taskId} has already ended (${entry.status})`);
      entry.status = 'failed';
      entry.agentId = undefined;
      entry.hedge = undefined;
      entry.reason = event.reason;
      task.failed++;
      break;
    }
    case 'task.cancelled': {
      const entry = taskOf(ledger, event.taskId);
      if (entry.state !== 'queued' && entry.state !== 'running') throw new LedgerError(`task ${JSON.stringify(event.taskId)} cannot be cancelled: it is ${entry.state}`);
      entry.cancelled = event.reason;
      if (entry.state === 'queued') {
        // It never ran: it ends here, every subtask failed with the reason.
        unqueue(ledger, event.taskId);
        for (const s of Object.values(entry.subtasks)) {
          s.status = 'failed';
          s.reason = event.reason;
        }
        entry.failed = entry.task.subtasks.length;
        entry.state = 'cancelled';
        entry.finishedAt = event.at;
      }
      break;
    }
    case 'task.finished': {
      const entry = taskOf(ledger, event.taskId);
      if (entry.state !== 'running') throw new LedgerError(`task ${JSON.stringify(event.taskId)} cannot finish: it is ${entry.state}`);
      const open = subtaskCount(entry) - entry.completed - entry.failed;
      if (open !== 0) throw new LedgerError(`task ${JSON.stringify(event.taskId)} cannot finish with ${open} subtask(s) not ended`);
      entry.state = entry.cancelled !== undefined ? 'cancelled' : entry.failed === 0 ? 'done' : 'failed';
      entry.finishedAt = event.at;
      entry.summary = event.summary;
      break;
    }
    case 'task.forgotten': {
      const entry = taskOf(ledger, event.taskId);
      if (!ended(entry)) throw new LedgerError(`task ${JSON.stringify(event.taskId)} cannot be forgotten: it is ${entry.state}`);
      delete ledger.tasks[event.taskId];
      break;
    }
    default:
      throw new LedgerError(`unknown ledger event ${JSON.stringify((event as { type?: unknown }).type)}`);
  }
  ledger.applied++;
  return ledger;
}

/** Its subtasks: the task's own and the children they delegated. */
export function subtaskCount(entry: TaskEntry): number {
  return entry.task.subtasks.length + entry.children.length;
}

/** Whether the task has ended (its outcome is final). */
export function ended(entry: TaskEntry): boolean {
  return entry.state === 'done' || entry.state === 'failed' || entry.state === 'cancelled';
}

/** What has settled of a task so far: its completed subtasks' values and its failed ones' reasons (see {@link settledOf}). */
export interface SettledSubtasks {
  readonly results: Readonly<Record<string, unknown>>;
  readonly failed: Readonly<Record<string, string>>;
}

/**
 * The subtasks of a task that have settled, running or not (children included): what a view that
 * did not see them end (a coordinator restarted since) shows as done or failed.
 * `unsettledFailed`: the others are counted failed too (an ended task's, as its result has them).
 *
 * @example settledOf(ledger.tasks['t'] as TaskEntry) // { results: { a: 1 }, failed: { b: 'handler failed 3 times: …' } }
 */
export function settledOf(entry: TaskEntry, { unsettledFailed = false } = {}): SettledSubtasks {
  const results = Object.create(null) as Record<string, unknown>;
  const failed = Object.create(null) as Record<string, string>;
  for (const list of [entry.task.subtasks, entry.children]) {
    for (const s of list) {
      const sub = entry.subtasks[s.id] as SubtaskEntry;
      if (sub.status === 'done') results[s.id] = sub.value;
      else if (sub.status === 'failed' || unsettledFailed) failed[s.id] = sub.reason ?? entry.cancelled ?? 'failed';
    }
  }
  return { results, failed };
}

/** The result of a finished task, rebuilt from its entries (the same shape a run ends with). */
export function resultOf(entry: TaskEntry): CoordinationResult | undefined {
  if (!ended(entry)) return undefined;
  // An ended task's subtasks that never settled (it was cancelled, or reached its deadline) failed with it.
  const { results, failed } = settledOf(entry, { unsettledFailed: true });
  const summary = entry.summary;
  const at = entry.finishedAt ?? entry.submittedAt;
  return {
    taskId: entry.task.id,
    success: entry.failed === 0,
    results,
    failed,
    protocol: summary?.protocol ?? 'none',
    protocolId: summary?.protocolId ?? `${entry.task.id}:none`,
    metrics: summary?.metrics ?? {
      subtasks: subtaskCount(entry),
      completed: entry.completed,
      failed: entry.failed,
      staleResultsRejected: 0,
      assignments: 0,
      messages: 0,
      messagesByKind: {},
      messagesPerSubtask: 0,
      startedAt: at,
      finishedAt: at,
      durationMs: 0,
      performance: {},
    },
    healing: summary?.healing ?? [],
    switches: summary?.switches ?? [],
  };
}

function isRecord(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function taskOf(ledger: Ledger, taskId: string): TaskEntry {
  const entry = ledger.tasks[taskId];
  if (entry === undefined) throw new LedgerError(`no task ${JSON.stringify(taskId)} in the ledger`);
  return entry;
}

function subtaskOf(ledger: Ledger, taskId: string, subtaskId: string, status?: SubtaskStatus): SubtaskEntry {
  const task = taskOf(ledger, taskId);
  if (task.state !== 'running') throw new LedgerError(`task ${JSON.stringify(taskId)} is ${task.state}, not running`);
  const entry = task.subtasks[subtaskId];
  if (entry === undefined) throw new LedgerError(`no subtask ${JSON.stringify(subtaskId)} in task ${JSON.stringify(taskId)}`);
  if (status !== undefined && entry.status !== status) throw new LedgerError(`subtask ${subtaskId} of ${taskId} is ${entry.status}, not ${status}`);
  return entry;
}

function current(entry: SubtaskEntry, event: { readonly subtaskId: string; readonly attempt: number }): SubtaskEntry {
  if (entry.attempt !== event.attempt) throw new LedgerError(`attempt ${event.attempt} of ${event.subtaskId} is not its current one (${entry.attempt})`);
  return entry;
}

/** Whether the event names the subtask's backup attempt. */
function isHedge(entry: SubtaskEntry, event: { readonly attempt: number }): boolean {
  return entry.hedge !== undefined && entry.hedge.attempt === event.attempt;
}

function unqueue(ledger: Ledger, taskId: string): void {
  const at = ledger.queue.indexOf(taskId);
  if (at !== -1) ledger.queue.splice(at, 1);
}
