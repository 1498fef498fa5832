import type { Subscription } from 'rxjs';
import type { Subtask, Task } from '../streams/task.js';
import type { CoordinationEvent } from './events.js';
import type { SubtaskEntry, TaskEntry } from './ledger.js';
import type { TopologyName } from './topology.js';

/** A subtask of a running task: its ledger entry, and what only this process needs (timers, routes). */
export interface SubtaskState {
  readonly subtask: Subtask;
  readonly index: number;
  readonly task: TaskRun;
  /** Where it stands, in the ledger: changed only through `record`. */
  readonly entry: SubtaskEntry;
  /** `taskId NUL subtaskId`: subtask ids are unique within their task only. */
  readonly key: string;
  /** Protocol whose routes carried the current assignment. */
  protocol: TopologyName;
  assignedAt: number;
  hops: number;
  /** Relays the assignment went through (and its result comes back through). */
  route: readonly string[];
  /** The current attempt's start-to-close timer. */
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
  deadline: Subscription | undefined;
  finished: boolean;
  /** Gets the task's own events (its subtasks', its end) and the engine's (agents, faults, protocol). */
  readonly emit: (event: CoordinationEvent) => void;
}
