import type { Subscription } from 'rxjs';
import type { PerformanceSnapshot } from '../operators/index.js';
import type { KindStats } from '../streams/network.js';
import { SUBMISSION_KINDS } from '../streams/protocol.js';
import type { Subtask, Task } from '../streams/task.js';
import type { CoordinationEvent, CoordinationMetrics } from './events.js';
import type { SubtaskEntry, TaskEntry } from './ledger.js';
import type { TopologyName } from './topology.js';

/** A subtask of a running task: its ledger entry, and what only this process needs (its attempts out now). */
export interface SubtaskState {
  readonly subtask: Subtask;
  readonly index: number;
  readonly task: TaskRun;
  /** Where it stands, in the ledger: changed only through `record`. */
  readonly entry: SubtaskEntry;
  /** `taskId NUL subtaskId`: subtask ids are unique within their task only. */
  readonly key: string;
  /** Its attempts out now: none while it waits or once it ended, one, or two while one is hedged (the first is the older). */
  readonly attempts: Attempt[];
  /**
   * The attempt out alone has been silent past its progress deadline: a backup attempt is wanted.
   * `learned`: the deadline came from the task's finished work (a backup may then take a slot
   * before queued work); else it was the floor (only an idle slot).
   */
  hedge: 'learned' | 'floor' | undefined;
  /** Backup attempts started so far (no more than its attempts allow). */
  hedges: number;
}

/** One attempt of a subtask, on one agent: what its assignment took and the timers that watch it. */
export interface Attempt {
  readonly state: SubtaskState;
  readonly agentId: string;
  /** Its attempt token. */
  readonly token: number;
  /** `taskId NUL subtaskId#token`: the key its acknowledgement and progress are watched by. */
  readonly key: string;
  /** Protocol whose routes carried it. */
  readonly protocol: TopologyName;
  readonly assignedAt: number;
  /** When its acknowledgement came (the agent started it), or undefined. */
  ackedAt: number | undefined;
  readonly hops: number;
  /** Relays the assignment went through. */
  readonly route: readonly string[];
  /** Relays its result comes back through, in the order it travels (`Layout.replyRoute`). */
  readonly reply: readonly string[];
  /** Silent past its progress deadline (and no progress since). */
  silent: boolean;
  /** Set while it is silent: when, still silent a deadline later, it is taken for hung. */
  stillSilent: Subscription | undefined;
  /** Its start-to-close timer. */
  timer: Subscription | undefined;
  /** Set once the agent says its result is on its way through relays: when it is taken as lost. */
  transit: Subscription | undefined;
}

/** A task the engine runs: its ledger entry, its queue and what its result will report. */
export interface TaskRun {
  readonly task: Task;
  readonly entry: TaskEntry;
  /** Subtasks waiting for an agent, in dispatch order, from `head` on (what is before it is spent). */
  readonly queue: SubtaskState[];
  head: number;
  /** Subtasks that ended (accepted or failed). */
  done: number;
  readonly states: SubtaskState[];
  startedAt: number;
  readonly startByKind: Record<string, number>;
  /** Where the engine's healing history and switches stood when it started: its share is what follows. */
  readonly healingFrom: number;
  readonly switchesFrom: number;
  stale: number;
  assignments: number;
  /** Other tasks that ran at some time while it did (the network's counts during it are theirs too). */
  alongside: number;
  deadline: Subscription | undefined;
  finished: boolean;
  /** Gets the task's own events (its subtasks', its end) and the engine's (agents, faults, protocol). */
  readonly emit: (event: CoordinationEvent) => void;
}

/** An event of one task's: to the inspection stream (`inspect`, the engine's hooks) and to the task's followers. */
export function emitTask(inspect: { emit(event: CoordinationEvent): void }, run: TaskRun, event: CoordinationEvent): void {
  inspect.emit(event);
  run.emit(event);
}

/** Stops the attempt's timers (its acknowledgement or progress wait, its result in transit, its silence as a hedge). */
export function stopTimers(attempt: Attempt): void {
  attempt.timer?.unsubscribe();
  attempt.transit?.unsubscribe();
  attempt.stillSilent?.unsubscribe();
  attempt.timer = attempt.transit = attempt.stillSilent = undefined;
}

/** Whether the attempt's agent said it has it (the ledger keeps this for the latest attempt and the backup). */
export function ackedOf(attempt: Attempt): boolean {
  const entry = attempt.state.entry;
  return entry.hedge !== undefined && entry.hedge.attempt === attempt.token ? entry.hedge.acked : entry.acked;
}

/** Unsuccessful attempts after which a subtask fails: its own bound, its task's, else the coordinator's (`maxSubtaskAttempts`). */
export function attemptsOf(state: SubtaskState, maxSubtaskAttempts: number): number {
  return state.subtask.maxAttempts ?? state.task.task.maxAttempts ?? maxSubtaskAttempts;
}

/** Start-to-close limit of an attempt of the subtask: its own, its task's, else the coordinator's (`attemptTimeoutMs`). */
export function timeoutOf(state: SubtaskState, attemptTimeoutMs: number): number {
  return state.subtask.timeoutMs ?? state.task.task.timeoutMs ?? attemptTimeoutMs;
}

/** Back into its task's queue by priority, after the waiting subtasks of the same priority. */
export function enqueue(state: SubtaskState): void {
  const run = state.task;
  const priority = state.subtask.priority ?? 0;
  let i = run.queue.length;
  while (i > run.head && ((run.queue[i - 1] as SubtaskState).subtask.priority ?? 0) < priority) i--;
  run.queue.splice(i, 0, state);
}

/** `taskId NUL subtaskId`: the key of a running subtask (subtask ids are unique within their task only). */
export function stateKey(taskId: string, subtaskId: string): string {
  return `${taskId}\u0000${subtaskId}`;
}

/** A subtask of `run` as the engine starts to keep it: `index` in its task, where the ledger has it, no attempt out. */
export function subtaskState(run: TaskRun, subtask: Subtask, index: number, entry: SubtaskEntry): SubtaskState {
  return { subtask, index, task: run, entry, key: stateKey(run.task.id, subtask.id), attempts: [], hedge: undefined, hedges: 0 };
}

/**
 * What the run measured, for its result: its subtasks' ends, and the messages sent since it started
 * (`byKind`: the network's counts now), a service's traffic with its clients left out.
 */
export function runMetrics(run: TaskRun, byKind: Readonly<Record<string, KindStats>>, now: number, performance: ReadonlyMap<string, PerformanceSnapshot>): CoordinationMetrics {
  const messagesByKind: Record<string, number> = {};
  let messages = 0;
  for (const [kind, s] of Object.entries(byKind)) {
    const n = s.sent - (run.startByKind[kind] ?? 0);
    if (n <= 0 || SUBMISSION_KINDS.has(kind)) continue; // a service's traffic with its clients is not coordination
    messagesByKind[kind] = n;
    messages += n;
  }
  const { entry } = run;
  const size = run.states.length;
  return {
    subtasks: size,
    completed: entry.completed,
    failed: entry.failed,
    staleResultsRejected: run.stale,
    assignments: run.assignments,
    messages,
    messagesByKind,
    messagesPerSubtask: size === 0 ? 0 : messages / size,
    tasksAlongside: run.alongside,
    startedAt: run.startedAt,
    finishedAt: now,
    durationMs: now - run.startedAt,
    performance: Object.fromEntries(performance),
  };
}
