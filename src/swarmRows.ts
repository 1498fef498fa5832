/**
 * The rows a service shows of itself (`rxswarm status`, `rxswarm tasks`, the dashboard): plain
 * JSON values, the same in a `state` message, in `--json` output and in the page. Times are the
 * service's clock (ms since the epoch for `rxswarm serve`).
 */

/**
 * `alive`: beating; `suspected`: the detector suspects it (phi at or above the threshold, or its
 * deadline passed); `down`: declared failed; `quarantined`: no work for the rest of the task;
 * `gone`: its connection closed.
 */
export type AgentState = 'alive' | 'suspected' | 'down' | 'quarantined' | 'gone';

export interface AgentRow {
  readonly id: string;
  readonly state: AgentState;
  /** Suspicion now (phi accrual over its beats as the service receives them); null before two beats. */
  readonly phi: number | null;
  /** When its last heartbeat arrived (null: none yet). */
  readonly lastBeatAt: number | null;
  /** Subtasks it claims to run at once. */
  readonly slots: number;
  /** Attempts it holds now. */
  readonly running: number;
  /** Busy share of its slots, 0..1, from its last heartbeat. */
  readonly usage: number;
  readonly capabilities: readonly string[];
  /** Why it is in its state (the detector's words, the quarantine's reason). */
  readonly detail?: string;
  /** Since when it is in its state. */
  readonly since: number;
  /** Its last changes of state, oldest first (at most 8): a suspicion and the verdict that followed stay visible. */
  readonly transitions: readonly { readonly state: AgentState; readonly at: number; readonly detail?: string }[];
  /** Phi once a second, oldest first (at most 60; `rxswarm status --json` and the view's own rows: a watcher gets it apart, as `histories`, after its first state). */
  readonly phiHistory?: readonly (number | null)[];
}

export type TaskState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

export interface TaskRow {
  readonly id: string;
  readonly state: TaskState;
  readonly subtasks: number;
  readonly completed: number;
  readonly failed: number;
  /** Subtasks with an attempt out now. */
  readonly running: number;
  /** Ended subtasks over all, 0..1. */
  readonly progress: number;
  /** 1 for the next to start; null unless queued. */
  readonly queuePosition: number | null;
  readonly submittedAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  /** Protocol in force (running or at the end). */
  readonly protocol: string | null;
  /** Why it failed or was cancelled. */
  readonly error?: string;
}

/** `pending`: not assigned yet; `waiting`: no live agent can run it (see `reason`). */
export type SubtaskState = 'pending' | 'waiting' | 'running' | 'done' | 'failed';

const RANK: Readonly<Record<TaskState, number>> = { running: 0, queued: 1, done: 2, failed: 2, cancelled: 2 };

/**
 * Tasks as a person reads them (the dashboard's order, the order a watcher gets their rows in):
 * those running, first started first (several run at once), then the queue in its order, then
 * the finished ones, latest first.
 */
export function compareTasks(a: TaskRow, b: TaskRow): number {
  const r = RANK[a.state] - RANK[b.state];
  if (r !== 0) return r;
  if (a.state === 'running') return (a.startedAt ?? 0) - (b.startedAt ?? 0);
  if (a.state === 'queued') return (a.queuePosition ?? Infinity) - (b.queuePosition ?? Infinity) || a.submittedAt - b.submittedAt;
  return (b.finishedAt ?? 0) - (a.finishedAt ?? 0);
}

export interface SubtaskRow {
  readonly id: string;
  readonly taskId: string;
  readonly state: SubtaskState;
  readonly agent: string | null;
  readonly attempt: number | null;
  /** Assignments so far (a hedged or requeued subtask has several). */
  readonly attempts: number;
  /** The running attempt's last reported progress, 0..1. */
  readonly progress: number;
  /** A backup attempt runs beside the first. */
  readonly hedged: boolean;
  readonly since: number;
  readonly reason?: string;
}

export type TimelineStep = 'delegated' | 'assigned' | 'acknowledged' | 'progress' | 'hedged' | 'requeued' | 'rejected' | 'waiting' | 'completed' | 'failed';

export interface TimelineEntry {
  readonly at: number;
  readonly step: TimelineStep;
  readonly agent?: string;
  readonly attempt?: number;
  readonly detail?: string;
}

/**
 * What needs attention, most urgent first: `suspected` agents (phi, age of the last beat),
 * `healing` faults being healed, `quorum` at risk (a majority of the agents not alive, or a
 * consensus lost or timed out), `waiting` subtasks no live agent can run (with the reason),
 * `hedged` subtasks (a backup attempt runs), `overdue` subtasks (running over three times their
 * task's mean duration, at least 5 s), `quarantined` agents.
 */
export interface AttentionItem {
  readonly kind: 'suspected' | 'healing' | 'quorum' | 'waiting' | 'hedged' | 'overdue' | 'quarantined';
  readonly text: string;
  readonly at: number;
  readonly agentId?: string;
  readonly taskId?: string;
  readonly subtaskIds?: readonly string[];
  readonly phi?: number;
  readonly lastBeatAgeMs?: number;
}

/** An edge of the topology as routes were seen: `from` passed assignments to `to`. */
export interface EdgeRow {
  readonly from: string;
  readonly to: string;
  /** Assignments it carried. */
  readonly count: number;
  readonly at: number;
}

export interface SwitchRow {
  readonly at: number;
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  readonly scores: Readonly<Record<string, number>>;
}

export interface TopologyView {
  readonly protocol: string | null;
  readonly edges: readonly EdgeRow[];
  readonly switches: readonly SwitchRow[];
}

/** `rxswarm status --json`. */
export interface StatusJson {
  readonly agents: readonly { readonly id: string; readonly state: AgentState; readonly phi: number | null; readonly slots: number; readonly running: number; readonly usage: number }[];
  readonly protocol: string | null;
  readonly tasks: readonly TaskRow[];
}
